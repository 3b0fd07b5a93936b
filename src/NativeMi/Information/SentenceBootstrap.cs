namespace NativeMi.Information;

/// <summary>Per-sentence sums with targets mapped to dense ids, so a resample is a few array additions.</summary>
internal sealed class SentenceSummaries
{
    private readonly (int DenseId, long Count)[][] _targetCounts;
    private readonly long[] _correct;
    private readonly long[] _targets;
    private readonly double[] _crossEntropyBitsSums;

    private SentenceSummaries((int, long)[][] targetCounts, long[] correct, long[] targets, double[] crossEntropyBitsSums, int distinctTargets)
    {
        _targetCounts = targetCounts;
        _correct = correct;
        _targets = targets;
        _crossEntropyBitsSums = crossEntropyBitsSums;
        DistinctTargets = distinctTargets;
    }

    public int SentenceCount => _correct.Length;

    public int DistinctTargets { get; }

    public static SentenceSummaries From(IReadOnlyList<SentenceOutcome> outcomes)
    {
        // Dense ids in ascending token order: the histogram, and so every entropy, is summed in token
        // order whatever order the sentences come in.
        var sortedTokens = outcomes.SelectMany(outcome => outcome.Targets).Distinct().Order().ToArray();
        var denseIdOf = new Dictionary<int, int>(sortedTokens.Length);
        for (int index = 0; index < sortedTokens.Length; index++) denseIdOf[sortedTokens[index]] = index;

        var targetCounts = new (int, long)[outcomes.Count][];
        var correct = new long[outcomes.Count];
        var targets = new long[outcomes.Count];
        var crossEntropy = new double[outcomes.Count];
        for (int sentence = 0; sentence < outcomes.Count; sentence++)
        {
            var outcome = outcomes[sentence];
            targetCounts[sentence] = [.. outcome.Targets
                .GroupBy(token => denseIdOf[token])
                .Select(group => (group.Key, (long)group.Count()))
                .OrderBy(pair => pair.Key)];
            correct[sentence] = outcome.CorrectCount;
            targets[sentence] = outcome.Length;
            crossEntropy[sentence] = outcome.CrossEntropyBitsSum;
        }
        return new SentenceSummaries(targetCounts, correct, targets, crossEntropy, sortedTokens.Length);
    }

    /// <summary>Pools the given sentences (repeats allowed) into totals and a target histogram.</summary>
    public PooledSample Pool(IEnumerable<int> sentences, long[]? countsBuffer = null)
    {
        long[] counts = countsBuffer ?? new long[DistinctTargets];
        Array.Clear(counts);
        long correct = 0, targets = 0;
        double crossEntropy = 0;
        foreach (int sentence in sentences)
        {
            correct += _correct[sentence];
            targets += _targets[sentence];
            crossEntropy += _crossEntropyBitsSums[sentence];
            foreach (var (denseId, count) in _targetCounts[sentence]) counts[denseId] += count;
        }
        return new PooledSample(correct, targets, crossEntropy, counts);
    }
}

internal readonly record struct PooledSample(long Correct, long Targets, double CrossEntropyBitsSum, long[] Counts);

/// <summary>Percentile bootstrap over held-out sentences, the unit of sampling (targets within a sentence are not independent).</summary>
internal static class SentenceBootstrap
{
    public static (Interval Accuracy, Interval Fano, Interval BarberAgakov) Run(SentenceSummaries summary, LayerFigureOptions options)
    {
        if (!(options.IntervalLevel > 0 && options.IntervalLevel < 1))
            throw new ArgumentOutOfRangeException(nameof(options), options.IntervalLevel, "interval level must be in (0, 1)");
        int resamples = options.BootstrapResamples;
        var random = new SplitMix64(options.BootstrapSeed);
        var accuracy = new double[resamples];
        var fano = new double[resamples];
        var barberAgakov = new double[resamples];
        var drawn = new int[summary.SentenceCount];
        var counts = new long[summary.DistinctTargets];
        for (int resample = 0; resample < resamples; resample++)
        {
            for (int slot = 0; slot < drawn.Length; slot++) drawn[slot] = random.NextInt(summary.SentenceCount);
            var pooled = summary.Pool(drawn, counts);
            double entropy = Entropy.MillerMadowBits(pooled.Counts);
            double errorRate = 1 - (double)pooled.Correct / pooled.Targets;
            int distinct = pooled.Counts.Count(count => count > 0);
            long alphabetSize = LayerFigures.AlphabetSizeFor(options, distinct);
            accuracy[resample] = 1 - errorRate;
            fano[resample] = InformationBounds.Fano(entropy, errorRate, alphabetSize);
            barberAgakov[resample] = InformationBounds.BarberAgakov(entropy, pooled.CrossEntropyBitsSum / pooled.Targets);
        }
        double tail = (1 - options.IntervalLevel) / 2;
        var point = summary.Pool(Enumerable.Range(0, summary.SentenceCount), counts);
        double pointEntropy = Entropy.MillerMadowBits(point.Counts);
        double pointError = 1 - (double)point.Correct / point.Targets;
        double pointFano = InformationBounds.Fano(pointEntropy, pointError, LayerFigures.AlphabetSizeFor(options, point.Counts.Count(count => count > 0)));
        double pointBa = InformationBounds.BarberAgakov(pointEntropy, point.CrossEntropyBitsSum / point.Targets);
        return (PercentileInterval(accuracy, tail),
            RecentredInterval(fano, pointFano, tail),
            RecentredInterval(barberAgakov, pointBa, tail));
    }

    /// <summary>
    /// Percentile interval of the resamples shifted by the bootstrap's own bias (resample mean minus point
    /// estimate). Resampling sentences with replacement repeats them, which lowers the plug-in entropy of
    /// every resample; with many distinct tokens per target (as with real vocabularies) that bias can move the
    /// whole percentile interval below the point estimate. Removing it keeps the spread and centres the
    /// interval on the estimate.
    /// </summary>
    internal static Interval RecentredInterval(double[] values, double pointEstimate, double tail)
    {
        double bias = values.Average() - pointEstimate;
        Interval raw = PercentileInterval(values, tail);
        return new Interval(raw.Lower - bias, raw.Upper - bias);
    }

    /// <summary>The [tail, 1 - tail] percentiles, interpolated linearly between order statistics (NumPy's default, R type 7).</summary>
    internal static Interval PercentileInterval(double[] values, double tail)
    {
        var sorted = (double[])values.Clone();
        Array.Sort(sorted);
        return new Interval(Percentile(sorted, tail), Percentile(sorted, 1 - tail));
    }

    internal static double Percentile(double[] sorted, double fraction)
    {
        double rank = fraction * (sorted.Length - 1);
        int below = (int)Math.Floor(rank);
        int above = Math.Min(below + 1, sorted.Length - 1);
        return sorted[below] + (rank - below) * (sorted[above] - sorted[below]);
    }
}
