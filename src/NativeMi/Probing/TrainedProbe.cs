using NativeMi.Information;

namespace NativeMi.Probing;

/// <summary>
/// What a probe did on held-out sentences, for both target variables: the token X itself (a distribution over the
/// whole vocabulary) and the coarsened target f(X), the probe's own classes.
/// </summary>
/// <param name="Token">Per sentence: token ids, whether the probe named the token, −log2 q(x | z, i).</param>
/// <param name="Coarse">Per sentence: class ids, whether the probe's top class was right, −log2 q(f(x) | z, i).</param>
internal sealed record ProbeOutcomes(IReadOnlyList<SentenceOutcome> Token, IReadOnlyList<SentenceOutcome> Coarse);

/// <summary>A trained probe, ready to score held-out sentences.</summary>
internal sealed class TrainedProbe : IDisposable
{
    private readonly ProbeNetwork _network;
    private readonly float[] _mean, _scale;
    private readonly int _maxPosition;

    internal TrainedProbe(ProbeNetwork network, ClassMap classes, float[] mean, float[] scale, int maxPosition, int epochs, int bestEpoch, double validationBits)
    {
        _network = network;
        Classes = classes;
        _mean = mean;
        _scale = scale;
        _maxPosition = maxPosition;
        Epochs = epochs;
        BestEpoch = bestEpoch;
        BestValidationCrossEntropyBits = validationBits;
    }

    /// <summary>The output classes.</summary>
    public ClassMap Classes { get; }
    /// <summary>Epochs trained before early stopping.</summary>
    public int Epochs { get; }
    /// <summary>The epoch whose parameters were kept (0: the untrained unigram start).</summary>
    public int BestEpoch { get; }
    /// <summary>Validation cross-entropy of the kept parameters, in bits on the coarse target (the probe's classes).</summary>
    public double BestValidationCrossEntropyBits { get; }
    /// <summary>The family.</summary>
    public ProbeFamily Family => _network.Family;

    /// <summary>
    /// Scores every target of <paramref name="data"/>. For the token target, a token outside the class set is always
    /// counted wrong, and its probability is q(other) · u(token | other) (<see cref="ClassMap.OtherTokenBits"/>), so q
    /// stays a distribution over the whole vocabulary and the Barber-Agakov bound valid. For the coarse target the
    /// "other" class is a symbol like any other. For the bag probe, "correct" means the symbol is among the sentence's
    /// n most likely ones (n = its target count); "other" names no token, so it is never in a token list.
    /// </summary>
    public ProbeOutcomes Evaluate(Compute.IComputeBackend backend, ProbeDataset data, int batchSentences = 64)
    {
        ArgumentNullException.ThrowIfNull(data);
        var source = new BatchSource(backend, ProbeTrainer.Standardise(data, _mean, _scale), data.Targets, Classes, _maxPosition);
        var token = new SentenceOutcome[data.Count];
        var coarse = new SentenceOutcome[data.Count];
        for (int start = 0; start < data.Count; start += batchSentences)
        {
            int[] members = Enumerable.Range(start, Math.Min(batchSentences, data.Count - start)).ToArray();
            using PreparedBatch batch = source.Prepare(members);
            var (loss, argmax) = _network.Score(batch);
            float[]? sentenceLogits = Family == ProbeFamily.Bag ? _network.SentenceLogits(batch) : null;
            int t = 0;
            for (int b = 0; b < members.Length; b++)
            {
                int[] tokens = data.Targets[members[b]];
                int n = tokens.Length;
                var classes = new int[n];
                var tokenCorrect = new bool[n];
                var coarseCorrect = new bool[n];
                var tokenBits = new double[n];
                var coarseBits = new double[n];
                HashSet<int>? tokenList = null, coarseList = null;
                if (sentenceLogits is not null)
                {
                    ReadOnlySpan<float> row = sentenceLogits.AsSpan(b * Classes.Count, Classes.Count);
                    tokenList = TopClasses(row, n, includeOther: false);
                    coarseList = TopClasses(row, n, includeOther: true);
                }
                for (int i = 0; i < n; i++, t++)
                {
                    int cls = batch.HostClassOfTarget[t];
                    classes[i] = cls;
                    bool known = cls != Classes.Other;
                    coarseBits[i] = loss[t] / Math.Log(2);
                    tokenBits[i] = coarseBits[i] + (known ? 0 : Classes.OtherTokenBits(tokens[i]));
                    coarseCorrect[i] = coarseList is null ? argmax[t] == cls : coarseList.Contains(cls);
                    tokenCorrect[i] = known && (tokenList is null ? argmax[t] == cls : tokenList.Contains(cls));
                }
                token[members[b]] = new SentenceOutcome(tokens, tokenCorrect, tokenBits);
                coarse[members[b]] = new SentenceOutcome(classes, coarseCorrect, coarseBits);
            }
        }
        return new ProbeOutcomes(token, coarse);
    }

    /// <summary>The k most likely classes (ties by class index), with or without "other".</summary>
    private HashSet<int> TopClasses(ReadOnlySpan<float> logits, int k, bool includeOther)
    {
        int count = includeOther ? Classes.Count : Classes.Tokens.Length;
        float[] values = logits[..count].ToArray();
        return Enumerable.Range(0, count).OrderByDescending(i => values[i]).ThenBy(i => i).Take(k).ToHashSet();
    }

    /// <summary>Releases the probe's buffers.</summary>
    public void Dispose() => _network.Dispose();
}
