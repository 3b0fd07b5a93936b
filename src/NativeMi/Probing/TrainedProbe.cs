using NativeMi.Information;

namespace NativeMi.Probing;

/// <summary>Held-out outcomes of a bag probe: per sentence, the list size k = n and the number of targets outside the top-k list.</summary>
/// <param name="ListSize">k, the sentence's number of targets.</param>
/// <param name="Errors">Targets not among the k most likely tokens.</param>
public readonly record struct ListOutcome(int ListSize, int Errors);

/// <summary>A trained probe, ready to score held-out sentences.</summary>
public sealed class TrainedProbe : IDisposable
{
    private readonly ProbeNetwork _network;
    private readonly float[] _mean, _scale;
    private readonly int _maxPosition;

    internal TrainedProbe(ProbeNetwork network, ClassMap classes, float[] mean, float[] scale, int maxPosition, int epochs, double validationBits)
    {
        _network = network;
        Classes = classes;
        _mean = mean;
        _scale = scale;
        _maxPosition = maxPosition;
        Epochs = epochs;
        BestValidationCrossEntropyBits = validationBits;
    }

    /// <summary>The output classes.</summary>
    public ClassMap Classes { get; }
    /// <summary>Epochs trained before early stopping.</summary>
    public int Epochs { get; }
    /// <summary>Validation cross-entropy of the kept parameters.</summary>
    public double BestValidationCrossEntropyBits { get; }
    /// <summary>The family.</summary>
    public ProbeFamily Family => _network.Family;

    /// <summary>
    /// Scores every target of <paramref name="data"/>. A token unseen in training is always counted wrong,
    /// and its probability is the "other" class's mass spread evenly over the <paramref name="vocabularySize"/> − K
    /// tokens it stands for, so q stays a distribution over the whole vocabulary (and the Barber-Agakov bound valid).
    /// For the bag probe, "correct" means the token is among the sentence's n most likely tokens (n = its target count).
    /// </summary>
    public (IReadOnlyList<SentenceOutcome> Outcomes, IReadOnlyList<ListOutcome>? Lists) Evaluate(
        Compute.IComputeBackend backend, ProbeDataset data, long vocabularySize, int batchSentences = 64)
    {
        double otherSpreadBits = Math.Log2(Math.Max(vocabularySize - Classes.Tokens.Length, 1));
        var source = new BatchSource(backend, ProbeTrainer.Standardise(data, _mean, _scale), data.Targets, Classes, _maxPosition);
        var outcomes = new SentenceOutcome[data.Count];
        var lists = Family == ProbeFamily.Bag ? new ListOutcome[data.Count] : null;
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
                var correct = new bool[tokens.Length];
                var bits = new double[tokens.Length];
                HashSet<int>? topK = sentenceLogits is null ? null : TopClasses(sentenceLogits.AsSpan(b * Classes.Count, Classes.Count), tokens.Length);
                int errors = 0;
                for (int i = 0; i < tokens.Length; i++, t++)
                {
                    int cls = batch.HostClassOfTarget[t];
                    bool known = cls != Classes.Other;
                    bits[i] = loss[t] / Math.Log(2) + (known ? 0 : otherSpreadBits);
                    correct[i] = known && (topK is null ? argmax[t] == cls : topK.Contains(cls));
                    if (!correct[i]) errors++;
                }
                outcomes[members[b]] = new SentenceOutcome(tokens, correct, bits);
                if (lists is not null) lists[members[b]] = new ListOutcome(tokens.Length, errors);
            }
        }
        return (outcomes, lists);
    }

    /// <summary>The k most likely classes, excluding "other" (it names no token, so it cannot be a guess).</summary>
    private HashSet<int> TopClasses(ReadOnlySpan<float> logits, int k)
    {
        int[] order = Enumerable.Range(0, Classes.Tokens.Length).ToArray();
        float[] values = logits[..Classes.Tokens.Length].ToArray();
        Array.Sort(values.Select(v => -v).ToArray(), order);
        return order.Take(k).ToHashSet();
    }

    /// <summary>Releases the probe's buffers.</summary>
    public void Dispose() => _network.Dispose();
}
