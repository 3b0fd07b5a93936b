using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using NativeMi.IO;
using NativeMi.Pooling;
using NativeMi.Training;

namespace NativeMi.Cli;

/// <summary>`nativemi finetune`: train a model's own weights, with a probe, to keep more of the sentence in one layer's vector.</summary>
internal static class FinetuneCommand
{
    public static Command Create(Option<bool> verbose)
    {
        var model = new Option<string>("--model") { Description = "Built-in model (minilm, arctic-xs) or Hugging Face model folder", DefaultValueFactory = _ => "minilm" };
        var corpus = new Option<string?>("--corpus") { Description = "UTF-8 text, one sentence per line (default: the packaged data/wordnet-finetune.txt); sentences data/wordnet-eval uses are always left out" };
        var output = new Option<string>("--out") { Description = "New folder for the fine-tuned model (config, safetensors, tokenizer files) and its report", Required = true };
        var layer = new Option<int?>("--layer") { Description = "Hidden-state entry whose pooled vector the probe reads (default: the last block's output)" };
        var pool = new Option<string>("--pool") { Description = "Sentence pooling: auto (mean for encoders, last for decoders), mean, cls, last or max", DefaultValueFactory = _ => "auto" };
        pool.AcceptOnlyFromAmong("auto", "mean", "cls", "last", "max");
        var epochs = new Option<int>("--epochs") { Description = "Passes over the training split", DefaultValueFactory = _ => 1 };
        var learningRate = new Option<float>("--lr") { Description = "AdamW learning rate of the model", DefaultValueFactory = _ => 2e-5f };
        var probeLearningRate = new Option<float>("--probe-lr") { Description = "AdamW learning rate of the probe", DefaultValueFactory = _ => 1e-3f };
        var batchSize = new Option<int>("--batch-size") { Description = "Sentences per step", DefaultValueFactory = _ => 16 };
        var freeze = new Option<bool>("--freeze-embeddings") { Description = "Keep the token, position and type embedding tables unchanged" };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the split (the same as measure's --seed, so its held-out sentences stay unseen), the probe and the order", DefaultValueFactory = _ => 0UL };
        var maxNorm = new Option<double>("--max-grad-norm") { Description = "Clip the model's gradient to this global L2 norm", DefaultValueFactory = _ => 1.0 };
        var maxTrain = new Option<int?>("--max-train-sentences") { Description = "Train on at most this many sentences of the training split (a quick run)" };
        var maxValidation = new Option<int>("--max-validation-sentences") { Description = "Validation sentences scored after each epoch (the first of the split)", DefaultValueFactory = _ => 1000 };
        var maxTokens = new Option<int?>("--max-tokens") { Description = "Truncate sentences to this many tokens (default: the model's context)" };
        var checkpointEvery = new Option<int>("--checkpoint-every") { Description = "Steps between checkpoints (also one after each epoch); a rerun with the same --out and settings resumes from the last one", DefaultValueFactory = _ => 100 };
        var skipReport = new Option<bool>("--skip-report") { Description = "Do not measure and evaluate the model before and after (report/ holds both when this is off)" };
        var reportCorpus = new Option<string?>("--report-corpus") { Description = "Corpus of the before/after measurement (default: measure's, data/wordnet-examples.txt)" };
        var reportSentences = new Option<int>("--report-sentences") { Description = "Sentences sampled by the before/after measurement (measure's --max-sentences)", DefaultValueFactory = _ => NativeMi.Measurement.MeasureOptions.DefaultMaxSentences };
        var reportGlosses = new Option<int?>("--report-glosses") { Description = "Evaluate only the first N glosses before and after (a quick, not comparable, subset)" };
        var cache = new Option<string?>("--cache") { Description = "Cache folder for built-in models (default $NATIVEMI_CACHE or ~/.cache/nativemi)" };
        var backend = BackendChoice.BackendOption();
        var tf32 = BackendChoice.Tf32Option();
        MeasureCommand.AtLeast(epochs, 1);
        MeasureCommand.AtLeast(batchSize, 1);
        MeasureCommand.AtLeast(maxValidation, 1);
        MeasureCommand.AtLeast(checkpointEvery, 1);

        var command = new Command("finetune", "Fine-tune a model for recoverability: the model and a positional probe on one layer's pooled vector, trained together on measure's training split")
        {
            model, corpus, output, layer, pool, epochs, learningRate, probeLearningRate, batchSize, freeze, seed, maxNorm, maxTrain, maxValidation, maxTokens, checkpointEvery, skipReport, reportCorpus, reportSentences, reportGlosses, cache, backend, tf32,
        };
        command.SetAction(parse => ErrorBoundary.Run(parse.GetValue(verbose), () =>
        {
            string folder = Path.GetFullPath(parse.GetValue(output)!);
            if (File.Exists(folder) || (Directory.Exists(folder) && Directory.EnumerateFileSystemEntries(folder).Any()))
                throw new InputException($"--out {folder}: already exists and is not an empty folder; give a new folder (a fine-tuned model is never written over another)");
            var options = new FinetuneOptions
            {
                Model = parse.GetValue(model)!,
                Corpus = parse.GetValue(corpus),
                Layer = parse.GetValue(layer),
                Pool = parse.GetValue(pool) is "auto" or null ? null : Enum.Parse<PoolingMode>(parse.GetValue(pool)!, ignoreCase: true),
                Epochs = parse.GetValue(epochs),
                ModelLearningRate = parse.GetValue(learningRate),
                ProbeLearningRate = parse.GetValue(probeLearningRate),
                BatchSize = parse.GetValue(batchSize),
                FreezeEmbeddings = parse.GetValue(freeze),
                Seed = parse.GetValue(seed),
                MaxGradientNorm = parse.GetValue(maxNorm),
                MaxTrainSentences = parse.GetValue(maxTrain),
                MaxValidationSentences = parse.GetValue(maxValidation),
                MaxTokens = parse.GetValue(maxTokens),
                CacheDirectory = parse.GetValue(cache),
                // Beside the output folder, hidden: the output itself appears only when the run is complete.
                CheckpointFolder = Path.Combine(Path.GetDirectoryName(folder)!, $".{Path.GetFileName(folder)}.checkpoint"),
                CheckpointEvery = parse.GetValue(checkpointEvery),
            };
            Directory.CreateDirectory(Path.GetDirectoryName(folder)!);
            using NativeMi.Compute.IComputeBackend compute = BackendChoice.Choose(parse.GetValue(backend)!, parse.GetValue(tf32));
            var clock = System.Diagnostics.Stopwatch.StartNew();
            FinetuneResult result;
            using (var interrupt = new Interruption())
            {
                var view = new PlainProgress(Console.Error);
                var progress = new SynchronousProgress<FinetuneEvent>(e =>
                {
                    if (e.Message is not null) view.Line(e.Message);
                    else view.Update(e.Phase, e.Phase, e.Completed, e.Total);
                });
                result = Finetuner.Run(options, compute, progress, interrupt.Token);
            }
            Write(folder, result, options, compute.Description, clock.Elapsed.TotalSeconds);
            Finetuner.RemoveCheckpoint(options.CheckpointFolder);
            if (!parse.GetValue(skipReport))
                Report(folder, result, options, compute, parse.GetValue(reportCorpus), parse.GetValue(reportSentences), parse.GetValue(reportGlosses));
            FinetuneEpoch last = result.Epochs[^1];
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"validation cross-entropy of the fine-tuning probe: {result.InitialValidationCrossEntropyBits:F4} -> {last.ValidationCrossEntropyBits:F4} bits per token ({last.Steps} steps)"));
            Console.WriteLine($"wrote the model and finetune.json, finetune-steps.csv, finetune-loss.png/.svg to {folder}");
            Console.WriteLine($"measure it with a fresh probe on the same split: nativemi measure --model {folder} --seed {options.Seed}");
            return ExitCodes.Success;
        }));
        return command;
    }

    // The weights and every other file a model folder needs: what measure, hidden and inspect read.
    private static readonly string[] WeightSuffixes = [".safetensors", ".safetensors.index.json", ".bin", ".onnx", ".h5", ".msgpack", ".pt", ".ckpt"];

    /// <summary>
    /// The whole folder is built beside the target and renamed into place, so a failure leaves no half-written model; the plot
    /// comes last, outside it, so a plotting failure costs only the plot.
    /// </summary>
    private static void Write(string folder, FinetuneResult result, FinetuneOptions options, string backend, double seconds)
    {
        string parent = Path.GetDirectoryName(folder)!;
        Directory.CreateDirectory(parent);
        string staging = Path.Combine(parent, $".{Path.GetFileName(folder)}.partial-{Environment.ProcessId}");
        if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        Directory.CreateDirectory(staging);
        try
        {
            foreach (string file in Directory.EnumerateFiles(result.SourceFolder))
            {
                string name = Path.GetFileName(file);
                if (WeightSuffixes.Any(s => name.EndsWith(s, StringComparison.OrdinalIgnoreCase))) continue;
                File.Copy(file, Path.Combine(staging, name));
            }
            var entries = result.Parameters.Select(p => SafetensorsEntry.FromFloat32(p.Name, p.Shape, p.Values)).ToArray();
            SafetensorsWriter.Write(Path.Combine(staging, "model.safetensors"), entries,
                new Dictionary<string, string> { ["format"] = "pt", ["nativemi"] = "finetune" });
            File.WriteAllText(Path.Combine(staging, "finetune.json"), ReportText(result, options, backend, seconds));
            var csv = new StringBuilder("step,train_cross_entropy_bits,gradient_norm\n");
            foreach (var (step, bits, norm) in result.Steps) csv.Append(CultureInfo.InvariantCulture, $"{step},{bits:R},{norm:R}\n");
            File.WriteAllText(Path.Combine(staging, "finetune-steps.csv"), csv.ToString());
            if (Directory.Exists(folder)) Directory.Delete(folder); // empty, checked before training
            Directory.Move(staging, folder);
        }
        catch
        {
            try { Directory.Delete(staging, recursive: true); } catch (IOException) { }
            throw;
        }
        try
        {
            Plot(folder, result);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Console.Error.WriteLine($"warning: the loss plot was not written ({e.Message}); the model and the report are in {folder}");
        }
    }

    /// <summary>finetune.json, schema "nativemi.finetune/1".</summary>
    internal static string ReportText(FinetuneResult r, FinetuneOptions o, string backend, double seconds) => JsonSerializer.Serialize(new FinetuneJson(
        "nativemi.finetune/1",
        r.SourceFolder,
        backend,
        new FinetuneSettingsJson(Path.GetFullPath(o.Corpus ?? Finetuner.DefaultCorpusPath), r.Layer, r.Pool.ToString().ToLowerInvariant(), o.Epochs,
            o.ModelLearningRate, o.ProbeLearningRate, o.BatchSize, o.FreezeEmbeddings, o.Seed, o.MaxGradientNorm, o.MaxTrainSentences, o.MaxValidationSentences,
            o.Classes, o.ProbeHidden),
        new FinetuneSentencesJson(r.TrainSentences, r.ValidationSentences, r.HeldOutSentences, r.ExcludedEvaluationSentences),
        "Cross-entropies are the fine-tuning probe's own fit (coarse classes, bits per target token); they are not figures of the model. " +
            "The probe is discarded: measure the model with a fresh probe on the same split for before/after figures.",
        r.InitialValidationCrossEntropyBits,
        [.. r.Epochs.Select(e => new FinetuneEpochJson(e.Epoch, e.Steps, e.TrainCrossEntropyBits, e.ValidationCrossEntropyBits))],
        seconds), CliJsonContext.Default.FinetuneJson) + "\n";

    /// <summary>
    /// The before/after report: measure (a fresh probe on measure's split of its corpus, with the fine-tuning's seed, so the
    /// held-out sentences were never trained on) and evaluate (the WordNet synsets left out of fine-tuning), each on the source
    /// model and on the fine-tuned one, written under report/ with a side-by-side summary (report.md).
    /// </summary>
    private static void Report(string folder, FinetuneResult result, FinetuneOptions options, NativeMi.Compute.IComputeBackend backend, string? corpus,
        int sentences, int? glosses)
    {
        var view = new PlainProgress(Console.Error);
        var measureProgress = new SynchronousProgress<NativeMi.Measurement.MeasureEvent>(e =>
        {
            if (e.Message is not null) view.Line(e.Message);
            else view.Update("measure " + e.Phase, "measure " + e.Phase, e.Completed, e.Total);
        });
        var evaluateProgress = new SynchronousProgress<NativeMi.Evaluation.EvaluateEvent>(e =>
        {
            if (e.Message is not null) view.Line(e.Message);
            else view.Update("evaluate " + e.Phase, "evaluate " + e.Phase, e.Completed, e.Total);
        });
        var runs = new Dictionary<string, (NativeMi.Measurement.MeasurementResult Measure, NativeMi.Evaluation.EvaluationResult Evaluate)>();
        foreach (var (label, model) in new[] { ("before", result.SourceFolder), ("after", folder) })
        {
            view.Line($"report: measuring and evaluating the model {label} fine-tuning ({model})");
            var measured = NativeMi.Measurement.MeasurementRunner.Run(new NativeMi.Measurement.MeasureOptions
            {
                Model = model, Corpus = corpus, MaxSentences = sentences, Pool = result.Pool, Seed = options.Seed, CacheDirectory = options.CacheDirectory,
                TrainFraction = options.TrainFraction, ValidationFraction = options.ValidationFraction,
            }, measureProgress, backend);
            var evaluated = NativeMi.Evaluation.EvaluationRunner.Run(new NativeMi.Evaluation.EvaluateOptions
            {
                Model = model, Layer = result.Layer, Pool = result.Pool, Seed = options.Seed, MaxGlosses = glosses, CacheDirectory = options.CacheDirectory,
            }, evaluateProgress, backend);
            runs[label] = (measured, evaluated);
            using var files = new AtomicFileSet();
            string measureFolder = Path.Combine(folder, "report", $"{label}-measure"), evaluateFolder = Path.Combine(folder, "report", $"{label}-evaluate");
            Directory.CreateDirectory(measureFolder);
            Directory.CreateDirectory(evaluateFolder);
            NativeMi.Reporting.ResultWriter.Stage(measured, measureFolder, files);
            NativeMi.Reporting.EvaluationWriter.Stage(evaluated, evaluateFolder, files);
            files.Commit();
            try
            {
                using var plot = new AtomicFileSet();
                MeasureCommand.StagePlot(plot, measureFolder, measured);
                plot.Commit();
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                Console.Error.WriteLine($"warning: the plot of {measureFolder} was not written ({e.Message})");
            }
        }
        string summary = Summary(result, runs["before"].Measure, runs["after"].Measure, runs["before"].Evaluate, runs["after"].Evaluate);
        AtomicFile.WriteAllText(Path.Combine(folder, "report", "report.md"), summary);
        Console.WriteLine(summary);
    }

    private static string Summary(FinetuneResult r, NativeMi.Measurement.MeasurementResult before, NativeMi.Measurement.MeasurementResult after,
        NativeMi.Evaluation.EvaluationResult evaluatedBefore, NativeMi.Evaluation.EvaluationResult evaluatedAfter)
    {
        static string F(double v) => v.ToString("F3", CultureInfo.InvariantCulture);
        static string I(NativeMi.Information.Interval? i) => i is { } x ? $"[{F(x.Lower)}, {F(x.Upper)}]" : "";
        static string M(NativeMi.Evaluation.MetricEstimate m) => m.Lower is double lo && m.Upper is double hi ? $"{F(m.Value)} [{F(lo)}, {F(hi)}]" : F(m.Value);
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"# Recoverability fine-tuning: before and after\n\nFine-tuned layer {r.Layer} ({r.Pool.ToString().ToLowerInvariant()} pooling), ");
        text.Append(CultureInfo.InvariantCulture, $"{r.Epochs[^1].Steps} steps on {r.TrainSentences:N0} training sentences. Each figure below comes from a fresh probe ");
        text.Append("(measure) or from cosine similarity alone (evaluate); the fine-tuning probe is not used. Intervals are 95% bootstrap intervals of each run ");
        text.Append("on its own; they are not intervals of the difference.\n\n");
        text.Append(CultureInfo.InvariantCulture, $"## I_BA ({before.HeadlineTarget} target, bits per token, held-out sentences)\n\n| layer | before | after | after - before |\n|---:|---:|---:|---:|\n");
        foreach (var (b, a) in before.Layers.Zip(after.Layers))
        {
            var fb = b.For(before.HeadlineTarget);
            var fa = a.For(after.HeadlineTarget);
            text.Append(CultureInfo.InvariantCulture, $"| {b.Name}{(b.Layer == r.Layer ? " (tuned)" : "")} | {F(fb.BarberAgakovBits)} {I(fb.BarberAgakovInterval)} | {F(fa.BarberAgakovBits)} {I(fa.BarberAgakovInterval)} | {F(fa.BarberAgakovBits - fb.BarberAgakovBits)} |\n");
        }
        text.Append(CultureInfo.InvariantCulture, $"\nForgetting (peak - last I_BA): before {F(before.Summary.PeakBarberAgakovBits - before.Summary.LastBarberAgakovBits)}, after {F(after.Summary.PeakBarberAgakovBits - after.Summary.LastBarberAgakovBits)} bits.\n\n");
        text.Append(CultureInfo.InvariantCulture, $"## Understanding without task labels (evaluate, layer {r.Layer})\n\n| metric | before | after |\n|---|---:|---:|\n");
        text.Append(CultureInfo.InvariantCulture, $"| gloss -> example R@1 | {M(evaluatedBefore.Retrieval.RecallAt1)} | {M(evaluatedAfter.Retrieval.RecallAt1)} |\n");
        text.Append(CultureInfo.InvariantCulture, $"| gloss -> example R@10 | {M(evaluatedBefore.Retrieval.RecallAt10)} | {M(evaluatedAfter.Retrieval.RecallAt10)} |\n");
        text.Append(CultureInfo.InvariantCulture, $"| gloss -> example MRR | {M(evaluatedBefore.Retrieval.MeanReciprocalRank)} | {M(evaluatedAfter.Retrieval.MeanReciprocalRank)} |\n");
        if (evaluatedBefore.SameSense is { } sb && evaluatedAfter.SameSense is { } sa) text.Append(CultureInfo.InvariantCulture, $"| same sense ROC-AUC | {M(sb)} | {M(sa)} |\n");
        text.Append("\nSide by side: `nativemi compare report/before-measure/results.json report/after-measure/results.json`.\n");
        return text.ToString();
    }

    private static void Plot(string folder, FinetuneResult r)
    {
        var plot = new ScottPlot.Plot();
        double[] steps = r.Steps.Select(s => (double)s.Step).ToArray();
        var train = plot.Add.Scatter(steps, r.Steps.Select(s => s.CrossEntropyBits).ToArray());
        train.LegendText = "training batch";
        train.MarkerSize = 0;
        double[] epochSteps = [0, .. r.Epochs.Select(e => (double)e.Steps)];
        double[] validation = [r.InitialValidationCrossEntropyBits, .. r.Epochs.Select(e => e.ValidationCrossEntropyBits)];
        var line = plot.Add.Scatter(epochSteps, validation);
        line.LegendText = "validation";
        plot.Title("recoverability fine-tuning: the probe's cross-entropy");
        plot.XLabel("step");
        plot.YLabel("bits per target token");
        plot.ShowLegend(ScottPlot.Edge.Bottom);
        using var files = new AtomicFileSet();
        files.AddBytes(Path.Combine(folder, "finetune-loss.png"), plot.GetImageBytes(1000, 600, ScottPlot.ImageFormat.Png));
        files.AddText(Path.Combine(folder, "finetune-loss.svg"), plot.GetSvgXml(1000, 600));
        files.Commit();
    }
}
