using NativeMi.Information;
using NativeMi.Probing;

namespace NativeMi.Measurement;

/// <summary>Figures of one hidden-state entry.</summary>
/// <param name="Layer">Index l (0 = embeddings); GPT-2's "final" entry has L + 1.</param>
/// <param name="Name">"0".."L", or "final" for GPT-2's ln_f output.</param>
/// <param name="Depth">Normalised depth l / L ("final" has 1).</param>
/// <param name="Figures">Held-out figures of the probe.</param>
/// <param name="ControlCrossEntropyBits">CE of the control probe (z replaced by zeros) on the same held-out targets.</param>
/// <param name="ControlAccuracy">Accuracy of the control probe.</param>
/// <param name="ControlBarberAgakovBits">I_ctrl = H(X) − CE_ctrl: what position alone tells.</param>
/// <param name="GainBits">I_BA − I_ctrl, an estimate (not a bound).</param>
/// <param name="ListFanoBits">Bag probe only: the list-Fano lower bound.</param>
/// <param name="Epochs">Epochs the probe trained.</param>
/// <param name="ValidationCrossEntropyBits">Validation CE of the kept probe.</param>
public sealed record LayerResult(int Layer, string Name, double Depth, LayerFigures Figures, double ControlCrossEntropyBits, double ControlAccuracy,
    double ControlBarberAgakovBits, double GainBits, double? ListFanoBits, int Epochs, double ValidationCrossEntropyBits);

/// <summary>Description of the measured model.</summary>
public sealed record ModelDescription(string Name, string Directory, string Architecture, string Family, int Layers, int Width, int VocabularySize, long Parameters, string Identity);

/// <summary>Description of the corpus and its use.</summary>
public sealed record CorpusDescription(string Path, string Sha256, int Lines, int Sampled, int Train, int Validation, int HeldOut, int Truncated, int DroppedWithoutTargets);

/// <summary>Everything a measurement produced.</summary>
public sealed record MeasurementResult
{
    /// <summary>Schema tag of results.json.</summary>
    public const string Schema = "nativemi.measure/1";
    /// <summary>The model.</summary>
    public required ModelDescription Model { get; init; }
    /// <summary>The corpus.</summary>
    public required CorpusDescription Corpus { get; init; }
    /// <summary>The options used.</summary>
    public required MeasureOptions Options { get; init; }
    /// <summary>Backend description.</summary>
    public required string Backend { get; init; }
    /// <summary>Seconds per phase.</summary>
    public required IReadOnlyDictionary<string, double> TimingsSeconds { get; init; }
    /// <summary>Warnings (truncation, tiny splits, corrupt cache chunks rebuilt).</summary>
    public required IReadOnlyList<string> Warnings { get; init; }
    /// <summary>Per-layer figures.</summary>
    public required IReadOnlyList<LayerResult> Layers { get; init; }
    /// <summary>Peak and forgetting over layers 0..L (GPT-2's "final" entry excluded).</summary>
    public required DepthSummary Summary { get; init; }
    /// <summary>The baseline run's layers, when one was asked for.</summary>
    public IReadOnlyList<LayerResult>? BaselineLayers { get; init; }
    /// <summary>Held-out H(X) of the targets (the same for every layer).</summary>
    public required double HeldOutEntropyBits { get; init; }
    /// <summary>Probe family label attached to every figure.</summary>
    public string ProbeLabel => Options.Probe.ToString().ToLowerInvariant();
}

/// <summary>A progress event of a measurement.</summary>
/// <param name="Phase">"tokenise", "forward", "probe", "control", "baseline".</param>
/// <param name="Completed">Units done.</param>
/// <param name="Total">Units in the phase.</param>
/// <param name="Message">Optional detail (layer, epoch, loss).</param>
public readonly record struct MeasureEvent(string Phase, long Completed, long Total, string? Message = null);
