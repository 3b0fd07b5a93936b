using NativeMi.Information;
using NativeMi.Probing;

namespace NativeMi.Measurement;

/// <summary>The figures of one probed hidden-state entry (a layer) of a measurement, on both target variables.</summary>
public sealed record LayerResult
{
    /// <summary>Index l (0 = embeddings); a model's "final" entry has L + 1.</summary>
    public required int Layer { get; init; }
    /// <summary>"0".."L", or "final" for the final norm's output.</summary>
    public required string Name { get; init; }
    /// <summary>Normalised depth l / L ("final" has 1).</summary>
    public required double Depth { get; init; }
    /// <summary>Held-out figures on the token target X (the whole vocabulary).</summary>
    public required LayerFigures Token { get; init; }
    /// <summary>Held-out figures on the coarse target f(X) (the probe's classes).</summary>
    public required LayerFigures Coarse { get; init; }
    /// <summary>gain = I_BA − I_ctrl = CE_ctrl − CE on the token target, with its paired interval: an estimate of I(X; Z | I), not a bound.</summary>
    public required PairedDifference TokenGain { get; init; }
    /// <summary>gain on the coarse target.</summary>
    public required PairedDifference CoarseGain { get; init; }
    /// <summary>Epochs the kept probe trained.</summary>
    public required int Epochs { get; init; }
    /// <summary>Epoch of the kept parameters (0: the unigram start).</summary>
    public required int BestEpoch { get; init; }
    /// <summary>Validation CE of the kept probe, bits on the coarse target.</summary>
    public required double ValidationCrossEntropyBits { get; init; }
    /// <summary>Every probe seed's fit; the kept one has the lowest validation CE.</summary>
    public required IReadOnlyList<SeedFit> Seeds { get; init; }

    /// <summary>The figures on the named target ("token" or "coarse").</summary>
    public LayerFigures For(string target) => target == "token" ? Token : Coarse;

    /// <summary>The gain on the named target.</summary>
    public PairedDifference GainFor(string target) => target == "token" ? TokenGain : CoarseGain;
}

/// <summary>How I_BA changes with depth for one target: where it peaks, and how much of it the last layer loses.</summary>
/// <param name="Target">"token" or "coarse".</param>
/// <param name="PeakLayer">Layer number of the highest I_BA (the shallowest one on ties).</param>
/// <param name="PeakName">Its name.</param>
/// <param name="PeakDepth">Its normalised depth l / L.</param>
/// <param name="PeakBarberAgakovBits">I_BA at the peak.</param>
/// <param name="LastBarberAgakovBits">I_BA at the last layer given.</param>
/// <param name="Forgetting">Peak minus last ("forgetting"), with its paired bootstrap interval; zero when the last layer is the peak.</param>
/// <param name="PeakGainBits">gain at the peak layer.</param>
/// <param name="LastGainBits">gain at the last layer.</param>
public sealed record DepthSummary(string Target, int PeakLayer, string PeakName, double PeakDepth, double PeakBarberAgakovBits, double LastBarberAgakovBits,
    PairedDifference Forgetting, double PeakGainBits, double LastGainBits)
{
    /// <summary>Summarises I_BA over probed layers given in depth order (a model's "final" entry left out by the caller).</summary>
    internal static DepthSummary From(IReadOnlyList<LayerResult> layers, string target, double level = 0.95)
    {
        ArgumentNullException.ThrowIfNull(layers);
        if (layers.Count == 0) throw new ArgumentException("no layers", nameof(layers));
        int peak = 0;
        for (int i = 1; i < layers.Count; i++)
            if (layers[i].For(target).BarberAgakovBits > layers[peak].For(target).BarberAgakovBits) peak = i;
        LayerResult top = layers[peak], last = layers[^1];
        return new DepthSummary(target, top.Layer, top.Name, top.Depth, top.For(target).BarberAgakovBits, last.For(target).BarberAgakovBits,
            PairedDifference.Of(top.Name, top.For(target), last.Name, last.For(target), level), top.GainFor(target).Bits, last.GainFor(target).Bits);
    }
}

/// <summary>The paired differences of I_BA between consecutive probed layers, for one target.</summary>
/// <param name="Target">"token" or "coarse".</param>
/// <param name="Consecutive">I_BA(layer a) − I_BA(next layer b), in depth order (a model's "final" entry included).</param>
public sealed record LayerDifferences(string Target, IReadOnlyList<PairedDifference> Consecutive)
{
    /// <summary>The differences between each probed entry and the next.</summary>
    internal static LayerDifferences From(IReadOnlyList<LayerResult> layers, string target, double level = 0.95)
    {
        ArgumentNullException.ThrowIfNull(layers);
        var differences = new List<PairedDifference>();
        for (int i = 0; i + 1 < layers.Count; i++)
            differences.Add(PairedDifference.Of(layers[i].Name, layers[i].For(target), layers[i + 1].Name, layers[i + 1].For(target), level));
        return new LayerDifferences(target, differences);
    }
}

/// <summary>The probe's output classes, as a run used them.</summary>
/// <param name="Count">Classes including "other".</param>
/// <param name="Requested">The limit asked for (null: every token seen at least twice in training).</param>
/// <param name="OtherTokenCount">Vocabulary tokens "other" stands for.</param>
/// <param name="OtherSmoothing">α of the within-"other" unigram.</param>
/// <param name="TrainingCoverage">Share of the training targets that have a class of their own.</param>
public sealed record ClassDescription(int Count, int? Requested, long OtherTokenCount, double OtherSmoothing, double TrainingCoverage);

/// <summary>A baseline run's figures (random-init copy or shuffled vectors), measured against the same control.</summary>
/// <param name="Kind">"random-init" or "shuffled", as the CLI names it.</param>
/// <param name="Layers">Per-layer figures.</param>
public sealed record BaselineResult(string Kind, IReadOnlyList<LayerResult> Layers);

/// <summary>The model a measurement ran, as results.json's "model" object records it.</summary>
/// <param name="Name">What was asked for: a built-in name or a model folder.</param>
/// <param name="Directory">The model folder that was loaded (for a built-in model, its import in the cache).</param>
/// <param name="Architecture">config.json's model_type ("bert", "gpt2", "llama", ...).</param>
/// <param name="Family">The architecture family the engine ran it as.</param>
/// <param name="Layers">Number of transformer blocks L.</param>
/// <param name="Width">Hidden size: the width of every sentence vector probed.</param>
/// <param name="VocabularySize">Tokenizer vocabulary size: the alphabet of the token target.</param>
/// <param name="Parameters">Number of weights.</param>
/// <param name="Identity">SHA-256 over the model folder's config, tokenizer and weight files: a fine-tuned or edited copy has another.</param>
public sealed record ModelDescription(string Name, string Directory, string Architecture, string Family, int Layers, int Width, int VocabularySize, long Parameters, string Identity);

/// <summary>The corpus a measurement read, and how its sentences were sampled and split.</summary>
/// <param name="Path">The corpus file.</param>
/// <param name="Sha256">Its SHA-256.</param>
/// <param name="Lines">Non-blank lines.</param>
/// <param name="PopulationSentences">Distinct sentences with at least one target: the population the entropies are computed over.</param>
/// <param name="PopulationTargets">Targets in the population.</param>
/// <param name="Sampled">Sentences in the seeded sample.</param>
/// <param name="Train">Training sentences.</param>
/// <param name="Validation">Validation sentences.</param>
/// <param name="HeldOut">Held-out sentences: every figure is computed on these.</param>
/// <param name="Truncated">Sampled sentences truncated to the token limit.</param>
/// <param name="DroppedWithoutTargets">Sampled sentences without a text token, skipped.</param>
public sealed record CorpusDescription(string Path, string Sha256, int Lines, int PopulationSentences, long PopulationTargets, int Sampled, int Train, int Validation,
    int HeldOut, int Truncated, int DroppedWithoutTargets);

/// <summary>
/// Everything a measurement produced (<see cref="MeasurementRunner.Run(MeasureOptions, IProgress{MeasureEvent}?, CancellationToken)"/>):
/// the per-layer information figures of docs/METHOD.md with their intervals, the control probe, the depth summaries and what
/// the run read. <see cref="Reporting.ResultWriter"/> writes it as results.json (schema <see cref="Schema"/>), layers.csv and positions.csv.
/// </summary>
public sealed record MeasurementResult
{
    /// <summary>Schema tag of results.json.</summary>
    public const string Schema = "nativemi.measure/2";
    /// <summary>The model that was measured.</summary>
    public required ModelDescription Model { get; init; }
    /// <summary>The corpus, its sample and its split.</summary>
    public required CorpusDescription Corpus { get; init; }
    /// <summary>The options the run used, defaults resolved (<see cref="MeasureOptions.Pool"/> is never null here).</summary>
    public required MeasureOptions Options { get; init; }
    /// <summary>The compute backend the forward passes and probes ran on, as a line to show ("cpu (...)").</summary>
    public required string Backend { get; init; }
    /// <summary>Seconds per phase ("load", "tokenise", "forward", "control", "probes", ...).</summary>
    public required IReadOnlyDictionary<string, double> TimingsSeconds { get; init; }
    /// <summary>Warnings (truncation, tiny splits, corrupt cache chunks rebuilt, a control worse than the unigram).</summary>
    public required IReadOnlyList<string> Warnings { get; init; }
    /// <summary>The target variables and their population entropies.</summary>
    public required TargetVariables Targets { get; init; }
    /// <summary>The target the headline figures (table, plot, depth summary) use: "coarse" or "token".</summary>
    public required string HeadlineTarget { get; init; }
    /// <summary>The probe's classes.</summary>
    public required ClassDescription Classes { get; init; }
    /// <summary>The control probe (z = 0).</summary>
    public required ControlResult Control { get; init; }
    /// <summary>Per-layer figures.</summary>
    public required IReadOnlyList<LayerResult> Layers { get; init; }
    /// <summary>Paired differences between consecutive layers, for both targets.</summary>
    public required IReadOnlyList<LayerDifferences> Differences { get; init; }
    /// <summary>Peak and forgetting of I_BA over layers 0..L (a "final" entry excluded), for both targets.</summary>
    public required IReadOnlyList<DepthSummary> Summaries { get; init; }
    /// <summary>The baseline run, when one was asked for.</summary>
    public BaselineResult? Baseline { get; init; }
    /// <summary>Probe family label attached to every figure.</summary>
    public string ProbeLabel => Options.Probe.ToString().ToLowerInvariant();
    /// <summary>The depth summary of the headline target.</summary>
    public DepthSummary Summary => Summaries.Single(s => s.Target == HeadlineTarget);
}

/// <summary>A progress event of a measurement, reported through the <c>progress</c> argument of <see cref="MeasurementRunner.Run(MeasureOptions, IProgress{MeasureEvent}?, CancellationToken)"/>.</summary>
/// <param name="Phase">"sample", "import", "pooling", "tokenise", "forward", "control", "probe", "baseline".</param>
/// <param name="Completed">Units done.</param>
/// <param name="Total">Units in the phase.</param>
/// <param name="Message">Optional detail (layer, epoch, loss).</param>
public readonly record struct MeasureEvent(string Phase, long Completed, long Total, string? Message = null)
{
    /// <summary>The message of a forward-pass event sent after each batch (the chunk-level events carry none, or "cached").</summary>
    public const string BatchDone = "batch";
}
