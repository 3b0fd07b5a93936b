using NativeMi.Evaluation;
using NativeMi.Information;
using Xunit;

namespace NativeMi.Tests.Evaluation;

/// <summary>The evaluation's figures on hand-made embeddings, where every answer is known.</summary>
public class EvaluationMetricsTests
{
    /// <summary>
    /// A set of <paramref name="synsets"/> synsets with 1 + s % 3 examples each, and for every synset with two examples a
    /// same-synset pair plus a pair with the next synset's first example (a different-synset pair).
    /// </summary>
    private static EvaluationSet Set(int synsets)
    {
        var glosses = new List<EvaluationGloss>();
        var examples = new List<EvaluationExample>();
        var first = new List<int>();
        for (int s = 0; s < synsets; s++)
        {
            glosses.Add(new EvaluationGloss($"{s:D8}-n", [$"lemma{s}"], $"definition {s}"));
            first.Add(examples.Count);
            for (int k = 0; k <= s % 3; k++) examples.Add(new EvaluationExample($"{s:D8}-n.{k + 1}", s, [$"lemma{s}"], $"example {k} of {s}"));
        }
        var pairs = new List<EvaluationPair>();
        for (int s = 0; s < synsets; s++)
        {
            if (s % 3 == 0) continue;
            pairs.Add(new EvaluationPair($"p{pairs.Count}", $"lemma{s}-n", first[s], first[s] + 1, SameSynset: true));
            pairs.Add(new EvaluationPair($"p{pairs.Count}", $"lemma{s}-n", first[s] + 1, first[(s + 1) % synsets], SameSynset: false));
        }
        return new EvaluationSet(glosses, examples, pairs);
    }

    /// <summary>One-hot vectors: a text of synset s points along axis s, so a synset's texts have cosine 1 and others 0.</summary>
    private static float[] OneHot(IEnumerable<int> synsetOfEachText, int width)
    {
        int[] synsets = synsetOfEachText.ToArray();
        var vectors = new float[synsets.Length * width];
        for (int i = 0; i < synsets.Length; i++) vectors[i * width + synsets[i]] = 2.5f; // not unit length: cosine must normalise
        return vectors;
    }

    [Fact]
    public void APerfectEmbeddingGivesRecallOneMrrOneAndAucOne()
    {
        EvaluationSet set = Set(12);
        int width = set.Glosses.Count;
        EvaluationScores scores = EvaluationScoring.Score(set, OneHot(Enumerable.Range(0, width), width), OneHot(set.Examples.Select(e => e.Synset), width),
            width, resamples: 200, seed: 7);

        Assert.All(scores.Ranks, r => Assert.Equal(1, r));
        foreach (MetricEstimate m in new[] { scores.Retrieval.RecallAt1, scores.Retrieval.RecallAt10, scores.Retrieval.MeanReciprocalRank, scores.SameSense! })
        {
            Assert.Equal(1.0, m.Value);
            Assert.Equal(1.0, m.Lower);
            Assert.Equal(1.0, m.Upper);
        }
        Assert.Equal(set.Pairs.Select(p => p.SameSynset ? 1.0 : 0.0), scores.PairScores.Select(s => Math.Round(s, 6)));
    }

    [Fact]
    public void AnEmbeddingThatGivesEveryTextTheSameVectorEarnsNothingFromTies()
    {
        EvaluationSet set = Set(9);
        int width = 4;
        float[] same(int n) => Enumerable.Range(0, n * width).Select(i => i % width == 1 ? 1f : 0f).ToArray();
        EvaluationScores scores = EvaluationScoring.Score(set, same(set.Glosses.Count), same(set.Examples.Count), width, resamples: 0, seed: 0);

        // Every wrong candidate ties with the right ones, and ties count against the query.
        for (int q = 0; q < set.Glosses.Count; q++)
            Assert.Equal(set.Examples.Count(e => e.Synset != q) + 1, scores.Ranks[q]);
        Assert.Equal(0.0, scores.Retrieval.RecallAt1.Value);
        Assert.Null(scores.Retrieval.RecallAt1.Lower);
        Assert.Equal(0.5, scores.SameSense!.Value);
    }

    [Fact]
    public void KnownRanksGiveTheExactMrrAndRecalls()
    {
        // Candidate i is axis i, so a query's cosine with candidate i is its i-th coordinate over its norm: the ranking is
        // the order of the coordinates. Queries 0..3 answer candidates {0}, {1, 2}, {3}, {4}.
        int[] answerOf = [0, 1, 1, 2, 3];
        int width = answerOf.Length;
        var candidates = new float[width * width];
        for (int i = 0; i < width; i++) candidates[i * width + i] = 1;
        float[][] queries =
        [
            [0.9f, 0.1f, 0.2f, 0.3f, 0.4f], // its answer is the highest: rank 1
            [0.8f, 0.5f, 0.7f, 0.1f, 0.2f], // best right answer (0.7) behind one wrong one (0.8): rank 2
            [0.9f, 0.8f, 0.7f, 0.3f, 0.2f], // three wrong ones above its answer: rank 4
            [0.1f, 0.2f, 0.1f, 0.3f, 0.3f], // its answer ties with one wrong one (0.3): the tie counts against it, rank 2
        ];
        int[] ranks = RetrievalEvaluation.Ranks(queries.SelectMany(q => q).ToArray(), candidates, width, answerOf);
        Assert.Equal([1, 2, 4, 2], ranks);

        RetrievalFigures figures = RetrievalEvaluation.Score(ranks, resamples: 0, seed: 0);
        Assert.Equal(0.25, figures.RecallAt1.Value);
        Assert.Equal(1.0, figures.RecallAt10.Value);
        Assert.Equal((1 + 1 / 2.0 + 1 / 4.0 + 1 / 2.0) / 4, figures.MeanReciprocalRank.Value, 15);
        Assert.Equal(4, figures.Queries);
    }

    [Fact]
    public void RecallAt10CountsRanksUpToTenOnly()
    {
        RetrievalFigures figures = RetrievalEvaluation.Score([10, 11, 1, 100], resamples: 0, seed: 0);
        Assert.Equal(0.5, figures.RecallAt10.Value);
        Assert.Equal(0.25, figures.RecallAt1.Value);
        Assert.Equal((0.1 + 1 / 11.0 + 1 + 0.01) / 4, figures.MeanReciprocalRank.Value, 15);
    }

    [Fact]
    public void AucIsOneForSeparatedScoresZeroForReversedAndOneHalfForTies()
    {
        double[] scores = [0.9, 0.8, 0.7, 0.2, 0.1];
        bool[] positive = [true, true, true, false, false];
        Assert.Equal(1.0, SameSenseEvaluation.RocAuc(scores, positive));
        Assert.Equal(0.0, SameSenseEvaluation.RocAuc(scores.Select(s => -s).ToArray(), positive));
        Assert.Equal(0.5, SameSenseEvaluation.RocAuc([0.3, 0.3, 0.3, 0.3, 0.3], positive));
        // One tie among four (positive, negative) pairs: (1 + 1 + 0.5 + 1) / 4.
        Assert.Equal(0.875, SameSenseEvaluation.RocAuc([0.9, 0.5, 0.5, 0.1], [true, true, false, false]));
    }

    [Fact]
    public void AucEqualsTheCountOverEveryPositiveNegativePairWithTiesOnRandomScores()
    {
        var random = new SplitMix64(11);
        for (int trial = 0; trial < 20; trial++)
        {
            int n = 5 + random.NextInt(60);
            // Scores on a coarse grid, so that ties between and within the classes are common.
            double[] scores = Enumerable.Range(0, n).Select(_ => random.NextInt(8) / 4.0 - 1).ToArray();
            bool[] positive = Enumerable.Range(0, n).Select(i => i == 0 || (i != 1 && random.NextInt(2) == 0)).ToArray();
            double count = 0;
            int pairs = 0;
            for (int p = 0; p < n; p++)
                for (int q = 0; q < n; q++)
                {
                    if (!positive[p] || positive[q]) continue;
                    pairs++;
                    count += scores[p] > scores[q] ? 1 : scores[p] == scores[q] ? 0.5 : 0;
                }
            Assert.Equal(count / pairs, SameSenseEvaluation.RocAuc(scores, positive), 12);
        }
    }

    [Fact]
    public void AucNeedsBothClassesAndNoNaN()
    {
        Assert.Throws<ArgumentException>(() => SameSenseEvaluation.RocAuc([0.1, 0.2], [true, true]));
        Assert.Throws<ArgumentException>(() => SameSenseEvaluation.RocAuc([0.1, double.NaN], [true, false]));
        Assert.Throws<ArgumentException>(() => SameSenseEvaluation.RocAuc([0.1], [true, false]));
    }

    [Fact]
    public void TheAucIntervalIsSeededStratifiedAndHoldsTheValue()
    {
        var random = new SplitMix64(3);
        int n = 400;
        bool[] positive = Enumerable.Range(0, n).Select(i => i % 10 == 0).ToArray(); // 40 positives: a resample that lost them would fail
        double[] scores = Enumerable.Range(0, n).Select(i => random.NextDouble() + (positive[i] ? 0.3 : 0)).ToArray();
        MetricEstimate a = SameSenseEvaluation.RocAucWithInterval(scores, positive, 500, seed: 1);
        MetricEstimate b = SameSenseEvaluation.RocAucWithInterval(scores, positive, 500, seed: 1);
        MetricEstimate c = SameSenseEvaluation.RocAucWithInterval(scores, positive, 500, seed: 2);
        Assert.Equal(a, b);
        Assert.NotEqual(a.Lower, c.Lower);
        Assert.Equal(SameSenseEvaluation.RocAuc(scores, positive), a.Value);
        Assert.True(a.Lower < a.Value && a.Value < a.Upper, $"{a}");
        // With 40 positives and 360 negatives the AUC's standard error is near 0.045: a 95 % interval spans roughly 0.1 to 0.25.
        Assert.InRange(a.Upper!.Value - a.Lower!.Value, 0.08, 0.3);
    }

    [Fact]
    public void TheRetrievalIntervalIsThePercentileIntervalOfResampledMeans()
    {
        int[] ranks = Enumerable.Range(0, 300).Select(i => 1 + i % 7).ToArray();
        RetrievalFigures figures = RetrievalEvaluation.Score(ranks, 400, seed: 5);
        var draws = new HeldOutResampling(ranks.Length, 400, 5);
        double[] means = Enumerable.Range(0, 400).Select(r => draws.Draws(r).ToArray().Average(i => 1.0 / ranks[i])).ToArray();
        Interval expected = HeldOutResampling.PercentileInterval(means, 0.95);
        Assert.Equal(expected.Lower, figures.MeanReciprocalRank.Lower!.Value, 12);
        Assert.Equal(expected.Upper, figures.MeanReciprocalRank.Upper!.Value, 12);
        Assert.True(figures.RecallAt1.Lower < figures.RecallAt1.Value && figures.RecallAt1.Value < figures.RecallAt1.Upper);
    }

    [Fact]
    public void AZeroVectorIsSimilarToNothingAndANaNIsRefused()
    {
        float[] normalised = CosineSimilarity.Normalise([0, 0, 3, 4], 2);
        Assert.Equal([0f, 0f, 0.6f, 0.8f], normalised);
        Assert.Equal(0.0, CosineSimilarity.Of(normalised, 0, normalised, 1, 2));
        Assert.Throws<ArgumentException>(() => CosineSimilarity.Normalise([1, float.NaN], 2));
    }

    [Fact]
    public void AQueryWithoutARightAnswerIsRefused()
    {
        var e = Assert.Throws<ArgumentException>(() => RetrievalEvaluation.Ranks(new float[4], new float[4], 2, [0, 0]));
        Assert.Contains("query 1", e.Message, StringComparison.Ordinal);
    }
}
