namespace NativeMi.Information;

/// <summary>
/// Lower bounds in bits on I(X; Z) from a probe's error rate or cross-entropy (METHOD.md, "Per-layer
/// figures"). None of them is clipped: a negative value means "no evidence of information".
/// </summary>
public static class InformationBounds
{
    /// <summary>
    /// Fano lower bound I_F = H(X) - H_b(P_e) - P_e log2(|X| - 1).
    /// </summary>
    /// <param name="entropyBits">H(X) in bits.</param>
    /// <param name="errorRate">The probe's error probability P_e in [0, 1].</param>
    /// <param name="alphabetSize">|X|, at least 2.</param>
    public static double Fano(double entropyBits, double errorRate, long alphabetSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(alphabetSize, 2);
        return entropyBits - Entropy.BinaryBits(errorRate) - errorRate * Math.Log2(alphabetSize - 1);
    }

    /// <summary>
    /// Certified Fano bound: <see cref="Fano"/> with P_e replaced by its one-sided Clopper-Pearson upper
    /// limit at confidence 1 - <paramref name="alpha"/>. The bound is decreasing in P_e only while
    /// P_e ≤ 1 - 1/|X|; past that the formula would rise again, so the limit is capped there, which keeps
    /// the result a valid (if then negative or zero-information) lower bound.
    /// </summary>
    /// <param name="entropyBits">H(X) in bits.</param>
    /// <param name="errors">Number of probe errors among <paramref name="trials"/>.</param>
    /// <param name="trials">Number of scored targets.</param>
    /// <param name="alphabetSize">|X|, at least 2.</param>
    /// <param name="alpha">One-sided error level; 0.05 for 95% confidence.</param>
    public static double CertifiedFano(double entropyBits, long errors, long trials, long alphabetSize, double alpha = 0.05) =>
        Fano(entropyBits, CertifiedErrorRate(errors, trials, alphabetSize, alpha), alphabetSize);

    /// <summary>
    /// The error rate the certified Fano bound uses: the Clopper-Pearson upper limit, capped at
    /// 1 - 1/|X| where the Fano bound reaches its minimum.
    /// </summary>
    /// <param name="errors">Number of probe errors among <paramref name="trials"/>.</param>
    /// <param name="trials">Number of scored targets.</param>
    /// <param name="alphabetSize">|X|, at least 2.</param>
    /// <param name="alpha">One-sided error level; 0.05 for 95% confidence.</param>
    public static double CertifiedErrorRate(long errors, long trials, long alphabetSize, double alpha = 0.05)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(alphabetSize, 2);
        return Math.Min(ClopperPearson.UpperLimit(errors, trials, alpha), 1 - 1.0 / alphabetSize);
    }

    /// <summary>
    /// List-Fano bound on the conditional entropy for a decoder that outputs a list of
    /// <paramref name="listSize"/> candidates and errs when X is not in it:
    /// H(X | Z) ≤ H_b(P_e) + P_e log2(|X| - k) + (1 - P_e) log2 k.
    /// </summary>
    /// <param name="errorRate">P(X not in the list), in [0, 1].</param>
    /// <param name="alphabetSize">|X|, larger than the list size.</param>
    /// <param name="listSize">k ≥ 1; k = 1 gives the ordinary Fano inequality.</param>
    public static double ListFanoConditionalEntropy(double errorRate, long alphabetSize, long listSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(listSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(alphabetSize, listSize);
        return Entropy.BinaryBits(errorRate) + errorRate * Math.Log2(alphabetSize - listSize) + (1 - errorRate) * Math.Log2(listSize);
    }

    /// <summary>List-Fano lower bound on I(X; Z): H(X) minus <see cref="ListFanoConditionalEntropy"/>.</summary>
    /// <param name="entropyBits">H(X) in bits.</param>
    /// <param name="errorRate">P(X not in the list), in [0, 1].</param>
    /// <param name="alphabetSize">|X|, larger than the list size.</param>
    /// <param name="listSize">k ≥ 1.</param>
    public static double ListFano(double entropyBits, double errorRate, long alphabetSize, long listSize) =>
        entropyBits - ListFanoConditionalEntropy(errorRate, alphabetSize, listSize);

    /// <summary>
    /// List-Fano lower bound when the list size varies with the sentence (the bag probe uses k = n for a
    /// sentence of n targets): H(X | Z) ≤ H(N) + Σ_k P(N = k) · listFano(P_e | N = k, k), because
    /// H(X | Z) ≤ H(X, N | Z) ≤ H(N) + H(X | Z, N). Groups are (list size, errors, targets); H(N) is the
    /// plug-in entropy of the list size over targets.
    /// </summary>
    /// <param name="entropyBits">H(X) in bits.</param>
    /// <param name="alphabetSize">|X|, larger than every list size.</param>
    /// <param name="groups">One entry per distinct list size: its errors and number of targets.</param>
    public static double ListFanoMixed(double entropyBits, long alphabetSize, IReadOnlyList<(long ListSize, long Errors, long Targets)> groups)
    {
        ArgumentNullException.ThrowIfNull(groups);
        long total = 0;
        foreach (var group in groups)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(group.Targets, nameof(groups));
            ArgumentOutOfRangeException.ThrowIfGreaterThan(group.Errors, group.Targets, nameof(groups));
            total += group.Targets;
        }
        if (total == 0) throw new ArgumentException("no targets in any group", nameof(groups));
        var counts = new long[groups.Count];
        double conditional = 0;
        for (int index = 0; index < groups.Count; index++)
        {
            var group = groups[index];
            counts[index] = group.Targets;
            if (group.Targets == 0) continue;
            double weight = (double)group.Targets / total;
            conditional += weight * ListFanoConditionalEntropy((double)group.Errors / group.Targets, alphabetSize, group.ListSize);
        }
        return entropyBits - Entropy.PlugInBits(counts) - conditional;
    }

    /// <summary>Barber-Agakov variational bound I_BA = H(X) - CE, valid for any probe q(x | z).</summary>
    /// <param name="entropyBits">H(X) in bits.</param>
    /// <param name="crossEntropyBits">Mean of -log2 q(X | Z) over the evaluation targets.</param>
    public static double BarberAgakov(double entropyBits, double crossEntropyBits) => entropyBits - crossEntropyBits;
}
