using System.CommandLine;
using System.Globalization;
using NativeMi.Information;
using NativeMi.Measurement;
using NativeMi.Probing;
using NativeMi.Reporting;
using Spectre.Console;
using NativeMi.Pooling;

namespace NativeMi.Cli;

internal static class MeasureCommand
{
    public static Command Create(Option<bool> verbose)
    {
        var model = new Option<string>("--model") { Description = "Built-in model (minilm, arctic-xs) or Hugging Face model folder", DefaultValueFactory = _ => "minilm" };
        var corpus = new Option<string?>("--corpus") { Description = "UTF-8 text file, one sentence per line (default: the packaged WordNet examples)" };
        var maxSentences = new Option<string>("--max-sentences") { Description = $"Seeded sample size, or 'all' (default {MeasureOptions.DefaultMaxSentences})", DefaultValueFactory = _ => MeasureOptions.DefaultMaxSentences.ToString(CultureInfo.InvariantCulture) };
        var layers = new Option<string>("--layers") { Description = "Layers to probe: 'all' or a list like 0,3,6 (GPT-2: L+1 = final)", DefaultValueFactory = _ => "all" };
        var pool = new Option<string>("--pool") { Description = "Sentence pooling: auto (mean for encoders, last for decoders), mean, cls, last or max", DefaultValueFactory = _ => "auto" };
        pool.AcceptOnlyFromAmong("auto", "mean", "cls", "last", "max");
        var probe = new Option<string>("--probe") { Description = "Probe family", DefaultValueFactory = _ => "positional" };
        probe.AcceptOnlyFromAmong("positional", "linear", "bag");
        var hidden = new Option<int>("--hidden") { Description = "Hidden width of the positional and bag probes", DefaultValueFactory = _ => ProbeOptions.DefaultHidden };
        var epochs = new Option<int>("--epochs") { Description = "Most probe epochs (early stopping on validation CE)", DefaultValueFactory = _ => 20 };
        var patience = new Option<int>("--patience") { Description = "Probe epochs without a better validation CE before stopping", DefaultValueFactory = _ => ProbeOptions.DefaultPatience };
        var learningRate = new Option<float>("--lr") { Description = "AdamW learning rate of the probes", DefaultValueFactory = _ => ProbeOptions.DefaultLearningRate };
        var mlpScale = new Option<float>("--mlp-lr-scale") { Description = "Learning-rate fraction of the positional probe's second stage (its MLP on top of the trained linear probe)", DefaultValueFactory = _ => ProbeOptions.DefaultSecondStageLearningRateScale };
        var classes = new Option<string>("--classes") { Description = $"Probe output classes: the N most frequent training tokens (seen at least twice) + other, or 'all' (default {MeasureOptions.DefaultClasses}); they also define the coarse target", DefaultValueFactory = _ => MeasureOptions.DefaultClasses.ToString(CultureInfo.InvariantCulture) };
        var target = new Option<string>("--target") { Description = "Target of the headline table, plot and depth summary: coarse (f(X), the classes) or token (X)", DefaultValueFactory = _ => "coarse" };
        target.AcceptOnlyFromAmong("coarse", "token");
        var probeSeeds = new Option<int?>("--probe-seeds") { Description = "Probe seeds per layer: the lowest validation CE is kept, the spread reported (default 1 on the CPU, 3 on a GPU)" };
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
        var widen = ModelOptions.WidenSixteenBitWeights();

        // Every value is checked by the parser, so a bad one is a usage error (exit 2) before any work starts.
        // MeasurementRunner checks the same limits for library callers; these mirror them.
        maxSentences.Validators.Add(r => Check(r, text => ParseMaxSentences(text)));
        layers.Validators.Add(r => Check(r, text => ParseLayers(text)));
        AtLeast(hidden, 1);
        AtLeast(epochs, 1);
        AtLeast(batchSize, 1);
        AtLeast(probeBatch, 1);
        AtLeast(bootstrap, 0);
        AtLeast(patience, 1);
        probeSeeds.Validators.Add(r =>
        {
            if (Converted(r, out int? value) && value is < 1) r.AddError($"--probe-seeds must be at least 1, got {value}");
        });
        classes.Validators.Add(r => Check(r, text => ParseClasses(text)));
        Positive(learningRate);
        Positive(mlpScale);
        maxTokens.Validators.Add(r =>
        {
            if (Converted<int?>(r, out int? v) && v < 3) r.AddError($"--max-tokens must be at least 3, got {v}");
        });

        var command = new Command("measure", "Measure token recoverability and the Fano / Barber-Agakov bounds layer by layer")
        {
            model, corpus, maxSentences, layers, pool, probe, hidden, epochs, patience, learningRate, mlpScale, classes, target, probeSeeds, batchSize, probeBatch, seed, maxTokens, backend, tf32, output, alphabet, bootstrap, baseline, cache, allowNonFinite, widen,
        };
        command.SetAction(parse => ErrorBoundary.Run(parse.GetValue(verbose), () =>
        {
            var options = new MeasureOptions
            {
                Model = parse.GetValue(model)!,
                Corpus = parse.GetValue(corpus),
                MaxSentences = ParseMaxSentences(parse.GetValue(maxSentences)!),
                Layers = ParseLayers(parse.GetValue(layers)!),
                Pool = parse.GetValue(pool) is "auto" or null ? null : Enum.Parse<PoolingMode>(parse.GetValue(pool)!, ignoreCase: true),
                Probe = Enum.Parse<ProbeFamily>(parse.GetValue(probe)!, ignoreCase: true),
                Hidden = parse.GetValue(hidden),
                Epochs = parse.GetValue(epochs),
                Patience = parse.GetValue(patience),
                LearningRate = parse.GetValue(learningRate),
                SecondStageLearningRateScale = parse.GetValue(mlpScale),
                Classes = ParseClasses(parse.GetValue(classes)!),
                HeadlineTarget = parse.GetValue(target)!,
                // Several seeds cost a multiple of the probes' time: affordable by default on a GPU, not on a CPU.
                ProbeSeeds = parse.GetValue(probeSeeds) ?? 1,
                BatchSize = parse.GetValue(batchSize),
                ProbeBatchSize = parse.GetValue(probeBatch),
                Seed = parse.GetValue(seed),
                MaxTokens = parse.GetValue(maxTokens),
                FanoAlphabet = parse.GetValue(alphabet) == "observed" ? FanoAlphabet.ObservedPlusOne : FanoAlphabet.Vocabulary,
                Bootstrap = parse.GetValue(bootstrap),
                Baseline = parse.GetValue(baseline) switch { "random-init" => BaselineKind.RandomInit, "shuffled" => BaselineKind.Shuffled, _ => BaselineKind.None },
                CacheDirectory = parse.GetValue(cache),
                AllowNonFiniteWeights = parse.GetValue(allowNonFinite),
                WidenSixteenBitWeights = parse.GetValue(widen),
            };
            using NativeMi.Compute.IComputeBackend compute = BackendChoice.Choose(parse.GetValue(backend)!, parse.GetValue(tf32));
            if (parse.GetValue(probeSeeds) is null && compute.Name == "cuda") options = options with { ProbeSeeds = 3 };
            string folder = parse.GetValue(output) ?? Path.Combine("results",
                $"{SafeName(options.Model)}-{DateTime.UtcNow.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture)}");
            bool created = EnsureWritable(folder);
            MeasurementResult result;
            IReadOnlyList<string> files;
            try
            {
                using (var interrupt = new Interruption()) result = RunWithProgress(options, compute, interrupt.Token);
                files = WriteData(folder, result);
            }
            catch
            {
                // A run that fails before writing anything leaves no empty folder behind; a folder that was there
                // before, or that holds anything, is left as it is.
                if (created) RemoveIfEmpty(folder);
                throw;
            }
            string? plotProblem = TryWritePlot(folder, result);
            // The console is made here, not once per process: it binds the current standard output (which tests
            // replace) and, when that is redirected, gets a width that does not wrap the table's rows.
            IAnsiConsole previous = AnsiConsole.Console;
            AnsiConsole.Console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Out) });
            if (Console.IsOutputRedirected) AnsiConsole.Console.Profile.Width = RedirectedWidth;
            try
            {
                PrintTable(result);
            }
            finally
            {
                AnsiConsole.Console = previous;
            }
            foreach (string warning in result.Warnings) Console.Error.WriteLine($"warning: {warning}");
            if (plotProblem is not null) Console.Error.WriteLine($"warning: plot not written: {plotProblem}");
            Console.WriteLine($"wrote {string.Join(", ", files.Select(Path.GetFileName))}{(plotProblem is null ? ", mi.png, mi.svg" : "")} to {Path.GetFullPath(folder)}");
            return ExitCodes.Success;
        }));
        return command;
    }

    /// <summary>Console width for redirected output: a log file has no width, and a wrapped line can split a path.</summary>
    internal const int RedirectedWidth = 4096;

    /// <summary>
    /// Stages the plot into the run's output folder. A seam for tests, which replace it to make the plot fail the way a
    /// binary copied without its native plotting library does; nothing else changes it.
    /// </summary>
    internal static Action<NativeMi.IO.AtomicFileSet, string, MeasurementResult> StagePlot { get; set; } = MiPlot.StageMeasurement;

    /// <summary>
    /// Writes results.json and the CSVs, results.json last, before the plot is even drawn: the plot needs a native
    /// library that a copied binary can lack, and the figures must not depend on it. A previous run's plots in the
    /// folder are removed first, so a plot beside a results.json always belongs to it (or is absent after a failed or
    /// killed plot step).
    /// </summary>
    private static IReadOnlyList<string> WriteData(string folder, MeasurementResult result)
    {
        using var data = new NativeMi.IO.AtomicFileSet();
        IReadOnlyList<string> files = ResultWriter.Stage(result, folder, data);
        foreach (string plot in new[] { "mi.png", "mi.svg" })
        {
            try
            {
                File.Delete(Path.Combine(folder, plot));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new NativeMi.IO.OutputWriteException(Path.GetFullPath(Path.Combine(folder, plot)), $"cannot replace the previous run's plot: {e.Message}", e);
            }
        }
        data.Commit();
        return files;
    }

    /// <summary>Writes mi.png and mi.svg; returns null, or why they could not be written (the run's other outputs stand).</summary>
    private static string? TryWritePlot(string folder, MeasurementResult result)
    {
        try
        {
            using var plot = new NativeMi.IO.AtomicFileSet();
            StagePlot(plot, folder, result);
            plot.Commit();
            return null;
        }
#pragma warning disable CA1031 // any failure of the optional plot (a missing native library surfaces as a TypeInitializationException) is a warning
        catch (Exception e)
#pragma warning restore CA1031
        {
            // The type initializer's own message says only that it threw; the inner exceptions say what was missing.
            var reasons = new List<string>();
            for (Exception? x = e; x is not null; x = x.InnerException) reasons.Add(ErrorBoundary.OneLine(x.Message));
            return string.Join(": ", reasons.Distinct(StringComparer.Ordinal));
        }
    }

    internal static string SafeName(string model) =>
        new(Path.GetFileName(Path.TrimEndingDirectorySeparator(model)).Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_').ToArray());

    /// <summary>Runs <paramref name="parse"/> on the option's text and turns a <see cref="UsageException"/> into a parse error.</summary>
    private static void Check(System.CommandLine.Parsing.OptionResult result, Action<string> parse)
    {
        try
        {
            parse(result.GetValueOrDefault<string>() ?? "");
        }
        catch (UsageException e)
        {
            result.AddError(e.Message);
        }
    }

    /// <summary>The option's value, false when its text does not convert (the parser reports that error itself).</summary>
    internal static bool Converted<T>(System.CommandLine.Parsing.OptionResult result, out T? value)
    {
        try
        {
            value = result.GetValueOrDefault<T>();
            return true;
        }
        catch (InvalidOperationException)
        {
            value = default;
            return false;
        }
    }

    private static void Positive(Option<float> option) => option.Validators.Add(r =>
    {
        if (Converted(r, out float value) && !(value > 0 && float.IsFinite(value)))
            r.AddError($"{option.Name} must be a positive number, got {value.ToString(CultureInfo.InvariantCulture)}");
    });

    internal static void AtLeast(Option<int> option, int minimum) =>
        option.Validators.Add(r =>
        {
            if (Converted(r, out int value) && value < minimum) r.AddError($"{option.Name} must be {(minimum == 0 ? "0 or more" : $"at least {minimum}")}, got {value}");
        });

    private static int? ParseMaxSentences(string text) =>
        text == "all" ? null
        : !int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int n) ? throw new UsageException($"--max-sentences must be a positive integer or 'all', got '{text}'")
        : n < 5 ? throw new UsageException($"--max-sentences must be at least 5 (or 'all'), got {n}")
        : n;

    private static int? ParseClasses(string text) =>
        text == "all" ? null
        : int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n > 0 ? n
        : throw new UsageException($"--classes must be a positive integer or 'all', got '{text}'");

    private static List<int>? ParseLayers(string text)
    {
        if (text == "all") return null;
        var result = new List<int>();
        foreach (string part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out int layer))
                throw new UsageException($"--layers must be 'all' or a comma-separated list of layer numbers, got '{text}'");
            result.Add(layer);
        }
        return result.Count > 0 ? result : throw new UsageException("--layers names no layer");
    }

    /// <summary>
    /// Fails before hours of work when the output folder cannot be written. Returns whether this call created the
    /// folder, so that a run that then fails can take its empty folder away again.
    /// </summary>
    internal static bool EnsureWritable(string folder)
    {
        try
        {
            bool existed = Directory.Exists(folder);
            Directory.CreateDirectory(folder);
            // Named like an atomic-write temporary, so that if a kill strands it the next run's sweep removes it.
            string probe = Path.Combine(folder, NativeMi.IO.AtomicFile.TemporaryName("write-check"));
            File.WriteAllText(probe, "");
            File.Delete(probe);
            NativeMi.IO.AtomicFile.RemoveStaleTemporaries(folder);
            return !existed;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new NativeMi.IO.OutputWriteException(Path.GetFullPath(folder), $"output folder is not writable: {NativeMi.IO.OutputWriteException.FolderProblem(folder, e)}", e);
        }
    }

    /// <summary>Deletes <paramref name="folder"/> when it is empty; a folder with anything in it (or gone) is left alone.</summary>
    internal static void RemoveIfEmpty(string folder)
    {
        try
        {
            // Not recursive: the delete fails on a folder that holds anything, so a concurrent writer's file is never lost.
            if (Directory.Exists(folder) && !Directory.EnumerateFileSystemEntries(folder).Any()) Directory.Delete(folder, recursive: false);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    private static MeasurementResult RunWithProgress(MeasureOptions options, NativeMi.Compute.IComputeBackend backend, CancellationToken cancellation)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        // Spectre's live display needs a terminal; elsewhere (a log file, a pipe) its fallback prints a task only at
        // some milestones, never its end, and wraps lines at 80 columns. Plain lines are printed there instead.
        bool live = console.Profile.Capabilities.Interactive && console.Profile.Capabilities.Ansi && !Console.IsErrorRedirected;
        if (!live) return Run(new PlainProgress(Console.Error), options, backend, cancellation);

        MeasurementResult? result = null;
        console.Progress().AutoClear(false).HideCompleted(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx => result = Run(new LiveProgress(console, ctx), options, backend, cancellation));
        return result!;
    }

    /// <summary>Runs the measurement, showing its events on <paramref name="view"/>.</summary>
    private static MeasurementResult Run(ProgressView view, MeasureOptions options, NativeMi.Compute.IComputeBackend backend, CancellationToken cancellation)
    {
        // Events arrive on the measuring thread.
        var progress = new SynchronousProgress<MeasureEvent>(e =>
        {
            switch (e.Phase)
            {
                case "import":
                case "pooling":
                    view.Line(e.Message ?? "");
                    break;
                case "sample":
                    view.Line($"measuring {options.Model} on {e.Message}: " +
                        (e.Completed < e.Total ? $"seeded sample of {e.Completed} of {e.Total} sentences" : $"all {e.Total} sentences") +
                        $", {options.Probe.ToString().ToLowerInvariant()} probe, seed {options.Seed}");
                    break;
                case "tokenise":
                case "forward":
                case "baseline forward":
                    view.Update(e.Phase, e.Phase, e.Completed, e.Total);
                    // The test-only pause points live here, in the CLI, not in the engine's loops.
                    if (TestPausePoint.Armed && e.Message == MeasureEvent.BatchDone) TestPausePoint.Reach($"{e.Phase}-batch:{e.Completed}");
                    break;
                case "control":
                    view.Update("control", $"control probe (z = 0): {e.Message}", e.Completed, e.Total);
                    if (TestPausePoint.Armed) TestPausePoint.Reach($"control-epoch:{e.Completed}");
                    break;
                case "probe":
                case "baseline probe":
                    string layer = e.Message?.Split(':')[0] ?? "";
                    view.Update(e.Phase + layer, $"{e.Phase} {e.Message}", e.Completed, e.Total);
                    if (TestPausePoint.Armed) TestPausePoint.Reach($"{e.Phase}-epoch:{(layer.StartsWith("layer ", StringComparison.Ordinal) ? layer[6..] : layer)}:{e.Completed}");
                    break;
                case "probe done":
                case "baseline probe done":
                    // Early stopping ends a probe before its last epoch: the layer is done all the same.
                    string finished = e.Message?.Split(':')[0] ?? "";
                    view.Complete(e.Phase[..^5] + finished, $"{e.Phase[..^5]} {e.Message}");
                    break;
            }
        });
        MeasurementResult result = MeasurementRunner.Run(options, progress, backend, cancellation);
        view.CompleteAll();
        return result;
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
