using System.Text.Json;
using System.Text.Json.Serialization;
using NativeMi.Information;
using NativeMi.Measurement;

namespace NativeMi.Reporting;

// The shape of results.json ("nativemi.measure/2"; docs/METHOD.md defines every figure), written by source-generated
// serialisation. Property order is the file's key order; names follow the snake_case policy unless given. Figures keep
// their types (float settings stay float) so every number is written as before: shortest round-trip text of its type.

/// <summary>results.json.</summary>
internal sealed record ResultsDocument(
    string Schema, ModelJson Model, CorpusJson Corpus, SettingsJson Settings, string Backend,
    [property: JsonPropertyName("timings_s")] IReadOnlyDictionary<string, double> Timings,
    IReadOnlyList<string> Warnings, string ProbeFamily, string HeadlineTarget, string Note, TargetsJson Targets, ControlJson Control,
    IReadOnlyList<LayerJson> Layers, KeyedByTargetJson Differences,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] BaselineJson? Baseline,
    KeyedByTargetJson Summary);

internal sealed record ModelJson(string Name, string Directory, string Architecture, string Family, int Layers, int Width, int VocabSize, long Parameters,
    [property: JsonPropertyName("identity_sha256")] string Identity);

internal sealed record CorpusJson(string Path, [property: JsonPropertyName("sha256")] string Sha256, int Lines, int PopulationSentences, long PopulationTargets, int Sampled, SplitJson Sentences,
    int Truncated, int DroppedWithoutTargets);

internal sealed record SplitJson(int Train, int Validation, int HeldOut);

internal sealed record SettingsJson(
    string Model, string? Corpus, int? MaxSentences,
    [property: JsonConverter(typeof(AllWhenNullConverter))] IReadOnlyList<int>? Layers,
    string Pool, string Probe, int Hidden,
    [property: JsonConverter(typeof(CountOrAllConverter))] int? Classes,
    string Target, int Epochs, int Patience, float LearningRate, [property: JsonPropertyName("mlp_lr_scale")] float SecondStageLearningRateScale,
    double WeightDecay, int ProbeSeeds, int BatchSize, int ProbeBatchSize, ulong Seed, int? MaxTokens, string FanoAlphabet, int Bootstrap, string Baseline,
    bool AllowNonfiniteWeights, [property: JsonPropertyName("widen_16bit_weights")] bool WidenSixteenBitWeights, double TrainFraction, double ValidationFraction);

internal sealed record TargetsJson(TargetJson Token, TargetJson Coarse, ClassesJson Classes);

internal sealed record TargetJson(string Description, long AlphabetSize,
    [property: JsonPropertyName("h_x_bits")] double EntropyBits,
    [property: JsonPropertyName("h_x_given_i_bits")] double ConditionalEntropyBits,
    [property: JsonPropertyName("i_x_i_bits")] double PositionInformationBits,
    int PopulationSentences, long PopulationTargets, int PopulationDistinct);

internal sealed record ClassesJson(int Count, [property: JsonConverter(typeof(CountOrAllConverter))] int? Requested, long OtherTokens, double OtherSmoothing,
    double TrainingCoverage);

internal sealed record ControlJson(string Note, int Epochs, int BestEpoch,
    [property: JsonPropertyName("unigram_token_ce_bits")] double UnigramTokenCrossEntropyBits,
    [property: JsonPropertyName("unigram_coarse_ce_bits")] double UnigramCoarseCrossEntropyBits,
    bool WorseThanUnigram, DifferenceJson TokenOverUnigram, DifferenceJson CoarseOverUnigram, ControlFiguresJson Token, ControlFiguresJson Coarse);

internal sealed record LayerJson(int Layer, string Name, double Depth, int ProbeEpochs, int ProbeBestEpoch,
    [property: JsonPropertyName("probe_validation_coarse_ce_bits")] double ValidationCrossEntropyBits,
    IReadOnlyList<SeedJson> Seeds, LayerFiguresJson Token, LayerFiguresJson Coarse);

internal sealed record SeedJson(ulong Seed, [property: JsonPropertyName("validation_coarse_ce_bits")] double ValidationCrossEntropyBits,
    [property: JsonPropertyName("token_ba_bits")] double TokenBarberAgakovBits, [property: JsonPropertyName("coarse_ba_bits")] double CoarseBarberAgakovBits,
    int Epochs);

/// <summary>
/// A layer's figures on one target: the control's figures (<see cref="ControlFiguresJson"/>) with the gain over the control
/// after the sentence-level ones and the per-position figures at the end. Two types because the control has neither, and
/// leaves both out rather than writing them null.
/// </summary>
internal sealed record LayerFiguresJson(
    [property: JsonPropertyName("acc")] double Accuracy, [property: JsonPropertyName("acc_ci")] double[]? AccuracyInterval,
    [property: JsonPropertyName("ce_bits")] double CrossEntropyBits, [property: JsonPropertyName("ce_ci")] double[]? CrossEntropyInterval,
    string FanoKind, double FanoBits, [property: JsonPropertyName("fano_ci")] double[]? FanoInterval,
    [property: JsonPropertyName("fano_upper_error_bits")] double FanoAtUpperErrorBits, double UpperErrorRate,
    [property: JsonPropertyName("ba_bits")] double BarberAgakovBits, [property: JsonPropertyName("ba_ci")] double[]? BarberAgakovInterval,
    double SentenceFanoBits, [property: JsonPropertyName("sentence_ba_bits")] double SentenceBarberAgakovBits,
    [property: JsonPropertyName("sentence_lower_bits")] double SentenceLowerBoundBits,
    [property: JsonPropertyName("sentence_lower_ci")] double[]? SentenceLowerBoundInterval,
    double GainBits, [property: JsonPropertyName("gain_ci")] double[]? GainInterval,
    [property: JsonPropertyName("held_out_targets")] long TargetCount, int DistinctTargets, long AlphabetSize,
    [property: JsonPropertyName("h_x_bits")] double EntropyBits, [property: JsonPropertyName("h_x_given_i_bits")] double ConditionalEntropyBits,
    [property: JsonPropertyName("held_out_h_x_plugin_bits")] double HeldOutPlugInEntropyBits,
    [property: JsonPropertyName("held_out_h_x_miller_madow_bits")] double HeldOutMillerMadowEntropyBits,
    IReadOnlyList<PositionJson> Positions);

/// <summary>The control's figures on one target: <see cref="LayerFiguresJson"/> without gain and positions.</summary>
internal sealed record ControlFiguresJson(
    [property: JsonPropertyName("acc")] double Accuracy, [property: JsonPropertyName("acc_ci")] double[]? AccuracyInterval,
    [property: JsonPropertyName("ce_bits")] double CrossEntropyBits, [property: JsonPropertyName("ce_ci")] double[]? CrossEntropyInterval,
    string FanoKind, double FanoBits, [property: JsonPropertyName("fano_ci")] double[]? FanoInterval,
    [property: JsonPropertyName("fano_upper_error_bits")] double FanoAtUpperErrorBits, double UpperErrorRate,
    [property: JsonPropertyName("ba_bits")] double BarberAgakovBits, [property: JsonPropertyName("ba_ci")] double[]? BarberAgakovInterval,
    double SentenceFanoBits, [property: JsonPropertyName("sentence_ba_bits")] double SentenceBarberAgakovBits,
    [property: JsonPropertyName("sentence_lower_bits")] double SentenceLowerBoundBits,
    [property: JsonPropertyName("sentence_lower_ci")] double[]? SentenceLowerBoundInterval,
    [property: JsonPropertyName("held_out_targets")] long TargetCount, int DistinctTargets, long AlphabetSize,
    [property: JsonPropertyName("h_x_bits")] double EntropyBits, [property: JsonPropertyName("h_x_given_i_bits")] double ConditionalEntropyBits,
    [property: JsonPropertyName("held_out_h_x_plugin_bits")] double HeldOutPlugInEntropyBits,
    [property: JsonPropertyName("held_out_h_x_miller_madow_bits")] double HeldOutMillerMadowEntropyBits);

internal sealed record PositionJson(int Position, [property: JsonPropertyName("targets")] int TargetCount, bool Sparse,
    [property: JsonPropertyName("acc")] double Accuracy, [property: JsonPropertyName("ce_bits")] double CrossEntropyBits,
    [property: JsonPropertyName("h_x_bits")] double EntropyBits, double FanoBits, [property: JsonPropertyName("ba_bits")] double BarberAgakovBits);

internal sealed record DifferenceJson(string From, string To, [property: JsonPropertyName("ba_bits")] double Bits,
    [property: JsonPropertyName("ci")] double[]? Interval, bool Resolved);

internal sealed record BaselineJson(string Kind, IReadOnlyList<LayerJson> Layers);

internal sealed record SummaryJson(int PeakLayer, string PeakName, double PeakDepth,
    [property: JsonPropertyName("peak_ba_bits")] double PeakBarberAgakovBits, [property: JsonPropertyName("last_ba_bits")] double LastBarberAgakovBits,
    DifferenceJson Forgetting, double PeakGainBits, double LastGainBits);

/// <summary>
/// An object with a note and then one entry per target, keyed by the target's name in the run's order ("differences":
/// arrays of <see cref="DifferenceJson"/>; "summary": <see cref="SummaryJson"/> objects).
/// </summary>
internal sealed class KeyedByTargetJson(string note)
{
    public string Note { get; } = note;

    [JsonExtensionData]
    public OrderedDictionary<string, object> ByTarget { get; } = new(StringComparer.Ordinal);
}

/// <summary>A count, or "all" for null (no limit).</summary>
internal sealed class CountOrAllConverter : JsonConverter<int?>
{
    public override bool HandleNull => true;

    public override int? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => throw new NotSupportedException();

    public override void Write(Utf8JsonWriter writer, int? value, JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(writer);
        if (value is int count) writer.WriteNumberValue(count);
        else writer.WriteStringValue("all");
    }
}

/// <summary>A list of numbers, or "all" for null (every one).</summary>
internal sealed class AllWhenNullConverter : JsonConverter<IReadOnlyList<int>?>
{
    public override bool HandleNull => true;

    public override IReadOnlyList<int>? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => throw new NotSupportedException();

    public override void Write(Utf8JsonWriter writer, IReadOnlyList<int>? value, JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(writer);
        if (value is null) { writer.WriteStringValue("all"); return; }
        writer.WriteStartArray();
        foreach (int item in value) writer.WriteNumberValue(item);
        writer.WriteEndArray();
    }
}

/// <summary>Source-generated serialisation of results.json (no reflection, so the NativeAOT binary writes it too).</summary>
[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(ResultsDocument))]
// The runtime types of KeyedByTargetJson's entries.
[JsonSerializable(typeof(DifferenceJson[]))]
[JsonSerializable(typeof(SummaryJson))]
internal sealed partial class ResultJsonContext : JsonSerializerContext;

/// <summary>A <see cref="MeasurementResult"/> as the results.json document.</summary>
internal static class ResultJson
{
    /// <summary>The UTF-8 bytes of results.json: two-space indentation, the default encoder's escaping, no final newline.</summary>
    public static byte[] Serialize(MeasurementResult r) => JsonSerializer.SerializeToUtf8Bytes(Document(r), ResultJsonContext.Default.ResultsDocument);

    private static double[]? Pair(Interval? interval) => interval is { } i ? [i.Lower, i.Upper] : null;

    private static DifferenceJson Difference(PairedDifference d) => new(d.From, d.To, d.Bits, Pair(d.Interval), d.Resolved);

    private static TargetJson Target(TargetVariable t, string description) => new(description, t.AlphabetSize, t.Entropies.EntropyBits,
        t.Entropies.ConditionalEntropyBits, t.Entropies.PositionInformationBits, t.Entropies.SentenceCount, t.Entropies.TargetCount, t.Entropies.DistinctSymbols);

    private static ControlFiguresJson ControlFigures(LayerFigures f) => new(f.Accuracy, Pair(f.AccuracyInterval), f.CrossEntropyBits, Pair(f.CrossEntropyInterval),
        ResultWriter.FanoKindName(f.FanoKind), f.FanoBits, Pair(f.FanoInterval), f.FanoAtUpperErrorBits, f.UpperErrorRate, f.BarberAgakovBits,
        Pair(f.BarberAgakovInterval), f.SentenceFanoBits, f.SentenceBarberAgakovBits, f.SentenceLowerBoundBits, Pair(f.SentenceLowerBoundInterval),
        f.TargetCount, f.DistinctTargets, f.AlphabetSize, f.EntropyBits, f.ConditionalEntropyBits, f.HeldOutPlugInEntropyBits, f.HeldOutMillerMadowEntropyBits);

    private static LayerFiguresJson LayerFigures(LayerFigures f, PairedDifference gain) => new(f.Accuracy, Pair(f.AccuracyInterval), f.CrossEntropyBits,
        Pair(f.CrossEntropyInterval), ResultWriter.FanoKindName(f.FanoKind), f.FanoBits, Pair(f.FanoInterval), f.FanoAtUpperErrorBits, f.UpperErrorRate,
        f.BarberAgakovBits, Pair(f.BarberAgakovInterval), f.SentenceFanoBits, f.SentenceBarberAgakovBits, f.SentenceLowerBoundBits,
        Pair(f.SentenceLowerBoundInterval), gain.Bits, Pair(gain.Interval), f.TargetCount, f.DistinctTargets, f.AlphabetSize, f.EntropyBits,
        f.ConditionalEntropyBits, f.HeldOutPlugInEntropyBits, f.HeldOutMillerMadowEntropyBits,
        [.. f.Positions.Select(p => new PositionJson(p.Position, p.TargetCount, p.Sparse, p.Accuracy, p.CrossEntropyBits, p.EntropyBits, p.FanoBits, p.BarberAgakovBits))]);

    private static LayerJson[] Layers(IReadOnlyList<LayerResult> layers) => [.. layers.Select(l => new LayerJson(l.Layer, l.Name, l.Depth, l.Epochs, l.BestEpoch,
        l.ValidationCrossEntropyBits,
        [.. l.Seeds.Select(s => new SeedJson(s.Seed, s.ValidationCrossEntropyBits, s.TokenBarberAgakovBits, s.CoarseBarberAgakovBits, s.Epochs))],
        LayerFigures(l.Token, l.TokenGain), LayerFigures(l.Coarse, l.CoarseGain)))];

    /// <summary>The document of <paramref name="r"/>.</summary>
    public static ResultsDocument Document(MeasurementResult r)
    {
        MeasureOptions o = r.Options;
        var differences = new KeyedByTargetJson(
            "I_BA(from) - I_BA(to) between consecutive probed layers, with paired 95% bootstrap intervals (the same resamples for every layer)");
        foreach (LayerDifferences d in r.Differences) differences.ByTarget.Add(d.Target, d.Consecutive.Select(Difference).ToArray());
        var summary = new KeyedByTargetJson(
            "I_BA over layers 0..L (a 'final' entry after the last norm is reported but not used here); forgetting = peak - last with its paired interval");
        foreach (DepthSummary s in r.Summaries)
            summary.ByTarget.Add(s.Target, new SummaryJson(s.PeakLayer, s.PeakName, s.PeakDepth, s.PeakBarberAgakovBits, s.LastBarberAgakovBits,
                Difference(s.Forgetting), s.PeakGainBits, s.LastGainBits));
        return new ResultsDocument(
            MeasurementResult.Schema,
            new ModelJson(r.Model.Name, r.Model.Directory, r.Model.Architecture, r.Model.Family, r.Model.Layers, r.Model.Width, r.Model.VocabularySize,
                r.Model.Parameters, r.Model.Identity),
            new CorpusJson(r.Corpus.Path, r.Corpus.Sha256, r.Corpus.Lines, r.Corpus.PopulationSentences, r.Corpus.PopulationTargets, r.Corpus.Sampled,
                new SplitJson(r.Corpus.Train, r.Corpus.Validation, r.Corpus.HeldOut), r.Corpus.Truncated, r.Corpus.DroppedWithoutTargets),
            new SettingsJson(o.Model, o.Corpus, o.MaxSentences, o.Layers, o.Pool?.ToString().ToLowerInvariant() ?? "auto", o.Probe.ToString().ToLowerInvariant(),
                o.Hidden, o.Classes, o.HeadlineTarget, o.Epochs, o.Patience, o.LearningRate, o.SecondStageLearningRateScale, WeightDecay: 0.01, o.ProbeSeeds,
                o.BatchSize, o.ProbeBatchSize, o.Seed, o.MaxTokens, o.FanoAlphabet == FanoAlphabet.Vocabulary ? "vocab" : "observed", o.Bootstrap,
                MeasurementRunner.BaselineName(o.Baseline), o.AllowNonFiniteWeights, o.WidenSixteenBitWeights, o.TrainFraction, o.ValidationFraction),
            r.Backend,
            r.TimingsSeconds,
            r.Warnings,
            r.ProbeLabel,
            r.HeadlineTarget,
            "Bits per target token on held-out sentences. Position-aware figures bound I(X; Z, I) (and the coarse ones I(f(X); Z, I) <= I(X; Z, I)); " +
                "sentence_* figures bound I(X; Z | I) <= I(S; Z). All bound what the named probe family can extract (V-usable information), not the true I(S; Z). gain is an estimate, not a bound.",
            new TargetsJson(
                Target(r.Targets.Token, "X: the token at a target position, over the tokenizer vocabulary; entropies over the whole corpus"),
                Target(r.Targets.Coarse, $"f(X): the probe's {r.Classes.Count - 1} classes (the most frequent training tokens seen at least twice), every other token one symbol; " +
                    "entropies over the corpus sentences the classes and probes were not fitted on (all but the training and validation splits)"),
                new ClassesJson(r.Classes.Count, r.Classes.Requested, r.Classes.OtherTokenCount, r.Classes.OtherSmoothing, r.Classes.TrainingCoverage)),
            new ControlJson(
                "the same probe trained with z replaced by zeros: a model of q(x | i); I_ctrl = H(X) - CE_ctrl estimates what position alone tells",
                r.Control.Epochs, r.Control.BestEpoch, r.Control.UnigramToken.CrossEntropyBits, r.Control.UnigramCoarse.CrossEntropyBits,
                r.Control.WorseThanUnigram, Difference(r.Control.OverUnigram("token")), Difference(r.Control.OverUnigram("coarse")),
                ControlFigures(r.Control.Token), ControlFigures(r.Control.Coarse)),
            Layers(r.Layers),
            differences,
            r.Baseline is null ? null : new BaselineJson(r.Baseline.Kind, Layers(r.Baseline.Layers)),
            summary);
    }
}
