namespace NativeMi.Probing;

/// <summary>The probe families of METHOD.md.</summary>
public enum ProbeFamily
{
    /// <summary>q(x | z, i) = softmax(W2 · gelu(W1 z + P[i] + b1) + V z + Q[i] + b2): an MLP over z and the position on top of the linear probe.</summary>
    Positional,
    /// <summary>q(x | z, i) = softmax(W z + P[i] + b).</summary>
    Linear,
    /// <summary>q(x | z), position ignored; scored as a list of the n most likely tokens for a sentence of n targets.</summary>
    Bag,
}

/// <summary>Training settings of a probe.</summary>
internal sealed record ProbeOptions
{
    /// <summary>Probe family.</summary>
    public ProbeFamily Family { get; init; } = ProbeFamily.Positional;
    /// <summary>Hidden width h of the positional and bag probes.</summary>
    public int Hidden { get; init; } = DefaultHidden;
    /// <summary>Most epochs (per stage for the positional probe); early stopping on validation cross-entropy usually ends sooner.</summary>
    public int MaxEpochs { get; init; } = 20;
    /// <summary>Epochs without a better validation cross-entropy before stopping.</summary>
    public int Patience { get; init; } = DefaultPatience;
    /// <summary>Whole sentences per mini-batch.</summary>
    public int BatchSentences { get; init; } = 32;
    /// <summary>AdamW learning rate.</summary>
    public float LearningRate { get; init; } = DefaultLearningRate;
    /// <summary>
    /// The positional probe's second stage (the whole probe, from the trained linear one) trains at this fraction of
    /// <see cref="LearningRate"/>: the MLP path overfits within an epoch or two at the full rate.
    /// </summary>
    public float SecondStageLearningRateScale { get; init; } = DefaultSecondStageLearningRateScale;
    /// <summary>AdamW decoupled weight decay.</summary>
    public float WeightDecay { get; init; } = 0.01f;
    /// <summary>Seed of initialisation and batch order.</summary>
    public ulong Seed { get; init; } = 1;

    /// <summary>Default patience (docs/METHOD.md says how it was chosen).</summary>
    public const int DefaultPatience = 2;

    /// <summary>Default hidden width (docs/METHOD.md says how it was chosen).</summary>
    public const int DefaultHidden = 256;

    /// <summary>Default <see cref="SecondStageLearningRateScale"/> (docs/METHOD.md says how it was chosen).</summary>
    public const float DefaultSecondStageLearningRateScale = 0.3f;

    /// <summary>Default AdamW learning rate (docs/METHOD.md says how it was chosen).</summary>
    public const float DefaultLearningRate = 1e-3f;
}

/// <summary>Sentence vectors and their target tokens, for one split.</summary>
internal sealed class ProbeDataset
{
    /// <summary>Creates the dataset; <paramref name="vectors"/> is [sentences, width].</summary>
    public ProbeDataset(int width, float[] vectors, IReadOnlyList<int[]> targets)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        if (vectors.LongLength != (long)width * targets.Count)
            throw new ArgumentException($"vectors hold {vectors.LongLength} values; expected {targets.Count} sentences x {width}", nameof(vectors));
        if (targets.Any(t => t.Length == 0)) throw new ArgumentException("every sentence needs at least one target", nameof(targets));
        Width = width;
        Vectors = vectors;
        Targets = targets;
    }

    /// <summary>Width d of a sentence vector.</summary>
    public int Width { get; }
    /// <summary>[sentences, width], row-major.</summary>
    public float[] Vectors { get; }
    /// <summary>Token ids of each sentence's target positions, in order.</summary>
    public IReadOnlyList<int[]> Targets { get; }
    /// <summary>Number of sentences.</summary>
    public int Count => Targets.Count;
    /// <summary>Number of targets over all sentences.</summary>
    public long TargetCount => Targets.Sum(t => (long)t.Length);

    /// <summary>The same targets with every vector replaced by zeros (the control probe's input).</summary>
    public ProbeDataset WithZeroVectors() => new(Width, new float[Vectors.Length], Targets);
}

/// <summary>Progress of probe training, reported once per epoch.</summary>
/// <param name="Epoch">1-based epoch just finished.</param>
/// <param name="MaxEpochs">Most epochs.</param>
/// <param name="TrainCrossEntropyBits">Mean training cross-entropy of the epoch.</param>
/// <param name="ValidationCrossEntropyBits">Validation cross-entropy after the epoch.</param>
/// <param name="Improved">Whether this epoch is the best so far.</param>
/// <param name="Stage">1-based training stage (the positional probe trains its linear path first, then the whole probe).</param>
/// <param name="Stages">Number of stages.</param>
internal readonly record struct ProbeEpoch(int Epoch, int MaxEpochs, double TrainCrossEntropyBits, double ValidationCrossEntropyBits, bool Improved, int Stage = 1, int Stages = 1);
