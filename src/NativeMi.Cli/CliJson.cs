using System.Text.Json.Serialization;

namespace NativeMi.Cli;

// The JSON files the CLI writes besides results.json and evaluation.json, in key order. Figures keep their types (learning
// rates are float), so every number is written as the shortest round-trip text of its type.

/// <summary>`bench --json`, schema "nativemi.bench/1".</summary>
internal sealed record BenchJson(string Schema, string Backend,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Note,
    string Machine, IReadOnlyList<BenchCommand.Row> Rows);

/// <summary>`bench --ops --json`, schema "nativemi.bench-ops/1".</summary>
internal sealed record BenchOpsJson(string Schema, string Model, int BatchSize, int SequenceLength, string Machine, IReadOnlyList<BenchOpsBackendJson> Backends);

/// <summary>One backend's op timings; the note says why they have no fraction of peak, and is left out when they have one.</summary>
internal sealed record BenchOpsBackendJson(string Backend, [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Note,
    IReadOnlyList<BenchOpJson> Ops);

internal sealed record BenchOpJson(string Op, string Role, string Shape, [property: JsonPropertyName("median_ms")] double MedianMilliseconds,
    [property: JsonPropertyName("gflops_per_s")] double GigaflopsPerSecond, [property: JsonPropertyName("gbytes_per_s")] double GigabytesPerSecond,
    double? FractionOfPeak);

/// <summary>`tune-probe --out`, schema "nativemi.tune-probe/1".</summary>
internal sealed record TuneProbeJson(string Schema, string Model, int MaxSentences, IReadOnlyList<int> Layers, double ToleranceBits,
    IReadOnlyList<TuneProbeCandidateJson> Candidates);

internal sealed record TuneProbeCandidateJson(int Hidden, float LearningRate, int Patience, [property: JsonPropertyName("mlp_lr_scale")] float SecondStageLearningRateScale,
    [property: JsonPropertyName("validation_coarse_ce_bits")] IReadOnlyList<double> ValidationCrossEntropyBits,
    [property: JsonPropertyName("mean_validation_coarse_ce_bits")] double MeanValidationCrossEntropyBits, double ProbeSeconds, bool Chosen);

/// <summary>finetune.json, schema "nativemi.finetune/1".</summary>
internal sealed record FinetuneJson(string Schema, string SourceModel, string Backend, FinetuneSettingsJson Settings, FinetuneSentencesJson Sentences,
    string Note, double InitialValidationCrossEntropyBits, IReadOnlyList<FinetuneEpochJson> Epochs, double Seconds);

internal sealed record FinetuneSettingsJson(string Corpus, int Layer, string Pool, int Epochs, float ModelLearningRate, float ProbeLearningRate, int BatchSize,
    bool FreezeEmbeddings, ulong Seed, [property: JsonPropertyName("max_grad_norm")] double MaxGradientNorm, int? MaxTrainSentences,
    int? MaxValidationSentences, [property: JsonPropertyName("probe_classes")] int? Classes, int ProbeHidden);

internal sealed record FinetuneSentencesJson(int Train, int Validation, int HeldOutForMeasure, int LeftOutForEvaluate);

internal sealed record FinetuneEpochJson(int Epoch, int Steps, double TrainCrossEntropyBits, double ValidationCrossEntropyBits);

/// <summary>Source-generated serialisation of the CLI's JSON files (indented, the default encoder's escaping; no reflection, so NativeAOT writes them too).</summary>
[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(BenchJson))]
[JsonSerializable(typeof(BenchOpsJson))]
[JsonSerializable(typeof(TuneProbeJson))]
[JsonSerializable(typeof(FinetuneJson))]
internal sealed partial class CliJsonContext : JsonSerializerContext;
