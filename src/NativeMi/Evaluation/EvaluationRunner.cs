using System.Diagnostics;
using NativeMi.Compute;
using NativeMi.Compute.Cpu;
using NativeMi.Measurement;
using NativeMi.Models;
using NativeMi.Pooling;
using NativeMi.Text;
using NativeMi.Transformer;

namespace NativeMi.Evaluation;

/// <summary>Every setting of an evaluation run (<see cref="EvaluationRunner.Run(EvaluateOptions, IProgress{EvaluateEvent}?, CancellationToken)"/>); the defaults are those of <c>nativemi evaluate</c>.</summary>
public sealed record EvaluateOptions
{
    /// <summary>Built-in model name or model folder.</summary>
    public string Model { get; init; } = "minilm";
    /// <summary>Evaluation folder (glosses.tsv, examples.tsv, pairs.tsv); null for the packaged one.</summary>
    public string? Data { get; init; }
    /// <summary>
    /// Hidden-state entry whose pooled vectors are scored: 0 (embeddings) .. L, or L + 1 for a model's "final" entry (after its
    /// final norm); null for the model's output, the last entry (Hugging Face's last_hidden_state).
    /// </summary>
    public int? Layer { get; init; }
    /// <summary>Pooling; null for the model's default (mean for encoders, last for decoders), as measure pools.</summary>
    public PoolingMode? Pool { get; init; }
    /// <summary>Texts per forward batch.</summary>
    public int BatchSize { get; init; } = 32;
    /// <summary>Longest token sequence fed to the model; longer texts are truncated and counted. Null: the model's context.</summary>
    public int? MaxTokens { get; init; }
    /// <summary>Seed of the bootstrap (nothing else in an evaluation is random).</summary>
    public ulong Seed { get; init; }
    /// <summary>Bootstrap resamples for the intervals (0: none).</summary>
    public int Bootstrap { get; init; } = DefaultBootstrap;
    /// <summary>Use only the first this many glosses (and their examples and pairs): a quick, not comparable, run. Null: all.</summary>
    public int? MaxGlosses { get; init; }
    /// <summary>Folder of the model cache (built-in models are imported there); null for the default.</summary>
    public string? CacheDirectory { get; init; }
    /// <summary>Load a model whose weights hold NaN or infinite values.</summary>
    public bool AllowNonFiniteWeights { get; init; }
    /// <summary>Widen F16 and BF16 weights to fp32 at load.</summary>
    public bool WidenSixteenBitWeights { get; init; }

    /// <summary>Bootstrap resamples of a default run: the intervals cost milliseconds, so more than measure's 200.</summary>
    public const int DefaultBootstrap = 1000;
}

/// <summary>A progress event of an evaluation: Phase "import", "data", "pooling", "tokenise", "forward" or "score".</summary>
/// <param name="Phase">What is being done.</param>
/// <param name="Completed">Units done.</param>
/// <param name="Total">Units in all.</param>
/// <param name="Message">A line to show, where the phase has one.</param>
public readonly record struct EvaluateEvent(string Phase, long Completed, long Total, string? Message = null);

/// <summary>
/// The library entry point of `nativemi evaluate`: embeds the held-out glosses and examples with a model's pooled vectors of
/// one layer and scores gloss-to-example retrieval and same-sense detection (data/README.md, docs/METHOD.md).
/// </summary>
public static class EvaluationRunner
{
    /// <summary>
    /// Runs an evaluation on the CPU: reads the evaluation set, resolves the model (importing a built-in one into the cache on
    /// first use), embeds every gloss and example, and scores retrieval and same-sense detection with bootstrap intervals.
    /// </summary>
    /// <param name="options">What to evaluate and how; <c>new EvaluateOptions()</c> is the default run of <c>nativemi evaluate</c>.</param>
    /// <param name="progress">Receives progress events on the calling thread, in order.</param>
    /// <param name="cancellation">Checked between batches; a cancelled run throws <see cref="OperationCanceledException"/>.</param>
    /// <returns>The scores; <see cref="Reporting.EvaluationWriter.ToJson"/> renders them as evaluation.json.</returns>
    /// <exception cref="InputException">The model, the evaluation files or an option is unusable; the message says which and why.</exception>
    /// <exception cref="EnvironmentException">The machine lacks something the run needs (memory, a writable cache folder).</exception>
    public static EvaluationResult Run(EvaluateOptions options, IProgress<EvaluateEvent>? progress = null, CancellationToken cancellation = default) =>
        Run(options, progress, backend: null, cancellation);

    /// <summary>Runs an evaluation on <paramref name="backend"/> (null: a new CPU backend).</summary>
    /// <exception cref="InputException">The model, the evaluation files or an option is unusable; the message says which and why.</exception>
    internal static EvaluationResult Run(EvaluateOptions options, IProgress<EvaluateEvent>? progress, IComputeBackend? backend,
        CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        Validate(options);
        var clock = Stopwatch.StartNew();
        var timings = new Dictionary<string, double>();
        var warnings = new List<string>();
        backend ??= new CpuBackend();

        // The data are read before the model: a missing file fails before a built-in model's import.
        EvaluationSet set = EvaluationSet.Load(options.Data ?? EvaluationSet.DefaultFolder);
        if (options.MaxGlosses is int most && most < set.Glosses.Count)
        {
            set = set.Subset(most);
            warnings.Add($"only the first {most} of the glosses (with their examples and pairs) were evaluated: figures are not comparable with the full set's");
        }
        progress?.Report(new EvaluateEvent("data", 1, 1, $"evaluation data {set.Folder}: {set.Glosses.Count} glosses, {set.Examples.Count} examples, " +
            $"{set.Pairs.Count} pairs ({set.Pairs.Count(p => p.SameSynset)} same synset)"));

        string cacheRoot = options.CacheDirectory is { } explicitCache ? Path.GetFullPath(explicitCache) : BuiltinModels.CacheRoot();
        string directory = ModelResolver.Resolve(options.Model, cacheRoot, progress is null ? null : new ImportLog(progress));
        using TransformerModel model = TransformerModel.Load(directory, backend,
            new ModelLoadOptions { AllowNonFiniteWeights = options.AllowNonFiniteWeights, WidenSixteenBitWeights = options.WidenSixteenBitWeights });
        if (model.NonFiniteWeightCount > 0)
            warnings.Add($"the weights hold {model.NonFiniteWeightCount} NaN or infinite value(s), loaded because non-finite weights were allowed");
        int lastEntry = model.Config.HiddenStateEntries - 1;
        int layer = options.Layer ?? lastEntry;
        if (layer < 0 || layer > lastEntry)
            throw new InputException($"--layer: {layer} is outside 0..{model.Config.NumLayers}{(model.Config.HasFinalEntry ? $" ({lastEntry} = final)" : "")} of {directory}");
        string layerName = layer > model.Config.NumLayers ? "final" : layer.ToString(System.Globalization.CultureInfo.InvariantCulture);
        bool causal = model.Config.Layout.Attention.Causal;
        PoolingMode pool = options.Pool ?? (causal ? PoolingMode.Last : PoolingMode.Mean);
        progress?.Report(new EvaluateEvent("pooling", 0, 1, $"layer {layerName}{(options.Layer is null ? " (the model's output)" : "")}, " +
            $"{pool.ToString().ToLowerInvariant()} pooling{(options.Pool is null ? $" (the default for {(causal ? "decoders" : "encoders")})" : "")}"));
        timings["load"] = Lap(clock);

        // Glosses first, then examples: one list, so that both are batched by length together.
        string[] texts = [.. set.Glosses.Select(g => g.Definition), .. set.Examples.Select(e => e.Sentence)];
        int maxTokens = Math.Min(options.MaxTokens ?? model.Config.MaxSequenceLength, model.Config.MaxSequenceLength);
        var encoded = new EncodedSentence[texts.Length];
        for (int i = 0; i < texts.Length; i++)
        {
            cancellation.ThrowIfCancellationRequested();
            encoded[i] = model.Tokenizer.Encode(texts[i], maxTokens);
            if (!encoded[i].IsTarget.Any(t => t) && pool is PoolingMode.Mean or PoolingMode.Max)
                throw new InputException($"{TextSource(set, i)}: '{texts[i]}' has no text token after tokenisation; {pool.ToString().ToLowerInvariant()} pooling has nothing to pool");
            if (i % 1024 == 0 || i == texts.Length - 1) progress?.Report(new EvaluateEvent("tokenise", i + 1, texts.Length));
        }
        int truncated = encoded.Count(e => e.Truncated);
        if (truncated > 0) warnings.Add($"{truncated} text(s) longer than {maxTokens} tokens were truncated");
        timings["tokenise"] = Lap(clock);

        int d = model.Config.HiddenSize;
        float[] vectors = Embed(model, encoded, layer, pool, options.BatchSize, progress, cancellation);
        model.ReleaseWeights();
        timings["forward"] = Lap(clock);

        progress?.Report(new EvaluateEvent("score", 0, 1, null));
        int glosses = set.Glosses.Count;
        EvaluationScores scores = EvaluationScoring.Score(set, vectors.AsSpan(0, glosses * d), vectors.AsSpan(glosses * d), d, options.Bootstrap, options.Seed);
        if (scores.SameSense is null) warnings.Add(set.Pairs.Count == 0 ? "no same-sense pairs: ROC-AUC not computed" : "the pairs are all of one kind: ROC-AUC not computed");
        progress?.Report(new EvaluateEvent("score", 1, 1, null));
        timings["score"] = Lap(clock);
        timings["total"] = timings.Values.Sum();

        return new EvaluationResult
        {
            Model = new EvaluatedModel(options.Model, directory, model.Config.ModelType, model.Config.NumLayers, d, model.ParameterCount, MeasurementRunner.ModelIdentity(directory)),
            Data = new EvaluationDataDescription(set.Folder, set.FileSha256, set.Glosses.Count, set.Examples.Count, set.Pairs.Count, set.Pairs.Count(p => p.SameSynset), truncated),
            Settings = new EvaluationSettings(layerName, layer, pool.ToString().ToLowerInvariant(), options.BatchSize, maxTokens, options.Seed, options.Bootstrap, options.MaxGlosses),
            Backend = backend.Description,
            Retrieval = scores.Retrieval,
            SameSense = scores.SameSense,
            Ranks = scores.Ranks,
            PairScores = scores.PairScores,
            Set = set,
            TimingsSeconds = timings,
            Warnings = warnings,
        };
    }

    private static string TextSource(EvaluationSet set, int index) => index < set.Glosses.Count
        ? $"{Path.Combine(set.Folder, EvaluationSet.GlossesFile)}, synset {set.Glosses[index].Id}"
        : $"{Path.Combine(set.Folder, EvaluationSet.ExamplesFile)}, example {set.Examples[index - set.Glosses.Count].Id}";

    private static void Validate(EvaluateOptions o)
    {
        if (o.BatchSize < 1) throw new InputException($"--batch-size must be at least 1, got {o.BatchSize}");
        if (o.Bootstrap < 0) throw new InputException($"--bootstrap must be 0 or more, got {o.Bootstrap}");
        if (o.MaxTokens is < 3) throw new InputException($"--max-tokens must be at least 3, got {o.MaxTokens}");
        if (o.MaxGlosses is < 1) throw new InputException($"--max-glosses must be at least 1, got {o.MaxGlosses}");
        if (o.Layer is < 0) throw new InputException($"--layer must be 0 or more, got {o.Layer}");
    }

    /// <summary>Pooled vectors of one entry for every text [texts·d], in the texts' order; batches hold texts of similar length.</summary>
    private static float[] Embed(TransformerModel model, EncodedSentence[] encoded, int layer, PoolingMode pool, int batchSize,
        IProgress<EvaluateEvent>? progress, CancellationToken cancellation)
    {
        int n = encoded.Length, d = model.Config.HiddenSize;
        var result = new float[(long)n * d];
        int[] order = Enumerable.Range(0, n).OrderBy(i => encoded[i].Ids.Length).ThenBy(i => i).ToArray();
        for (int start = 0; start < n; start += batchSize)
        {
            cancellation.ThrowIfCancellationRequested();
            int[] members = order.AsSpan(start, Math.Min(batchSize, n - start)).ToArray();
            EncodedBatch batch = EncodedBatch.Pad(members.Select(i => encoded[i]).ToArray(), model.Tokenizer.PadId);
            float[] pooled = model.ForwardPooled(batch, pool)[layer];
            for (int k = 0; k < members.Length; k++) pooled.AsSpan(k * d, d).CopyTo(result.AsSpan(members[k] * d, d));
            progress?.Report(new EvaluateEvent("forward", start + members.Length, n));
        }
        return result;
    }

    private static double Lap(Stopwatch clock)
    {
        double seconds = clock.Elapsed.TotalSeconds;
        clock.Restart();
        return Math.Round(seconds, 3);
    }

    /// <summary>Forwards the built-in model import's log lines as "import" events.</summary>
    private sealed class ImportLog(IProgress<EvaluateEvent> progress) : IProgress<string>
    {
        public void Report(string value) => progress.Report(new EvaluateEvent("import", 0, 1, value));
    }
}

/// <summary>The scores of one set of embeddings, before they are wrapped in a run's description.</summary>
/// <param name="Retrieval">R@1, R@10 and MRR.</param>
/// <param name="SameSense">ROC-AUC; null when the set has no pairs of both kinds.</param>
/// <param name="Ranks">Each gloss's rank of its first right example.</param>
/// <param name="PairScores">Each pair's cosine.</param>
internal sealed record EvaluationScores(RetrievalFigures Retrieval, MetricEstimate? SameSense, IReadOnlyList<int> Ranks, IReadOnlyList<double> PairScores);

/// <summary>Scores embeddings of an <see cref="EvaluationSet"/>: the step after the forward pass, separate so that hand-made embeddings can be scored.</summary>
internal static class EvaluationScoring
{
    /// <summary>Bootstrap seed offsets: retrieval and pairs draw from different streams of the run's seed.</summary>
    private const ulong RetrievalStream = 0x5245_5452_4945_5645UL, PairStream = 0x5341_4D45_5345_4E53UL;

    /// <summary>Scores the glosses' and the examples' vectors ([glosses·width] and [examples·width], in the set's order).</summary>
    /// <exception cref="ArgumentException">The vector counts do not match the set, or a vector holds a NaN or infinity.</exception>
    public static EvaluationScores Score(EvaluationSet set, ReadOnlySpan<float> glossVectors, ReadOnlySpan<float> exampleVectors, int width, int resamples, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(set);
        if (glossVectors.Length != (long)set.Glosses.Count * width)
            throw new ArgumentException($"{glossVectors.Length} values for {set.Glosses.Count} glosses of width {width}", nameof(glossVectors));
        if (exampleVectors.Length != (long)set.Examples.Count * width)
            throw new ArgumentException($"{exampleVectors.Length} values for {set.Examples.Count} examples of width {width}", nameof(exampleVectors));
        int[] answerOf = set.Examples.Select(e => e.Synset).ToArray();
        int[] ranks = RetrievalEvaluation.Ranks(glossVectors, exampleVectors, width, answerOf);
        RetrievalFigures retrieval = RetrievalEvaluation.Score(ranks, resamples, seed ^ RetrievalStream);

        float[] examples = CosineSimilarity.Normalise(exampleVectors, width);
        double[] pairScores = set.Pairs.Select(p => CosineSimilarity.Of(examples, p.First, examples, p.Second, width)).ToArray();
        bool[] same = set.Pairs.Select(p => p.SameSynset).ToArray();
        MetricEstimate? auc = same.Contains(true) && same.Contains(false)
            ? SameSenseEvaluation.RocAucWithInterval(pairScores, same, resamples, seed ^ PairStream)
            : null;
        return new EvaluationScores(retrieval, auc, ranks, pairScores);
    }
}
