using System.Text.RegularExpressions;
using NativeMi.Tests.Measurement;
using Xunit;
using Xunit.Abstractions;

namespace NativeMi.Tests.Cli;

/// <summary>
/// `nativemi measure` with standard output and error redirected (pipes, as with `&gt; log 2&gt;&amp;1`): no line is
/// hard-wrapped (a wrapped line can split a path in two), and every progress task's last line says 100 %, including
/// probes that early stopping ended before their last epoch.
/// </summary>
public sealed partial class RedirectedOutputTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempFolder _folder = new("redirected");

    public void Dispose() => _folder.Dispose();

    [GeneratedRegex(@"^(?<task>[^:]+)(: .*)?: (?<percent>[0-9]+)%$", RegexOptions.CultureInvariant)]
    private static partial Regex ProgressLine();

    [Fact]
    public void NoLineIsWrappedAndEveryTaskEndsAt100Percent()
    {
        // A folder name long enough that the table's title, which names the model folder, is wider than the table.
        string model = _folder.Combine(new string('m', 60) + "-a-model-folder-with-a-long-name", "bert-tiny");
        Directory.CreateDirectory(model);
        foreach (string file in Directory.GetFiles(Fixtures.Folder("bert-tiny")))
            File.Copy(file, Path.Combine(model, Path.GetFileName(file)));
        string corpus = Path.GetFullPath(MeasurementTestSupport.WriteCorpus(_folder.Combine("corpus.txt"), 300));
        string outFolder = Path.GetFullPath(_folder.Combine("out"));
        var (code, standard, error) = NativemiChild.Run(
        [
            "measure", "--model", model, "--corpus", corpus, "--max-sentences", "all", "--hidden", "16", "--epochs", "20",
            "--bootstrap", "10", "--backend", "cpu", "--cache", _folder.Combine("cache"), "--out", outFolder,
        ]);
        output.WriteLine(error);
        output.WriteLine(standard);
        Assert.True(code == 0, $"exit {code}: {error}");

        string[] lines = (standard + error).Split('\n').Select(l => l.TrimEnd('\r')).ToArray();
        string[] paths = [Path.GetFullPath(model), corpus, outFolder];
        foreach (string line in lines)
            for (int at = line.IndexOf(_folder.Path, StringComparison.Ordinal); at >= 0; at = line.IndexOf(_folder.Path, at + 1, StringComparison.Ordinal))
                Assert.True(paths.Any(p => string.CompareOrdinal(line, at, p, 0, p.Length) == 0), $"a path is cut short in: {line}");
        Assert.Contains(lines, l => l.Contains($"{Path.GetFullPath(model)} (bert, 3 layers), positional probe", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("Bits per target token", StringComparison.Ordinal) && l.Contains("forgetting (peak - last)", StringComparison.Ordinal) && l.EndsWith(" bits.", StringComparison.Ordinal));

        var last = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (string line in error.Split('\n').Select(l => l.TrimEnd('\r')))
            if (ProgressLine().Match(line) is { Success: true } m) last[m.Groups["task"].Value] = int.Parse(m.Groups["percent"].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(["control probe (z = 0)", "forward", "probe layer 0", "probe layer 1", "probe layer 2", "probe layer 3", "tokenise"],
            last.Keys.Order(StringComparer.Ordinal));
        Assert.All(last, task => Assert.True(task.Value == 100, $"the last line of '{task.Key}' says {task.Value}%"));
    }
}
