using System.Diagnostics;
using System.Security.Cryptography;
using NativeMi.Compute;
using NativeMi.Compute.Cpu;
using NativeMi.Information;
using NativeMi.Models;
using NativeMi.Pooling;
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
    /// <summary>
    /// The packaged default corpus (WordNet's example sentences, data/wordnet-examples.txt beside the program), used when
    /// <see cref="MeasureOptions.Corpus"/> is null.
    /// </summary>
    public static string DefaultCorpusPath => Path.Combine(AppContext.BaseDirectory, "data", "wordnet-examples.txt");

    /// <summary>
    /// Runs a whole measurement on the CPU: resolves the model (importing a built-in one into the cache on first use), samples
    /// and splits the corpus, computes every layer's pooled sentence vectors, trains the probes and returns every figure.
    /// </summary>
    /// <param name="options">What to measure and how; <c>new MeasureOptions()</c> is the default run of <c>nativemi measure</c>.</param>
    /// <param name="progress">
    /// Receives progress events on the calling thread, in order. The first is "sample", once the corpus is read: Completed
    /// is the number of sentences sampled (at most <see cref="MeasureOptions.MaxSentences"/>), Total the corpus's distinct
    /// sentences, Message the corpus.
    /// </param>
    /// <param name="cancellation">Checked between sentences, batches and probe epochs; a cancelled run throws <see cref="OperationCanceledException"/>.</param>
    /// <returns>The figures; <see cref="Reporting.ResultWriter"/> writes them as results.json, layers.csv and positions.csv.</returns>
    /// <remarks>A layer the model lacks is refused right after the model is loaded, before any sentence is tokenised.</remarks>
    /// <exception cref="InputException">A model, corpus or option is unusable; the message says which and why.</exception>
    /// <exception cref="EnvironmentException">The machine lacks something the run needs (memory, a writable cache folder).</exception>
    public static MeasurementResult Run(MeasureOptions options, IProgress<MeasureEvent>? progress = null, CancellationToken cancellation = default) =>
        Run(options, progress, backend: null, cancellation);

    /// <summary>Runs a whole measurement on <paramref name="backend"/> (null: a new CPU backend).</summary>
    /// <remarks>
    /// The first event is "sample", once the corpus is read: Completed is the number of sentences sampled (at most
    /// MaxSentences), Total the corpus's distinct sentences, Message the corpus. A layer the model lacks is refused
    /// right after the model is loaded, before any sentence is tokenised.
    /// </remarks>
    /// <exception cref="InputException">A model, corpus or option is unusable; the message says which and why.</exception>
    internal static MeasurementResult Run(MeasureOptions options, IProgress<MeasureEvent>? progress, IComputeBackend? backend,
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

        // Checked between the steps that run seconds without a check of their own (reading and hashing the corpus, loading
        // the model, hashing its weights), so a cancelled run stops at the next step rather than after all of them.
        cancellation.ThrowIfCancellationRequested();
        string modelDirectory = ModelResolver.Resolve(options.Model, cacheRoot, progress is null ? null : new ImportLog(progress));
        ReturnFreeMemory(); // a built-in model's import (the ONNX file read whole), before the weights are loaded
        cancellation.ThrowIfCancellationRequested();
        using TransformerModel model = TransformerModel.Load(modelDirectory, backend, new ModelLoadOptions { AllowNonFiniteWeights = options.AllowNonFiniteWeights, WidenSixteenBitWeights = options.WidenSixteenBitWeights });
        if (model.NonFiniteWeightCount > 0)
            warnings.Add($"the weights hold {model.NonFiniteWeightCount} NaN or infinite value(s), loaded because non-finite weights were allowed");
        // Checked now, not after the forward pass: a layer the model does not have must not cost the embeddings first.
        bool final = model.Config.HasFinalEntry;
        int[] selected = SelectEntries(options.Layers, model.Config.NumLayers, final);
        cancellation.ThrowIfCancellationRequested();
        string identity = ModelIdentity(modelDirectory);
        cancellation.ThrowIfCancellationRequested();
        // Decoders see a token's context only to its left, so their last token summarises the sentence; encoders pool the mean.
        bool poolByDefault = options.Pool is null;
        PoolingMode pool = options.Pool ?? (model.Config.Layout.Attention.Causal ? PoolingMode.Last : PoolingMode.Mean);
        options = options with { Pool = pool };
        progress?.Report(new MeasureEvent("pooling", 0, 1, $"pooling: {pool.ToString().ToLowerInvariant()}{(poolByDefault ? $" (the default for {(model.Config.Layout.Attention.Causal ? "decoders" : "encoders")})" : "")}"));
        ReturnFreeMemory(); // the loader's temporary arrays
        timings["load"] = Lap(clock);

        // Corpus: tokenise every distinct sentence (the population of the entropies), split the sample.
        int maxTokens = Math.Min(options.MaxTokens ?? model.Config.MaxSequenceLength, model.Config.MaxSequenceLength);
        int[] distinct = CorpusSampler.Sample(texts, null, options.Seed);
        var inSample = new HashSet<int>(sample);
        var population = new List<int[]>(distinct.Length);
        var unfitted = new List<int[]>(distinct.Length); // the population without the probes' training and validation sentences
        var sentences = new List<(string Text, EncodedSentence Encoded, int[] Targets, Split Split)>();
        int truncated = 0, dropped = 0;
        for (int i = 0; i < distinct.Length; i++)
        {
            cancellation.ThrowIfCancellationRequested();
            string text = texts[distinct[i]];
            EncodedSentence encoded = model.Tokenizer.Encode(text, maxTokens);
            int[] textTargets = encoded.Ids.Where((_, k) => encoded.IsTarget[k]).ToArray();
            if (textTargets.Length > 0) population.Add(textTargets);
            Split split = Split.HeldOut;
            if (inSample.Contains(distinct[i]))
            {
                if (encoded.Truncated) truncated++;
                split = CorpusSampler.SplitOf(options.Seed, text, options.TrainFraction, options.ValidationFraction);
                if (textTargets.Length == 0) dropped++;
                else sentences.Add((text, encoded, textTargets, split));
            }
            if (textTargets.Length > 0 && split == Split.HeldOut) unfitted.Add(textTargets);
            if (i % 1024 == 0 || i == distinct.Length - 1) progress?.Report(new MeasureEvent("tokenise", i + 1, distinct.Length));
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

        // Sentence vectors of every layer entry, from the cache where possible; the weights are released on the way.
        int entries = model.Config.HiddenStateEntries;
        CachedVectors pooled = Embed(model, sentences.Select(s => s.Encoded).ToArray(), options, entries,
            new EmbeddingCache(cacheRoot, EmbeddingCache.ComputeKey(identity, sentences.Select(s => EmbeddingCache.SentenceKey(s.Text, s.Encoded)), pool, maxTokens, $"model|{backend.Name}{WeightStorageKey(model)}"), entries, model.Config.HiddenSize),
            "forward", progress, warnings, cancellation);
        timings["forward"] = Lap(clock);

        var splits = new SplitIndex(sentences.Select(s => s.Split).ToArray());
        int[][] targets = sentences.Select(s => s.Targets).ToArray();
        var classes = ClassMap.Build(splits.Train.Select(i => targets[i]), splits.Validation.Select(i => targets[i]), options.Classes, model.Config.VocabSize);
        var targetVariables = TargetVariables.FromPopulation(population, unfitted, classes);
        var figureOptions = new LayerFigureOptions
        {
            Alphabet = options.FanoAlphabet,
            ListDecoding = options.Probe == ProbeFamily.Bag,
            BootstrapResamples = options.Bootstrap,
            BootstrapSeed = options.Seed ^ 0xB007_57A9UL,
        };
        HeldOutResampling? resampling = options.Bootstrap > 0 ? new HeldOutResampling(heldOutCount, options.Bootstrap, figureOptions.BootstrapSeed) : null;
        var probeOptions = new ProbeOptions
        {
            Family = options.Probe,
            Hidden = options.Hidden,
            MaxEpochs = options.Epochs,
            Patience = options.Patience,
            LearningRate = options.LearningRate,
            SecondStageLearningRateScale = options.SecondStageLearningRateScale,
            BatchSentences = options.ProbeBatchSize,
            Seed = options.Seed + 1,
        };
        var context = new ProbeContext(backend, splits, targets, model.Config.HiddenSize, model.Config.NumLayers, classes, probeOptions, targetVariables, figureOptions,
            resampling, options.ProbeSeeds, progress, cancellation);

        ControlResult control = Control(context);
        if (control.WorseThanUnigram)
            warnings.Add($"the control probe's held-out CE ({control.Token.CrossEntropyBits:F3} bits, coarse {control.Coarse.CrossEntropyBits:F3}) is worse than the training unigram's " +
                $"({control.UnigramToken.CrossEntropyBits:F3}, coarse {control.UnigramCoarse.CrossEntropyBits:F3}): gain is measured against a weak control");
        ReturnFreeMemory();
        timings["control"] = Lap(clock);
        var layers = ProbeLayers(context, pooled, [splits.Train, splits.Validation, splits.HeldOut], selected, control, "probe");
        timings["probes"] = Lap(clock);

        BaselineResult? baseline = null;
        if (options.Baseline != BaselineKind.None)
        {
            CachedVectors baselineVectors;
            int[][] rows; // per split, the sentence whose vector each of its rows gets
            if (options.Baseline == BaselineKind.Shuffled)
            {
                baselineVectors = pooled;
                rows = ShuffleWithinSplits(splits, options.Seed);
            }
            else
            {
                string randomDirectory = RandomInitModel.Create(modelDirectory, identity, options.Seed, cacheRoot);
                using TransformerModel randomModel = TransformerModel.Load(randomDirectory, backend, new ModelLoadOptions { WidenSixteenBitWeights = options.WidenSixteenBitWeights });
                baselineVectors = Embed(randomModel, sentences.Select(s => s.Encoded).ToArray(), options, entries,
                    new EmbeddingCache(cacheRoot, EmbeddingCache.ComputeKey(identity, sentences.Select(s => EmbeddingCache.SentenceKey(s.Text, s.Encoded)), pool, maxTokens, $"random-init:{options.Seed}|{backend.Name}{WeightStorageKey(randomModel)}"), entries, model.Config.HiddenSize),
                    "baseline forward", progress, warnings, cancellation);
                rows = [splits.Train, splits.Validation, splits.HeldOut];
            }
            baseline = new BaselineResult(BaselineName(options.Baseline), ProbeLayers(context, baselineVectors, rows, selected, control, "baseline probe"));
            timings["baseline"] = Lap(clock);
        }

        var summaryLayers = layers.Where(l => l.Name != "final").ToArray();
        string[] targetNames = ["coarse", "token"];
        timings["total"] = timings.Values.Sum();
        long trainingTargets = classes.TrainingClassCounts.Sum();

        return new MeasurementResult
        {
            Model = new ModelDescription(options.Model, modelDirectory, model.Config.ModelType, model.Config.Family.ToString().ToLowerInvariant(),
                model.Config.NumLayers, model.Config.HiddenSize, model.Config.VocabSize, model.ParameterCount, identity),
            Corpus = new CorpusDescription(corpusPath, corpusSha, lines.Count, population.Count, population.Sum(p => (long)p.Length), sentences.Count + dropped,
                trainCount, validationCount, heldOutCount, truncated, dropped),
            Options = options with { Corpus = corpusPath },
            Backend = backend.Description,
            TimingsSeconds = timings,
            Warnings = warnings,
            Targets = targetVariables,
            HeadlineTarget = options.HeadlineTarget,
            Classes = new ClassDescription(classes.Count, classes.RequestedClasses, classes.OtherTokenCount, classes.OtherSmoothing,
                1 - (double)classes.TrainingClassCounts[classes.Other] / trainingTargets),
            Control = control,
            Layers = layers,
            Differences = [.. targetNames.Select(t => LayerDifferences.From(layers, t))],
            Summaries = [.. targetNames.Select(t => DepthSummary.From(summaryLayers, t))],
            Baseline = baseline,
        };
    }

    /// <summary>The CLI name of a baseline kind.</summary>
    internal static string BaselineName(BaselineKind kind) => kind switch
    {
        BaselineKind.RandomInit => "random-init",
        BaselineKind.Shuffled => "shuffled",
        _ => "none",
    };

    /// <summary>What every probe of a run shares.</summary>
    private sealed record ProbeContext(IComputeBackend Backend, SplitIndex Splits, int[][] Targets, int Width, int NumLayers, ClassMap Classes, ProbeOptions ProbeOptions,
        TargetVariables TargetVariables, LayerFigureOptions FigureOptions, HeldOutResampling? Resampling, int Seeds, IProgress<MeasureEvent>? Progress,
        CancellationToken Cancellation);

    /// <summary>
    /// A full blocking collection that compacts the large-object heap and gives the freed memory back to the
    /// operating system. Called between phases (after a built-in model's import, after the model load, after the forward
    /// pass, after each layer's probe), where a phase's large temporary arrays have just died: without it the workstation GC keeps them
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
        if (o.Patience < 1) throw new InputException($"--patience must be at least 1, got {o.Patience}");
        if (!(o.LearningRate > 0 && float.IsFinite(o.LearningRate))) throw new InputException($"--lr must be a positive number, got {o.LearningRate}");
        if (!(o.SecondStageLearningRateScale > 0 && float.IsFinite(o.SecondStageLearningRateScale)))
            throw new InputException($"--mlp-lr-scale must be a positive number, got {o.SecondStageLearningRateScale}");
        if (o.Classes is < 1) throw new InputException($"--classes must be at least 1, got {o.Classes}");
        if (o.ProbeSeeds < 1) throw new InputException($"--probe-seeds must be at least 1, got {o.ProbeSeeds}");
        if (o.HeadlineTarget is not ("coarse" or "token")) throw new InputException($"--target must be 'coarse' or 'token', got '{o.HeadlineTarget}'");
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
    internal static string ModelIdentity(string directory)
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

    private static int[] SelectEntries(IReadOnlyList<int>? layers, int numLayers, bool final)
    {
        if (layers is null) return Enumerable.Range(0, numLayers + 1 + (final ? 1 : 0)).ToArray();
        foreach (int l in layers)
            if (l < 0 || l > numLayers + (final ? 1 : 0))
                throw new InputException($"--layers: {l} is outside 0..{numLayers}{(final ? $" ({numLayers + 1} = final)" : "")}");
        return layers.Distinct().Order().ToArray();
    }

    /// <summary>
    /// Part of the embedding-cache key: the storage formats of a model holding 16-bit weights (CUDA's 16-bit GEMMs round the
    /// activations, so its vectors differ from a widened load's); empty for fp32 models, whose keys stay as they were.
    /// </summary>
    private static string WeightStorageKey(TransformerModel model) =>
        model.ResidentWeightElements.Keys.Any(k => k != "F32") ? "|weights:" + string.Join("+", model.ResidentWeightElements.Keys.Order(StringComparer.Ordinal)) : "";

    /// <summary>
    /// Pooled vectors per layer entry [N·d], computed in chunks and cached; cached chunks are reused. The chunks the cache
    /// lacks are computed and written, then the model's weights are released, and the probes read one layer entry's vectors
    /// at a time from the cache (<see cref="CachedVectors"/>): a run never holds the weights and the vectors together, nor
    /// the vectors of every layer at once. <paramref name="model"/> cannot run a forward pass afterwards.
    /// </summary>
    private static CachedVectors Embed(TransformerModel model, EncodedSentence[] encoded, MeasureOptions options, int entries, EmbeddingCache cache,
        string phase, IProgress<MeasureEvent>? progress, List<string> warnings, CancellationToken cancellation)
    {
        int n = encoded.Length, d = model.Config.HiddenSize;
        int chunks = (n + EmbeddingCache.ChunkSize - 1) / EmbeddingCache.ChunkSize;
        byte[][]? vectors = null; // one chunk's vectors per layer entry, reused by every chunk computed
        long done = 0;
        for (int chunk = 0; chunk < chunks; chunk++)
        {
            cancellation.ThrowIfCancellationRequested();
            int start = chunk * EmbeddingCache.ChunkSize, count = Math.Min(EmbeddingCache.ChunkSize, n - start);
            bool cached = cache.IsSound(chunk, count);
            if (!cached)
            {
                if (vectors is null)
                {
                    // The longest batch at once: no batch grows the forward's scratch buffers and leaves the outgrown ones as garbage.
                    model.ReserveForwardRows(Math.Min(options.BatchSize, n) * encoded.Max(e => e.Ids.Length));
                    vectors = new byte[entries][];
                    for (int l = 0; l < entries; l++) vectors[l] = new byte[(long)Math.Min(EmbeddingCache.ChunkSize, n) * d * sizeof(float)];
                }
                int[] order = Enumerable.Range(start, count).OrderBy(i => encoded[i].Ids.Length).ThenBy(i => i).ToArray();
                for (int b = 0; b < order.Length; b += options.BatchSize)
                {
                    cancellation.ThrowIfCancellationRequested();
                    int[] members = order.AsSpan(b, Math.Min(options.BatchSize, order.Length - b)).ToArray();
                    EncodedBatch batch = EncodedBatch.Pad(members.Select(i => encoded[i]).ToArray(), model.Tokenizer.PadId);
                    float[][] pooled = model.ForwardPooled(batch, options.Pool!.Value);
                    for (int l = 0; l < entries; l++)
                    {
                        Span<float> layer = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(vectors[l].AsSpan());
                        for (int k = 0; k < members.Length; k++)
                            pooled[l].AsSpan(k * d, d).CopyTo(layer.Slice((members[k] - start) * d, d));
                    }
                    progress?.Report(new MeasureEvent(phase, done + b + members.Length, n, MeasureEvent.BatchDone));
                }
                cache.Write(chunk, count, vectors);
            }
            done += count;
            progress?.Report(new MeasureEvent(phase, done, n, cached ? "cached" : null));
        }
        model.ReleaseWeights();
        ReturnFreeMemory(); // the weights and the forward pass's buffers
        if (cache.CorruptChunksRebuilt > 0) warnings.Add($"{cache.CorruptChunksRebuilt} corrupt embedding-cache chunk(s) in {cache.Folder} were rebuilt");
        return new CachedVectors(cache, n, d);
    }

    /// <summary>A run's sentence vectors, every chunk of them in <see cref="Cache"/>, read one layer entry at a time.</summary>
    private sealed record CachedVectors(EmbeddingCache Cache, int Sentences, int Width);

    private sealed class SplitIndex(Split[] splits)
    {
        public int[] Train { get; } = Enumerable.Range(0, splits.Length).Where(i => splits[i] == Split.Train).ToArray();
        public int[] Validation { get; } = Enumerable.Range(0, splits.Length).Where(i => splits[i] == Split.Validation).ToArray();
        public int[] HeldOut { get; } = Enumerable.Range(0, splits.Length).Where(i => splits[i] == Split.HeldOut).ToArray();
    }

    /// <summary>
    /// The probe datasets of one layer entry, one per split, read from the cache straight into place: row i of split k's
    /// dataset gets the vector of sentence <paramref name="rows"/>[k][i] and the targets of sentence
    /// <paramref name="members"/>[k][i] (the two differ only for the shuffled baseline).
    /// </summary>
    private static ProbeDataset[] Datasets(CachedVectors vectors, int layer, int[][] members, int[][] rows, int[][] targets)
    {
        int d = vectors.Width;
        var splitOf = new int[vectors.Sentences];
        var rowOf = new int[vectors.Sentences];
        Array.Fill(splitOf, -1);
        for (int k = 0; k < rows.Length; k++)
            for (int i = 0; i < rows[k].Length; i++)
                (splitOf[rows[k][i]], rowOf[rows[k][i]]) = (k, i);
        float[][] data = [.. members.Select(m => new float[(long)m.Length * d])];
        vectors.Cache.ReadLayer(layer, vectors.Sentences, (first, chunk) =>
        {
            for (int s = 0; s < chunk.Length / d; s++)
            {
                int sentence = first + s;
                if (splitOf[sentence] >= 0) chunk.Slice(s * d, d).CopyTo(data[splitOf[sentence]].AsSpan(rowOf[sentence] * d, d));
            }
        });
        return [.. members.Select((m, k) => new ProbeDataset(d, data[k], m.Select(sentence => targets[sentence]).ToArray()))];
    }

    /// <summary>The control probe sees zeros instead of z, so it is the same for every layer: trained once.</summary>
    private static ControlResult Control(ProbeContext c)
    {
        ProbeDataset Zeros(int[] members) => new(c.Width, new float[(long)members.Length * c.Width], members.Select(m => c.Targets[m]).ToArray());
        return ProbeMeasurement.TrainControl(c.Backend, Zeros(c.Splits.Train), Zeros(c.Splits.Validation), Zeros(c.Splits.HeldOut), c.Classes, c.ProbeOptions,
            c.TargetVariables, c.FigureOptions, c.Resampling,
            new SynchronousProgress<ProbeEpoch>(e =>
            {
                c.Progress?.Report(new MeasureEvent("control", e.Epoch, e.MaxEpochs, $"val CE {e.ValidationCrossEntropyBits:F3} bits (coarse target)"));
            }), c.Cancellation);
    }

    private static List<LayerResult> ProbeLayers(ProbeContext c, CachedVectors vectors, int[][] rows, int[] selected, ControlResult control, string phase)
    {
        int numLayers = c.NumLayers;
        var results = new List<LayerResult>();
        foreach (int layer in selected)
        {
            c.Cancellation.ThrowIfCancellationRequested();
            string name = layer <= numLayers ? layer.ToString(System.Globalization.CultureInfo.InvariantCulture) : "final";
            ProbeDataset[] data = Datasets(vectors, layer, [c.Splits.Train, c.Splits.Validation, c.Splits.HeldOut], rows, c.Targets);
            LayerResult result = ProbeMeasurement.MeasureLayer(c.Backend, data[0], data[1], data[2], c.Classes, c.ProbeOptions,
                c.TargetVariables, c.FigureOptions, control, c.Seeds, c.Resampling,
                new SynchronousProgress<ProbeEpoch>(e =>
                {
                    c.Progress?.Report(new MeasureEvent(phase, e.Epoch, e.MaxEpochs, $"layer {name}: val CE {e.ValidationCrossEntropyBits:F3} bits (coarse target)"));
                }),
                c.Cancellation) with { Layer = layer, Name = name, Depth = Math.Min(layer, numLayers) / (double)numLayers };
            results.Add(result);
            ReturnFreeMemory(); // the probe's parameters, optimiser state, snapshots and dataset copies
            progress(c, phase, results.Count, selected.Length, name, result);
        }
        return results;

        static void progress(ProbeContext c, string phase, int done, int total, string name, LayerResult result) =>
            c.Progress?.Report(new MeasureEvent(phase + " done", done, total,
                $"layer {name}: acc {result.Coarse.Accuracy:F3}, I_BA {result.Coarse.BarberAgakovBits:F3} bits (coarse), {result.Token.BarberAgakovBits:F3} (token)"));
    }

    /// <summary>
    /// Calls back on the training thread. Progress&lt;T&gt; would post each epoch to the thread pool, so events
    /// could arrive after the layer's "done" event, and a test pause point would stop a pool thread, not the run.
    /// </summary>
    private sealed class SynchronousProgress<T>(Action<T> handler) : IProgress<T>
    {
        public void Report(T value) => handler(value);
    }

    /// <summary>
    /// The shuffled baseline: each split's vectors permuted among that split's sentences (seeded, the same permutation for
    /// every layer entry). Per split, the sentence whose vector each row gets, for <see cref="Datasets"/>.
    /// </summary>
    private static int[][] ShuffleWithinSplits(SplitIndex splits, ulong seed)
    {
        var random = new SplitMix64(seed ^ 0x5348_5546UL);
        var rows = new List<int[]>(3);
        foreach (int[] members in new[] { splits.Train, splits.Validation, splits.HeldOut })
        {
            int[] permuted = (int[])members.Clone();
            for (int i = permuted.Length - 1; i > 0; i--)
            {
                int j = random.NextInt(i + 1);
                (permuted[i], permuted[j]) = (permuted[j], permuted[i]);
            }
            rows.Add(permuted);
        }
        return [.. rows];
    }
}
