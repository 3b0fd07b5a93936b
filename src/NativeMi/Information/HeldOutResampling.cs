namespace NativeMi.Information;

/// <summary>
/// The bootstrap resamples of a run's held-out sentences (drawn with replacement, the sentence being the unit of
/// sampling because the targets of one sentence are not independent). Every figure of a run is resampled with the
/// same draws: the same seed and sentence count give the same resamples, so differences between layers, or
/// between a layer and the control, are paired and get intervals of their own.
/// </summary>
internal sealed class HeldOutResampling
{
    private readonly int[] _draws;

    /// <summary>Draws <paramref name="resamples"/> resamples of <paramref name="sentenceCount"/> sentences each.</summary>
    public HeldOutResampling(int sentenceCount, int resamples, ulong seed)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(sentenceCount, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(resamples);
        SentenceCount = sentenceCount;
        Resamples = resamples;
        _draws = new int[(long)sentenceCount * resamples];
        var random = new SplitMix64(seed);
        for (int i = 0; i < _draws.Length; i++) _draws[i] = random.NextInt(sentenceCount);
    }

    /// <summary>Held-out sentences per resample.</summary>
    public int SentenceCount { get; }

    /// <summary>Number of resamples.</summary>
    public int Resamples { get; }

    /// <summary>The sentence indices drawn for resample <paramref name="resample"/>.</summary>
    public ReadOnlySpan<int> Draws(int resample) => _draws.AsSpan(resample * SentenceCount, SentenceCount);

    /// <summary>Σ over the drawn sentences of <paramref name="perSentence"/>, for every resample.</summary>
    public double[] Sums(ReadOnlySpan<double> perSentence)
    {
        if (perSentence.Length != SentenceCount)
            throw new ArgumentException($"{perSentence.Length} values for {SentenceCount} sentences", nameof(perSentence));
        var sums = new double[Resamples];
        for (int r = 0; r < Resamples; r++)
        {
            double sum = 0;
            foreach (int s in Draws(r)) sum += perSentence[s];
            sums[r] = sum;
        }
        return sums;
    }

    /// <summary>
    /// The two-sided percentile interval at <paramref name="level"/> of resampled values, interpolated linearly
    /// between order statistics (NumPy's default, R type 7). No bias correction: the figures resampled here are
    /// ratios of sums over sentences minus constants (H(X) is a population value, not re-estimated per resample).
    /// </summary>
    public static Interval PercentileInterval(IReadOnlyList<double> values, double level)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count == 0) throw new ArgumentException("no resampled values", nameof(values));
        if (!(level > 0 && level < 1)) throw new ArgumentOutOfRangeException(nameof(level), level, "interval level must be in (0, 1)");
        var sorted = values.ToArray();
        Array.Sort(sorted);
        double tail = (1 - level) / 2;
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
