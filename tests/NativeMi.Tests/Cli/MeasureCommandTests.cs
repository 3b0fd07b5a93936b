using System.Text;
using System.Text.Json.Nodes;
using NativeMi.Tests.Measurement;
using Xunit;

namespace NativeMi.Tests.Cli;

/// <summary>`nativemi measure`: exit codes and messages for bad input, and the files a good run leaves.</summary>
[Collection(CliCollection.Name)]
public class MeasureCommandTests : IDisposable
{
    private readonly TempFolder _folder = new("cli-measure");

    public void Dispose() => _folder.Dispose();

    private string[] Measure(string corpus, params string[] extra) =>
    [
        "measure", "--model", Fixtures.Folder("bert-tiny"), "--corpus", corpus, "--max-sentences", "all", "--hidden", "16", "--epochs", "2",
        "--bootstrap", "10", "--cache", _folder.Combine("cache"), "--out", _folder.Combine("out"), .. extra,
    ];

    private string Corpus(string name, byte[] bytes)
    {
        string path = _folder.Combine(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Fact]
    public void AnEmptyCorpusIsAnInputErrorNamingTheFile()
    {
        string corpus = Corpus("empty.txt", []);
        var (code, error) = CliRunner.Run(Measure(corpus));
        Assert.Equal(3, code);
        Assert.Contains(Path.GetFullPath(corpus), error, StringComparison.Ordinal);
        Assert.Contains("empty", error, StringComparison.Ordinal);
    }

    [Fact]
    public void ACorpusOfBlankLinesIsAnInputError()
    {
        string corpus = Corpus("blank.txt", Encoding.UTF8.GetBytes("\n   \n\t\r\n\n"));
        var (code, error) = CliRunner.Run(Measure(corpus));
        Assert.Equal(3, code);
        Assert.Contains(Path.GetFullPath(corpus), error, StringComparison.Ordinal);
        Assert.Contains("blank", error, StringComparison.Ordinal);
    }

    [Fact]
    public void InvalidUtf8NamesTheLine()
    {
        byte[] bytes = [.. "a fine first line\nbad "u8, 0xFF, 0xFE, .. " here\nthird line\n"u8];
        string corpus = Corpus("latin.txt", bytes);
        var (code, error) = CliRunner.Run(Measure(corpus));
        Assert.Equal(3, code);
        Assert.Contains(Path.GetFullPath(corpus) + ":2:", error, StringComparison.Ordinal);
        Assert.Contains("UTF-8", error, StringComparison.Ordinal);
    }

    [Fact]
    public void ACorpusTooSmallForTheSplitIsAnInputError()
    {
        string corpus = Corpus("three.txt", Encoding.UTF8.GetBytes("the cat sat\na dog ran\nbirds fly south\n"));
        var (code, error) = CliRunner.Run(Measure(corpus));
        Assert.Equal(3, code);
        Assert.Contains("too small", error, StringComparison.Ordinal);
        Assert.Contains(Path.GetFullPath(corpus), error, StringComparison.Ordinal);
    }

    [Fact]
    public void AnUnknownOptionIsAUsageError()
    {
        var (code, error) = CliRunner.Run("measure", "--model", Fixtures.Folder("bert-tiny"), "--no-such-option", "1");
        Assert.Equal(2, code);
        Assert.Contains("--no-such-option", error, StringComparison.Ordinal);
        Assert.False(Directory.Exists(_folder.Combine("out")));
    }

    [Fact]
    public void AnUnknownCommandAndABadPoolValueAreUsageErrors()
    {
        Assert.Equal(2, CliRunner.Run("measurez").Code);
        Assert.Equal(2, CliRunner.Run(Measure(_folder.Combine("unused.txt"), "--pool", "median")).Code);
    }

    [Fact]
    public void BackendCudaIsAnEnvironmentError()
    {
        string corpus = MeasurementTestSupport.WriteCorpus(_folder.Combine("corpus.txt"), 60);
        var (code, error) = CliRunner.Run(Measure(corpus, "--backend", "cuda"));
        Assert.Equal(4, code);
        Assert.Contains("cuda", error, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void AnUnwritableOutputFolderIsAnEnvironmentErrorBeforeAnyWork()
    {
        string corpus = MeasurementTestSupport.WriteCorpus(_folder.Combine("corpus.txt"), 60);
        string file = _folder.Combine("regular-file");
        File.WriteAllText(file, "not a folder");
        string output = Path.Combine(file, "sub");
        string[] args = Measure(corpus);
        args[Array.IndexOf(args, "--out") + 1] = output;
        var (code, error) = CliRunner.Run(args);
        Assert.Equal(4, code);
        Assert.Contains("not writable", error, StringComparison.Ordinal);
        Assert.Contains(output, error, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(_folder.Path, "cache", "embeddings")), "nothing should be computed before the output check");
    }

    [Fact]
    public void ASmallRunWritesEveryOutputFileAndNoTemporaryFile()
    {
        string corpus = MeasurementTestSupport.WriteCorpus(_folder.Combine("corpus.txt"), 120);
        var (code, error) = CliRunner.Run(Measure(corpus));
        Assert.True(code == 0, $"exit {code}: {error}");
        string output = _folder.Combine("out");
        foreach (string name in new[] { "results.json", "layers.csv", "positions.csv", "mi.png", "mi.svg" })
        {
            string path = Path.Combine(output, name);
            Assert.True(File.Exists(path), $"{name} is missing");
            Assert.True(new FileInfo(path).Length > 0, $"{name} is empty");
        }
        byte[] png = File.ReadAllBytes(Path.Combine(output, "mi.png"));
        Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }, png[..8]);
        Assert.StartsWith("<", File.ReadAllText(Path.Combine(output, "mi.svg")).TrimStart(), StringComparison.Ordinal);

        var json = JsonNode.Parse(File.ReadAllBytes(Path.Combine(output, "results.json")))!;
        Assert.Equal("nativemi.measure/1", json["schema"]!.GetValue<string>());
        Assert.Equal(4, json["layers"]!.AsArray().Count);
        Assert.Equal(16, json["settings"]!["hidden"]!.GetValue<int>());
        Assert.Equal(2, json["settings"]!["epochs"]!.GetValue<int>());
        Assert.Equal(10, json["settings"]!["bootstrap"]!.GetValue<int>());
        string[] csv = File.ReadAllLines(Path.Combine(output, "layers.csv"));
        Assert.StartsWith("run,probe,layer,", csv[0], StringComparison.Ordinal);
        Assert.Equal(1 + 4, csv.Length);
        Assert.True(File.ReadAllLines(Path.Combine(output, "positions.csv")).Length > 4);

        var everything = new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 };
        Assert.Empty(Directory.GetFiles(_folder.Path, "*.tmp", everything));
        Assert.Empty(Directory.GetFiles(output, ".write-check-*", everything));
    }
}
