namespace NativeMi.Probing;

/// <summary>
/// A probe's output classes and how they make a distribution over the whole vocabulary (METHOD.md, "Probes"). The
/// classes are the most frequent target tokens of the training split that occur there at least twice, plus one
/// "other" class that stands for every other vocabulary token. Tokens seen once in training are trained as "other",
/// so q(other) is calibrated on tokens the probe has no class for, as held-out tokens unseen in training will be.
/// Within "other", mass is spread by a smoothed unigram over the tokens it stands for, from training and validation
/// counts only: u(x) = (c(x) + α) / (C + α · M), M the number of tokens "other" stands for.
/// The class of a token is also the coarsened target f(X) (a function of X), whose figures bound I(f(X); Z, I) ≤ I(X; Z, I).
/// </summary>
internal sealed class ClassMap
{
    private readonly Dictionary<int, int> _classOf;
    private readonly Dictionary<int, long> _otherCounts;
    private readonly double _otherTotal;

    private ClassMap(int[] tokens, long vocabularySize, Dictionary<int, long> otherCounts, double smoothing, long[] trainingClassCounts, int? requested)
    {
        Tokens = tokens;
        VocabularySize = vocabularySize;
        _classOf = new Dictionary<int, int>(tokens.Length);
        for (int c = 0; c < tokens.Length; c++) _classOf[tokens[c]] = c;
        _otherCounts = otherCounts;
        OtherSmoothing = smoothing;
        OtherTokenCount = vocabularySize - tokens.Length;
        _otherTotal = otherCounts.Values.Sum() + smoothing * OtherTokenCount;
        TrainingClassCounts = trainingClassCounts;
        RequestedClasses = requested;
    }

    /// <summary>Token id of each class, in ascending id order ("other" excluded).</summary>
    public int[] Tokens { get; }

    /// <summary>Number of classes including "other".</summary>
    public int Count => Tokens.Length + 1;

    /// <summary>Index of the "other" class (the last).</summary>
    public int Other => Tokens.Length;

    /// <summary>|V|, the tokenizer vocabulary the probe's distribution covers.</summary>
    public long VocabularySize { get; }

    /// <summary>M = |V| − (classes other than "other"): the tokens "other" stands for.</summary>
    public long OtherTokenCount { get; }

    /// <summary>α of the within-"other" unigram.</summary>
    public double OtherSmoothing { get; }

    /// <summary>The class limit asked for (null: every token seen at least twice in training).</summary>
    public int? RequestedClasses { get; }

    /// <summary>Training targets per class ("other" last): the training unigram the probes start from.</summary>
    public IReadOnlyList<long> TrainingClassCounts { get; }

    /// <summary>Class of a token (the coarsened symbol f(x)); tokens without a class map to <see cref="Other"/>.</summary>
    public int ClassOf(int token) => _classOf.TryGetValue(token, out int c) ? c : Other;

    /// <summary>−log2 u(token | other): the bits a token of the "other" class costs beyond −log2 q(other).</summary>
    public double OtherTokenBits(int token) => -Math.Log2((_otherCounts.GetValueOrDefault(token) + OtherSmoothing) / _otherTotal);

    /// <summary>
    /// The smoothed training unigram over the classes, log q(c) = ln((n_c + 1/2) / (N + C/2)): the probes' initial
    /// output bias, so an untrained probe is exactly this unigram and early stopping can never keep anything worse on
    /// validation data.
    /// </summary>
    public float[] UnigramLogits()
    {
        double total = TrainingClassCounts.Sum() + 0.5 * Count;
        return [.. TrainingClassCounts.Select(n => (float)Math.Log((n + 0.5) / total))];
    }

    /// <summary>−log2 of the smoothed training unigram of a class (as <see cref="UnigramLogits"/>, in double precision).</summary>
    public double UnigramClassBits(int cls) => -Math.Log2((TrainingClassCounts[cls] + 0.5) / (TrainingClassCounts.Sum() + 0.5 * Count));

    /// <summary>
    /// Builds the classes from the training split's targets (at most <paramref name="maxClasses"/> of the most frequent
    /// tokens seen at least twice, ties broken by token id; null for all of them) and the within-"other" unigram from the
    /// training and validation targets. Held-out targets never enter.
    /// </summary>
    public static ClassMap Build(IEnumerable<int[]> training, IEnumerable<int[]> validation, int? maxClasses, long vocabularySize, double otherSmoothing = 0.5)
    {
        ArgumentNullException.ThrowIfNull(training);
        ArgumentNullException.ThrowIfNull(validation);
        if (maxClasses is < 1) throw new ArgumentOutOfRangeException(nameof(maxClasses), maxClasses, "at least one class");
        if (!(otherSmoothing > 0)) throw new ArgumentOutOfRangeException(nameof(otherSmoothing), otherSmoothing, "must be positive");
        var trainingCounts = new Dictionary<int, long>();
        foreach (int[] sentence in training)
            foreach (int token in sentence) trainingCounts[token] = trainingCounts.GetValueOrDefault(token) + 1;
        int[] tokens = [.. trainingCounts.Where(p => p.Value >= 2).OrderByDescending(p => p.Value).ThenBy(p => p.Key)
            .Take(maxClasses ?? int.MaxValue).Select(p => p.Key).Order()];
        if (tokens.Length >= vocabularySize) throw new ArgumentOutOfRangeException(nameof(vocabularySize), vocabularySize, "the vocabulary must be larger than the class set");
        var classOf = new Dictionary<int, int>(tokens.Length);
        for (int c = 0; c < tokens.Length; c++) classOf[tokens[c]] = c;
        var classCounts = new long[tokens.Length + 1];
        var otherCounts = new Dictionary<int, long>();
        foreach (var (token, count) in trainingCounts)
        {
            int cls = classOf.TryGetValue(token, out int c) ? c : tokens.Length;
            classCounts[cls] += count;
            if (cls == tokens.Length) otherCounts[token] = otherCounts.GetValueOrDefault(token) + count;
        }
        foreach (int[] sentence in validation)
            foreach (int token in sentence)
                if (!classOf.ContainsKey(token)) otherCounts[token] = otherCounts.GetValueOrDefault(token) + 1;
        return new ClassMap(tokens, vocabularySize, otherCounts, otherSmoothing, classCounts, maxClasses);
    }
}
