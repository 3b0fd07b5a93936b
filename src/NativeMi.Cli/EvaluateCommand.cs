using System.CommandLine;
using System.Globalization;
using NativeMi.Evaluation;
using NativeMi.Pooling;
using NativeMi.Reporting;
using Spectre.Console;

namespace NativeMi.Cli;

/// <summary>`nativemi evaluate`: gloss-to-example retrieval and same-sense detection on the held-out WordNet synsets.</summary>
internal static class EvaluateCommand
{
    public static Command Create(Option<bool> verbose)
    {
        var model = new Option<string>("--model") { Description = "Built-in model (minilm, arctic-xs) or Hugging Face model folder", DefaultValueFactory = _ => "minilm" };
        var data = new Option<string?>("--data") { Description = "Evaluation folder with glosses.tsv, examples.tsv and pairs.tsv (default: the packaged data/wordnet-eval)" };
        var layer = new Option<string>("--layer") { Description = "Layer whose pooled vectors are scored: a number 0..L (GPT-2 style: L+1 = final) or 'final', the model's output (its last entry)", DefaultValueFactory = _ => "final" };
        var pool = new Option<string>("--pool") { Description = "Sentence pooling: auto (mean for encoders, last for decoders), mean, cls, last or max", DefaultValueFactory = _ => "auto" };
        pool.AcceptOnlyFromAmong("auto", "mean", "cls", "last", "max");
        var batchSize = new Option<int>("--batch-size") { Description = "Texts per forward batch", DefaultValueFactory = _ => 32 };
        var maxTokens = new Option<int?>("--max-tokens") { Description = "Truncate texts to this many tokens (default: the model's context)" };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the bootstrap", DefaultValueFactory = _ => 0UL };
        var bootstrap = new Option<int>("--bootstrap") { Description = "Bootstrap resamples for the 95% intervals", DefaultValueFactory = _ => EvaluateOptions.DefaultBootstrap };
        var maxGlosses = new Option<int?>("--max-glosses") { Description = "Evaluate only the first N glosses, their examples and pairs (a quick run; figures not comparable with the full set's)" };
        var output = new Option<string?>("--out") { Description = "Output folder (default results/evaluate-<model>-<UTC timestamp>/)" };
        var cache = new Option<string?>("--cache") { Description = "Cache folder for built-in models (default $NATIVEMI_CACHE or ~/.cache/nativemi)" };
        var backend = BackendChoice.BackendOption();
        var tf32 = BackendChoice.Tf32Option();
        var allowNonFinite = ModelOptions.AllowNonFiniteWeights();
        var widen = ModelOptions.WidenSixteenBitWeights();

        layer.Validators.Add(r =>
        {
            string text = r.GetValueOrDefault<string>() ?? "";
            if (text != "final" && !int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out _))
                r.AddError($"--layer must be a layer number or 'final', got '{text}'");
        });
        MeasureCommand.AtLeast(batchSize, 1);
        MeasureCommand.AtLeast(bootstrap, 0);
        maxTokens.Validators.Add(r =>
        {
            if (MeasureCommand.Converted(r, out int? v) && v < 3) r.AddError($"--max-tokens must be at least 3, got {v}");
        });
        maxGlosses.Validators.Add(r =>
        {
            if (MeasureCommand.Converted(r, out int? v) && v < 1) r.AddError($"--max-glosses must be at least 1, got {v}");
        });

        var command = new Command("evaluate", "Score pooled sentence embeddings on held-out WordNet synsets: gloss-to-example retrieval (R@1, R@10, MRR) and same-sense detection (ROC-AUC)")
        {
            model, data, layer, pool, batchSize, maxTokens, seed, bootstrap, maxGlosses, output, cache, backend, tf32, allowNonFinite, widen,
        };
        command.SetAction(parse => ErrorBoundary.Run(parse.GetValue(verbose), () =>
        {
            string layerText = parse.GetValue(layer)!;
            var options = new EvaluateOptions
            {
                Model = parse.GetValue(model)!,
                Data = parse.GetValue(data),
                Layer = layerText == "final" ? null : int.Parse(layerText, NumberStyles.None, CultureInfo.InvariantCulture),
                Pool = parse.GetValue(pool) is "auto" or null ? null : Enum.Parse<PoolingMode>(parse.GetValue(pool)!, ignoreCase: true),
                BatchSize = parse.GetValue(batchSize),
                MaxTokens = parse.GetValue(maxTokens),
                Seed = parse.GetValue(seed),
                Bootstrap = parse.GetValue(bootstrap),
                MaxGlosses = parse.GetValue(maxGlosses),
                CacheDirectory = parse.GetValue(cache),
                AllowNonFiniteWeights = parse.GetValue(allowNonFinite),
                WidenSixteenBitWeights = parse.GetValue(widen),
            };
            // The data are checked before the backend starts (a GPU's parity check) and before an output folder is made.
            EvaluationSet.Load(options.Data ?? EvaluationSet.DefaultFolder);
            using NativeMi.Compute.IComputeBackend compute = BackendChoice.Choose(parse.GetValue(backend)!, parse.GetValue(tf32));
            string folder = parse.GetValue(output) ?? Path.Combine("results",
                $"evaluate-{MeasureCommand.SafeName(options.Model)}-{DateTime.UtcNow.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture)}");
            bool created = MeasureCommand.EnsureWritable(folder);
            EvaluationResult result;
            IReadOnlyList<string> files;
            try
            {
                using (var interrupt = new Interruption()) result = RunWithProgress(options, compute, interrupt.Token);
                using var staged = new NativeMi.IO.AtomicFileSet();
                files = EvaluationWriter.Stage(result, folder, staged);
                staged.Commit();
            }
            catch
            {
                if (created) MeasureCommand.RemoveIfEmpty(folder);
                throw;
            }
            IAnsiConsole previous = AnsiConsole.Console;
            AnsiConsole.Console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Out) });
            if (Console.IsOutputRedirected) AnsiConsole.Console.Profile.Width = MeasureCommand.RedirectedWidth;
            try
            {
                MeasureTable.WriteTable(AnsiConsole.Console, Table(result));
            }
            finally
            {
                AnsiConsole.Console = previous;
            }
            foreach (string warning in result.Warnings) Console.Error.WriteLine($"warning: {warning}");
            Console.WriteLine($"wrote {string.Join(", ", files.Select(Path.GetFileName))} to {Path.GetFullPath(folder)} ({result.TimingsSeconds["total"].ToString("F1", CultureInfo.InvariantCulture)} s)");
            return ExitCodes.Success;
        }));
        return command;
    }

    private static string F(double value) => value.ToString("F3", CultureInfo.InvariantCulture);

    private static string Interval(MetricEstimate m) => m.Lower is double lower && m.Upper is double upper ? $"[{F(lower)}, {F(upper)}]" : "-";

    /// <summary>The figures, one row each, with their intervals and what they are counted over.</summary>
    internal static Table Table(EvaluationResult r)
    {
        var table = new Table().Border(TableBorder.Rounded).Title(Markup.Escape(
            $"{r.Model.Name} ({r.Model.Architecture}, {r.Model.Layers} layers), layer {r.Settings.Layer}, {r.Settings.Pool} pooling: held-out WordNet synsets, cosine similarity"));
        table.AddColumn("task");
        table.AddColumn("metric");
        table.AddColumn(new TableColumn("value").RightAligned());
        table.AddColumn(new TableColumn("95% interval").RightAligned());
        table.AddColumn("over");
        // Every cell is escaped: an interval's brackets would otherwise be read as Spectre markup.
        void Row(params string[] cells) => table.AddRow(cells.Select(Markup.Escape).ToArray());
        Row("gloss -> example", "R@1", F(r.Retrieval.RecallAt1.Value), Interval(r.Retrieval.RecallAt1), $"{r.Retrieval.Queries:N0} glosses x {r.Data.Examples:N0} examples");
        Row("", "R@10", F(r.Retrieval.RecallAt10.Value), Interval(r.Retrieval.RecallAt10), "");
        Row("", "MRR", F(r.Retrieval.MeanReciprocalRank.Value), Interval(r.Retrieval.MeanReciprocalRank), "");
        if (r.SameSense is { } auc) Row("same sense", "ROC-AUC", F(auc.Value), Interval(auc), $"{r.Data.Pairs:N0} pairs ({r.Data.SameSynsetPairs:N0} same synset)");
        else Row("same sense", "ROC-AUC", "-", "-", "no pairs of both kinds");
        table.Caption(Markup.Escape(r.Settings.Bootstrap > 0
            ? $"Intervals: percentile bootstrap, {r.Settings.Bootstrap} resamples of the glosses (retrieval) and of the pairs within each label (ROC-AUC), seed {r.Settings.Seed}. Chance: R@1 {ChanceRecallAt1(r).ToString("G2", CultureInfo.InvariantCulture)}, ROC-AUC 0.5."
            : "No bootstrap (--bootstrap 0): no intervals."));
        return table;
    }

    /// <summary>
    /// R@1 of a random ranking: a query with k right answers among C candidates has one on top with probability k / C, and
    /// every candidate answers exactly one query, so the mean over the Q queries is 1 / Q.
    /// </summary>
    internal static double ChanceRecallAt1(EvaluationResult r) => 1.0 / r.Retrieval.Queries;

    private static EvaluationResult RunWithProgress(EvaluateOptions options, NativeMi.Compute.IComputeBackend backend, CancellationToken cancellation)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        // As in measure: Spectre's live display only on a terminal, plain lines elsewhere.
        bool live = console.Profile.Capabilities.Interactive && console.Profile.Capabilities.Ansi && !Console.IsErrorRedirected;
        if (!live) return Run(new PlainProgress(Console.Error), options, backend, cancellation);
        EvaluationResult? result = null;
        console.Progress().AutoClear(false).HideCompleted(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx => result = Run(new LiveProgress(console, ctx), options, backend, cancellation));
        return result!;
    }

    private static EvaluationResult Run(ProgressView view, EvaluateOptions options, NativeMi.Compute.IComputeBackend backend, CancellationToken cancellation)
    {
        var progress = new SynchronousProgress<EvaluateEvent>(e =>
        {
            switch (e.Phase)
            {
                case "import":
                case "data":
                case "pooling":
                    view.Line(e.Message ?? "");
                    break;
                case "tokenise":
                case "forward":
                    view.Update(e.Phase, e.Phase, e.Completed, e.Total);
                    break;
                case "score":
                    if (e.Completed < e.Total) view.Update("score", "score", 0, 1);
                    else view.Complete("score");
                    break;
            }
        });
        EvaluationResult result = EvaluationRunner.Run(options, progress, backend, cancellation);
        view.CompleteAll();
        return result;
    }
}
