namespace NativeMi.Information;

/// <summary>Which alphabet size |X| the Fano bounds use.</summary>
public enum FanoAlphabet
{
    /// <summary>The target variable's whole alphabet (the tokenizer vocabulary for the token target): a bound.</summary>
    Vocabulary,

    /// <summary>K + 1, with K the number of distinct held-out targets (`--fano-alphabet observed`): a plug-in figure about the sample, not a bound.</summary>
    ObservedPlusOne,
}

/// <summary>Which formula produced a layer's Fano figures.</summary>
public enum FanoKind
{
    /// <summary>Ordinary Fano with the full alphabet: a lower bound.</summary>
    Fano,
    /// <summary>List-Fano (the bag probe's top-n lists): a lower bound.</summary>
    ListFano,
    /// <summary>Fano (list-Fano for list decoding) with the observed alphabet K + 1: a plug-in figure about the sample, not a bound.</summary>
    ObservedPlugIn,
}

/// <summary>A target variable: the symbol a probe predicts, its alphabet and its population entropies.</summary>
/// <param name="Name">"token" (X itself) or "coarse" (f(X): the probe's classes, every other token one symbol).</param>
/// <param name="AlphabetSize">|X| of the Fano bounds: the vocabulary for X, the number of classes for f(X).</param>
/// <param name="Entropies">H, H(· | I) and the per-position entropies over the whole corpus.</param>
public sealed record TargetVariable(string Name, long AlphabetSize, TargetEntropies Entropies);

/// <summary>Settings of <see cref="LayerFigures.Calculate"/>.</summary>
internal sealed record LayerFigureOptions
{
    /// <summary>Which |X| the Fano figures use.</summary>
    public FanoAlphabet Alphabet { get; init; } = FanoAlphabet.Vocabulary;

    /// <summary>
    /// True for list decoding (the bag probe): "correct" means the target is in the sentence's list of its n most
    /// likely symbols, n being its number of targets, and every Fano figure is list-Fano.
    /// </summary>
    public bool ListDecoding { get; init; }

    /// <summary>Number of bootstrap resamples of the held-out sentences; 0 skips the intervals.</summary>
    public int BootstrapResamples { get; init; } = 200;

    /// <summary>Seed of the bootstrap's generator; the same seed gives the same resamples everywhere.</summary>
    public ulong BootstrapSeed { get; init; } = 0x4E61_7469_7665_4D69; // "NativeMi"

    /// <summary>Two-sided level of the bootstrap intervals (0.95: the 2.5 and 97.5 percentiles).</summary>
    public double IntervalLevel { get; init; } = 0.95;

    /// <summary>One-sided level of the "Fano (95% upper error)" figure (0.05: the 95% upper limit of P_e).</summary>
    public double UpperErrorAlpha { get; init; } = 0.05;

    /// <summary>Positions with fewer held-out targets than this are marked sparse.</summary>
    public int SparsePositionTargets { get; init; } = 30;
}

/// <summary>A two-sided interval [Lower, Upper]: the bootstrap percentile interval of a figure (95% unless said otherwise).</summary>
/// <param name="Lower">Lower end.</param>
/// <param name="Upper">Upper end.</param>
public readonly record struct Interval(double Lower, double Upper)
{
    /// <summary>Whether <paramref name="value"/> lies in the closed interval.</summary>
    public bool Contains(double value) => value >= Lower && value <= Upper;

    /// <summary>The interval moved by <paramref name="offset"/>.</summary>
    public Interval Shift(double offset) => new(Lower + offset, Upper + offset);
}

/// <summary>Figures for the targets at one position index i of the held-out sentences.</summary>
/// <param name="Position">Index i among a sentence's target positions (0 = first target).</param>
/// <param name="TargetCount">Number of held-out sentences with a target at this position.</param>
/// <param name="Accuracy">Fraction of those targets the probe got right (in the list, for list decoding).</param>
/// <param name="CrossEntropyBits">Mean -log2 q(x_i | z, i).</param>
/// <param name="EntropyBits">H(X_i) over the whole corpus.</param>
/// <param name="FanoBits">I_F for X_i with the layer's |X| (list-Fano for list decoding).</param>
/// <param name="BarberAgakovBits">H(X_i) minus <paramref name="CrossEntropyBits"/>.</param>
/// <param name="Sparse">Fewer than 30 held-out targets at this position: the figures are shown but say little.</param>
public sealed record PositionFigures(
    int Position,
    int TargetCount,
    double Accuracy,
    double CrossEntropyBits,
    double EntropyBits,
    double FanoBits,
    double BarberAgakovBits,
    bool Sparse);

/// <summary>
/// Every per-layer figure of METHOD.md for one target variable, computed from a probe's held-out outcomes. Targets
/// are pooled: each held-out target counts once, so X is the symbol at a position drawn uniformly from all target
/// positions. H(X) and H(X | I) are the population values of the whole corpus; the held-out plug-in and
/// Miller-Madow estimates are reported beside them.
/// </summary>
public sealed record LayerFigures
{
    /// <summary>Name of the target variable ("token" or "coarse").</summary>
    public required string Target { get; init; }

    /// <summary>Number of held-out sentences.</summary>
    public required int SentenceCount { get; init; }

    /// <summary>Number of held-out targets N.</summary>
    public required long TargetCount { get; init; }

    /// <summary>Number of distinct held-out targets K.</summary>
    public required int DistinctTargets { get; init; }

    /// <summary>|X| used by the Fano figures.</summary>
    public required long AlphabetSize { get; init; }

    /// <summary>Which formula the Fano figures come from, and so whether they are bounds.</summary>
    public required FanoKind FanoKind { get; init; }

    /// <summary>acc = P(argmax q = X) (for list decoding: P(X in the list)).</summary>
    public required double Accuracy { get; init; }

    /// <summary>P_e = 1 - acc.</summary>
    public double ErrorRate => 1 - Accuracy;

    /// <summary>CE = mean of -log2 q(X | z, I), bits.</summary>
    public required double CrossEntropyBits { get; init; }

    /// <summary>H(X) of the whole corpus, bits: the entropy every position-aware figure subtracts from.</summary>
    public required double EntropyBits { get; init; }

    /// <summary>H(X | I) of the whole corpus, bits: the entropy every sentence-level figure subtracts from.</summary>
    public required double ConditionalEntropyBits { get; init; }

    /// <summary>Plug-in H(X) of the held-out targets (an estimate, for comparison).</summary>
    public required double HeldOutPlugInEntropyBits { get; init; }

    /// <summary>Miller-Madow H(X) of the held-out targets (an estimate, for comparison).</summary>
    public required double HeldOutMillerMadowEntropyBits { get; init; }

    /// <summary>Fano lower bound on I(X; Z, I) (list-Fano for list decoding; a plug-in figure with the observed alphabet). Unclipped.</summary>
    public required double FanoBits { get; init; }

    /// <summary>One-sided Clopper-Pearson upper limit of P_e (capped where the bound is smallest).</summary>
    public required double UpperErrorRate { get; init; }

    /// <summary>"Fano (95% upper error)": the Fano figure at <see cref="UpperErrorRate"/> (targets treated as independent).</summary>
    public required double FanoAtUpperErrorBits { get; init; }

    /// <summary>Barber-Agakov bound I_BA = H(X) - CE on I(X; Z, I): the headline figure.</summary>
    public required double BarberAgakovBits { get; init; }

    /// <summary>Sentence-level Fano bound I_S_F = H(X | I) − (Fano's bound on H(X | Z, I)): a lower bound on I(X; Z | I) ≤ I(S; Z).</summary>
    public required double SentenceFanoBits { get; init; }

    /// <summary>Sentence-level Barber-Agakov bound I_S_BA = H(X | I) − CE: a lower bound on I(X; Z | I) ≤ I(S; Z).</summary>
    public double SentenceBarberAgakovBits => ConditionalEntropyBits - CrossEntropyBits;

    /// <summary>I_S_lower = max(I_S_F, I_S_BA), a lower bound on I(S; Z) (with the observed alphabet, I_S_BA alone).</summary>
    public double SentenceLowerBoundBits => FanoKind == FanoKind.ObservedPlugIn ? SentenceBarberAgakovBits : Math.Max(SentenceFanoBits, SentenceBarberAgakovBits);

    /// <summary>Bootstrap interval of <see cref="Accuracy"/>; null when no resamples were asked for.</summary>
    public Interval? AccuracyInterval { get; init; }

    /// <summary>Bootstrap interval of <see cref="CrossEntropyBits"/>.</summary>
    public Interval? CrossEntropyInterval { get; init; }

    /// <summary>Bootstrap interval of <see cref="FanoBits"/>.</summary>
    public Interval? FanoInterval { get; init; }

    /// <summary>Bootstrap interval of <see cref="BarberAgakovBits"/>.</summary>
    public Interval? BarberAgakovInterval => CrossEntropyInterval is { } ce ? new Interval(EntropyBits - ce.Upper, EntropyBits - ce.Lower) : null;

    /// <summary>Bootstrap interval of <see cref="SentenceLowerBoundBits"/>.</summary>
    public Interval? SentenceLowerBoundInterval { get; init; }

    /// <summary>Figures per target position index, from 0 to the longest held-out sentence's last target.</summary>
    public required IReadOnlyList<PositionFigures> Positions { get; init; }

    /// <summary>Mean CE of every bootstrap resample (empty without resamples), for paired differences between figures of one run.</summary>
    public IReadOnlyList<double> ResampledCrossEntropyBits { get; init; } = [];

    /// <summary>Computes every figure from the held-out outcomes of one probe on one layer.</summary>
    /// <param name="outcomes">One entry per held-out sentence, with the target variable's symbols.</param>
    /// <param name="target">The target variable: its alphabet and population entropies.</param>
    /// <param name="options">Alphabet, list decoding, bootstrap and confidence settings.</param>
    /// <param name="resampling">The run's shared resamples; null draws them from the options' seed (the same draws for the same seed).</param>
    internal static LayerFigures Calculate(IReadOnlyList<SentenceOutcome> outcomes, TargetVariable target, LayerFigureOptions options,
        HeldOutResampling? resampling = null)
    {
        ArgumentNullException.ThrowIfNull(outcomes);
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(options);
        if (outcomes.Count == 0) throw new ArgumentException("no held-out sentences to compute figures from", nameof(outcomes));
        long[] heldOutCounts = Entropy.Histogram(outcomes.SelectMany(o => o.Targets));
        int distinct = heldOutCounts.Length;
        FanoKind kind = options.Alphabet == FanoAlphabet.ObservedPlusOne ? FanoKind.ObservedPlugIn : options.ListDecoding ? FanoKind.ListFano : FanoKind.Fano;
        bool list = options.ListDecoding;
        int longest = outcomes.Max(o => o.Length);
        // The observed alphabet (a plug-in figure) must still exceed every list for list-Fano to be defined.
        long alphabetSize = kind == FanoKind.ObservedPlugIn ? Math.Max(distinct + 1L, list ? longest + 1L : 2) : target.AlphabetSize;
        if (alphabetSize < 2) throw new ArgumentOutOfRangeException(nameof(target), alphabetSize, "the alphabet needs at least 2 symbols");
        if (kind != FanoKind.ObservedPlugIn && alphabetSize < distinct)
            throw new ArgumentOutOfRangeException(nameof(target), alphabetSize, $"alphabet size is below the {distinct} distinct held-out targets");
        if (list && alphabetSize <= longest)
            throw new ArgumentOutOfRangeException(nameof(target), alphabetSize, $"list decoding needs an alphabet larger than the longest list ({longest})");

        int n = outcomes.Count;
        var correct = new double[n];
        var targets = new double[n];
        var crossEntropy = new double[n];
        for (int s = 0; s < n; s++)
        {
            correct[s] = outcomes[s].CorrectCount;
            targets[s] = outcomes[s].Length;
            crossEntropy[s] = outcomes[s].CrossEntropyBitsSum;
        }
        long totalTargets = (long)targets.Sum(), totalCorrect = (long)correct.Sum();
        double accuracy = (double)totalCorrect / totalTargets;
        double meanCrossEntropy = crossEntropy.Sum() / totalTargets;
        var weights = Enumerable.Repeat(1, n).ToArray();
        double conditionalBound = FanoConditionalBound(outcomes, list, alphabetSize, weights, alpha: null);
        double upperConditionalBound = FanoConditionalBound(outcomes, list, alphabetSize, weights, options.UpperErrorAlpha);
        double entropy = target.Entropies.EntropyBits, conditional = target.Entropies.ConditionalEntropyBits;
        double upperErrorRate = list
            ? Math.Min(ClopperPearson.UpperLimit(totalTargets - totalCorrect, totalTargets, options.UpperErrorAlpha), 1)
            : InformationBounds.UpperErrorRate(totalTargets - totalCorrect, totalTargets, alphabetSize, options.UpperErrorAlpha);

        Interval? accuracyInterval = null, crossEntropyInterval = null, fanoInterval = null, sentenceInterval = null;
        double[] resampledCrossEntropy = [];
        if (options.BootstrapResamples > 0)
        {
            resampling ??= new HeldOutResampling(n, options.BootstrapResamples, options.BootstrapSeed);
            if (resampling.SentenceCount != n)
                throw new ArgumentException($"the resamples are of {resampling.SentenceCount} sentences, the outcomes of {n}", nameof(resampling));
            double[] correctSums = resampling.Sums(correct), targetSums = resampling.Sums(targets), crossEntropySums = resampling.Sums(crossEntropy);
            int r = resampling.Resamples;
            var accuracies = new double[r];
            var fano = new double[r];
            var sentence = new double[r];
            resampledCrossEntropy = new double[r];
            var multiplicity = new int[n];
            for (int i = 0; i < r; i++)
            {
                accuracies[i] = correctSums[i] / targetSums[i];
                resampledCrossEntropy[i] = crossEntropySums[i] / targetSums[i];
                Array.Clear(multiplicity);
                foreach (int s in resampling.Draws(i)) multiplicity[s]++;
                double bound = FanoConditionalBound(outcomes, list, alphabetSize, multiplicity, alpha: null);
                fano[i] = entropy - bound;
                double sentenceBa = conditional - resampledCrossEntropy[i];
                sentence[i] = kind == FanoKind.ObservedPlugIn ? sentenceBa : Math.Max(conditional - bound, sentenceBa);
            }
            accuracyInterval = HeldOutResampling.PercentileInterval(accuracies, options.IntervalLevel);
            crossEntropyInterval = HeldOutResampling.PercentileInterval(resampledCrossEntropy, options.IntervalLevel);
            fanoInterval = HeldOutResampling.PercentileInterval(fano, options.IntervalLevel);
            sentenceInterval = HeldOutResampling.PercentileInterval(sentence, options.IntervalLevel);
        }

        return new LayerFigures
        {
            Target = target.Name,
            SentenceCount = n,
            TargetCount = totalTargets,
            DistinctTargets = distinct,
            AlphabetSize = alphabetSize,
            FanoKind = kind,
            Accuracy = accuracy,
            CrossEntropyBits = meanCrossEntropy,
            EntropyBits = entropy,
            ConditionalEntropyBits = conditional,
            HeldOutPlugInEntropyBits = Entropy.PlugInBits(heldOutCounts),
            HeldOutMillerMadowEntropyBits = Entropy.MillerMadowBits(heldOutCounts),
            FanoBits = entropy - conditionalBound,
            UpperErrorRate = upperErrorRate,
            FanoAtUpperErrorBits = entropy - upperConditionalBound,
            BarberAgakovBits = InformationBounds.BarberAgakov(entropy, meanCrossEntropy),
            SentenceFanoBits = conditional - conditionalBound,
            AccuracyInterval = accuracyInterval,
            CrossEntropyInterval = crossEntropyInterval,
            FanoInterval = fanoInterval,
            SentenceLowerBoundInterval = sentenceInterval,
            Positions = PositionFiguresOf(outcomes, target.Entropies, list, alphabetSize, options),
            ResampledCrossEntropyBits = resampledCrossEntropy,
        };
    }

    /// <summary>
    /// The Fano-type bound on the conditional entropy H(X | Z, I) from the outcomes, each sentence counted
    /// <paramref name="weights"/>[s] times: ordinary Fano, or for list decoding list-Fano with the list size k = n of
    /// each sentence. With <paramref name="alpha"/>, error rates are replaced by their one-sided Clopper-Pearson upper limits.
    /// </summary>
    private static double FanoConditionalBound(IReadOnlyList<SentenceOutcome> outcomes, bool list, long alphabetSize, int[] weights, double? alpha)
    {
        if (!list)
        {
            long errors = 0, trials = 0;
            for (int s = 0; s < outcomes.Count; s++)
            {
                errors += (long)weights[s] * (outcomes[s].Length - outcomes[s].CorrectCount);
                trials += (long)weights[s] * outcomes[s].Length;
            }
            double errorRate = alpha is double a ? InformationBounds.UpperErrorRate(errors, trials, alphabetSize, a) : (double)errors / trials;
            return InformationBounds.FanoConditionalEntropy(errorRate, alphabetSize);
        }
        var groups = new SortedDictionary<long, (long Errors, long Targets)>();
        for (int s = 0; s < outcomes.Count; s++)
        {
            if (weights[s] == 0) continue;
            long k = outcomes[s].Length;
            var (e, t) = groups.GetValueOrDefault(k);
            groups[k] = (e + (long)weights[s] * (outcomes[s].Length - outcomes[s].CorrectCount), t + (long)weights[s] * outcomes[s].Length);
        }
        return InformationBounds.ListFanoMixedConditionalEntropy(alphabetSize, [.. groups.Select(g => (g.Key, g.Value.Errors, g.Value.Targets))], alpha);
    }

    private static PositionFigures[] PositionFiguresOf(IReadOnlyList<SentenceOutcome> outcomes, TargetEntropies entropies, bool list, long alphabetSize,
        LayerFigureOptions options)
    {
        int longest = outcomes.Max(outcome => outcome.Length);
        var figures = new PositionFigures[longest];
        for (int position = 0; position < longest; position++)
        {
            int count = 0, correct = 0;
            double crossEntropySum = 0;
            // For list decoding the position's targets keep the list size of their sentence.
            var groups = new SortedDictionary<long, (long Errors, long Targets)>();
            foreach (var outcome in outcomes)
            {
                if (position >= outcome.Length) continue;
                count++;
                bool right = outcome.Correct[position];
                if (right) correct++;
                crossEntropySum += outcome.CrossEntropyBits[position];
                var (e, t) = groups.GetValueOrDefault(outcome.Length);
                groups[outcome.Length] = (e + (right ? 0 : 1), t + 1);
            }
            double accuracy = (double)correct / count;
            double crossEntropy = crossEntropySum / count;
            double entropy = entropies.PositionEntropyBits(position);
            double bound = list
                ? InformationBounds.ListFanoMixedConditionalEntropy(alphabetSize, [.. groups.Select(g => (g.Key, g.Value.Errors, g.Value.Targets))])
                : InformationBounds.FanoConditionalEntropy(1 - accuracy, alphabetSize);
            figures[position] = new PositionFigures(position, count, accuracy, crossEntropy, entropy, entropy - bound,
                InformationBounds.BarberAgakov(entropy, crossEntropy), count < options.SparsePositionTargets);
        }
        return figures;
    }
}

/// <summary>A difference of I_BA between two figures of one run, with its paired bootstrap interval.</summary>
/// <param name="From">Label of the first figure (a layer name, or "control").</param>
/// <param name="To">Label of the second.</param>
/// <param name="Bits">I_BA(From) − I_BA(To) = CE(To) − CE(From).</param>
/// <param name="Interval">Percentile interval of the difference over the shared resamples; null without resamples.</param>
public sealed record PairedDifference(string From, string To, double Bits, Interval? Interval)
{
    /// <summary>
    /// The paired difference I_BA(<paramref name="from"/>) − I_BA(<paramref name="to"/>) of two figures of the same target,
    /// resampled with the same draws (both must come from one run's resampling).
    /// </summary>
    internal static PairedDifference Of(string fromLabel, LayerFigures from, string toLabel, LayerFigures to, double level = 0.95)
    {
        ArgumentNullException.ThrowIfNull(from);
        ArgumentNullException.ThrowIfNull(to);
        double bits = to.CrossEntropyBits - from.CrossEntropyBits;
        if (from.ResampledCrossEntropyBits.Count == 0 || to.ResampledCrossEntropyBits.Count == 0) return new PairedDifference(fromLabel, toLabel, bits, null);
        if (from.ResampledCrossEntropyBits.Count != to.ResampledCrossEntropyBits.Count)
            throw new ArgumentException("the two figures were not resampled with the same draws");
        var differences = new double[from.ResampledCrossEntropyBits.Count];
        for (int i = 0; i < differences.Length; i++) differences[i] = to.ResampledCrossEntropyBits[i] - from.ResampledCrossEntropyBits[i];
        return new PairedDifference(fromLabel, toLabel, bits, HeldOutResampling.PercentileInterval(differences, level));
    }

    /// <summary>True when the interval excludes zero: the data resolve which of the two is larger.</summary>
    public bool Resolved => Interval is { } i && (i.Lower > 0 || i.Upper < 0);
}
