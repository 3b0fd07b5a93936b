using System.Numerics.Tensors;
using NativeMi.Information;

namespace NativeMi.Evaluation;

/// <summary>An evaluation figure and its 95% bootstrap percentile interval (null bounds when no resample was drawn).</summary>
/// <param name="Value">The figure on the whole set.</param>
/// <param name="Lower">Lower end of the interval.</param>
/// <param name="Upper">Upper end of the interval.</param>
public sealed record MetricEstimate(double Value, double? Lower, double? Upper);

/// <summary>Cosine similarity of pooled sentence vectors, with a zero vector similar to nothing (cosine 0).</summary>
internal static class CosineSimilarity
{
    /// <summary>
    /// Rows of <paramref name="vectors"/> ([n·width]) scaled to unit length, so that a dot product is their cosine. A zero
    /// row stays zero, so that a degenerate embedding scores 0 against everything instead of NaN.
    /// </summary>
    /// <exception cref="ArgumentException">The length is not a multiple of <paramref name="width"/>, or a value is not finite.</exception>
    public static float[] Normalise(ReadOnlySpan<float> vectors, int width)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        if (vectors.Length % width != 0) throw new ArgumentException($"{vectors.Length} values are not rows of width {width}", nameof(vectors));
        var result = new float[vectors.Length];
        for (int row = 0; row < vectors.Length / width; row++)
        {
            ReadOnlySpan<float> v = vectors.Slice(row * width, width);
            // A NaN would compare false with every score and silently rank as the worst candidate.
            if (!TensorPrimitives.IsFiniteAll(v)) throw new ArgumentException($"vector {row} holds a NaN or infinite value", nameof(vectors));
            double norm = Math.Sqrt(TensorPrimitives.Dot(v, v));
            if (norm > 0) TensorPrimitives.Multiply(v, (float)(1 / norm), result.AsSpan(row * width, width));
        }
        return result;
    }

    /// <summary>Cosine of rows <paramref name="a"/> and <paramref name="b"/> of two normalised matrices.</summary>
    public static double Of(ReadOnlySpan<float> normalisedA, int a, ReadOnlySpan<float> normalisedB, int b, int width) =>
        TensorPrimitives.Dot(normalisedA.Slice(a * width, width), normalisedB.Slice(b * width, width));
}

/// <summary>Gloss-to-example retrieval: R@1, R@10 and MRR over queries, each with a bootstrap interval over queries.</summary>
internal static class RetrievalEvaluation
{
    /// <summary>
    /// The rank of each query's first right answer: 1 + the number of wrong candidates whose cosine is at least the best right
    /// candidate's. Ties go against the query, so an embedding that gives every sentence the same vector ranks every right
    /// answer last instead of earning credit by chance.
    /// </summary>
    /// <param name="queries">Query vectors [queries·width], not necessarily normalised.</param>
    /// <param name="candidates">Candidate vectors [candidates·width].</param>
    /// <param name="width">Vector width.</param>
    /// <param name="answerOf">For each candidate, the query it answers.</param>
    /// <exception cref="ArgumentException">A query has no right answer, a candidate names no query, or the shapes disagree.</exception>
    public static int[] Ranks(ReadOnlySpan<float> queries, ReadOnlySpan<float> candidates, int width, ReadOnlySpan<int> answerOf)
    {
        float[] q = CosineSimilarity.Normalise(queries, width), c = CosineSimilarity.Normalise(candidates, width);
        int queryCount = q.Length / width, candidateCount = c.Length / width;
        if (answerOf.Length != candidateCount) throw new ArgumentException($"{answerOf.Length} answers for {candidateCount} candidates", nameof(answerOf));
        var answers = new int[candidateCount];
        var answered = new bool[queryCount];
        for (int i = 0; i < candidateCount; i++)
        {
            if (answerOf[i] < 0 || answerOf[i] >= queryCount) throw new ArgumentException($"candidate {i} answers query {answerOf[i]}, outside 0..{queryCount - 1}", nameof(answerOf));
            answers[i] = answerOf[i];
            answered[answerOf[i]] = true;
        }
        int missing = Array.IndexOf(answered, false);
        if (missing >= 0) throw new ArgumentException($"query {missing} has no right answer among the candidates", nameof(answerOf));

        var ranks = new int[queryCount];
        // Each query's row is independent of the others, so the parallel loop gives the same ranks as a serial one.
        Parallel.For(0, queryCount, () => new float[candidateCount], (query, _, scores) =>
        {
            ReadOnlySpan<float> vector = q.AsSpan(query * width, width);
            float best = float.NegativeInfinity;
            for (int i = 0; i < candidateCount; i++)
            {
                scores[i] = TensorPrimitives.Dot(vector, c.AsSpan(i * width, width));
                if (answers[i] == query && scores[i] > best) best = scores[i];
            }
            int above = 0;
            for (int i = 0; i < candidateCount; i++)
                if (answers[i] != query && scores[i] >= best) above++;
            ranks[query] = above + 1;
            return scores;
        }, _ => { });
        return ranks;
    }

    /// <summary>R@1, R@10 and MRR of <paramref name="ranks"/>, with percentile intervals from a bootstrap over queries.</summary>
    /// <param name="ranks">Each query's rank of its first right answer (1 = top).</param>
    /// <param name="resamples">Bootstrap resamples (0: no intervals).</param>
    /// <param name="seed">Seed of the resamples.</param>
    /// <param name="level">Interval level, 0.95 for 95 %.</param>
    public static RetrievalFigures Score(IReadOnlyList<int> ranks, int resamples, ulong seed, double level = 0.95)
    {
        ArgumentNullException.ThrowIfNull(ranks);
        if (ranks.Count == 0) throw new ArgumentException("no query", nameof(ranks));
        if (ranks.Any(r => r < 1)) throw new ArgumentException("a rank is below 1", nameof(ranks));
        double[] top1 = ranks.Select(r => r <= 1 ? 1.0 : 0.0).ToArray();
        double[] top10 = ranks.Select(r => r <= 10 ? 1.0 : 0.0).ToArray();
        double[] reciprocal = ranks.Select(r => 1.0 / r).ToArray();
        HeldOutResampling? draws = resamples > 0 ? new HeldOutResampling(ranks.Count, resamples, seed) : null;
        return new RetrievalFigures(Mean(top1, draws, level), Mean(top10, draws, level), Mean(reciprocal, draws, level), ranks.Count);
    }

    private static MetricEstimate Mean(double[] perQuery, HeldOutResampling? draws, double level)
    {
        double value = perQuery.Average();
        if (draws is null) return new MetricEstimate(value, null, null);
        double[] means = draws.Sums(perQuery).Select(s => s / perQuery.Length).ToArray();
        Interval interval = HeldOutResampling.PercentileInterval(means, level);
        return new MetricEstimate(value, interval.Lower, interval.Upper);
    }
}

/// <summary>Gloss-to-example retrieval scores of an evaluation: each gloss is a query, every example sentence a candidate, ranked by cosine.</summary>
/// <param name="RecallAt1">Share of queries whose first right answer ranks first.</param>
/// <param name="RecallAt10">Share of queries with a right answer in the top 10.</param>
/// <param name="MeanReciprocalRank">Mean over queries of 1 / the rank of the first right answer.</param>
/// <param name="Queries">Number of queries.</param>
public sealed record RetrievalFigures(MetricEstimate RecallAt1, MetricEstimate RecallAt10, MetricEstimate MeanReciprocalRank, int Queries);

/// <summary>Same-sense detection: ROC-AUC of pair scores, with a bootstrap interval over pairs.</summary>
internal static class SameSenseEvaluation
{
    /// <summary>
    /// The exact ROC-AUC: the share of (positive, negative) pairs of items in which the positive scores higher, a tie
    /// counting one half (the Mann-Whitney U statistic over P·N).
    /// </summary>
    /// <exception cref="ArgumentException">The lengths differ, a score is NaN, or one class is empty.</exception>
    public static double RocAuc(ReadOnlySpan<double> scores, ReadOnlySpan<bool> positive)
    {
        Sorted sorted = Sort(scores, positive);
        var weights = new double[scores.Length];
        Array.Fill(weights, 1.0);
        return sorted.Auc(weights);
    }

    /// <summary>
    /// ROC-AUC with a percentile interval from a stratified bootstrap: each resample draws the positives from the positives and
    /// the negatives from the negatives (with replacement), so every resample has both classes in their original numbers.
    /// </summary>
    /// <param name="scores">One score per item (a pair's cosine).</param>
    /// <param name="positive">Whether each item is of the positive class.</param>
    /// <param name="resamples">Bootstrap resamples (0: no interval).</param>
    /// <param name="seed">Seed of the resamples.</param>
    /// <param name="level">Interval level, 0.95 for 95 %.</param>
    /// <exception cref="ArgumentException">As <see cref="RocAuc"/>.</exception>
    public static MetricEstimate RocAucWithInterval(ReadOnlySpan<double> scores, ReadOnlySpan<bool> positive, int resamples, ulong seed, double level = 0.95)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(resamples);
        Sorted sorted = Sort(scores, positive);
        var weights = new double[scores.Length];
        Array.Fill(weights, 1.0);
        double value = sorted.Auc(weights);
        if (resamples == 0) return new MetricEstimate(value, null, null);

        bool[] labels = positive.ToArray();
        int[] positives = Enumerable.Range(0, labels.Length).Where(i => labels[i]).ToArray();
        int[] negatives = Enumerable.Range(0, labels.Length).Where(i => !labels[i]).ToArray();
        var positiveDraws = new HeldOutResampling(positives.Length, resamples, seed);
        var negativeDraws = new HeldOutResampling(negatives.Length, resamples, seed ^ 0x4E45_4741_5449_5645UL);
        var aucs = new double[resamples];
        for (int r = 0; r < resamples; r++)
        {
            Array.Clear(weights);
            foreach (int k in positiveDraws.Draws(r)) weights[positives[k]]++;
            foreach (int k in negativeDraws.Draws(r)) weights[negatives[k]]++;
            aucs[r] = sorted.Auc(weights);
        }
        Interval interval = HeldOutResampling.PercentileInterval(aucs, level);
        return new MetricEstimate(value, interval.Lower, interval.Upper);
    }

    private static Sorted Sort(ReadOnlySpan<double> scores, ReadOnlySpan<bool> positive)
    {
        if (scores.Length != positive.Length) throw new ArgumentException($"{scores.Length} scores for {positive.Length} labels", nameof(positive));
        int p = 0;
        for (int i = 0; i < scores.Length; i++)
        {
            if (double.IsNaN(scores[i])) throw new ArgumentException($"score {i} is NaN", nameof(scores));
            if (positive[i]) p++;
        }
        if (p == 0 || p == scores.Length) throw new ArgumentException($"ROC-AUC needs both classes; got {p} positive of {scores.Length}", nameof(positive));
        int[] order = Enumerable.Range(0, scores.Length).ToArray();
        double[] keys = scores.ToArray();
        Array.Sort(keys, order);
        return new Sorted(order, keys, positive.ToArray());
    }

    /// <summary>Items in ascending score order; an AUC is then one pass over groups of equal scores.</summary>
    private sealed class Sorted(int[] order, double[] sortedScores, bool[] positive)
    {
        /// <summary>The AUC with each item counted <paramref name="weights"/>[item] times.</summary>
        public double Auc(double[] weights)
        {
            double negativesBelow = 0, sum = 0, positiveTotal = 0, negativeTotal = 0;
            for (int start = 0; start < order.Length;)
            {
                int end = start;
                double groupPositive = 0, groupNegative = 0;
                while (end < order.Length && sortedScores[end] == sortedScores[start])
                {
                    int item = order[end++];
                    if (positive[item]) groupPositive += weights[item];
                    else groupNegative += weights[item];
                }
                sum += groupPositive * (negativesBelow + 0.5 * groupNegative);
                negativesBelow += groupNegative;
                positiveTotal += groupPositive;
                negativeTotal += groupNegative;
                start = end;
            }
            return sum / (positiveTotal * negativeTotal);
        }
    }
}
