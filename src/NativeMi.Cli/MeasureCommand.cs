using System.CommandLine;
using System.Globalization;
using NativeMi.Information;
using NativeMi.Measurement;
using NativeMi.Probing;
using NativeMi.Reporting;
using Spectre.Console;

namespace NativeMi.Cli;

internal static class MeasureCommand
{
    public static Command Create(Option<bool> verbose)
    {
        var model = new Option<string>("--model") { Description = "Built-in model (minilm, arctic-xs) or Hugging Face model folder", DefaultValueFactory = _ => "minilm" };
        var corpus = new Option<string?>("--corpus") { Description = "UTF-8 text file, one sentence per line (default: the packaged WordNet examples)" };
        var maxSentences = new Option<string>("--max-sentences") { Description = $"Seeded sample size, or 'all' (default {MeasureOptions.DefaultMaxSentences})", DefaultValueFactory = _ => MeasureOptions.DefaultMaxSentences.ToString(CultureInfo.InvariantCulture) };
        var layers = new Option<string>("--layers") { Description = "Layers to probe: 'all' or a list like 0,3,6 (GPT-2: L+1 = final)", DefaultValueFactory = _ => "all" };
        var pool = new Option<string>("--pool") { Description = "Sentence pooling", DefaultValueFactory = _ => "mean" };
        pool.AcceptOnlyFromAmong("mean", "cls", "last", "max");
        var probe = new Option<string>("--probe") { Description = "Probe family", DefaultValueFactory = _ => "positional" };
        probe.AcceptOnlyFromAmong("positional", "linear", "bag");
        var hidden = new Option<int>("--hidden") { Description = "Hidden width of the positional and bag probes", DefaultValueFactory = _ => 512 };
        var epochs = new Option<int>("--epochs") { Description = "Most probe epochs (early stopping on validation CE)", DefaultValueFactory = _ => 20 };
        var patience = new Option<int>("--patience") { Description = "Probe epochs without a better validation CE before stopping", DefaultValueFactory = _ => ProbeOptions.DefaultPatience };
        var learningRate = new Option<float>("--lr") { Description = "AdamW learning rate of the probes", DefaultValueFactory = _ => ProbeOptions.DefaultLearningRate };
        var classes = new Option<string>("--classes") { Description = $"Probe output classes: the N most frequent training tokens (seen at least twice) + other, or 'all' (default {MeasureOptions.DefaultClasses}); they also define the coarse target", DefaultValueFactory = _ => MeasureOptions.DefaultClasses.ToString(CultureInfo.InvariantCulture) };
        var target = new Option<string>("--target") { Description = "Target of the headline table, plot and depth summary: coarse (f(X), the classes) or token (X)", DefaultValueFactory = _ => "coarse" };
        target.AcceptOnlyFromAmong("coarse", "token");
        var probeSeeds = new Option<int>("--probe-seeds") { Description = "Probe seeds per layer: the lowest validation CE is kept, the spread reported", DefaultValueFactory = _ => 1 };
        var batchSize = new Option<int>("--batch-size") { Description = "Sentences per forward batch", DefaultValueFactory = _ => 32 };
        var probeBatch = new Option<int>("--probe-batch-size") { Description = "Sentences per probe mini-batch", DefaultValueFactory = _ => 32 };
        var seed = new Option<ulong>("--seed") { Description = "Seed of sampling, split, probes and bootstrap", DefaultValueFactory = _ => 0UL };
        var maxTokens = new Option<int?>("--max-tokens") { Description = "Truncate sentences to this many tokens (default: the model's context)" };
        var backend = BackendChoice.BackendOption();
        var tf32 = BackendChoice.Tf32Option();
        var output = new Option<string?>("--out") { Description = "Output folder (default results/<model>-<UTC timestamp>/)" };
        var alphabet = new Option<string>("--fano-alphabet") { Description = "|X| of the Fano bound: vocab (conservative) or observed (K+1)", DefaultValueFactory = _ => "vocab" };
        alphabet.AcceptOnlyFromAmong("vocab", "observed");
        var bootstrap = new Option<int>("--bootstrap") { Description = "Bootstrap resamples for the intervals", DefaultValueFactory = _ => 200 };
        var baseline = new Option<string>("--baseline") { Description = "Also measure a baseline", DefaultValueFactory = _ => "none" };
        baseline.AcceptOnlyFromAmong("none", "random-init", "shuffled");
        var cache = new Option<string?>("--cache") { Description = "Cache folder (default $NATIVEMI_CACHE or ~/.cache/nativemi)" };
        var allowNonFinite = ModelOptions.AllowNonFiniteWeights();

        var command = new Command("measure", "Measure token recoverability and the Fano / Barber-Agakov bounds layer by layer")
        {
            model, corpus, maxSentences, layers, pool, probe, hidden, epochs, patience, learningRate, classes, target, probeSeeds, batchSize, probeBatch, seed, maxTokens, backend, tf32, output, alphabet, bootstrap, baseline, cache, allowNonFinite,
        };
        command.SetAction(parse => ErrorBoundary.Run(parse.GetValue(verbose), () =>
        {
            using NativeMi.Compute.IComputeBackend compute = BackendChoice.Choose(parse.GetValue(backend)!, parse.GetValue(tf32));
            var options = new MeasureOptions
            {
                Model = parse.GetValue(model)!,
                Corpus = parse.GetValue(corpus),
                MaxSentences = ParseMaxSentences(parse.GetValue(maxSentences)!),
                Layers = ParseLayers(parse.GetValue(layers)!),
                Pool = Enum.Parse<PoolingMode>(parse.GetValue(pool)!, ignoreCase: true),
                Probe = Enum.Parse<ProbeFamily>(parse.GetValue(probe)!, ignoreCase: true),
                Hidden = parse.GetValue(hidden),
                Epochs = parse.GetValue(epochs),
                Patience = parse.GetValue(patience),
                LearningRate = parse.GetValue(learningRate),
                Classes = ParseClasses(parse.GetValue(classes)!),
                HeadlineTarget = parse.GetValue(target)!,
                ProbeSeeds = parse.GetValue(probeSeeds),
                BatchSize = parse.GetValue(batchSize),
                ProbeBatchSize = parse.GetValue(probeBatch),
                Seed = parse.GetValue(seed),
                MaxTokens = parse.GetValue(maxTokens),
                FanoAlphabet = parse.GetValue(alphabet) == "observed" ? FanoAlphabet.ObservedPlusOne : FanoAlphabet.Vocabulary,
                Bootstrap = parse.GetValue(bootstrap),
                Baseline = parse.GetValue(baseline) switch { "random-init" => BaselineKind.RandomInit, "shuffled" => BaselineKind.Shuffled, _ => BaselineKind.None },
                CacheDirectory = parse.GetValue(cache),
                AllowNonFiniteWeights = parse.GetValue(allowNonFinite),
            };
            string folder = parse.GetValue(output) ?? Path.Combine("results",
                $"{SafeName(options.Model)}-{DateTime.UtcNow.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture)}");
            EnsureWritable(folder);
            Console.Error.WriteLine($"measuring {options.Model} on {options.Corpus ?? "the packaged WordNet examples"}: " +
                $"{(options.MaxSentences is int n ? $"seeded sample of {n} sentences" : "every sentence")}, {options.Probe.ToString().ToLowerInvariant()} probe, seed {options.Seed}");

            MeasurementResult result = RunWithProgress(options, compute);
            // All five outputs are written to temporary files before any is renamed into place, results.json
            // last: a run killed while writing leaves the previous outputs (or none), never a mixture that
            // includes a results.json describing files that are not there.
            IReadOnlyList<string> files;
            using (var outputs = new NativeMi.IO.AtomicFileSet())
            {
                MiPlot.StageMeasurement(outputs, folder, result);
                files = ResultWriter.Stage(result, folder, outputs);
                outputs.Commit();
            }
            PrintTable(result);
            foreach (string warning in result.Warnings) Console.Error.WriteLine($"warning: {warning}");
            Console.WriteLine($"wrote {string.Join(", ", files.Select(Path.GetFileName))}, mi.png, mi.svg to {Path.GetFullPath(folder)}");
            return ExitCodes.Success;
        }));
        return command;
    }

    private static string SafeName(string model) =>
        new(Path.GetFileName(Path.TrimEndingDirectorySeparator(model)).Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_').ToArray());

    private static int? ParseMaxSentences(string text) =>
        text == "all" ? null
        : int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n > 0 ? n
        : throw new InputException($"--max-sentences must be a positive integer or 'all', got '{text}'");

    private static int? ParseClasses(string text) =>
        text == "all" ? null
        : int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n > 0 ? n
        : throw new InputException($"--classes must be a positive integer or 'all', got '{text}'");

    private static IReadOnlyList<int>? ParseLayers(string text)
    {
        if (text == "all") return null;
        var result = new List<int>();
        foreach (string part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out int layer))
                throw new InputException($"--layers must be 'all' or a comma-separated list of layer numbers, got '{text}'");
            result.Add(layer);
        }
        return result.Count > 0 ? result : throw new InputException("--layers names no layer");
    }

    /// <summary>Fails before hours of work when the output folder cannot be written.</summary>
    private static void EnsureWritable(string folder)
    {
        try
        {
            Directory.CreateDirectory(folder);
            // Named like an atomic-write temporary, so that if a kill strands it the next run's sweep removes it.
            string probe = Path.Combine(folder, NativeMi.IO.AtomicFile.TemporaryName("write-check"));
            File.WriteAllText(probe, "");
            File.Delete(probe);
            NativeMi.IO.AtomicFile.RemoveStaleTemporaries(folder);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new NativeMi.IO.OutputWriteException(Path.GetFullPath(folder), $"output folder is not writable: {NativeMi.IO.OutputWriteException.FolderProblem(folder, e)}", e);
        }
    }

    private static MeasurementResult RunWithProgress(MeasureOptions options, NativeMi.Compute.IComputeBackend backend)
    {
        MeasurementResult? result = null;
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        console.Progress().AutoClear(false).HideCompleted(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var tasks = new Dictionary<string, ProgressTask>();
                ProgressTask Task(string key, string description, double max)
                {
                    if (!tasks.TryGetValue(key, out ProgressTask? task)) tasks[key] = task = ctx.AddTask(Markup.Escape(description), maxValue: Math.Max(max, 1));
                    return task;
                }
                // Events arrive on the measuring thread; Spectre's tasks are safe to update from it.
                var progress = new SynchronousProgress<MeasureEvent>(e =>
                {
                    switch (e.Phase)
                    {
                        case "import":
                            console.MarkupLine(Markup.Escape(e.Message ?? ""));
                            break;
                        case "tokenise":
                        case "forward":
                        case "baseline forward":
                            Task(e.Phase, e.Phase, e.Total).Value = e.Completed;
                            break;
                        case "control":
                            var control = Task("control", "control probe (z = 0)", e.Total);
                            control.Value = e.Completed;
                            control.Description = Markup.Escape($"control probe (z = 0): {e.Message}");
                            break;
                        case "probe":
                        case "baseline probe":
                            string layer = e.Message?.Split(':')[0] ?? "";
                            var probe = Task(e.Phase + layer, $"{e.Phase} {layer}", e.Total);
                            probe.Value = e.Completed;
                            probe.Description = Markup.Escape($"{e.Phase} {e.Message}");
                            break;
                        case "probe done":
                        case "baseline probe done":
                            string finished = e.Message?.Split(':')[0] ?? "";
                            var done = Task(e.Phase[..^5] + finished, finished, 1);
                            done.Description = Markup.Escape($"{e.Phase[..^5]} {e.Message}");
                            done.Value = done.MaxValue;
                            break;
                    }
                });
                result = MeasurementRunner.Run(options, progress, backend);
            });
        return result!;
    }

    private static void PrintTable(MeasurementResult r)
    {
        var console = AnsiConsole.Console;
        // Redirected output has no terminal width; give the table room instead of wrapping numbers.
        if (Console.IsOutputRedirected) console.Profile.Width = Math.Max(console.Profile.Width, 200);
        MeasureTable.Print(r, console);
    }
}

/// <summary>IProgress that calls back on the reporting thread (Progress&lt;T&gt; would post to the thread pool).</summary>
internal sealed class SynchronousProgress<T>(Action<T> handler) : IProgress<T>
{
    public void Report(T value) => handler(value);
}
