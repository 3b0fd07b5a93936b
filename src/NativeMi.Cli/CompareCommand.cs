using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Spectre.Console;

namespace NativeMi.Cli;

internal static class CompareCommand
{
    private sealed record Row(string Name, int Layer, double Depth, double Acc, double Fano, double FanoCertified, double Ba, double Gain);

    private sealed record Run(string Label, string Path, string Probe, int HeldOut, IReadOnlyList<Row> Rows, int PeakLayer, double PeakFano, double Forgetting);

    public static Command Create(Option<bool> verbose)
    {
        var files = new Argument<string[]>("results.json") { Description = "results.json files of nativemi measure runs", Arity = ArgumentArity.OneOrMore };
        var output = new Option<string?>("--out") { Description = "Folder for compare.png / compare.svg (default results/compare-<UTC timestamp>/)" };
        var command = new Command("compare", "Compare several measurement runs side by side on normalised depth") { files, output };
        command.SetAction(parse => ErrorBoundary.Run(parse.GetValue(verbose), () =>
        {
            var runs = parse.GetValue(files)!.Select(Read).ToList();
            PrintTable(runs);
            string folder = parse.GetValue(output) ?? Path.Combine("results", $"compare-{DateTime.UtcNow.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture)}");
            var series = new List<MiPlot.Series>();
            foreach (Run run in runs)
            {
                var rows = run.Rows.Where(r => r.Name != "final").ToArray();
                series.Add(new MiPlot.Series($"{run.Label}: I_F", rows.Select(r => r.Depth).ToArray(), rows.Select(r => r.Fano).ToArray()));
                series.Add(new MiPlot.Series($"{run.Label}: I_BA", rows.Select(r => r.Depth).ToArray(), rows.Select(r => r.Ba).ToArray(), Dashed: true));
            }
            Directory.CreateDirectory(folder);
            MiPlot.Write(folder, "compare", "I_F and I_BA by normalised depth", "bits per target token (held-out)", series);
            Console.WriteLine($"wrote compare.png, compare.svg to {Path.GetFullPath(folder)}");
            return ExitCodes.Success;
        }));
        return command;
    }

    private static Run Read(string path)
    {
        string full = Path.GetFullPath(path);
        if (!File.Exists(full)) throw new InputException($"{full}: results file not found");
        try
        {
            using JsonDocument document = JsonDocument.Parse(File.ReadAllBytes(full));
            JsonElement root = document.RootElement;
            string schema = root.TryGetProperty("schema", out JsonElement s) && s.ValueKind == JsonValueKind.String ? s.GetString()! : "";
            if (schema != "nativemi.measure/1")
                throw new InputException($"{full}: field 'schema' is \"{schema}\"; expected \"nativemi.measure/1\" (a results.json written by nativemi measure)");
            var rows = root.GetProperty("layers").EnumerateArray().Select(l => new Row(
                l.GetProperty("name").GetString()!, l.GetProperty("layer").GetInt32(), l.GetProperty("depth").GetDouble(), l.GetProperty("acc").GetDouble(),
                l.GetProperty("fano_bits").GetDouble(), l.GetProperty("fano_certified_bits").GetDouble(), l.GetProperty("ba_bits").GetDouble(),
                l.GetProperty("gain_bits").GetDouble())).ToArray();
            JsonElement summary = root.GetProperty("summary");
            string label = $"{root.GetProperty("model").GetProperty("name").GetString()} ({root.GetProperty("probe_family").GetString()}, seed {root.GetProperty("settings").GetProperty("seed").GetUInt64()})";
            return new Run(label, full, root.GetProperty("probe_family").GetString()!, root.GetProperty("corpus").GetProperty("sentences").GetProperty("held_out").GetInt32(),
                rows, summary.GetProperty("peak_layer").GetInt32(), summary.GetProperty("peak_fano_bits").GetDouble(), summary.GetProperty("forgetting_bits").GetDouble());
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new InputException($"{full}: not a readable nativemi results.json: {e.Message}");
        }
    }

    private static void PrintTable(IReadOnlyList<Run> runs)
    {
        static string F(double v) => v.ToString("F2", CultureInfo.InvariantCulture);
        var table = new Table().Border(TableBorder.Rounded).Title("runs side by side (bits per target token, held-out)");
        table.AddColumn("depth");
        foreach (Run run in runs) table.AddColumn(new TableColumn(Markup.Escape($"{run.Label}\nacc / I_F / I_BA / gain")).RightAligned());
        var depths = runs.SelectMany(r => r.Rows.Select(x => (x.Depth, x.Name == "final"))).Distinct().OrderBy(d => d.Item2).ThenBy(d => d.Depth).ToArray();
        foreach (var (depth, final) in depths)
        {
            var cells = new List<string> { final ? "final" : depth.ToString("F2", CultureInfo.InvariantCulture) };
            foreach (Run run in runs)
            {
                Row? row = run.Rows.FirstOrDefault(r => Math.Abs(r.Depth - depth) < 1e-9 && (r.Name == "final") == final);
                cells.Add(row is null ? "" : $"{row.Acc.ToString("F3", CultureInfo.InvariantCulture)} / {F(row.Fano)} / {F(row.Ba)} / {F(row.Gain)}");
            }
            table.AddRow(cells.Select(Markup.Escape).ToArray());
        }
        var summary = new List<string> { "peak" };
        foreach (Run run in runs) summary.Add($"layer {run.PeakLayer}: I_F {F(run.PeakFano)}, forgetting {F(run.Forgetting)}");
        table.AddRow(summary.Select(Markup.Escape).ToArray());
        var console = AnsiConsole.Console;
        if (Console.IsOutputRedirected) console.Profile.Width = Math.Max(console.Profile.Width, 150);
        console.Write(table);
    }
}
