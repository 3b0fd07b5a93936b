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

    private static LayerFigureOptions Options(long vocabularySize = 100, int resamples = 0) =>
        new() { VocabularySize = vocabularySize, BootstrapResamples = resamples };

    [Fact]
    public void PooledFiguresMatchHandComputation()
    {
        var figures = LayerFigures.Calculate(TwoSentences, Options());

        // Plug-in H = log2 5 - (3 log2 3) / 5; Miller-Madow adds (3 - 1) / (2 * 5 * ln 2).
        const double plugIn = 1.3709505944546685;
        const double millerMadow = 1.659489602632461;
        Assert.Equal(2, figures.SentenceCount);
        Assert.Equal(5, figures.TargetCount);
        Assert.Equal(3, figures.DistinctTargets);
        Assert.Equal(100, figures.AlphabetSize);
        Assert.Equal(0.6, figures.Accuracy, 15);
        Assert.Equal(0.4, figures.ErrorRate, 15);
        Assert.Equal(8.0 / 5, figures.CrossEntropyBits, 15);
        Assert.Equal(plugIn, figures.EntropyPlugInBits, 14);
        Assert.Equal(millerMadow, figures.EntropyBits, 14);
        double hb04 = -0.4 * Math.Log2(0.4) - 0.6 * Math.Log2(0.6);
        Assert.Equal(millerMadow - hb04 - 0.4 * Math.Log2(99), figures.FanoBits, 13);
        Assert.Equal(millerMadow - 1.6, figures.BarberAgakovBits, 14);
        Assert.Equal(Math.Max(figures.FanoBits, figures.BarberAgakovBits), figures.SentenceLowerBoundBits);
        Assert.Equal(ClopperPearson.UpperLimit(2, 5), figures.CertifiedErrorRate, 15);
        Assert.Equal(InformationBounds.Fano(millerMadow, figures.CertifiedErrorRate, 100), figures.CertifiedFanoBits, 14);
        Assert.True(figures.CertifiedFanoBits < figures.FanoBits);
        Assert.Null(figures.AccuracyInterval);
    }

    [Fact]
    public void ObservedAlphabetIsDistinctTargetsPlusOne()
    {
        var figures = LayerFigures.Calculate(TwoSentences, Options() with { Alphabet = FanoAlphabet.ObservedPlusOne });
        Assert.Equal(4, figures.AlphabetSize);
        Assert.Equal(InformationBounds.Fano(figures.EntropyBits, 0.4, 4), figures.FanoBits, 15);
    }

    [Fact]
    public void PositionFiguresUseTheTargetsAtEachIndex()
    {
        var positions = LayerFigures.Calculate(TwoSentences, Options()).Positions;

        Assert.Equal(3, positions.Count);
        // Position 0: tokens {1, 1}, both right: H = 0 (one distinct value, no correction).
        Assert.Equal(new PositionFigures(0, 2, 1.0, 0.75, 0.0, 0.0, -0.75), positions[0]);
        // Position 1: tokens {2, 3}, one right: H = 1 + 1 / (4 ln 2).
        double entropy1 = 1 + 1 / (4 * Math.Log(2));
        Assert.Equal(2, positions[1].TargetCount);
        Assert.Equal(0.5, positions[1].Accuracy, 15);
        Assert.Equal(2.5, positions[1].CrossEntropyBits, 15);
        Assert.Equal(entropy1, positions[1].EntropyBits, 14);
        Assert.Equal(entropy1 - 1 - 0.5 * Math.Log2(99), positions[1].FanoBits, 13);
        Assert.Equal(entropy1 - 2.5, positions[1].BarberAgakovBits, 14);
        // Position 2: only the second sentence reaches it.
        Assert.Equal(1, positions[2].TargetCount);
        Assert.Equal(0.0, positions[2].Accuracy);
    }

    [Fact]
    public void RejectsVocabularySmallerThanTheObservedTargets()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => LayerFigures.Calculate(TwoSentences, Options(vocabularySize: 2)));
        Assert.Throws<ArgumentException>(() => LayerFigures.Calculate([], Options()));
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
        var first = LayerFigures.Calculate(outcomes, Options(resamples: 200));
        var second = LayerFigures.Calculate(outcomes, Options(resamples: 200));
        var otherSeed = LayerFigures.Calculate(outcomes, Options(resamples: 200) with { BootstrapSeed = 8 });

        Assert.Equal(first.AccuracyInterval, second.AccuracyInterval);
        Assert.Equal(first.FanoInterval, second.FanoInterval);
        Assert.Equal(first.BarberAgakovInterval, second.BarberAgakovInterval);
        Assert.NotEqual(first.FanoInterval, otherSeed.FanoInterval);
    }

    [Fact]
    public void PointEstimatesDoNotDependOnSentenceOrder()
    {
        // Point estimates sum the histogram in token order, so reversing the sentences changes no bit.
        var outcomes = SyntheticOutcomes(120, seed: 7);
        var forward = LayerFigures.Calculate(outcomes, Options());
        var reversed = LayerFigures.Calculate([.. outcomes.Reverse()], Options());
        Assert.Equal(forward.EntropyBits, reversed.EntropyBits);
        Assert.Equal(forward.FanoBits, reversed.FanoBits);
    }

    [Fact]
    public void BootstrapIntervalsContainThePointEstimatesOnASizeableSample()
    {
        var figures = LayerFigures.Calculate(SyntheticOutcomes(400, seed: 11), Options(vocabularySize: 30_000, resamples: 200));

        Assert.True(figures.AccuracyInterval!.Value.Contains(figures.Accuracy), $"{figures.AccuracyInterval} vs {figures.Accuracy}");
        Assert.True(figures.FanoInterval!.Value.Contains(figures.FanoBits), $"{figures.FanoInterval} vs {figures.FanoBits}");
        Assert.True(figures.BarberAgakovInterval!.Value.Contains(figures.BarberAgakovBits), $"{figures.BarberAgakovInterval} vs {figures.BarberAgakovBits}");
        // 400 sentences of ~10 targets: the accuracy interval is a few points wide, not degenerate.
        double width = figures.AccuracyInterval.Value.Upper - figures.AccuracyInterval.Value.Lower;
        Assert.InRange(width, 0.01, 0.06);
    }

    [Fact]
    public void PercentilesInterpolateLinearlyBetweenOrderStatistics()
    {
        double[] sorted = [1, 2, 3, 4, 5];
        Assert.Equal(2.0, SentenceBootstrap.Percentile(sorted, 0.25), 15);
        Assert.Equal(1.4, SentenceBootstrap.Percentile(sorted, 0.1), 15);
        Assert.Equal(5.0, SentenceBootstrap.Percentile(sorted, 1.0), 15);
        Assert.Equal(new Interval(1.1, 4.9), SentenceBootstrap.PercentileInterval([5, 3, 1, 4, 2], 0.025));
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

    [Fact]
    public void DepthSummaryFindsPeakAndForgetting()
    {
        var summary = DepthSummary.FromFanoBits([0.5, 2.0, 3.0, 2.5]);
        Assert.Equal(2, summary.PeakLayer);
        Assert.Equal(3.0, summary.PeakFanoBits);
        Assert.Equal(2.5, summary.LastFanoBits);
        Assert.Equal(0.5, summary.ForgettingBits, 15);
        Assert.Equal(2.0 / 3, summary.PeakNormalisedDepth, 15);

        var tie = DepthSummary.FromFanoBits([1.0, 4.0, 4.0]);
        Assert.Equal(1, tie.PeakLayer);
        Assert.Equal(0.0, tie.ForgettingBits);
    }
}
