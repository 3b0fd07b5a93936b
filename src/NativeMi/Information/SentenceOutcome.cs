namespace NativeMi.Information;

/// <summary>
/// What a probe did on one held-out sentence: for each of its target positions (in order, position
/// index i = array index), the true token, whether the probe's top guess was right, and -log2 q(x | z, i).
/// </summary>
internal sealed class SentenceOutcome
{
    /// <summary>Creates the outcome; the three arrays must have the same, non-zero length.</summary>
    /// <param name="targets">True token id at each target position.</param>
    /// <param name="correct">Whether the probe's most likely class was the true token.</param>
    /// <param name="crossEntropyBits">-log2 q(true token | z, i) at each position; finite and non-negative.</param>
    public SentenceOutcome(int[] targets, bool[] correct, double[] crossEntropyBits)
    {
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentNullException.ThrowIfNull(correct);
        ArgumentNullException.ThrowIfNull(crossEntropyBits);
        if (targets.Length == 0) throw new ArgumentException("a sentence needs at least one target", nameof(targets));
        if (correct.Length != targets.Length || crossEntropyBits.Length != targets.Length)
            throw new ArgumentException($"lengths differ: {targets.Length} targets, {correct.Length} correctness flags, {crossEntropyBits.Length} cross-entropies");
        foreach (double bits in crossEntropyBits)
        {
            if (!(bits >= 0) || double.IsInfinity(bits))
                throw new ArgumentOutOfRangeException(nameof(crossEntropyBits), bits, "cross-entropy must be finite and non-negative");
        }
        Targets = targets;
        Correct = correct;
        CrossEntropyBits = crossEntropyBits;
    }

    /// <summary>True token id at each target position.</summary>
    public int[] Targets { get; }

    /// <summary>Whether the probe's most likely class was the true token, per position.</summary>
    public bool[] Correct { get; }

    /// <summary>-log2 q(true token | z, i) per position.</summary>
    public double[] CrossEntropyBits { get; }

    /// <summary>Number of target positions.</summary>
    public int Length => Targets.Length;

    /// <summary>Number of positions the probe got right.</summary>
    public int CorrectCount => Correct.Count(flag => flag);

    /// <summary>Sum of <see cref="CrossEntropyBits"/>.</summary>
    public double CrossEntropyBitsSum => CrossEntropyBits.Sum();
}
