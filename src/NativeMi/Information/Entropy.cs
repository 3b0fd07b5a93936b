namespace NativeMi.Information;

/// <summary>Entropies in bits.</summary>
internal static class Entropy
{
    /// <summary>Plug-in (maximum-likelihood) entropy in bits of a histogram; zero counts are ignored.</summary>
    /// <param name="counts">Non-negative counts, one per outcome.</param>
    public static double PlugInBits(ReadOnlySpan<long> counts)
    {
        long total = 0;
        foreach (long count in counts)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(count, nameof(counts));
            total += count;
        }
        if (total == 0) return 0;
        // H = log2 N - (1/N) sum c log2 c: one pass and no tiny probabilities to round.
        double weighted = 0;
        foreach (long count in counts)
        {
            if (count > 0) weighted += count * Math.Log2(count);
        }
        return Math.Max(0, Math.Log2(total) - weighted / total);
    }

    /// <summary>
    /// Miller-Madow entropy in bits: the plug-in value plus (K - 1) / (2 N ln 2), with K the number of
    /// non-zero counts and N their total. It removes the first-order downward bias of the plug-in value.
    /// </summary>
    /// <param name="counts">Non-negative counts, one per outcome.</param>
    public static double MillerMadowBits(ReadOnlySpan<long> counts)
    {
        long total = 0;
        int distinct = 0;
        foreach (long count in counts)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(count, nameof(counts));
            total += count;
            if (count > 0) distinct++;
        }
        if (total == 0) return 0;
        return PlugInBits(counts) + MillerMadowCorrectionBits(distinct, total);
    }

    /// <summary>The Miller-Madow correction (K - 1) / (2 N ln 2) in bits for K distinct outcomes among N samples.</summary>
    public static double MillerMadowCorrectionBits(long distinctOutcomes, long sampleCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(distinctOutcomes);
        ArgumentOutOfRangeException.ThrowIfNegative(sampleCount);
        if (sampleCount == 0 || distinctOutcomes <= 1) return 0;
        return (distinctOutcomes - 1) / (2.0 * sampleCount * Math.Log(2));
    }

    /// <summary>
    /// The histogram of <paramref name="values"/>: one count per distinct value, in ascending value order
    /// so that sums over it, and so entropies, are bit-identical however the values were ordered.
    /// </summary>
    public static long[] Histogram(IEnumerable<int> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var counts = new SortedDictionary<int, long>();
        foreach (int value in values) counts[value] = counts.GetValueOrDefault(value) + 1;
        return [.. counts.Values];
    }

    /// <summary>Binary entropy H_b(p) = -p log2 p - (1 - p) log2 (1 - p) in bits; H_b(0) = H_b(1) = 0.</summary>
    /// <param name="probability">A probability in [0, 1].</param>
    public static double BinaryBits(double probability)
    {
        if (!(probability >= 0 && probability <= 1))
            throw new ArgumentOutOfRangeException(nameof(probability), probability, "must be a probability in [0, 1]");
        if (probability == 0 || probability == 1) return 0;
        // Log1p keeps the (1 - p) term exact when p is tiny, where 1 - p would round.
        double nats = -probability * Math.Log(probability) - (1 - probability) * SpecialFunctions.Log1p(-probability);
        return nats / Math.Log(2);
    }
}
