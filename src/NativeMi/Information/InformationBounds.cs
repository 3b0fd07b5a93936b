namespace NativeMi.Information;

/// <summary>
/// Lower bounds in bits on I(X; Z) from a probe's error rate or cross-entropy (METHOD.md, "Per-layer
/// figures"). None of them is clipped: a negative value means "no evidence of information".
/// </summary>
internal static class InformationBounds
{
    /// <summary>
    /// Fano lower bound I_F = H(X) - H_b(P_e) - P_e log2(|X| - 1).
    /// </summary>
    /// <param name="entropyBits">H(X) in bits.</param>
    /// <param name="errorRate">The probe's error probability P_e in [0, 1].</param>
    /// <param name="alphabetSize">|X|, at least 2.</param>
    public static double Fano(double entropyBits, double errorRate, long alphabetSize)
    {
        return entropyBits - FanoConditionalEntropy(errorRate, alphabetSize);
    }

    /// <summary>
    /// "Fano (95% upper error)": <see cref="Fano"/> with P_e replaced by its one-sided Clopper-Pearson upper
    /// limit at confidence 1 - <paramref name="alpha"/> (<see cref="UpperErrorRate"/>). It holds with that
    /// confidence only if the scored targets were independent trials and H(X) were known exactly; targets of one
    /// sentence are not independent, so it is a more cautious figure, not a certificate.
    /// </summary>
    /// <param name="entropyBits">H(X) in bits.</param>
    /// <param name="errors">Number of probe errors among <paramref name="trials"/>.</param>
    /// <param name="trials">Number of scored targets.</param>
    /// <param name="alphabetSize">|X|, at least 2.</param>
    /// <param name="alpha">One-sided error level; 0.05 for 95% confidence.</param>
    public static double FanoAtUpperError(double entropyBits, long errors, long trials, long alphabetSize, double alpha = 0.05) =>
        Fano(entropyBits, UpperErrorRate(errors, trials, alphabetSize, alpha), alphabetSize);

    /// <summary>
    /// The error rate <see cref="FanoAtUpperError"/> uses: the Clopper-Pearson upper limit, capped at
    /// 1 - 1/|X|, where the Fano bound is smallest (past it the formula would rise again, so a larger error
    /// rate must not make the figure larger).
    /// </summary>
    /// <param name="errors">Number of probe errors among <paramref name="trials"/>.</param>
    /// <param name="trials">Number of scored targets.</param>
    /// <param name="alphabetSize">|X|, at least 2.</param>
    /// <param name="alpha">One-sided error level; 0.05 for 95% confidence.</param>
    public static double UpperErrorRate(long errors, long trials, long alphabetSize, double alpha = 0.05)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(alphabetSize, 2);
        return Math.Min(ClopperPearson.UpperLimit(errors, trials, alpha), 1 - 1.0 / alphabetSize);
    }

    /// <summary>Fano's bound on the conditional entropy: H(X | Z) ≤ H_b(P_e) + P_e log2(|X| - 1).</summary>
    /// <param name="errorRate">The probe's error probability P_e in [0, 1].</param>
    /// <param name="alphabetSize">|X|, at least 2.</param>
    public static double FanoConditionalEntropy(double errorRate, long alphabetSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(alphabetSize, 2);
        return Entropy.BinaryBits(errorRate) + errorRate * Math.Log2(alphabetSize - 1);
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
    public static double ListFanoMixed(double entropyBits, long alphabetSize, IReadOnlyList<(long ListSize, long Errors, long Targets)> groups) =>
        entropyBits - ListFanoMixedConditionalEntropy(alphabetSize, groups);

    /// <summary>The bound on H(X | Z) behind <see cref="ListFanoMixed"/>: H(N) + Σ_k P(N = k) · listFano_k.</summary>
    /// <param name="alphabetSize">|X|, larger than every list size.</param>
    /// <param name="groups">One entry per distinct list size: its errors and number of targets.</param>
    /// <param name="alpha">When set, each group's error rate is replaced by its one-sided Clopper-Pearson upper limit
    /// at level alpha / G (Bonferroni over the G non-empty groups), capped where the group's bound peaks
    /// (P_e = 1 − k / |X|): the list-Fano counterpart of <see cref="FanoAtUpperError"/>.</param>
    public static double ListFanoMixedConditionalEntropy(long alphabetSize, IReadOnlyList<(long ListSize, long Errors, long Targets)> groups, double? alpha = null)
    {
        ArgumentNullException.ThrowIfNull(groups);
        long total = 0;
        int nonEmpty = 0;
        foreach (var group in groups)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(group.Targets, nameof(groups));
            ArgumentOutOfRangeException.ThrowIfNegative(group.Errors, nameof(groups));
            ArgumentOutOfRangeException.ThrowIfGreaterThan(group.Errors, group.Targets, nameof(groups));
            total += group.Targets;
            if (group.Targets > 0) nonEmpty++;
        }
        if (total == 0) throw new ArgumentException("no targets in any group", nameof(groups));
        var counts = new long[groups.Count];
        double conditional = 0;
        for (int index = 0; index < groups.Count; index++)
        {
            var (listSize, errors, targets) = groups[index];
            counts[index] = targets;
            if (targets == 0) continue;
            double errorRate = alpha is double a
                ? Math.Min(ClopperPearson.UpperLimit(errors, targets, a / nonEmpty), 1 - (double)listSize / alphabetSize)
                : (double)errors / targets;
            conditional += (double)targets / total * ListFanoConditionalEntropy(errorRate, alphabetSize, listSize);
        }
        return Entropy.PlugInBits(counts) + conditional;
    }

    /// <summary>Barber-Agakov variational bound I_BA = H(X) - CE, valid for any probe q(x | z).</summary>
    /// <param name="entropyBits">H(X) in bits.</param>
    /// <param name="crossEntropyBits">Mean of -log2 q(X | Z) over the evaluation targets.</param>
    public static double BarberAgakov(double entropyBits, double crossEntropyBits) => entropyBits - crossEntropyBits;
}
