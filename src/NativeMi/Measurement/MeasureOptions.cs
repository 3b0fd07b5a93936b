using NativeMi.Pooling;
using NativeMi.Information;
using NativeMi.Probing;

namespace NativeMi.Measurement;

/// <summary>The optional comparison run of a measurement, probed exactly like the model (<see cref="MeasureOptions.Baseline"/>).</summary>
public enum BaselineKind
{
    /// <summary>No baseline.</summary>
    None,
    /// <summary>The same architecture with seeded random weights.</summary>
    RandomInit,
    /// <summary>Sentence vectors permuted across sentences within each split.</summary>
    Shuffled,
}

/// <summary>
/// Every setting of a measurement run (<see cref="MeasurementRunner.Run(MeasureOptions, IProgress{MeasureEvent}?, CancellationToken)"/>):
/// the model, the corpus and its split, the probe and the bounds. The defaults are those of <c>nativemi measure</c>; each property
/// names the CLI option it mirrors where the name differs. A run's results.json records every value used.
/// </summary>
public sealed record MeasureOptions
{
    /// <summary>Built-in model name or model folder.</summary>
    public string Model { get; init; } = "minilm";
    /// <summary>UTF-8 corpus, one sentence per line; null for the packaged WordNet examples.</summary>
    public string? Corpus { get; init; }
    /// <summary>Seeded sample size; null uses every sentence.</summary>
    public int? MaxSentences { get; init; } = DefaultMaxSentences;
    /// <summary>Layers to probe (0 = embeddings .. L); null for all. GPT-2's "final" entry is included with all.</summary>
    public IReadOnlyList<int>? Layers { get; init; }
    /// <summary>Pooling of token states into a sentence vector; null for the model's default (mean for encoders, last for decoders).</summary>
    public PoolingMode? Pool { get; init; }
    /// <summary>Probe family.</summary>
    public ProbeFamily Probe { get; init; } = ProbeFamily.Positional;
    /// <summary>Hidden width of the positional and bag probes.</summary>
    public int Hidden { get; init; } = ProbeOptions.DefaultHidden;
    /// <summary>Most probe epochs (early stopping usually ends sooner).</summary>
    public int Epochs { get; init; } = 20;
    /// <summary>Epochs without a better validation CE before a probe stops.</summary>
    public int Patience { get; init; } = ProbeOptions.DefaultPatience;
    /// <summary>AdamW learning rate of the probes.</summary>
    public float LearningRate { get; init; } = ProbeOptions.DefaultLearningRate;
    /// <summary>Fraction of the learning rate for the positional probe's second stage (the MLP on top of the trained linear probe).</summary>
    public float SecondStageLearningRateScale { get; init; } = ProbeOptions.DefaultSecondStageLearningRateScale;
    /// <summary>
    /// Most output classes of the probe: the most frequent training tokens seen at least twice, plus "other"; null
    /// for every such token. The classes also define the coarse target f(X).
    /// </summary>
    public int? Classes { get; init; } = DefaultClasses;
    /// <summary>Probe seeds trained per layer; the one with the lowest validation CE is kept and the spread reported.</summary>
    public int ProbeSeeds { get; init; } = 1;
    /// <summary>The target of the headline figures: "coarse" (f(X), the default) or "token" (X).</summary>
    public string HeadlineTarget { get; init; } = "coarse";
    /// <summary>Sentences per forward batch.</summary>
    public int BatchSize { get; init; } = 32;
    /// <summary>Sentences per probe mini-batch.</summary>
    public int ProbeBatchSize { get; init; } = 32;
    /// <summary>Seed of the sample, the split, probe initialisation, batch order and the bootstrap.</summary>
    public ulong Seed { get; init; }
    /// <summary>Longest token sequence fed to the model; longer sentences are truncated and counted. Null: the model's context.</summary>
    public int? MaxTokens { get; init; }
    /// <summary>|X| of the Fano bounds.</summary>
    public FanoAlphabet FanoAlphabet { get; init; } = FanoAlphabet.Vocabulary;
    /// <summary>Bootstrap resamples for the intervals.</summary>
    public int Bootstrap { get; init; } = 200;
    /// <summary>Optional baseline run.</summary>
    public BaselineKind Baseline { get; init; } = BaselineKind.None;
    /// <summary>Train / validation fractions; the rest is held out.</summary>
    public double TrainFraction { get; init; } = 0.7;
    /// <summary>Validation fraction.</summary>
    public double ValidationFraction { get; init; } = 0.1;
    /// <summary>Folder of the embedding cache; null for the default cache folder.</summary>
    public string? CacheDirectory { get; init; }
    /// <summary>
    /// Load a model whose weights hold NaN or infinite values instead of refusing it (the default refuses, naming the file, the
    /// tensor, how many there are and where the first is); the run then warns with the count. The CLI's --allow-nonfinite-weights.
    /// </summary>
    public bool AllowNonFiniteWeights { get; init; }
    /// <summary>
    /// Widen F16 and BF16 weights to fp32 at load (twice the memory) instead of keeping them 16-bit; on the CPU both give identical
    /// hidden states. The CLI's --widen-16bit-weights.
    /// </summary>
    public bool WidenSixteenBitWeights { get; init; }

    /// <summary>Sample size of the default run (docs/METHOD.md says how it was chosen).</summary>
    public const int DefaultMaxSentences = 8000;

    /// <summary>Class limit of the default run (docs/METHOD.md says how it was chosen).</summary>
    public const int DefaultClasses = 1000;
}
