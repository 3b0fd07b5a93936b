using System.Text.Json.Nodes;
using NativeMi.Tests.Measurement;
using Xunit;

namespace NativeMi.Tests.Cli;

/// <summary>
/// What a user reads: the measure table and plot name a baseline by its CLI name, and `compare` shows each run's setup,
/// warns when runs differ, keeps one colour per model and draws interval bands.
/// </summary>
public sealed class CompareAndBaselineOutputTests : IDisposable
{
    private readonly TempFolder _folder = new("cli-compare");

    public void Dispose() => _folder.Dispose();

    private (string Output, string Error, string Folder) Measure(string name, params string[] extra)
    {
        string corpus = _folder.Combine("corpus.txt");
        if (!File.Exists(corpus)) MeasurementTestSupport.WriteCorpus(corpus, 150);
        string outFolder = _folder.Combine(name);
        var (code, output, error) = NativemiChild.Run(
        [
            "measure", "--model", Fixtures.Folder("bert-tiny"), "--corpus", corpus, "--max-sentences", "all", "--hidden", "16", "--epochs", "3",
            "--bootstrap", "10", "--backend", "cpu", "--cache", _folder.Combine("cache"), "--out", outFolder, .. extra,
        ]);
        Assert.True(code == 0, $"exit {code}: {error}");
        return (output, error, outFolder);
    }

    [Fact]
    public void BaselineRowsAppearInTheTableAndThePlotUnderTheirCliName()
    {
        var (output, _, folder) = Measure("shuffled", "--baseline", "shuffled");
        string[] lines = output.Split('\n');
        // One row per layer in each of the two tables, named as the option is spelt.
        for (int layer = 0; layer <= 3; layer++)
            Assert.Equal(2, lines.Count(l => l.Contains($"shuffled {layer} ", StringComparison.Ordinal)));
        Assert.Equal(2, lines.Count(l => l.Contains("│ control ", StringComparison.Ordinal) || l.Contains("control │", StringComparison.Ordinal)));
        string svg = File.ReadAllText(Path.Combine(folder, "mi.svg"));
        Assert.Contains("I_BA on f(X), shuffled", svg, StringComparison.Ordinal);
        Assert.Contains("I_ctrl on f(X) (position only)", svg, StringComparison.Ordinal);
        // The epoch lines say which scale their validation CE is on.
        var (_, error, _) = Measure("plain");
        Assert.Contains("bits (coarse target)", error, StringComparison.Ordinal);
    }

    [Fact]
    public void CompareShowsEachRunsSetupWarnsWhenTheyDifferAndKeepsOneColourPerModel()
    {
        var (_, _, positional) = Measure("positional");
        var (_, _, linear) = Measure("linear", "--probe", "linear");
        string compareFolder = _folder.Combine("compare");
        var (code, output, error) = NativemiChild.Run(
            ["compare", Path.Combine(positional, "results.json"), Path.Combine(linear, "results.json"), "--out", compareFolder]);
        Assert.True(code == 0, $"exit {code}: {error}");
        foreach (string column in new[] { "sentences (held-out)", "H (bits)", "probe", "pooling", "classes" })
            Assert.Contains(column, output, StringComparison.Ordinal);
        Assert.Contains("(positional, seed 0)", output, StringComparison.Ordinal);
        Assert.Contains("(linear, seed 0)", output, StringComparison.Ordinal);
        // The runs differ in their probe family only: one warning, naming it.
        string[] warnings = error.Split('\n').Where(l => l.StartsWith("warning:", StringComparison.Ordinal)).ToArray();
        Assert.Single(warnings);
        Assert.Contains("probe family", warnings[0], StringComparison.Ordinal);

        // Both runs are of one model: one colour for both, and a band (a filled polygon) per I_BA line.
        string svg = File.ReadAllText(Path.Combine(compareFolder, "compare.svg"));
        // Near-black (#010101) is the frame and the legend box; every other stroke is a data line.
        var strokes = System.Text.RegularExpressions.Regex.Matches(svg, "stroke=\"(#[0-9A-Fa-f]{6})\"").Select(m => m.Groups[1].Value.ToUpperInvariant())
            .Where(c => c != "#010101").ToHashSet();
        string colour = Assert.Single(strokes);
        int bands = System.Text.RegularExpressions.Regex.Count(svg, $"fill=\"{colour}\" fill-opacity=", System.Text.RegularExpressions.RegexOptions.IgnoreCase);
        Assert.True(bands >= 2, $"{bands} interval band(s) in the model's colour; expected one per run");
    }

    [Fact]
    public void CompareRefusesAFirstEditionResultsFile()
    {
        string old = _folder.Combine("old.json");
        File.WriteAllText(old, new JsonObject { ["schema"] = "nativemi.measure/1" }.ToJsonString());
        var (code, _, error) = NativemiChild.Run(["compare", old, "--out", _folder.Combine("compare-old")]);
        Assert.Equal(3, code);
        Assert.Contains(Path.GetFullPath(old), error, StringComparison.Ordinal);
        Assert.Contains("older nativemi", error, StringComparison.Ordinal);
    }
}
