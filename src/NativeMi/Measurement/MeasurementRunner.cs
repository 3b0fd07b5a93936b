using System.Diagnostics;
using System.Security.Cryptography;
using NativeMi.Compute;
using NativeMi.Compute.Cpu;
using NativeMi.Information;
using NativeMi.Models;
using NativeMi.Probing;
using NativeMi.Text;
using NativeMi.Transformer;

namespace NativeMi.Measurement;

/// <summary>
/// The library entry point of a measurement: model + corpus in, per-layer information figures out, exactly
/// as METHOD.md defines them. Progress is reported as events; nothing is printed.
/// </summary>
public static class MeasurementRunner
{
    /// <summary>Where the packaged default corpus is looked for (beside the program).</summary>
    public static string DefaultCorpusPath => Path.Combine(AppContext.BaseDirectory, "data", "wordnet-examples.txt");

    /// <summary>Runs a whole measurement.</summary>
    /// <remarks>
    /// The first event is "sample", once the corpus is read: Completed is the number of sentences sampled (at most
    /// MaxSentences), Total the corpus's distinct sentences, Message the corpus. A layer the model lacks is refused
    /// right after the model is loaded, before any sentence is tokenised.
    /// </remarks>
    /// <exception cref="InputException">A model, corpus or option is unusable; the message says which and why.</exception>
    public static MeasurementResult Run(MeasureOptions options, IProgress<MeasureEvent>? progress = null, IComputeBackend? backend = null,
        CancellationToken cancellation = default)
    {
        Validate(options);
        var clock = Stopwatch.StartNew();
        var timings = new Dictionary<string, double>();
        var warnings = new List<string>();
        backend ??= new CpuBackend();
        string cacheRoot = options.CacheDirectory is { } explicitCache ? Path.GetFullPath(explicitCache) : BuiltinModels.CacheRoot();

        // The corpus is read before the model is loaded: a bad corpus fails before a built-in model's import, and the
        // sample's real size (the corpus may hold fewer sentences than asked for) is known for the caller to show.
        string corpusPath = Path.GetFullPath(options.Corpus ?? DefaultCorpusPath);
        IReadOnlyList<CorpusLine> lines = CorpusReader.Read(corpusPath);
        string corpusSha = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(corpusPath)));
        string[] texts = lines.Select(l => l.Text).ToArray();
        int[] sample = CorpusSampler.Sample(texts, options.MaxSentences, options.Seed);
        int distinctSentences = texts.Distinct(StringComparer.Ordinal).Count();
        progress?.Report(new MeasureEvent("sample", sample.Length, distinctSentences, options.Corpus is null ? "the packaged WordNet examples" : corpusPath));

        string modelDirectory = ModelResolver.Resolve(options.Model, cacheRoot, progress is null ? null : new ImportLog(progress));
        using TransformerModel model = TransformerModel.Load(modelDirectory, backend, new ModelLoadOptions { AllowNonFiniteWeights = options.AllowNonFiniteWeights });
        if (model.NonFiniteWeightCount > 0)
            warnings.Add($"the weights hold {model.NonFiniteWeightCount} NaN or infinite value(s), loaded because non-finite weights were allowed");
        // Checked now, not after the forward pass: a layer the model does not have must not cost the embeddings first.
        bool gpt2 = model.Config.Family == ArchitectureFamily.Gpt2;
        int[] selected = SelectEntries(options.Layers, model.Config.NumLayers, gpt2);
        string identity = ModelIdentity(modelDirectory);
        ReturnFreeMemory(); // the import's and the loader's temporary arrays
        timings["load"] = Lap(clock);

        // Corpus: tokenise, split.
        int maxTokens = Math.Min(options.MaxTokens ?? model.Config.MaxSequenceLength, model.Config.MaxSequenceLength);
        var sentences = new List<(string Text, EncodedSentence Encoded, int[] Targets, Split Split)>();
        int truncated = 0, dropped = 0;
        for (int i = 0; i < sample.Length; i++)
        {
            cancellation.ThrowIfCancellationRequested();
            string text = texts[sample[i]];
            EncodedSentence encoded = model.Tokenizer.Encode(text, maxTokens);
            if (encoded.Truncated) truncated++;
            int[] textTargets = encoded.Ids.Where((_, k) => encoded.IsTarget[k]).ToArray();
            if (textTargets.Length == 0) { dropped++; continue; }
            sentences.Add((text, encoded, textTargets, CorpusSampler.SplitOf(options.Seed, text, options.TrainFraction, options.ValidationFraction)));
            if (i % 256 == 0 || i == sample.Length - 1) progress?.Report(new MeasureEvent("tokenise", i + 1, sample.Length));
        }
        if (truncated > 0) warnings.Add($"{truncated} sentence(s) longer than {maxTokens} tokens were truncated ({corpusPath})");
        if (dropped > 0) warnings.Add($"{dropped} sentence(s) had no text token after tokenisation and were skipped");
        int trainCount = sentences.Count(s => s.Split == Split.Train), validationCount = sentences.Count(s => s.Split == Split.Validation);
        int heldOutCount = sentences.Count - trainCount - validationCount;
        if (trainCount < 2 || validationCount < 1 || heldOutCount < 2)
            throw new InputException($"{corpusPath}: corpus too small for the split: {trainCount} train, {validationCount} validation, {heldOutCount} held-out sentences " +
                $"from {sentences.Count} usable; need at least 2 / 1 / 2 " +
                // A larger --max-sentences only helps when the sample left part of the corpus out.
                (sample.Length < distinctSentences ? $"(raise --max-sentences: the corpus has {distinctSentences} distinct sentences, {sample.Length} were sampled)" : "(use a larger corpus)"));
        if (heldOutCount < 100) warnings.Add($"only {heldOutCount} held-out sentences: intervals will be wide");
        timings["tokenise"] = Lap(clock);

        // Sentence vectors of every layer entry, from the cache where possible.
        int entries = model.LayerCount + (gpt2 ? 1 : 0);
        float[][] pooled = Embed(model, sentences.Select(s => s.Encoded).ToArray(), options, entries,
            new EmbeddingCache(cacheRoot, EmbeddingCache.ComputeKey(identity, sentences.Select(s => s.Text), options.Pool, maxTokens, $"model|{backend.Name}"), entries, model.Config.HiddenSize),
            "forward", progress, warnings, cancellation);
        model.ReleaseWeights();
        ReturnFreeMemory(); // the weights and the forward pass's buffers
        timings["forward"] = Lap(clock);

        var splits = new SplitIndex(sentences.Select(s => s.Split).ToArray());
        int[][] targets = sentences.Select(s => s.Targets).ToArray();
        var figureOptions = new LayerFigureOptions
        {
            VocabularySize = model.Config.VocabSize,
            Alphabet = options.FanoAlphabet,
            BootstrapResamples = options.Bootstrap,
            BootstrapSeed = options.Seed ^ 0xB007_57A9UL,
        };
        var probeOptions = new ProbeOptions
        {
            Family = options.Probe,
            Hidden = options.Hidden,
            MaxEpochs = options.Epochs,
            BatchSentences = options.ProbeBatchSize,
            Seed = options.Seed + 1,
        };

        var control = Control(backend, splits, targets, model.Config.HiddenSize, probeOptions, model.Config.VocabSize, progress, cancellation);
        ReturnFreeMemory();
        timings["control"] = Lap(clock);
        var layers = ProbeLayers(backend, pooled, selected, splits, targets, model, probeOptions, figureOptions, control,
            "probe", progress, cancellation);
        timings["probes"] = Lap(clock);

        IReadOnlyList<LayerResult>? baseline = null;
        if (options.Baseline != BaselineKind.None)
        {
            float[][] baselineVectors;
            if (options.Baseline == BaselineKind.Shuffled)
            {
                baselineVectors = pooled.Select(v => ShuffleWithinSplits(v, splits, model.Config.HiddenSize, options.Seed)).ToArray();
            }
            else
            {
                string randomDirectory = RandomInitModel.Create(modelDirectory, identity, options.Seed, cacheRoot);
                using TransformerModel randomModel = TransformerModel.Load(randomDirectory, backend);
                baselineVectors = Embed(randomModel, sentences.Select(s => s.Encoded).ToArray(), options, entries,
                    new EmbeddingCache(cacheRoot, EmbeddingCache.ComputeKey(identity, sentences.Select(s => s.Text), options.Pool, maxTokens, $"random-init:{options.Seed}|{backend.Name}"), entries, model.Config.HiddenSize),
                    "baseline forward", progress, warnings, cancellation);
            }
            baseline = ProbeLayers(backend, baselineVectors, selected, splits, targets, model, probeOptions, figureOptions, control,
                "baseline probe", progress, cancellation);
            timings["baseline"] = Lap(clock);
        }

        var summaryLayers = layers.Where(l => l.Name != "final").ToArray();
        DepthSummary summary = DepthSummary.FromEntries([.. summaryLayers.Select(l => (l.Layer, l.Depth, l.Figures.FanoBits))]);
        timings["total"] = timings.Values.Sum();

        return new MeasurementResult
        {
            Model = new ModelDescription(options.Model, modelDirectory, model.Config.ModelType, model.Config.Family.ToString().ToLowerInvariant(),
                model.Config.NumLayers, model.Config.HiddenSize, model.Config.VocabSize, model.ParameterCount, identity),
            Corpus = new CorpusDescription(corpusPath, corpusSha, lines.Count, sample.Length, trainCount, validationCount, heldOutCount, truncated, dropped),
            Options = options with { Corpus = corpusPath },
            Backend = backend.Description,
            TimingsSeconds = timings,
            Warnings = warnings,
            Layers = layers,
            Summary = summary,
            BaselineLayers = baseline,
            HeldOutEntropyBits = layers[0].Figures.EntropyBits,
        };
    }

    /// <summary>
    /// A full blocking collection that compacts the large-object heap and gives the freed memory back to the
    /// operating system. Called between phases (after the model load, after the forward pass, after each layer's
    /// probe), where a phase's large temporary arrays have just died: without it the workstation GC keeps them
    /// committed while the next phase allocates its own, and the run's peak resident set is mostly such slack.
    /// Costs a few tens of milliseconds per call.
    /// </summary>
    private static void ReturnFreeMemory()
    {
        System.Runtime.GCSettings.LargeObjectHeapCompactionMode = System.Runtime.GCLargeObjectHeapCompactionMode.CompactOnce;
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
    }

    /// <summary>Forwards the built-in model import's log lines as "import" events, on the caller's thread.</summary>
    private sealed class ImportLog(IProgress<MeasureEvent> progress) : IProgress<string>
    {
        public void Report(string value) => progress.Report(new MeasureEvent("import", 0, 1, value));
    }

    private static void Validate(MeasureOptions o)
    {
        if (o.MaxSentences is < 5) throw new InputException($"--max-sentences must be at least 5, got {o.MaxSentences}");
        if (o.Hidden < 1) throw new InputException($"--hidden must be at least 1, got {o.Hidden}");
        if (o.Epochs < 1) throw new InputException($"--epochs must be at least 1, got {o.Epochs}");
        if (o.BatchSize < 1) throw new InputException($"--batch-size must be at least 1, got {o.BatchSize}");
        if (o.ProbeBatchSize < 1) throw new InputException($"--probe-batch-size must be at least 1, got {o.ProbeBatchSize}");
        if (o.Bootstrap < 0) throw new InputException($"--bootstrap must be 0 or more, got {o.Bootstrap}");
        if (o.MaxTokens is < 3) throw new InputException($"--max-tokens must be at least 3, got {o.MaxTokens}");
        if (!(o.TrainFraction > 0 && o.ValidationFraction > 0 && o.TrainFraction + o.ValidationFraction < 1))
            throw new InputException("train and validation fractions must be positive and leave a held-out share");
    }

    private static double Lap(Stopwatch clock)
    {
        double seconds = clock.Elapsed.TotalSeconds;
        clock.Restart();
        return Math.Round(seconds, 3);
    }

    /// <summary>SHA-256 over config.json and the weight files: what makes two folders the same model.</summary>
    private static string ModelIdentity(string directory)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (string file in Directory.GetFiles(directory).Where(f => f.EndsWith(".safetensors", StringComparison.Ordinal) ||
                     f.EndsWith(".json", StringComparison.Ordinal) || f.EndsWith(".txt", StringComparison.Ordinal)).Order(StringComparer.Ordinal))
        {
            if (Path.GetFileName(file) == "import.json") continue;
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes(Path.GetFileName(file)));
            using var stream = File.OpenRead(file);
            hash.AppendData(SHA256.HashData(stream));
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private static int[] SelectEntries(IReadOnlyList<int>? layers, int numLayers, bool gpt2)
    {
        if (layers is null) return Enumerable.Range(0, numLayers + 1 + (gpt2 ? 1 : 0)).ToArray();
        foreach (int l in layers)
            if (l < 0 || l > numLayers + (gpt2 ? 1 : 0))
                throw new InputException($"--layers: {l} is outside 0..{numLayers}{(gpt2 ? $" ({numLayers + 1} = final)" : "")}");
        return layers.Distinct().Order().ToArray();
    }

    /// <summary>Pooled vectors per layer entry [N·d], computed in chunks and cached; cached chunks are reused.</summary>
    private static float[][] Embed(TransformerModel model, EncodedSentence[] encoded, MeasureOptions options, int entries, EmbeddingCache cache,
        string phase, IProgress<MeasureEvent>? progress, List<string> warnings, CancellationToken cancellation)
    {
        int n = encoded.Length, d = model.Config.HiddenSize;
        var result = new float[entries][];
        for (int l = 0; l < entries; l++) result[l] = new float[(long)n * d];
        int chunks = (n + EmbeddingCache.ChunkSize - 1) / EmbeddingCache.ChunkSize;
        long done = 0;
        for (int chunk = 0; chunk < chunks; chunk++)
        {
            cancellation.ThrowIfCancellationRequested();
            int start = chunk * EmbeddingCache.ChunkSize, count = Math.Min(EmbeddingCache.ChunkSize, n - start);
            float[][]? vectors = cache.TryRead(chunk, count);
            bool cached = vectors is not null;
            if (vectors is null)
            {
                vectors = new float[entries][];
                for (int l = 0; l < entries; l++) vectors[l] = new float[count * d];
                int[] order = Enumerable.Range(start, count).OrderBy(i => encoded[i].Ids.Length).ThenBy(i => i).ToArray();
                for (int b = 0; b < order.Length; b += options.BatchSize)
                {
                    cancellation.ThrowIfCancellationRequested();
                    int[] members = order.AsSpan(b, Math.Min(options.BatchSize, order.Length - b)).ToArray();
                    EncodedBatch batch = EncodedBatch.Pad(members.Select(i => encoded[i]).ToArray(), model.Tokenizer.PadId);
                    float[][] pooled = model.ForwardPooled(batch, options.Pool);
                    for (int l = 0; l < entries; l++)
                        for (int k = 0; k < members.Length; k++)
                            pooled[l].AsSpan(k * d, d).CopyTo(vectors[l].AsSpan((members[k] - start) * d, d));
                    progress?.Report(new MeasureEvent(phase, done + b + members.Length, n));
                    if (TestPausePoint.Armed) TestPausePoint.Reach($"{phase}-batch:{done + b + members.Length}");
                }
                cache.Write(chunk, count, vectors);
            }
            for (int l = 0; l < entries; l++) vectors[l].CopyTo(result[l].AsSpan(start * d));
            done += count;
            progress?.Report(new MeasureEvent(phase, done, n, cached ? "cached" : null));
        }
        if (cache.CorruptChunksRebuilt > 0) warnings.Add($"{cache.CorruptChunksRebuilt} corrupt embedding-cache chunk(s) in {cache.Folder} were rebuilt");
        return result;
    }

    private sealed class SplitIndex(Split[] splits)
    {
        public int[] Train { get; } = Enumerable.Range(0, splits.Length).Where(i => splits[i] == Split.Train).ToArray();
        public int[] Validation { get; } = Enumerable.Range(0, splits.Length).Where(i => splits[i] == Split.Validation).ToArray();
        public int[] HeldOut { get; } = Enumerable.Range(0, splits.Length).Where(i => splits[i] == Split.HeldOut).ToArray();
    }

    private static ProbeDataset Dataset(float[] vectors, int[] members, int[][] targets, int d)
    {
        var v = new float[(long)members.Length * d];
        for (int i = 0; i < members.Length; i++) vectors.AsSpan(members[i] * d, d).CopyTo(v.AsSpan(i * d, d));
        return new ProbeDataset(d, v, members.Select(m => targets[m]).ToArray());
    }

    /// <summary>The control probe sees zeros instead of z, so it is the same for every layer: trained once.</summary>
    private static ControlFigures Control(IComputeBackend backend, SplitIndex splits, int[][] targets, int d, ProbeOptions probeOptions, long vocabulary,
        IProgress<MeasureEvent>? progress, CancellationToken cancellation)
    {
        var zeros = new float[(long)targets.Length * d];
        return ProbeMeasurement.TrainControl(backend, Dataset(zeros, splits.Train, targets, d), Dataset(zeros, splits.Validation, targets, d),
            Dataset(zeros, splits.HeldOut, targets, d), probeOptions, vocabulary,
            new SynchronousProgress<ProbeEpoch>(e =>
            {
                progress?.Report(new MeasureEvent("control", e.Epoch, e.MaxEpochs, $"val CE {e.ValidationCrossEntropyBits:F3} bits"));
                if (TestPausePoint.Armed) TestPausePoint.Reach($"control-epoch:{e.Epoch}");
            }), cancellation);
    }

    private static List<LayerResult> ProbeLayers(IComputeBackend backend, float[][] pooled, int[] selected, SplitIndex splits, int[][] targets,
        TransformerModel model, ProbeOptions probeOptions, LayerFigureOptions figureOptions, ControlFigures control,
        string phase, IProgress<MeasureEvent>? progress, CancellationToken cancellation)
    {
        int d = model.Config.HiddenSize, numLayers = model.Config.NumLayers;
        var results = new List<LayerResult>();
        foreach (int layer in selected)
        {
            cancellation.ThrowIfCancellationRequested();
            string name = layer <= numLayers ? layer.ToString(System.Globalization.CultureInfo.InvariantCulture) : "final";
            LayerResult result = ProbeMeasurement.MeasureLayer(backend, Dataset(pooled[layer], splits.Train, targets, d), Dataset(pooled[layer], splits.Validation, targets, d),
                Dataset(pooled[layer], splits.HeldOut, targets, d), probeOptions, figureOptions, control,
                new SynchronousProgress<ProbeEpoch>(e =>
                {
                    progress?.Report(new MeasureEvent(phase, e.Epoch, e.MaxEpochs, $"layer {name}: val CE {e.ValidationCrossEntropyBits:F3} bits"));
                    if (TestPausePoint.Armed) TestPausePoint.Reach($"{phase}-epoch:{name}:{e.Epoch}");
                }),
                cancellation) with { Layer = layer, Name = name, Depth = Math.Min(layer, numLayers) / (double)numLayers };
            results.Add(result);
            ReturnFreeMemory(); // the probe's parameters, optimiser state, snapshots and dataset copies
            progress?.Report(new MeasureEvent(phase + " done", results.Count, selected.Length, $"layer {name}: acc {result.Figures.Accuracy:F3}, I_F {result.Figures.FanoBits:F3} bits"));
        }
        return results;
    }

    /// <summary>
    /// Calls back on the training thread. Progress&lt;T&gt; would post each epoch to the thread pool, so events
    /// could arrive after the layer's "done" event, and a test pause point would stop a pool thread, not the run.
    /// </summary>
    private sealed class SynchronousProgress<T>(Action<T> handler) : IProgress<T>
    {
        public void Report(T value) => handler(value);
    }

    /// <summary>The shuffled baseline: each split's vectors permuted among that split's sentences (seeded).</summary>
    private static float[] ShuffleWithinSplits(float[] vectors, SplitIndex splits, int d, ulong seed)
    {
        var result = (float[])vectors.Clone();
        var random = new SplitMix64(seed ^ 0x5348_5546UL);
        foreach (int[] members in new[] { splits.Train, splits.Validation, splits.HeldOut })
        {
            int[] permuted = (int[])members.Clone();
            for (int i = permuted.Length - 1; i > 0; i--)
            {
                int j = random.NextInt(i + 1);
                (permuted[i], permuted[j]) = (permuted[j], permuted[i]);
            }
            for (int i = 0; i < members.Length; i++) vectors.AsSpan(permuted[i] * d, d).CopyTo(result.AsSpan(members[i] * d, d));
        }
        return result;
    }
}
