using System.Text;
using System.Text.Json.Nodes;
using NativeMi.Cli;
using NativeMi.Tests.Measurement;
using Xunit;

namespace NativeMi.Tests.Cli;

/// <summary>`nativemi measure`: exit codes and messages for bad input, and the files a good run leaves.</summary>
[Collection(CliCollection.Name)]
public sealed class MeasureCommandTests : IDisposable
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

    [NoGpuFact]
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
        Assert.Equal("nativemi.measure/2", json["schema"]!.GetValue<string>());
        Assert.Equal(4, json["layers"]!.AsArray().Count);
        Assert.Equal(16, json["settings"]!["hidden"]!.GetValue<int>());
        Assert.Equal(2, json["settings"]!["epochs"]!.GetValue<int>());
        Assert.Equal(10, json["settings"]!["bootstrap"]!.GetValue<int>());
        string[] csv = File.ReadAllLines(Path.Combine(output, "layers.csv"));
        Assert.StartsWith("run,probe,target,layer,", csv[0], StringComparison.Ordinal);
        Assert.Equal(1 + 2 * 4, csv.Length); // one row per layer and target (coarse, token)
        Assert.True(File.ReadAllLines(Path.Combine(output, "positions.csv")).Length > 4);

        var everything = new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 };
        Assert.Empty(Directory.GetFiles(_folder.Path, "*.tmp", everything));
        Assert.Empty(Directory.GetFiles(output, ".write-check-*", everything));
    }

    [Fact]
    public void APlotThatFailsIsAWarningAndTheDataFilesAndTheTableStay()
    {
        string corpus = MeasurementTestSupport.WriteCorpus(_folder.Combine("corpus.txt"), 120);
        string output = _folder.Combine("out");
        // A previous run's plot in the folder must not be left beside this run's results.json.
        Directory.CreateDirectory(output);
        File.WriteAllText(Path.Combine(output, "mi.png"), "previous run");
        var original = MeasureCommand.StagePlot;
        // What a binary copied without libSkiaSharp.so hits at its first drawing call.
        MeasureCommand.StagePlot = (_, _, _) => throw new TypeInitializationException("SkiaSharp.SKImageInfo",
            new DllNotFoundException("Unable to load shared library 'libSkiaSharp' or one of its dependencies."));
        (int Code, string Error, string Output) run;
        try
        {
            run = CliRunner.RunWithOutput(Measure(corpus));
        }
        finally
        {
            MeasureCommand.StagePlot = original;
        }
        Assert.True(run.Code == 0, $"exit {run.Code}: {run.Error}");
        Assert.Contains("warning: plot not written: The type initializer for 'SkiaSharp.SKImageInfo' threw an exception.: " +
            "Unable to load shared library 'libSkiaSharp' or one of its dependencies.", run.Error, StringComparison.Ordinal);
        foreach (string name in new[] { "results.json", "layers.csv", "positions.csv" })
            Assert.True(File.Exists(Path.Combine(output, name)), $"{name} is missing");
        Assert.Empty(Directory.GetFiles(output, "mi.*"));
        Assert.Equal(4, JsonNode.Parse(File.ReadAllBytes(Path.Combine(output, "results.json")))!["layers"]!.AsArray().Count);
        Assert.Contains("acc [95% CI]", run.Output, StringComparison.Ordinal); // the table
        Assert.Contains($"wrote results.json, layers.csv, positions.csv to {Path.GetFullPath(output)}", run.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("mi.png", run.Output, StringComparison.Ordinal);
        var everything = new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 };
        Assert.Empty(Directory.GetFiles(_folder.Path, "*.tmp", everything));
    }

    [Fact]
    public void AFailedRunLeavesNoEmptyOutputFolderBehind()
    {
        string missing = _folder.Combine("no-such-corpus.txt");
        string output = _folder.Combine("out");
        var (code, error) = CliRunner.Run(Measure(missing));
        Assert.True(code == 3, $"exit {code}: {error}");
        Assert.Contains("corpus file not found", error, StringComparison.Ordinal);
        Assert.False(Directory.Exists(output), "the failed run left the output folder it created");

        // A folder that was there before the run is the user's: it stays, empty or not.
        Directory.CreateDirectory(output);
        Assert.Equal(3, CliRunner.Run(Measure(missing)).Code);
        Assert.True(Directory.Exists(output));
        string nested = Path.Combine(output, "nested");
        string[] args = Measure(missing);
        args[Array.IndexOf(args, "--out") + 1] = nested;
        Assert.Equal(3, CliRunner.Run(args).Code);
        Assert.False(Directory.Exists(nested));
        Assert.True(Directory.Exists(output));
    }

    [Fact]
    public void TheStartLineGivesTheSampleSizeTheCorpusAllows()
    {
        string corpus = MeasurementTestSupport.WriteCorpus(_folder.Combine("corpus.txt"), 60);
        string[] args = Measure(corpus);
        args[Array.IndexOf(args, "--max-sentences") + 1] = "2000";
        var (code, error) = CliRunner.Run(args);
        Assert.True(code == 0, $"exit {code}: {error}");
        Assert.Contains($"on {Path.GetFullPath(corpus)}: all 60 sentences, positional probe, seed 0", error, StringComparison.Ordinal);
        Assert.DoesNotContain("2000", error, StringComparison.Ordinal);

        args[Array.IndexOf(args, "--max-sentences") + 1] = "40";
        (code, error) = CliRunner.Run(args);
        Assert.True(code == 0, $"exit {code}: {error}");
        Assert.Contains($"on {Path.GetFullPath(corpus)}: seeded sample of 40 of 60 sentences, positional probe, seed 0", error, StringComparison.Ordinal);
    }
}
