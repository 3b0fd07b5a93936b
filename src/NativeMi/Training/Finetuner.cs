using NativeMi.Compute;
using NativeMi.Evaluation;
using NativeMi.Information;
using NativeMi.Text;
using NativeMi.Measurement;
using NativeMi.Models;
using NativeMi.Pooling;
using NativeMi.Probing;
using NativeMi.Transformer;

namespace NativeMi.Training;

/// <summary>What <see cref="Finetuner.Run"/> trains and how (docs/METHOD.md, "Recoverability fine-tuning").</summary>
internal sealed record FinetuneOptions
{
    /// <summary>Built-in model name or Hugging Face model folder.</summary>
    public required string Model { get; init; }
    /// <summary>One sentence per line; null for the packaged data/wordnet-finetune.txt (the corpus without the evaluation's sentences).</summary>
    public string? Corpus { get; init; }
    /// <summary>Hidden-state entry whose pooled vector the probe reads; null for the last block's output (entry L).</summary>
    public int? Layer { get; init; }
    /// <summary>Sentence pooling; null for the family's default (mean for encoders, last for decoders).</summary>
    public PoolingMode? Pool { get; init; }
    /// <summary>Passes over the training split.</summary>
    public int Epochs { get; init; } = 1;
    /// <summary>AdamW learning rate of the model's parameters.</summary>
    public float ModelLearningRate { get; init; } = 2e-5f;
    /// <summary>AdamW learning rate of the probe's parameters.</summary>
    public float ProbeLearningRate { get; init; } = 1e-3f;
    /// <summary>Sentences per step.</summary>
    public int BatchSize { get; init; } = 16;
    /// <summary>Leave the token, position and type embedding tables unchanged.</summary>
    public bool FreezeEmbeddings { get; init; }
    /// <summary>Seed of the split (the same hash split as measure's, so measure's held-out sentences are never trained on), probe and order.</summary>
    public ulong Seed { get; init; }
    /// <summary>Clip the model's gradient to this global L2 norm.</summary>
    public double MaxGradientNorm { get; init; } = 1.0;
    /// <summary>Use at most this many training sentences (the first in corpus order); null for all.</summary>
    public int? MaxTrainSentences { get; init; }
    /// <summary>Score at most this many validation sentences (the first in corpus order) after each epoch; null for all.</summary>
    public int? MaxValidationSentences { get; init; } = 1000;
    /// <summary>Probe classes (the most frequent training tokens, plus "other"), as measure's coarse target.</summary>
    public int? Classes { get; init; } = MeasureOptions.DefaultClasses;
    /// <summary>Hidden width of the fine-tuning probe.</summary>
    public int ProbeHidden { get; init; } = ProbeOptions.DefaultHidden;
    /// <summary>Measure's train fraction (the split must match the measurement that follows).</summary>
    public double TrainFraction { get; init; } = 0.7;
    /// <summary>Measure's validation fraction.</summary>
    public double ValidationFraction { get; init; } = 0.1;
    /// <summary>Truncate sentences to this many tokens (null: the model's context).</summary>
    public int? MaxTokens { get; init; }
    /// <summary>Cache root for built-in models (null: the default).</summary>
    public string? CacheDirectory { get; init; }
    /// <summary>Folder of the resumable checkpoint (null: none); a checkpoint of the same settings found there is resumed.</summary>
    public string? CheckpointFolder { get; init; }
    /// <summary>Steps between checkpoints (one is also written after every epoch).</summary>
    public int CheckpointEvery { get; init; } = 100;
}

/// <summary>One epoch's mean cross-entropies in bits per target token (the fine-tuning probe's, coarse classes).</summary>
/// <param name="Epoch">1-based.</param>
/// <param name="Steps">Optimiser steps taken so far.</param>
/// <param name="TrainCrossEntropyBits">Mean over the epoch's training targets, each scored before its step.</param>
/// <param name="ValidationCrossEntropyBits">Mean over the validation split after the epoch.</param>
internal sealed record FinetuneEpoch(int Epoch, int Steps, double TrainCrossEntropyBits, double ValidationCrossEntropyBits);

/// <summary>What a fine-tuning run did, and the trained parameters.</summary>
internal sealed record FinetuneResult
{
    /// <summary>The model folder trained from.</summary>
    public required string SourceFolder { get; init; }
    /// <summary>Hidden-state entry pooled.</summary>
    public required int Layer { get; init; }
    /// <summary>Pooling used.</summary>
    public required PoolingMode Pool { get; init; }
    /// <summary>Sentences of each split of the corpus (after removing the evaluation's sentences).</summary>
    public required int TrainSentences { get; init; }
    /// <inheritdoc cref="TrainSentences"/>
    public required int ValidationSentences { get; init; }
    /// <inheritdoc cref="TrainSentences"/>
    public required int HeldOutSentences { get; init; }
    /// <summary>Corpus sentences left out because the evaluation (data/wordnet-eval) uses them.</summary>
    public required int ExcludedEvaluationSentences { get; init; }
    /// <summary>Validation cross-entropy before the first step (bits per target).</summary>
    public required double InitialValidationCrossEntropyBits { get; init; }
    /// <summary>Per epoch.</summary>
    public required IReadOnlyList<FinetuneEpoch> Epochs { get; init; }
    /// <summary>Per step: the batch's mean training cross-entropy (bits) and the model's gradient norm before clipping.</summary>
    public required IReadOnlyList<(int Step, double CrossEntropyBits, double GradientNorm)> Steps { get; init; }
    /// <summary>The trained parameters under their checkpoint names, with their shapes.</summary>
    public required IReadOnlyList<(string Name, long[] Shape, float[] Values)> Parameters { get; init; }
}

/// <summary>A progress event of <see cref="Finetuner.Run"/>.</summary>
/// <param name="Phase">"load", "tokenise", "validate", "train".</param>
/// <param name="Completed">Work done in the phase.</param>
/// <param name="Total">Work of the phase.</param>
/// <param name="Message">A line to show, when there is one.</param>
internal sealed record FinetuneEvent(string Phase, long Completed, long Total, string? Message = null);

/// <summary>
/// Recoverability fine-tuning: the model and a positional probe on one layer's pooled sentence vector, trained together to lower
/// the probe's cross-entropy on the sentence's tokens, on measure's training split only.
/// </summary>
internal static class Finetuner
{
    /// <summary>The packaged fine-tuning corpus (the default corpus minus every sentence data/wordnet-eval uses).</summary>
    public static string DefaultCorpusPath => Path.Combine(AppContext.BaseDirectory, "data", "wordnet-finetune.txt");

    private const double Ln2 = 0.69314718055994530942;

    /// <summary>Removes the checkpoint of a run (call once its outputs are in place).</summary>
    public static void RemoveCheckpoint(string folder) => Checkpoint.Remove(folder);

    /// <summary>Everything that decides the trained weights: a checkpoint of other settings is never resumed.</summary>
    private static string Fingerprint(FinetuneOptions o, string folder, string corpusPath, int layer, PoolingMode pool)
    {
        byte[] corpus = System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(corpusPath));
        string model = ModelIdentity(folder);
        return string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"nativemi.finetune-checkpoint/1|{model}|{Convert.ToHexString(corpus)}|{layer}|{pool}|{o.Epochs}|{o.ModelLearningRate:R}|{o.ProbeLearningRate:R}|{o.BatchSize}|" +
            $"{o.FreezeEmbeddings}|{o.Seed}|{o.MaxGradientNorm:R}|{o.MaxTrainSentences}|{o.MaxValidationSentences}|{o.Classes}|{o.ProbeHidden}|{o.TrainFraction:R}|" +
            $"{o.ValidationFraction:R}|{o.MaxTokens}");
    }

    private static string ModelIdentity(string folder)
    {
        using var sha = System.Security.Cryptography.SHA256.Create();
        foreach (string file in Directory.EnumerateFiles(folder).Order(StringComparer.Ordinal))
        {
            var info = new FileInfo(file);
            byte[] line = System.Text.Encoding.UTF8.GetBytes($"{info.Name}:{info.Length}:{info.LastWriteTimeUtc.Ticks}\n");
            sha.TransformBlock(line, 0, line.Length, null, 0);
        }
        sha.TransformFinalBlock([], 0, 0);
        return Convert.ToHexString(sha.Hash!);
    }

    /// <summary>Trains; the caller writes the result (the CLI's finetune command writes a model folder and a report).</summary>
    /// <exception cref="InputException">The corpus is missing or too small, or a setting is out of range.</exception>
    public static FinetuneResult Run(FinetuneOptions options, IComputeBackend backend, IProgress<FinetuneEvent>? progress = null,
        CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(backend);
        if (options.Epochs < 1) throw new InputException($"--epochs must be at least 1, got {options.Epochs}");
        if (options.BatchSize < 1) throw new InputException($"--batch-size must be at least 1, got {options.BatchSize}");
        string corpusPath = Path.GetFullPath(options.Corpus ?? DefaultCorpusPath);
        if (!File.Exists(corpusPath)) throw new InputException($"{corpusPath}: corpus file not found (expected UTF-8 text, one sentence per line)");

        string folder = ModelResolver.Resolve(options.Model, options.CacheDirectory, new Progress<string>(m => progress?.Report(new FinetuneEvent("load", 0, 1, m))));
        progress?.Report(new FinetuneEvent("load", 0, 1, $"loading {folder} for training on {backend.Name}"));
        using TrainableTransformer model = TrainableTransformer.Load(folder, backend, new ModelLoadOptions { WidenSixteenBitWeights = true });
        model.FreezeEmbeddings = options.FreezeEmbeddings;
        int layer = options.Layer ?? model.Config.NumLayers;
        if ((uint)layer >= (uint)model.Config.HiddenStateEntries)
            throw new InputException($"--layer {layer}: the model has hidden-state entries 0..{model.Config.HiddenStateEntries - 1}");
        PoolingMode pool = options.Pool ?? (model.Config.Layout.Attention.Causal ? PoolingMode.Last : PoolingMode.Mean);

        // The evaluation's sentences never train the model, whatever corpus is given.
        string[] lines = CorpusReader.Read(corpusPath).Select(l => l.Text).Distinct(StringComparer.Ordinal).ToArray();
        string[] texts = lines;
        int excluded = 0;
        string evaluationFolder = EvaluationSet.DefaultFolder;
        if (Directory.Exists(evaluationFolder))
        {
            texts = EvaluationSet.Load(evaluationFolder).ExcludeHeldOut(lines).ToArray();
            excluded = lines.Length - texts.Length;
        }
        int maxTokens = Math.Min(options.MaxTokens ?? model.Config.MaxSequenceLength, model.Config.MaxSequenceLength);
        var train = new List<(string Text, int[] Targets)>();
        var validation = new List<(string Text, int[] Targets)>();
        int heldOut = 0;
        for (int i = 0; i < texts.Length; i++)
        {
            cancellation.ThrowIfCancellationRequested();
            Split split = CorpusSampler.SplitOf(options.Seed, texts[i], options.TrainFraction, options.ValidationFraction);
            if (split == Split.HeldOut)
            {
                heldOut++;
                continue;
            }
            EncodedSentence encoded = model.Tokenizer.Encode(texts[i], maxTokens);
            int[] targets = encoded.Ids.Where((_, k) => encoded.IsTarget[k]).ToArray();
            if (targets.Length == 0) continue;
            if (split == Split.Train) train.Add((texts[i], targets));
            else validation.Add((texts[i], targets));
            if (i % 1024 == 0 || i == texts.Length - 1) progress?.Report(new FinetuneEvent("tokenise", i + 1, texts.Length));
        }
        if (options.MaxTrainSentences is int limit && train.Count > limit) train = train.Take(limit).ToList();
        if (options.MaxValidationSentences is int validationLimit && validation.Count > validationLimit) validation = validation.Take(validationLimit).ToList();
        if (train.Count < 2 || validation.Count < 1)
            throw new InputException($"{corpusPath}: corpus too small: {train.Count} training and {validation.Count} validation sentences (need 2 and 1)");

        ClassMap classes = ClassMap.Build(train.Select(s => s.Targets), validation.Select(s => s.Targets), options.Classes, model.Config.VocabSize);
        int maxPosition = Math.Max(train.Max(s => s.Targets.Length), 1);
        var probeOptions = new ProbeOptions { Family = ProbeFamily.Positional, Hidden = options.ProbeHidden, LearningRate = options.ProbeLearningRate, Seed = options.Seed + 1 };
        using var probe = new ProbeNetwork(backend, probeOptions, model.Config.HiddenSize, classes.Count, maxPosition, classes.UnigramLogits())
        {
            // Both paths from the start: the probe is a means here, its own staged schedule is measure's business.
            MlpActive = true,
        };
        var settings = new AdamWSettings(LearningRate: options.ModelLearningRate);
        using DeviceBuffer<float> pooledGradient = backend.Allocate<float>((long)options.BatchSize * model.Config.HiddenSize);

        double ValidationBits()
        {
            double nats = 0;
            long count = 0;
            for (int start = 0; start < validation.Count; start += options.BatchSize)
            {
                cancellation.ThrowIfCancellationRequested();
                var members = validation.Skip(start).Take(options.BatchSize).ToArray();
                using TrainingPass pass = model.Forward(model.Encode(members.Select(m => m.Text).ToArray(), maxTokens), layer, pool);
                using PreparedBatch batch = BatchSource.OnDevice(backend, pass.Pooled, members.Select(m => m.Targets).ToArray(), classes, maxPosition);
                var (loss, _) = probe.Score(batch);
                foreach (float v in loss) nats += v;
                count += loss.Length;
                progress?.Report(new FinetuneEvent("validate", Math.Min(start + options.BatchSize, validation.Count), validation.Count));
            }
            return nats / count / Ln2;
        }

        var epochs = new List<FinetuneEpoch>();
        var steps = new List<(int, double, double)>();
        int step = 0, firstEpoch = 1, firstStart = 0;
        double epochNats = 0, initial;
        long epochTargets = 0;
        string fingerprint = Fingerprint(options, folder, corpusPath, layer, pool);
        Checkpoint? resumed = options.CheckpointFolder is null ? null : Checkpoint.Load(options.CheckpointFolder, fingerprint);
        if (resumed is not null)
        {
            model.RestoreState(resumed.Parameters, resumed.FirstMoments, resumed.SecondMoments, resumed.Step);
            probe.RestoreState(resumed.Probe);
            (step, firstEpoch, firstStart, epochNats, epochTargets, initial) =
                (resumed.Step, resumed.Epoch, resumed.NextStart, resumed.EpochNats, resumed.EpochTargets, resumed.InitialValidationBits);
            epochs.AddRange(resumed.Epochs);
            steps.AddRange(resumed.Steps);
            progress?.Report(new FinetuneEvent("train", step, 1, $"resuming from the checkpoint in {options.CheckpointFolder}: step {step}, epoch {firstEpoch}"));
        }
        else initial = ValidationBits();
        progress?.Report(new FinetuneEvent("validate", validation.Count, validation.Count,
            $"{train.Count:N0} training and {validation.Count:N0} validation sentences ({heldOut:N0} held out for measure, {excluded:N0} left out for evaluate); " +
            $"layer {layer}, {pool.ToString().ToLowerInvariant()} pooling; validation cross-entropy before: {initial:F4} bits"));

        void Save(int epoch, int nextStart)
        {
            if (options.CheckpointFolder is null) return;
            var (first, second) = model.DownloadMoments();
            Checkpoint.Save(options.CheckpointFolder, new Checkpoint(fingerprint, step, epoch, nextStart, epochNats, epochTargets, initial, epochs.ToArray(),
                steps.ToArray(), model.DownloadParameters(), first, second, probe.State()));
            progress?.Report(new FinetuneEvent("train", step, 1, $"checkpoint: step {step}"));
        }

        int stepsPerEpoch = (train.Count + options.BatchSize - 1) / options.BatchSize;
        for (int epoch = firstEpoch; epoch <= options.Epochs; epoch++)
        {
            // Each epoch's order comes from its own seed, so a resumed run needs only the epoch number to find its place.
            var order = Enumerable.Range(0, train.Count).ToArray();
            var random = new SplitMix64(options.Seed ^ 0x4654_554EUL ^ ((ulong)epoch << 32));
            for (int i = order.Length - 1; i > 0; i--)
            {
                int j = random.NextInt(i + 1);
                (order[i], order[j]) = (order[j], order[i]);
            }
            if (epoch != firstEpoch || resumed is null) (epochNats, epochTargets) = (0, 0);
            for (int start = epoch == firstEpoch ? firstStart : 0; start < order.Length; start += options.BatchSize)
            {
                cancellation.ThrowIfCancellationRequested();
                var members = order.Skip(start).Take(options.BatchSize).Select(i => train[i]).ToArray();
                using TrainingPass pass = model.Forward(model.Encode(members.Select(m => m.Text).ToArray(), maxTokens), layer, pool);
                using PreparedBatch batch = BatchSource.OnDevice(backend, pass.Pooled, members.Select(m => m.Targets).ToArray(), classes, maxPosition);
                step++;
                double nats = probe.TrainStep(batch, step, pooledGradient);
                model.Backward(pass, pooledGradient);
                double norm = model.ClipGradients(options.MaxGradientNorm);
                model.Step(settings);
                epochNats += nats;
                epochTargets += batch.TargetCount;
                steps.Add((step, nats / batch.TargetCount / Ln2, norm));
                progress?.Report(new FinetuneEvent("train", step, (long)stepsPerEpoch * options.Epochs));
                if (step % options.CheckpointEvery == 0 && start + options.BatchSize < order.Length) Save(epoch, start + options.BatchSize);
            }
            double validationBits = ValidationBits();
            epochs.Add(new FinetuneEpoch(epoch, step, epochNats / epochTargets / Ln2, validationBits));
            progress?.Report(new FinetuneEvent("train", step, (long)stepsPerEpoch * options.Epochs,
                $"epoch {epoch}: training cross-entropy {epochs[^1].TrainCrossEntropyBits:F4} bits, validation {validationBits:F4} bits"));
            Save(epoch + 1, 0);
        }

        IReadOnlyDictionary<string, float[]> parameters = model.DownloadParameters();
        return new FinetuneResult
        {
            SourceFolder = folder,
            Layer = layer,
            Pool = pool,
            TrainSentences = train.Count,
            ValidationSentences = validation.Count,
            HeldOutSentences = heldOut,
            ExcludedEvaluationSentences = excluded,
            InitialValidationCrossEntropyBits = initial,
            Epochs = epochs,
            Steps = steps,
            Parameters = model.ParameterNames.Select(n => (n, model.ParameterShape(n).ToArray(), parameters[n])).ToArray(),
        };
    }
}
