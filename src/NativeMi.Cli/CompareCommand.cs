using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Spectre.Console;

namespace NativeMi.Cli;

internal static class CompareCommand
{
    private sealed record Row(string Name, int Layer, double Depth, double Acc, double Fano, double Ba, double BaLower, double BaUpper, double Gain);

    /// <summary>What a run was: the settings a comparison must agree on, and its figures on the compared target.</summary>
    private sealed record Run(string Label, string Model, string Path, string Probe, string Pool, int Sampled, int HeldOut, string CorpusSha, double Entropy,
        string Classes, string FanoAlphabet, IReadOnlyList<Row> Rows, string PeakName, double PeakBa, double Forgetting, Interval? ForgettingInterval);

    private readonly record struct Interval(double Lower, double Upper);

    public static Command Create(Option<bool> verbose)
    {
        var files = new Argument<string[]>("results.json") { Description = "results.json files of nativemi measure runs", Arity = ArgumentArity.OneOrMore };
        var output = new Option<string?>("--out") { Description = "Folder for compare.png / compare.svg (default results/compare-<UTC timestamp>/)" };
        var target = new Option<string>("--target") { Description = "Target compared: coarse (f(X)) or token (X)", DefaultValueFactory = _ => "coarse" };
        target.AcceptOnlyFromAmong("coarse", "token");
        var command = new Command("compare", "Compare several measurement runs side by side on normalised depth") { files, output, target };
        command.SetAction(parse => ErrorBoundary.Run(parse.GetValue(verbose), () =>
        {
            string compared = parse.GetValue(target)!;
            var runs = parse.GetValue(files)!.Select(f => Read(f, compared)).ToList();
            PrintTable(runs, compared);
            foreach (string warning in Differences(runs)) Console.Error.WriteLine($"warning: {warning}");
            string folder = parse.GetValue(output) ?? Path.Combine("results", $"compare-{DateTime.UtcNow.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture)}");
            // One colour per model, so that several runs of one model read as one family of lines.
            var colours = runs.Select(r => r.Model).Distinct(StringComparer.Ordinal).Select((m, i) => (m, i)).ToDictionary(p => p.m, p => p.i, StringComparer.Ordinal);
            var series = new List<MiPlot.Series>();
            var runsOfModel = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (Run run in runs)
            {
                // Runs of one model share its colour and differ in their marker.
                int marker = runsOfModel[run.Model] = runsOfModel.GetValueOrDefault(run.Model, -1) + 1;
                var rows = run.Rows.Where(r => r.Name != "final").ToArray();
                double[] depth = rows.Select(r => r.Depth).ToArray();
                series.Add(new MiPlot.Series($"{run.Label}: I_BA", depth, rows.Select(r => r.Ba).ToArray(), rows.Select(r => r.BaLower).ToArray(),
                    rows.Select(r => r.BaUpper).ToArray(), Colour: colours[run.Model], Marker: marker));
                series.Add(new MiPlot.Series($"{run.Label}: I_F", depth, rows.Select(r => r.Fano).ToArray(), Dashed: true, Colour: colours[run.Model]));
            }
            Directory.CreateDirectory(folder);
            string symbol = compared == "token" ? "X" : "f(X)";
            MiPlot.Write(folder, "compare", $"I_BA (bands: 95% bootstrap) and I_F on {symbol} by normalised depth", "bits per target token (held-out)", series);
            Console.WriteLine($"wrote compare.png, compare.svg to {Path.GetFullPath(folder)}");
            return ExitCodes.Success;
        }));
        return command;
    }

    private static Run Read(string path, string target)
    {
        string full = Path.GetFullPath(path);
        if (!File.Exists(full)) throw new InputException($"{full}: results file not found");
        try
        {
            byte[] bytes = File.ReadAllBytes(full);
            // The schema first: a file of another edition need not have the fields read below.
            string schema = JsonSerializer.Deserialize(bytes, CompareJsonContext.Default.SchemaJson)?.Schema ?? "";
            if (schema == "nativemi.measure/1")
                throw new InputException($"{full}: field 'schema' is \"{schema}\", written by an older nativemi whose figures are not the bounds of docs/METHOD.md's second edition; run measure again");
            if (schema != "nativemi.measure/2")
                throw new InputException($"{full}: field 'schema' is \"{schema}\"; expected \"nativemi.measure/2\" (a results.json written by nativemi measure)");
            ComparedResultsJson results = JsonSerializer.Deserialize(bytes, CompareJsonContext.Default.ComparedResultsJson) ?? throw new JsonException("null");
            static Interval? IntervalOf(double[]? pair) => pair switch
            {
                null => null,
                [double lower, double upper] => new Interval(lower, upper),
                _ => throw new JsonException($"an interval has {pair.Length} numbers; expected [lower, upper]"),
            };
            var rows = results.Layers.Select(l =>
            {
                ComparedFiguresJson f = target == "token" ? l.Token : l.Coarse;
                Interval? ci = IntervalOf(f.BaCi);
                return new Row(l.Name, l.Layer, l.Depth, f.Acc, f.FanoBits, f.BaBits, ci?.Lower ?? f.BaBits, ci?.Upper ?? f.BaBits, f.GainBits);
            }).ToArray();
            ComparedSummaryJson summary = target == "token" ? results.Summary.Token : results.Summary.Coarse;
            string label = $"{results.Model.Name} ({results.ProbeFamily}, seed {results.Settings.Seed})";
            JsonElement classes = results.Settings.Classes;
            return new Run(label, results.Model.Name, full, results.ProbeFamily, results.Settings.Pool, results.Corpus.Sampled, results.Corpus.Sentences.HeldOut,
                results.Corpus.Sha256, (target == "token" ? results.Targets.Token : results.Targets.Coarse).HXBits,
                classes.ValueKind == JsonValueKind.Number ? classes.GetInt32().ToString(CultureInfo.InvariantCulture) : classes.GetString()!,
                results.Settings.FanoAlphabet, rows, summary.PeakName, summary.PeakBaBits, summary.Forgetting.BaBits, IntervalOf(summary.Forgetting.Ci));
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            throw new InputException($"{full}: not a readable nativemi results.json: {e.Message}");
        }
    }

    /// <summary>Every way the runs differ that makes their figures incomparable or only partly comparable.</summary>
    private static IEnumerable<string> Differences(IReadOnlyList<Run> runs)
    {
        IEnumerable<string> Check(string what, Func<Run, string> value)
        {
            var distinct = runs.Select(value).Distinct(StringComparer.Ordinal).ToArray();
            if (distinct.Length > 1)
                yield return $"the runs differ in {what}: {string.Join("; ", runs.Select(r => $"{r.Label} {value(r)}"))}";
        }
        foreach (string w in Check("corpus (sha256)", r => r.CorpusSha[..12])) yield return w;
        foreach (string w in Check("sampled sentences", r => r.Sampled.ToString(CultureInfo.InvariantCulture))) yield return w;
        foreach (string w in Check("H of the target", r => r.Entropy.ToString("F3", CultureInfo.InvariantCulture))) yield return w;
        foreach (string w in Check("probe family (each figure bounds what its family extracts)", r => r.Probe)) yield return w;
        foreach (string w in Check("pooling", r => r.Pool)) yield return w;
        foreach (string w in Check("classes (the coarse target and the token probe differ)", r => r.Classes)) yield return w;
        foreach (string w in Check("Fano alphabet", r => r.FanoAlphabet)) yield return w;
    }

    private static void PrintTable(IReadOnlyList<Run> runs, string target)
    {
        static string F(double v, string format = "F2") => v.ToString(format, CultureInfo.InvariantCulture);
        var setup = new Table().Border(TableBorder.Rounded).Title(Markup.Escape($"the runs ({(target == "token" ? "token target X" : "coarse target f(X)")})"));
        foreach (string column in new[] { "run", "sentences (held-out)", "H (bits)", "probe", "pooling", "classes", "file" }) setup.AddColumn(Markup.Escape(column));
        foreach (Run run in runs)
            setup.AddRow(new[] { run.Label, $"{run.Sampled:N0} ({run.HeldOut:N0})", F(run.Entropy, "F3"), run.Probe, run.Pool, run.Classes, run.Path }.Select(Markup.Escape).ToArray());

        var table = new Table().Border(TableBorder.Rounded).Title("runs side by side (bits per target token, held-out)");
        table.AddColumn("depth");
        foreach (Run run in runs) table.AddColumn(new TableColumn(Markup.Escape($"{run.Label}\nacc / I_F / I_BA [95% CI] / gain")).RightAligned());
        var depths = runs.SelectMany(r => r.Rows.Select(x => (x.Depth, x.Name == "final"))).Distinct().OrderBy(d => d.Item2).ThenBy(d => d.Depth).ToArray();
        foreach (var (depth, final) in depths)
        {
            var cells = new List<string> { final ? "final" : F(depth) };
            foreach (Run run in runs)
            {
                Row? row = run.Rows.FirstOrDefault(r => Math.Abs(r.Depth - depth) < 1e-9 && (r.Name == "final") == final);
                cells.Add(row is null ? "" : $"{F(row.Acc, "F3")} / {F(row.Fano)} / {F(row.Ba)} [{F(row.BaLower)}, {F(row.BaUpper)}] / {F(row.Gain)}");
            }
            table.AddRow(cells.Select(Markup.Escape).ToArray());
        }
        var summary = new List<string> { "peak" };
        foreach (Run run in runs)
            summary.Add($"layer {run.PeakName}: I_BA {F(run.PeakBa)}, forgetting {F(run.Forgetting)}" +
                (run.ForgettingInterval is { } i ? $" [{F(i.Lower)}, {F(i.Upper)}]" : ""));
        table.AddRow(summary.Select(Markup.Escape).ToArray());
        var console = AnsiConsole.Console;
        if (Console.IsOutputRedirected) console.Profile.Width = Math.Max(console.Profile.Width, 200);
        MeasureTable.WriteTable(console, setup);
        MeasureTable.WriteTable(console, table);
    }
}

// The parts of results.json compare reads (the engine's Reporting/ResultJson.cs writes the whole file). Every field named
// here must be present; the rest of the file is skipped.

internal sealed record SchemaJson(string? Schema = null);

internal sealed record ComparedResultsJson(ComparedModelJson Model, ComparedCorpusJson Corpus, ComparedSettingsJson Settings, string ProbeFamily,
    ComparedTargetsJson Targets, IReadOnlyList<ComparedLayerJson> Layers, ComparedSummariesJson Summary);

internal sealed record ComparedModelJson(string Name);

internal sealed record ComparedCorpusJson([property: JsonPropertyName("sha256")] string Sha256, int Sampled, ComparedSplitJson Sentences);

internal sealed record ComparedSplitJson(int HeldOut);

/// <summary>The settings; "classes" is a count or "all".</summary>
internal sealed record ComparedSettingsJson(ulong Seed, string Pool, JsonElement Classes, string FanoAlphabet);

internal sealed record ComparedTargetsJson(ComparedTargetJson Token, ComparedTargetJson Coarse);

internal sealed record ComparedTargetJson([property: JsonPropertyName("h_x_bits")] double HXBits);

internal sealed record ComparedLayerJson(string Name, int Layer, double Depth, ComparedFiguresJson Token, ComparedFiguresJson Coarse);

internal sealed record ComparedFiguresJson(double Acc, double FanoBits, double BaBits, double[]? BaCi, double GainBits);

internal sealed record ComparedSummariesJson(ComparedSummaryJson Token, ComparedSummaryJson Coarse);

internal sealed record ComparedSummaryJson(string PeakName, double PeakBaBits, ComparedDifferenceJson Forgetting);

internal sealed record ComparedDifferenceJson(double BaBits, double[]? Ci);

/// <summary>Source-generated reading of results.json for compare: a missing field or one of the wrong type is an error naming its path.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, RespectRequiredConstructorParameters = true,
    RespectNullableAnnotations = true)]
[JsonSerializable(typeof(SchemaJson))]
[JsonSerializable(typeof(ComparedResultsJson))]
internal sealed partial class CompareJsonContext : JsonSerializerContext;
