namespace NativeMi.Information;

/// <summary>The number of targets at one position index i and the entropy H(X_i) of the symbol found there.</summary>
/// <param name="Position">Index i among a sentence's target positions (0 = first target).</param>
/// <param name="TargetCount">Targets at this index.</param>
/// <param name="EntropyBits">H(X_i) in bits.</param>
public readonly record struct PositionEntropy(int Position, long TargetCount, double EntropyBits);

/// <summary>
/// Entropies of a target variable over a whole population of sentences (METHOD.md, "Entropies"). The corpus is the
/// population, so computed from all of its sentences these are exact values, not estimates: H(X), H(X | I) and
/// H(X_i) for every position index i, with X the symbol at a target position drawn uniformly from all of them.
/// </summary>
public sealed record TargetEntropies
{
    /// <summary>Number of sentences (with at least one target) in the population.</summary>
    public required int SentenceCount { get; init; }

    /// <summary>Number of targets N in the population.</summary>
    public required long TargetCount { get; init; }

    /// <summary>Number of distinct symbols K among them.</summary>
    public required int DistinctSymbols { get; init; }

    /// <summary>H(X) in bits.</summary>
    public required double EntropyBits { get; init; }

    /// <summary>H(X | I) = Σ_i P(I = i) · H(X_i), in bits: what is left once the position is known.</summary>
    public required double ConditionalEntropyBits { get; init; }

    /// <summary>H(X_i) and the target count of every position index, from 0 to the longest sentence's last.</summary>
    public required IReadOnlyList<PositionEntropy> Positions { get; init; }

    /// <summary>I(X; I) = H(X) − H(X | I): what the position alone tells about the symbol.</summary>
    public double PositionInformationBits => EntropyBits - ConditionalEntropyBits;

    /// <summary>H(X_i) for position index <paramref name="position"/>; 0 for an index no sentence reaches.</summary>
    public double PositionEntropyBits(int position) => position >= 0 && position < Positions.Count ? Positions[position].EntropyBits : 0;

    /// <summary>
    /// Counts every target of <paramref name="sequences"/> (one array of symbols per sentence, in position order)
    /// and returns the exact entropies of that population. <paramref name="symbolOf"/> maps a raw symbol to the
    /// target variable's symbol (for a coarsened target f(X)); null keeps the symbols as they are.
    /// </summary>
    internal static TargetEntropies FromSequences(IEnumerable<int[]> sequences, Func<int, int>? symbolOf = null)
    {
        ArgumentNullException.ThrowIfNull(sequences);
        var overall = new Dictionary<int, long>();
        var byPosition = new List<Dictionary<int, long>>();
        long total = 0;
        int sentences = 0;
        foreach (int[] sequence in sequences)
        {
            ArgumentNullException.ThrowIfNull(sequence, nameof(sequences));
            if (sequence.Length > 0) sentences++;
            for (int position = 0; position < sequence.Length; position++)
            {
                int symbol = symbolOf is null ? sequence[position] : symbolOf(sequence[position]);
                overall[symbol] = overall.GetValueOrDefault(symbol) + 1;
                while (byPosition.Count <= position) byPosition.Add([]);
                var counts = byPosition[position];
                counts[symbol] = counts.GetValueOrDefault(symbol) + 1;
                total++;
            }
        }
        if (total == 0) throw new ArgumentException("the population holds no target", nameof(sequences));
        var positions = new PositionEntropy[byPosition.Count];
        double conditional = 0;
        for (int position = 0; position < byPosition.Count; position++)
        {
            long[] counts = SortedCounts(byPosition[position]);
            long count = counts.Sum();
            double entropy = Entropy.PlugInBits(counts);
            positions[position] = new PositionEntropy(position, count, entropy);
            conditional += (double)count / total * entropy;
        }
        return new TargetEntropies
        {
            SentenceCount = sentences,
            TargetCount = total,
            DistinctSymbols = overall.Count,
            EntropyBits = Entropy.PlugInBits(SortedCounts(overall)),
            ConditionalEntropyBits = conditional,
            Positions = positions,
        };
    }

    /// <summary>Counts in ascending symbol order, so that entropies are bit-identical however the targets were ordered.</summary>
    private static long[] SortedCounts(Dictionary<int, long> counts) => [.. counts.OrderBy(pair => pair.Key).Select(pair => pair.Value)];
}
