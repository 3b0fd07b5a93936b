namespace NativeMi.Information;

/// <summary>Which alphabet size |X| the Fano bounds use.</summary>
public enum FanoAlphabet
{
    /// <summary>The full tokenizer vocabulary (the conservative default).</summary>
    Vocabulary,

    /// <summary>K + 1, with K the number of distinct held-out targets (`--fano-alphabet observed`).</summary>
    ObservedPlusOne,
}

/// <summary>Settings of <see cref="LayerFigures.Calculate"/>.</summary>
public sealed record LayerFigureOptions
{
    /// <summary>Size of the tokenizer's vocabulary, |X| for <see cref="FanoAlphabet.Vocabulary"/>.</summary>
    public required long VocabularySize { get; init; }

    /// <summary>Which |X| the Fano bounds use.</summary>
    public FanoAlphabet Alphabet { get; init; } = FanoAlphabet.Vocabulary;

    /// <summary>Number of bootstrap resamples of the held-out sentences; 0 skips the intervals.</summary>
    public int BootstrapResamples { get; init; } = 200;

    /// <summary>Seed of the bootstrap's generator; the same seed gives the same intervals everywhere.</summary>
    public ulong BootstrapSeed { get; init; } = 0x4E61_7469_7665_4D69; // "NativeMi"

    /// <summary>Two-sided level of the bootstrap intervals (0.95: the 2.5 and 97.5 percentiles).</summary>
    public double IntervalLevel { get; init; } = 0.95;

    /// <summary>One-sided error level of the certified Fano bound (0.05: 95% confidence).</summary>
    public double CertificationAlpha { get; init; } = 0.05;
}

/// <summary>A two-sided interval [Lower, Upper].</summary>
/// <param name="Lower">Lower end.</param>
/// <param name="Upper">Upper end.</param>
public readonly record struct Interval(double Lower, double Upper)
{
    /// <summary>Whether <paramref name="value"/> lies in the closed interval.</summary>
    public bool Contains(double value) => value >= Lower && value <= Upper;
}

/// <summary>Figures for the targets at one position index i of the held-out sentences.</summary>
/// <param name="Position">Index i among a sentence's target positions (0 = first target).</param>
/// <param name="TargetCount">Number of held-out sentences with a target at this position.</param>
/// <param name="Accuracy">Fraction of those targets the probe got right.</param>
/// <param name="CrossEntropyBits">Mean -log2 q(x_i | z, i).</param>
/// <param name="EntropyBits">H(X_i), Miller-Madow, from the targets at this position.</param>
/// <param name="FanoBits">I_F for X_i, with the layer's |X|.</param>
/// <param name="BarberAgakovBits">H(X_i) minus <paramref name="CrossEntropyBits"/>.</param>
public sealed record PositionFigures(
    int Position,
    int TargetCount,
    double Accuracy,
    double CrossEntropyBits,
    double EntropyBits,
    double FanoBits,
    double BarberAgakovBits);

/// <summary>
/// Every per-layer figure of METHOD.md computed from a probe's held-out outcomes. Targets are pooled:
/// each held-out target counts once, so X is the token at a position drawn uniformly from all
/// held-out target positions, and acc, CE and H(X) all refer to that one distribution.
/// </summary>
public sealed record LayerFigures
{
    /// <summary>Number of held-out sentences.</summary>
    public required int SentenceCount { get; init; }

    /// <summary>Number of held-out targets N.</summary>
    public required long TargetCount { get; init; }

    /// <summary>Number of distinct held-out targets K.</summary>
    public required int DistinctTargets { get; init; }

    /// <summary>|X| used by the Fano bounds.</summary>
    public required long AlphabetSize { get; init; }

    /// <summary>acc = P(argmax q = X).</summary>
    public required double Accuracy { get; init; }

    /// <summary>P_e = 1 - acc.</summary>
    public double ErrorRate => 1 - Accuracy;

    /// <summary>CE = mean of -log2 q(X | z, I), bits.</summary>
    public required double CrossEntropyBits { get; init; }

    /// <summary>Plug-in H(X), bits.</summary>
    public required double EntropyPlugInBits { get; init; }

    /// <summary>Miller-Madow H(X), bits: the H(X) every bound here uses.</summary>
    public required double EntropyBits { get; init; }

    /// <summary>Fano lower bound I_F (point estimate; unclipped).</summary>
    public required double FanoBits { get; init; }

    /// <summary>One-sided Clopper-Pearson upper limit of P_e (capped at 1 - 1/|X|), used by <see cref="CertifiedFanoBits"/>.</summary>
    public required double CertifiedErrorRate { get; init; }

    /// <summary>Fano bound with P_e replaced by its upper limit: a lower bound holding with the chosen confidence.</summary>
    public required double CertifiedFanoBits { get; init; }

    /// <summary>Barber-Agakov bound I_BA = H(X) - CE.</summary>
    public required double BarberAgakovBits { get; init; }

    /// <summary>Sentence-level lower bound I_S_lower = max(I_F, I_BA) (data processing: I(S; Z) ≥ I(X_i; Z)).</summary>
    public double SentenceLowerBoundBits => Math.Max(FanoBits, BarberAgakovBits);

    /// <summary>Bootstrap interval of <see cref="Accuracy"/>; null when no resamples were asked for.</summary>
    public Interval? AccuracyInterval { get; init; }

    /// <summary>Bootstrap interval of <see cref="FanoBits"/>.</summary>
    public Interval? FanoInterval { get; init; }

    /// <summary>Bootstrap interval of <see cref="BarberAgakovBits"/>.</summary>
    public Interval? BarberAgakovInterval { get; init; }

    /// <summary>Figures per target position index, from 0 to the longest sentence's last target.</summary>
    public required IReadOnlyList<PositionFigures> Positions { get; init; }

    /// <summary>Computes every figure from the held-out outcomes of one probe on one layer.</summary>
    /// <param name="outcomes">One entry per held-out sentence.</param>
    /// <param name="options">Alphabet, bootstrap and confidence settings.</param>
    public static LayerFigures Calculate(IReadOnlyList<SentenceOutcome> outcomes, LayerFigureOptions options)
    {
        ArgumentNullException.ThrowIfNull(outcomes);
        ArgumentNullException.ThrowIfNull(options);
        if (outcomes.Count == 0) throw new ArgumentException("no held-out sentences to compute figures from", nameof(outcomes));
        var summary = SentenceSummaries.From(outcomes);
        long alphabetSize = AlphabetSizeFor(options, summary.DistinctTargets);

        var identity = summary.Pool(Enumerable.Range(0, outcomes.Count));
        double accuracy = (double)identity.Correct / identity.Targets;
        long errors = identity.Targets - identity.Correct;
        double crossEntropy = identity.CrossEntropyBitsSum / identity.Targets;
        double entropyPlugIn = Entropy.PlugInBits(identity.Counts);
        double entropy = Entropy.MillerMadowBits(identity.Counts);
        double certifiedErrorRate = InformationBounds.CertifiedErrorRate(errors, identity.Targets, alphabetSize, options.CertificationAlpha);

        Interval? accuracyInterval = null, fanoInterval = null, barberAgakovInterval = null;
        if (options.BootstrapResamples > 0)
        {
            var bootstrap = SentenceBootstrap.Run(summary, options);
            accuracyInterval = bootstrap.Accuracy;
            fanoInterval = bootstrap.Fano;
            barberAgakovInterval = bootstrap.BarberAgakov;
        }

        return new LayerFigures
        {
            SentenceCount = outcomes.Count,
            TargetCount = identity.Targets,
            DistinctTargets = summary.DistinctTargets,
            AlphabetSize = alphabetSize,
            Accuracy = accuracy,
            CrossEntropyBits = crossEntropy,
            EntropyPlugInBits = entropyPlugIn,
            EntropyBits = entropy,
            FanoBits = InformationBounds.Fano(entropy, 1 - accuracy, alphabetSize),
            CertifiedErrorRate = certifiedErrorRate,
            CertifiedFanoBits = InformationBounds.Fano(entropy, certifiedErrorRate, alphabetSize),
            BarberAgakovBits = InformationBounds.BarberAgakov(entropy, crossEntropy),
            AccuracyInterval = accuracyInterval,
            FanoInterval = fanoInterval,
            BarberAgakovInterval = barberAgakovInterval,
            Positions = PositionFiguresOf(outcomes, alphabetSize),
        };
    }

    internal static long AlphabetSizeFor(LayerFigureOptions options, int distinctTargets)
    {
        if (options.Alphabet == FanoAlphabet.ObservedPlusOne) return distinctTargets + 1L;
        if (options.VocabularySize < 2)
            throw new ArgumentOutOfRangeException(nameof(options), options.VocabularySize, "vocabulary size must be at least 2");
        if (options.VocabularySize < distinctTargets)
            throw new ArgumentOutOfRangeException(nameof(options), options.VocabularySize, $"vocabulary size is below the {distinctTargets} distinct held-out targets");
        return options.VocabularySize;
    }

    private static PositionFigures[] PositionFiguresOf(IReadOnlyList<SentenceOutcome> outcomes, long alphabetSize)
    {
        int longest = outcomes.Max(outcome => outcome.Length);
        var figures = new PositionFigures[longest];
        for (int position = 0; position < longest; position++)
        {
            var targets = new List<int>();
            int correct = 0;
            double crossEntropySum = 0;
            foreach (var outcome in outcomes)
            {
                if (position >= outcome.Length) continue;
                targets.Add(outcome.Targets[position]);
                if (outcome.Correct[position]) correct++;
                crossEntropySum += outcome.CrossEntropyBits[position];
            }
            double accuracy = (double)correct / targets.Count;
            double crossEntropy = crossEntropySum / targets.Count;
            double entropy = Entropy.MillerMadowBits(Entropy.Histogram(targets));
            figures[position] = new PositionFigures(
                position,
                targets.Count,
                accuracy,
                crossEntropy,
                entropy,
                InformationBounds.Fano(entropy, 1 - accuracy, alphabetSize),
                InformationBounds.BarberAgakov(entropy, crossEntropy));
        }
        return figures;
    }
}

/// <summary>How information changes with depth: where I_F peaks and how much of it the last layer loses.</summary>
/// <param name="PeakLayer">Index (into the list given) of the layer with the highest I_F; the shallowest one on ties.</param>
/// <param name="PeakFanoBits">I_F at <paramref name="PeakLayer"/>.</param>
/// <param name="LastFanoBits">I_F at the last layer given.</param>
/// <param name="ForgettingBits">Peak I_F minus last-layer I_F; zero when the last layer is the peak.</param>
/// <param name="PeakNormalisedDepth">Normalised depth l / L of the peak layer (layer 0 is the embedding output).</param>
public sealed record DepthSummary(int PeakLayer, double PeakFanoBits, double LastFanoBits, double ForgettingBits, double PeakNormalisedDepth)
{
    /// <summary>Summarises I_F by layer, given for every layer 0..L in depth order (layer 0 = embeddings first).</summary>
    /// <param name="fanoBitsByLayer">I_F of each layer; pass GPT-2's extra "final" (after ln_f) entry only if it should count as the last layer.</param>
    public static DepthSummary FromFanoBits(IReadOnlyList<double> fanoBitsByLayer)
    {
        ArgumentNullException.ThrowIfNull(fanoBitsByLayer);
        int count = fanoBitsByLayer.Count;
        return FromEntries([.. fanoBitsByLayer.Select((bits, layer) => (layer, count <= 1 ? 0.0 : (double)layer / (count - 1), bits))]);
    }

    /// <summary>
    /// Summarises I_F over probed layers given in depth order, each with its own layer number and normalised
    /// depth, so that a subset such as layers 0, 3, 6 reports the true peak layer and depth.
    /// </summary>
    public static DepthSummary FromEntries(IReadOnlyList<(int Layer, double Depth, double FanoBits)> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        if (entries.Count == 0) throw new ArgumentException("no layers", nameof(entries));
        int peak = 0;
        for (int i = 1; i < entries.Count; i++)
        {
            if (entries[i].FanoBits > entries[peak].FanoBits) peak = i;
        }
        double last = entries[^1].FanoBits;
        return new DepthSummary(entries[peak].Layer, entries[peak].FanoBits, last, entries[peak].FanoBits - last, entries[peak].Depth);
    }
}
