using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using NativeMi.Measurement;
using NativeMi.Probing;
using Spectre.Console;

namespace NativeMi.Cli;

/// <summary>`nativemi tune-probe`: the validation-only grid search behind the probe defaults (docs/METHOD.md).</summary>
internal static class TuneProbeCommand
{
    public static Command Create(Option<bool> verbose)
    {
        var model = new Option<string>("--model") { Description = "Built-in model (minilm, arctic-xs) or Hugging Face model folder", DefaultValueFactory = _ => "minilm" };
        var corpus = new Option<string?>("--corpus") { Description = "UTF-8 text file, one sentence per line (default: the packaged WordNet examples)" };
        var maxSentences = new Option<int>("--max-sentences") { Description = "Seeded sample size", DefaultValueFactory = _ => MeasureOptions.DefaultMaxSentences };
        var layers = new Option<string?>("--layers") { Description = "Layers to tune on, e.g. 0,3,6 (default: the first, middle and last)" };
        var probe = new Option<string>("--probe") { Description = "Probe family", DefaultValueFactory = _ => "positional" };
        probe.AcceptOnlyFromAmong("positional", "linear", "bag");
        var classes = new Option<int>("--classes") { Description = "Probe output classes", DefaultValueFactory = _ => MeasureOptions.DefaultClasses };
        var hidden = new Option<string>("--hidden") { Description = "Hidden widths to try", DefaultValueFactory = _ => "128,256,512" };
        var learningRates = new Option<string>("--lr") { Description = "Learning rates to try", DefaultValueFactory = _ => "1e-3,3e-3" };
        var patience = new Option<string>("--patience") { Description = "Patiences to try", DefaultValueFactory = _ => "2,3" };
        var scales = new Option<string>("--mlp-lr-scale") { Description = "Second-stage learning-rate fractions to try", DefaultValueFactory = _ => "1,0.3,0.1" };
        var tolerance = new Option<double>("--tolerance") { Description = "Bits of mean validation CE within which the cheapest candidate is chosen", DefaultValueFactory = _ => 0.01 };
        var seed = new Option<ulong>("--seed") { Description = "Seed of sampling, split and probes", DefaultValueFactory = _ => 0UL };
        var cache = new Option<string?>("--cache") { Description = "Cache folder (default $NATIVEMI_CACHE or ~/.cache/nativemi)" };
        var output = new Option<string?>("--out") { Description = "Write every candidate's scores and the choice to this JSON file" };
        var backend = BackendChoice.BackendOption();
        var command = new Command("tune-probe",
            "Choose probe width, learning rate, patience and the second-stage rate on validation data only (the held-out split plays no part)")
        {
            model, corpus, maxSentences, layers, probe, classes, hidden, learningRates, patience, scales, tolerance, seed, cache, output, backend,
        };
        command.SetAction(parse => ErrorBoundary.Run(parse.GetValue(verbose), () =>
        {
            static int Integer(string text) => int.Parse(text, NumberStyles.None, CultureInfo.InvariantCulture);
            int[] widths = List(parse.GetValue(hidden)!, "--hidden", Integer);
            float[] rates = List(parse.GetValue(learningRates)!, "--lr", text => float.Parse(text, CultureInfo.InvariantCulture));
            int[] patiences = List(parse.GetValue(patience)!, "--patience", Integer);
            float[] fractions = List(parse.GetValue(scales)!, "--mlp-lr-scale", text => float.Parse(text, CultureInfo.InvariantCulture));
            if (widths.Any(w => w < 1) || patiences.Any(p => p < 1) || rates.Any(r => !(r > 0)) || fractions.Any(f => !(f > 0)))
                throw new UsageException("every grid value must be positive (widths and patiences at least 1)");
            var grid = (from lr in rates from f in fractions from h in widths from p in patiences select new ProbeCandidate(h, lr, p, f)).ToArray();
            using NativeMi.Compute.IComputeBackend compute = BackendChoice.Choose(parse.GetValue(backend)!);
            var options = new MeasureOptions
            {
                Model = parse.GetValue(model)!,
                Corpus = parse.GetValue(corpus),
                MaxSentences = parse.GetValue(maxSentences),
                Probe = Enum.Parse<ProbeFamily>(parse.GetValue(probe)!, ignoreCase: true),
                Classes = parse.GetValue(classes),
                Seed = parse.GetValue(seed),
                CacheDirectory = parse.GetValue(cache),
            };
            options = options with { Layers = parse.GetValue(layers) is string text ? List(text, "--layers", Integer) : DefaultLayers(options) };
            Console.Error.WriteLine($"tuning the {options.Probe.ToString().ToLowerInvariant()} probe on layers {string.Join(",", options.Layers!)} of {options.Model}: " +
                $"{grid.Length} candidates, each scored by its mean validation CE (coarse target)");
            var scores = ProbeSelection.Score(options, grid, compute, new SynchronousProgress<(int Done, int Total, CandidateScore? Last)>(p =>
            {
                if (p.Last is { } last)
                    Console.Error.WriteLine($"tune: {p.Done}/{p.Total}: hidden {last.Candidate.Hidden}, lr {last.Candidate.LearningRate.ToString(CultureInfo.InvariantCulture)}, " +
                        $"patience {last.Candidate.Patience}, mlp-lr-scale {last.Candidate.SecondStageLearningRateScale.ToString(CultureInfo.InvariantCulture)}: " +
                        $"mean validation CE {last.MeanValidationCrossEntropyBits.ToString("F4", CultureInfo.InvariantCulture)} bits ({last.ProbeSeconds.ToString("F0", CultureInfo.InvariantCulture)} s)");
            }));
            double toleranceBits = parse.GetValue(tolerance);
            CandidateScore chosen = ProbeSelection.Choose(scores, toleranceBits);
            Print(scores, chosen, options.Layers!);
            if (parse.GetValue(output) is string file) NativeMi.IO.AtomicFile.WriteAllBytes(file, Json(options, scores, chosen, toleranceBits));
            return ExitCodes.Success;
        }));
        return command;
    }

    private static T[] List<T>(string text, string option, Func<string, T> parse)
    {
        try
        {
            T[] values = [.. text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(parse)];
            return values.Length > 0 ? values : throw new UsageException($"{option} names no value");
        }
        catch (Exception e) when (e is FormatException or OverflowException)
        {
            throw new UsageException($"{option} must be a comma-separated list of numbers, got '{text}'");
        }
    }

    private static int[] DefaultLayers(MeasureOptions options)
    {
        string folder = NativeMi.Models.ModelResolver.Resolve(options.Model, options.CacheDirectory is null ? null : Path.GetFullPath(options.CacheDirectory),
            new Progress<string>(m => Console.Error.WriteLine(m)));
        int layers = NativeMi.Models.TransformerConfig.Load(Path.Combine(folder, "config.json")).NumLayers;
        return [.. new[] { 0, layers / 2, layers }.Distinct()];
    }

    private static readonly string[] CandidateColumns = ["hidden", "lr", "patience", "mlp-lr-scale"];

    private static void Print(IReadOnlyList<CandidateScore> scores, CandidateScore chosen, IReadOnlyList<int> layers)
    {
        static string F(double v, string format = "F4") => v.ToString(format, CultureInfo.InvariantCulture);
        var table = new Table().Border(TableBorder.Rounded).Title("validation CE (bits, coarse target) of every candidate; held-out data unused");
        foreach (string column in CandidateColumns.Concat(layers.Select(l => $"layer {l}")).Concat(["mean", "probes (s)", ""]))
            table.AddColumn(new TableColumn(Markup.Escape(column)).RightAligned());
        foreach (CandidateScore s in scores.OrderBy(s => s.MeanValidationCrossEntropyBits))
            table.AddRow(new[] { s.Candidate.Hidden.ToString(CultureInfo.InvariantCulture), s.Candidate.LearningRate.ToString(CultureInfo.InvariantCulture),
                s.Candidate.Patience.ToString(CultureInfo.InvariantCulture), s.Candidate.SecondStageLearningRateScale.ToString(CultureInfo.InvariantCulture) }
                .Concat(s.ValidationCrossEntropyBits.Select(v => F(v))).Concat([F(s.MeanValidationCrossEntropyBits), F(s.ProbeSeconds, "F0"), ReferenceEquals(s, chosen) ? "chosen" : ""])
                .Select(Markup.Escape).ToArray());
        var console = AnsiConsole.Console;
        if (Console.IsOutputRedirected) console.Profile.Width = Math.Max(console.Profile.Width, 200);
        MeasureTable.WriteTable(console, table);
        Console.WriteLine($"chosen: --hidden {chosen.Candidate.Hidden} --lr {chosen.Candidate.LearningRate.ToString(CultureInfo.InvariantCulture)} " +
            $"--patience {chosen.Candidate.Patience} --mlp-lr-scale {chosen.Candidate.SecondStageLearningRateScale.ToString(CultureInfo.InvariantCulture)} " +
            "(the narrowest, then least patient, then fastest-learning candidate within the tolerance of the best mean validation CE)");
    }

    internal static byte[] Json(MeasureOptions options, IReadOnlyList<CandidateScore> scores, CandidateScore chosen, double tolerance) =>
        JsonSerializer.SerializeToUtf8Bytes(new TuneProbeJson("nativemi.tune-probe/1", options.Model, options.MaxSentences ?? 0, options.Layers!, tolerance,
            [.. scores.Select(s => new TuneProbeCandidateJson(s.Candidate.Hidden, s.Candidate.LearningRate, s.Candidate.Patience,
                s.Candidate.SecondStageLearningRateScale, s.ValidationCrossEntropyBits, s.MeanValidationCrossEntropyBits, s.ProbeSeconds, ReferenceEquals(s, chosen)))]),
            CliJsonContext.Default.TuneProbeJson);
}
