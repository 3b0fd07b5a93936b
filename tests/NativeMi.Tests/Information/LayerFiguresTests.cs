using NativeMi.Information;
using Xunit;

namespace NativeMi.Tests.Information;

public class LayerFiguresTests
{
    // Two sentences, five targets: token 1 three times, tokens 2 and 3 once; three correct.
    private static readonly SentenceOutcome[] TwoSentences =
    [
        new([1, 2], [true, false], [1.0, 3.0]),
        new([1, 3, 1], [true, true, false], [0.5, 2.0, 1.5]),
    ];

    /// <summary>A population of four sentences: [1, 2], [1, 3, 1], [1, 2], [2, 3].</summary>
    private static readonly TargetEntropies Population = TargetEntropies.FromSequences([[1, 2], [1, 3, 1], [1, 2], [2, 3]]);

    private static TargetVariable Target(long alphabetSize = 100) => new("token", alphabetSize, Population);

    private static LayerFigureOptions Options(int resamples = 0) => new() { BootstrapResamples = resamples };

    private static double Hb(double p) => -p * Math.Log2(p) - (1 - p) * Math.Log2(1 - p);

    [Fact]
    public void PopulationEntropiesAreExactCounts()
    {
        // Nine targets: token 1 four times, 2 three times, 3 twice.
        double h = -(4 / 9.0 * Math.Log2(4 / 9.0) + 3 / 9.0 * Math.Log2(3 / 9.0) + 2 / 9.0 * Math.Log2(2 / 9.0));
        Assert.Equal(9, Population.TargetCount);
        Assert.Equal(3, Population.DistinctSymbols);
        Assert.Equal(h, Population.EntropyBits, 13);
        // Position 0: {1, 1, 1, 2}; position 1: {2, 3, 2, 3}; position 2: {1}.
        double h0 = Hb(0.25), h1 = 1, h2 = 0;
        Assert.Equal(h0, Population.Positions[0].EntropyBits, 13);
        Assert.Equal(h1, Population.Positions[1].EntropyBits, 13);
        Assert.Equal(h2, Population.Positions[2].EntropyBits, 13);
        Assert.Equal(4 / 9.0 * h0 + 4 / 9.0 * h1 + 1 / 9.0 * h2, Population.ConditionalEntropyBits, 13);
        Assert.Equal(h - Population.ConditionalEntropyBits, Population.PositionInformationBits, 13);
        // A coarsening that merges tokens 2 and 3: H(f(X)) = H_b(4/9).
        var coarse = TargetEntropies.FromSequences([[1, 2], [1, 3, 1], [1, 2], [2, 3]], token => token == 1 ? 0 : 1);
        Assert.Equal(Hb(4 / 9.0), coarse.EntropyBits, 13);
        Assert.Equal(0, coarse.Positions[1].EntropyBits);
    }

    [Fact]
    public void PooledFiguresMatchHandComputation()
    {
        var figures = LayerFigures.Calculate(TwoSentences, Target(), Options());

        double h = Population.EntropyBits, hi = Population.ConditionalEntropyBits;
        Assert.Equal("token", figures.Target);
        Assert.Equal(2, figures.SentenceCount);
        Assert.Equal(5, figures.TargetCount);
        Assert.Equal(3, figures.DistinctTargets);
        Assert.Equal(100, figures.AlphabetSize);
        Assert.Equal(FanoKind.Fano, figures.FanoKind);
        Assert.Equal(0.6, figures.Accuracy, 15);
        Assert.Equal(8.0 / 5, figures.CrossEntropyBits, 15);
        // H(X) and H(X | I) are the population's, not the held-out sample's.
        Assert.Equal(h, figures.EntropyBits);
        Assert.Equal(hi, figures.ConditionalEntropyBits);
        // Held-out plug-in H = log2 5 - (3 log2 3) / 5; Miller-Madow adds (3 - 1) / (2 * 5 * ln 2).
        Assert.Equal(1.3709505944546685, figures.HeldOutPlugInEntropyBits, 14);
        Assert.Equal(1.659489602632461, figures.HeldOutMillerMadowEntropyBits, 14);
        double fanoConditional = Hb(0.4) + 0.4 * Math.Log2(99);
        Assert.Equal(h - fanoConditional, figures.FanoBits, 13);
        Assert.Equal(h - 1.6, figures.BarberAgakovBits, 14);
        Assert.Equal(hi - fanoConditional, figures.SentenceFanoBits, 13);
        Assert.Equal(hi - 1.6, figures.SentenceBarberAgakovBits, 14);
        Assert.Equal(Math.Max(hi - fanoConditional, hi - 1.6), figures.SentenceLowerBoundBits, 14);
        Assert.Equal(ClopperPearson.UpperLimit(2, 5), figures.UpperErrorRate, 15);
        Assert.Equal(InformationBounds.Fano(h, figures.UpperErrorRate, 100), figures.FanoAtUpperErrorBits, 13);
        Assert.True(figures.FanoAtUpperErrorBits < figures.FanoBits);
        Assert.Null(figures.AccuracyInterval);
        Assert.Null(figures.BarberAgakovInterval);
    }

    [Fact]
    public void SentenceLevelFiguresSubtractTheInformationOfThePosition()
    {
        // The token is a function of the position (token = 10 + i): I(X; I) = H(X) and H(X | I) = 0. A probe that reads
        // the position perfectly has large position-aware bounds, yet tells nothing about the sentence: the
        // sentence-level figures must not be positive.
        int[][] population = [.. Enumerable.Range(0, 50).Select(s => Enumerable.Range(0, 1 + s % 4).Select(i => 10 + i).ToArray())];
        var entropies = TargetEntropies.FromSequences(population);
        Assert.Equal(0, entropies.ConditionalEntropyBits, 14);
        Assert.True(entropies.EntropyBits > 1.5);
        SentenceOutcome[] perfect = [.. population.Select(t => new SentenceOutcome(t, [.. t.Select(_ => true)], [.. t.Select(_ => 0.01)]))];
        var figures = LayerFigures.Calculate(perfect, new TargetVariable("token", 1000, entropies), Options(resamples: 50));

        Assert.Equal(entropies.EntropyBits, figures.FanoBits, 13);
        Assert.Equal(entropies.EntropyBits - 0.01, figures.BarberAgakovBits, 13);
        Assert.Equal(0, figures.SentenceFanoBits, 13);
        Assert.Equal(-0.01, figures.SentenceBarberAgakovBits, 13);
        Assert.True(figures.SentenceLowerBoundBits <= 0);
        Assert.True(figures.SentenceLowerBoundInterval!.Value.Upper <= 1e-12);
        // The old figure, max(I_F, I_BA), would have claimed H(X) bits about the sentence.
        Assert.True(Math.Max(figures.FanoBits, figures.BarberAgakovBits) > 1.5);
    }

    [Fact]
    public void ObservedAlphabetIsAPlugInFigureWithDistinctTargetsPlusOne()
    {
        var figures = LayerFigures.Calculate(TwoSentences, Target(), Options() with { Alphabet = FanoAlphabet.ObservedPlusOne });
        Assert.Equal(FanoKind.ObservedPlugIn, figures.FanoKind);
        Assert.Equal(4, figures.AlphabetSize);
        Assert.Equal(InformationBounds.Fano(Population.EntropyBits, 0.4, 4), figures.FanoBits, 14);
        // Not a bound, so it does not enter the sentence-level lower bound.
        Assert.Equal(figures.SentenceBarberAgakovBits, figures.SentenceLowerBoundBits);
        // With list decoding the plug-in figure is list-Fano with K + 1, never ordinary Fano on list-correctness.
        var list = LayerFigures.Calculate(TwoSentences, Target(), Options() with { Alphabet = FanoAlphabet.ObservedPlusOne, ListDecoding = true });
        Assert.Equal(FanoKind.ObservedPlugIn, list.FanoKind);
        Assert.Equal(4, list.AlphabetSize);
        double pooled = Hb(0.4) + (0.4 * (Hb(0.5) + 0.5 * Math.Log2(2) + 0.5 * Math.Log2(2)) + 0.6 * (Hb(1 / 3.0) + Math.Log2(1) / 3 + 2 / 3.0 * Math.Log2(3)));
        Assert.Equal(Population.EntropyBits - pooled, list.FanoBits, 12);
    }

    [Fact]
    public void ListDecodingUsesListFanoForEveryFanoFigureIncludingPerPosition()
    {
        // A bag probe's outcomes: "correct" = in the sentence's top-n list, n = its number of targets.
        var figures = LayerFigures.Calculate(TwoSentences, Target(), Options() with { ListDecoding = true });
        Assert.Equal(FanoKind.ListFano, figures.FanoKind);
        // Pooled: list sizes 2 (2 targets, 1 error) and 3 (3 targets, 1 error).
        double pooled = Hb(0.4) + (0.4 * (Hb(0.5) + 0.5 * Math.Log2(98) + 0.5 * Math.Log2(2)) + 0.6 * (Hb(1 / 3.0) + Math.Log2(97) / 3 + 2 / 3.0 * Math.Log2(3)));
        Assert.Equal(Population.EntropyBits - pooled, figures.FanoBits, 12);
        Assert.Equal(Population.ConditionalEntropyBits - pooled, figures.SentenceFanoBits, 12);
        Assert.True(figures.FanoAtUpperErrorBits < figures.FanoBits);
        // Position 1: one target from a list of 2 (wrong), one from a list of 3 (right): H(N) = 1 bit plus each group's list-Fano.
        double position1 = 1 + 0.5 * (Math.Log2(98) + 0) + 0.5 * Math.Log2(3);
        Assert.Equal(Population.Positions[1].EntropyBits - position1, figures.Positions[1].FanoBits, 12);
        // Ordinary Fano on list-correctness would have given far more: not a bound for a list.
        double ordinary = Population.Positions[1].EntropyBits - InformationBounds.FanoConditionalEntropy(0.5, 100);
        Assert.True(ordinary > figures.Positions[1].FanoBits + 0.5);
    }

    [Fact]
    public void PositionFiguresUseThePopulationEntropyAtEachIndex()
    {
        var positions = LayerFigures.Calculate(TwoSentences, Target(), Options() with { SparsePositionTargets = 2 }).Positions;

        Assert.Equal(3, positions.Count);
        // Position 0: tokens {1, 1}, both right, CE 0.75; H(X_0) of the population is H_b(1/4).
        Assert.Equal(2, positions[0].TargetCount);
        Assert.Equal(1.0, positions[0].Accuracy);
        Assert.Equal(0.75, positions[0].CrossEntropyBits, 15);
        Assert.Equal(Hb(0.25), positions[0].EntropyBits, 13);
        Assert.Equal(Hb(0.25), positions[0].FanoBits, 13);
        Assert.Equal(Hb(0.25) - 0.75, positions[0].BarberAgakovBits, 13);
        Assert.False(positions[0].Sparse);
        // Position 1: one right of two; H(X_1) = 1 bit.
        Assert.Equal(0.5, positions[1].Accuracy, 15);
        Assert.Equal(1 - 1 - 0.5 * Math.Log2(99), positions[1].FanoBits, 13);
        Assert.Equal(1 - 2.5, positions[1].BarberAgakovBits, 14);
        // Position 2: only the second sentence reaches it: marked sparse, still reported.
        Assert.Equal(1, positions[2].TargetCount);
        Assert.True(positions[2].Sparse);
    }

    [Fact]
    public void RejectsAlphabetsSmallerThanTheObservedTargets()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => LayerFigures.Calculate(TwoSentences, Target(alphabetSize: 2), Options()));
        Assert.Throws<ArgumentException>(() => LayerFigures.Calculate([], Target(), Options()));
        Assert.Throws<ArgumentException>(() => TargetEntropies.FromSequences([]));
    }

    [Fact]
    public void SentenceOutcomeRejectsMismatchedLengths()
    {
        Assert.Throws<ArgumentException>(() => new SentenceOutcome([1, 2], [true], [1.0, 2.0]));
        Assert.Throws<ArgumentOutOfRangeException>(() => new SentenceOutcome([1], [true], [double.NaN]));
    }

    /// <summary>A probe that is right about 70% of the time over a 40-token vocabulary with a skewed distribution.</summary>
    private static SentenceOutcome[] SyntheticOutcomes(int sentences, ulong seed)
    {
        var random = new SplitMix64(seed);
        var outcomes = new SentenceOutcome[sentences];
        for (int sentence = 0; sentence < sentences; sentence++)
        {
            int length = 5 + random.NextInt(11);
            var targets = new int[length];
            var correct = new bool[length];
            var crossEntropy = new double[length];
            for (int position = 0; position < length; position++)
            {
                targets[position] = Math.Min(random.NextInt(40), random.NextInt(40));
                correct[position] = random.NextDouble() < 0.7;
                crossEntropy[position] = correct[position] ? 0.3 + random.NextDouble() : 2 + 3 * random.NextDouble();
            }
            outcomes[sentence] = new SentenceOutcome(targets, correct, crossEntropy);
        }
        return outcomes;
    }

    [Fact]
    public void BootstrapIsDeterministicForASeed()
    {
        var outcomes = SyntheticOutcomes(120, seed: 7);
        var target = SyntheticTarget(outcomes);
        var first = LayerFigures.Calculate(outcomes, target, Options(resamples: 200));
        var second = LayerFigures.Calculate(outcomes, target, Options(resamples: 200));
        var otherSeed = LayerFigures.Calculate(outcomes, target, Options(resamples: 200) with { BootstrapSeed = 8 });

        Assert.Equal(first.AccuracyInterval, second.AccuracyInterval);
        Assert.Equal(first.FanoInterval, second.FanoInterval);
        Assert.Equal(first.BarberAgakovInterval, second.BarberAgakovInterval);
        Assert.NotEqual(first.FanoInterval, otherSeed.FanoInterval);
    }

    private static TargetVariable SyntheticTarget(IReadOnlyList<SentenceOutcome> outcomes, long alphabet = 30_000) =>
        new("token", alphabet, TargetEntropies.FromSequences(outcomes.Select(o => o.Targets)));

    [Fact]
    public void PointEstimatesDoNotDependOnSentenceOrder()
    {
        var outcomes = SyntheticOutcomes(120, seed: 7);
        var target = SyntheticTarget(outcomes);
        var forward = LayerFigures.Calculate(outcomes, target, Options());
        var reversed = LayerFigures.Calculate([.. outcomes.Reverse()], target, Options());
        Assert.Equal(forward.HeldOutMillerMadowEntropyBits, reversed.HeldOutMillerMadowEntropyBits);
        Assert.Equal(forward.FanoBits, reversed.FanoBits);
        Assert.Equal(forward.BarberAgakovBits, reversed.BarberAgakovBits, 14);
    }

    [Fact]
    public void BootstrapIntervalsContainThePointEstimatesOnASizeableSample()
    {
        var outcomes = SyntheticOutcomes(400, seed: 11);
        var figures = LayerFigures.Calculate(outcomes, SyntheticTarget(outcomes), Options(resamples: 200));

        Assert.True(figures.AccuracyInterval!.Value.Contains(figures.Accuracy), $"{figures.AccuracyInterval} vs {figures.Accuracy}");
        Assert.True(figures.FanoInterval!.Value.Contains(figures.FanoBits), $"{figures.FanoInterval} vs {figures.FanoBits}");
        Assert.True(figures.BarberAgakovInterval!.Value.Contains(figures.BarberAgakovBits), $"{figures.BarberAgakovInterval} vs {figures.BarberAgakovBits}");
        Assert.True(figures.SentenceLowerBoundInterval!.Value.Contains(figures.SentenceLowerBoundBits));
        // 400 sentences of ~10 targets: the accuracy interval is a few points wide, not degenerate.
        double width = figures.AccuracyInterval.Value.Upper - figures.AccuracyInterval.Value.Lower;
        Assert.InRange(width, 0.01, 0.06);
    }

    [Fact]
    public void PairedDifferencesResolveWhatSeparateIntervalsCannot()
    {
        // Two "layers" on the same held-out sentences: the second costs exactly 0.05 bits more on every target, while the
        // sentences themselves vary a lot. The separate intervals overlap; the paired one is exactly [0.05, 0.05].
        var first = SyntheticOutcomes(200, seed: 3);
        var second = first.Select(o => new SentenceOutcome(o.Targets, o.Correct, [.. o.CrossEntropyBits.Select(b => b + 0.05)])).ToArray();
        var target = SyntheticTarget(first);
        var a = LayerFigures.Calculate(first, target, Options(resamples: 100));
        var b = LayerFigures.Calculate(second, target, Options(resamples: 100));
        Assert.True(a.BarberAgakovInterval!.Value.Lower < b.BarberAgakovInterval!.Value.Upper, "separate intervals should overlap");
        var difference = PairedDifference.Of("a", a, "b", b);
        Assert.Equal(0.05, difference.Bits, 12);
        Assert.Equal(0.05, difference.Interval!.Value.Lower, 12);
        Assert.Equal(0.05, difference.Interval!.Value.Upper, 12);
        Assert.True(difference.Resolved);
        Assert.False(PairedDifference.Of("a", a, "a", a).Resolved);
    }

    [Fact]
    public void PercentilesInterpolateLinearlyBetweenOrderStatistics()
    {
        double[] sorted = [1, 2, 3, 4, 5];
        Assert.Equal(2.0, HeldOutResampling.Percentile(sorted, 0.25), 15);
        Assert.Equal(1.4, HeldOutResampling.Percentile(sorted, 0.1), 15);
        Assert.Equal(5.0, HeldOutResampling.Percentile(sorted, 1.0), 15);
        Assert.Equal(new Interval(1.1, 4.9), HeldOutResampling.PercentileInterval([5, 3, 1, 4, 2], 0.95));
    }

    [Fact]
    public void SplitMix64MatchesTheReferenceSequence()
    {
        // First outputs of the reference C implementation seeded with 0.
        var random = new SplitMix64(0);
        Assert.Equal(0xE220A8397B1DCDAFUL, random.NextUInt64());
        Assert.Equal(0x6E789E6AA1B965F4UL, random.NextUInt64());
        Assert.Equal(0x06C45D188009454FUL, random.NextUInt64());
    }

}
