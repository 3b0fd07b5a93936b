using System.Diagnostics;
using System.Text.Json.Nodes;
using NativeMi.IO;
using NativeMi.Measurement;
using NativeMi.Models;
using NativeMi.Tests.Cli;
using Xunit;
using Xunit.Abstractions;

namespace NativeMi.Tests.Measurement;

/// <summary>
/// Two `nativemi measure` processes sharing one cache at the same time (same model, same corpus) must neither corrupt
/// it nor lose work: both finish with the figures a run alone gives, and the cache stays readable. The likely real race
/// is the first import of a built-in model, which both start at once.
/// </summary>
public sealed class ConcurrentRunTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempFolder _folder = new("concurrent");

    public void Dispose() => _folder.Dispose();

    private static string[] Measure(string model, string corpus, string cache, string outFolder, params string[] extra) =>
    [
        "measure", "--model", model, "--corpus", corpus, "--max-sentences", "all", "--hidden", "16", "--epochs", "2",
        "--bootstrap", "10", "--backend", "cpu", "--cache", cache, "--out", outFolder, .. extra,
    ];

    /// <summary>Starts both runs before waiting for either, so that they overlap from their first step.</summary>
    private (int Code, string Output, string Error)[] RunTogether(IReadOnlyDictionary<string, string?>? environment, params string[][] runs)
    {
        Process[] processes = runs.Select(args => NativemiChild.Start(args, environment)).ToArray();
        try
        {
            var results = Task.WhenAll(processes.Select(process => NativemiChild.Finish(process))).GetAwaiter().GetResult();
            foreach (var (code, _, error) in results) output.WriteLine($"exit {code}\n{error}");
            return results;
        }
        finally
        {
            foreach (Process process in processes) process.Dispose();
        }
    }

    private static string Comparable(string folder)
    {
        var json = JsonNode.Parse(File.ReadAllBytes(Path.Combine(folder, "results.json")))!.AsObject();
        json.Remove("timings_s");
        return json.ToJsonString();
    }

    private static string[] Temporaries(string folder) =>
        Directory.GetFiles(folder, "*.tmp", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 });

    private sealed class Recorder : IProgress<MeasureEvent>
    {
        public List<MeasureEvent> Events { get; } = [];
        public void Report(MeasureEvent value) { lock (Events) Events.Add(value); }
    }

    [Fact]
    public void TwoRunsOnOneCacheAtOnceBothGiveTheFiguresOfARunAlone()
    {
        // 600 sentences: three cache chunks, which both runs compute and write at about the same time.
        string corpus = MeasurementTestSupport.WriteCorpus(_folder.Combine("corpus.txt"), 600);
        string model = Fixtures.Folder("bert-tiny");
        var (soloCode, _, soloError) = NativemiChild.Run(Measure(model, corpus, _folder.Combine("solo-cache"), _folder.Combine("solo")));
        Assert.True(soloCode == 0, soloError);

        string cache = _folder.Combine("shared-cache");
        var runs = RunTogether(null,
            Measure(model, corpus, cache, _folder.Combine("a")), Measure(model, corpus, cache, _folder.Combine("b")));
        Assert.All(runs, r => Assert.True(r.Code == 0, $"exit {r.Code}: {r.Error}"));
        Assert.Equal(Comparable(_folder.Combine("solo")), Comparable(_folder.Combine("a")));
        Assert.Equal(Comparable(_folder.Combine("solo")), Comparable(_folder.Combine("b")));
        Assert.Empty(Temporaries(cache));

        // Readable afterwards: a third run takes every chunk from the cache, none found corrupt.
        var recorder = new Recorder();
        MeasurementResult again = MeasurementRunner.Run(MeasurementTestSupport.SmallOptions(model, corpus, cache) with { Layers = [0], Epochs = 1, Bootstrap = 0 },
            recorder, new NativeMi.Compute.Cpu.CpuBackend());
        MeasureEvent[] forward = recorder.Events.Where(e => e.Phase == "forward").ToArray();
        Assert.Equal(3, forward.Length);
        Assert.All(forward, e => Assert.Equal("cached", e.Message));
        Assert.DoesNotContain(again.Warnings, w => w.Contains("corrupt", StringComparison.Ordinal));
    }

    /// <summary>
    /// Both runs find the built-in model missing from a fresh --cache and start importing it at once; the import gate
    /// lets one import while the other waits and then uses that import. Everything lands under --cache, nothing under
    /// the default cache root, and the import's log lines are whole lines even though standard error is a pipe.
    /// </summary>
    [Fact]
    public void TwoRunsImportingTheSameBuiltinModelIntoOneCacheAtOnce()
    {
        string corpus = MeasurementTestSupport.WriteCorpus(_folder.Combine("corpus.txt"), 60);
        string cache = _folder.Combine("cache"), defaultRoot = _folder.Combine("default-cache");
        var environment = new Dictionary<string, string?> { ["NATIVEMI_CACHE"] = defaultRoot };
        var runs = RunTogether(environment,
            Measure("minilm", corpus, cache, _folder.Combine("a"), "--layers", "0,6"),
            Measure("minilm", corpus, cache, _folder.Combine("b"), "--layers", "0,6"));
        Assert.All(runs, r => Assert.True(r.Code == 0, $"exit {r.Code}: {r.Error}"));
        Assert.Equal(Comparable(_folder.Combine("a")), Comparable(_folder.Combine("b")));

        Assert.False(Directory.Exists(defaultRoot), "--cache was given, yet something was written to the default cache root");
        string model = Assert.Single(Directory.GetDirectories(Path.Combine(cache, "models")));
        Assert.StartsWith("minilm-", Path.GetFileName(model), StringComparison.Ordinal);
        foreach (string file in new[] { "config.json", "model.safetensors", "vocab.txt", "import.json" })
            Assert.True(File.Exists(Path.Combine(model, file)), $"{file} is missing from the import");
        string sources = Assert.Single(Directory.GetDirectories(Path.Combine(cache, "sources")));
        Assert.True(File.Exists(Path.Combine(sources, "model.onnx")));
        Assert.Empty(Temporaries(cache));
        var resultsModel = JsonNode.Parse(File.ReadAllBytes(Path.Combine(_folder.Combine("a"), "results.json")))!;
        Assert.Contains(Path.GetFullPath(model), resultsModel.ToJsonString(), StringComparison.Ordinal);

        // One process imported; the other waited for it rather than importing the same folder a second time.
        string[] errors = runs.Select(r => r.Error).ToArray();
        Assert.Single(errors, e => e.Contains("importing built-in model 'minilm'", StringComparison.Ordinal));
        string[] lines = errors.SelectMany(e => e.Split('\n')).Select(l => l.TrimEnd('\r')).ToArray();
        string dll = BuiltinModels.CandidateAssemblyPaths("minilm").First(File.Exists);
        Assert.Contains(lines, l => l == $"extracting 'minilm' from {dll}");
        Assert.Contains(lines, l => l.StartsWith("importing built-in model 'minilm'", StringComparison.Ordinal) && l.EndsWith($" into {model}", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("found BERT: 6 layers, hidden 384", StringComparison.Ordinal) && l.EndsWith("eps 1E-12", StringComparison.Ordinal));
    }

    /// <summary>
    /// Opening the cache sweeps the temporaries of killed writers; it must not delete one that a live writer in another
    /// process is about to rename, nor one whose writer it cannot check (another machine or container) unless it is old.
    /// </summary>
    [Fact]
    public void OpeningTheCacheRemovesOnlyTemporariesNoLiveWriterWillRename()
    {
        string root = _folder.Combine("cache");
        const string key = "0123456789abcdef01234567";
        string chunks = Path.Combine(root, "embeddings", key);
        Directory.CreateDirectory(chunks);
        using var writer = Process.Start(new ProcessStartInfo("sleep", "300") { UseShellExecute = false })!;
        try
        {
            string live = Path.Combine(chunks, AtomicFile.TemporaryName("chunk-00000.safetensors", writer.Id));
            string dead = Path.Combine(chunks, AtomicFile.TemporaryName("chunk-00001.safetensors", int.MaxValue));
            string otherTag = AtomicFile.WriterTag == "00000000" ? "11111111" : "00000000";
            string foreignFresh = Path.Combine(chunks, $".chunk-00002.safetensors.{otherTag}.{int.MaxValue}.{Guid.NewGuid():N}.tmp");
            string foreignOld = Path.Combine(chunks, $".chunk-00003.safetensors.{otherTag}.{int.MaxValue}.{Guid.NewGuid():N}.tmp");
            foreach (string path in new[] { live, dead, foreignFresh, foreignOld }) File.WriteAllText(path, "x");
            File.SetLastWriteTimeUtc(foreignOld, DateTime.UtcNow - AtomicFile.ForeignStaleAfter - TimeSpan.FromMinutes(1));

            _ = new EmbeddingCache(root, key, 1, 4);
            Assert.True(File.Exists(live), "the temporary of a live writer in another process was deleted");
            Assert.True(File.Exists(foreignFresh), "a recent temporary of a writer that cannot be checked was deleted");
            Assert.False(File.Exists(dead));
            Assert.False(File.Exists(foreignOld));

            writer.Kill();
            writer.WaitForExit();
            _ = new EmbeddingCache(root, key, 1, 4);
            Assert.False(File.Exists(live), "the writer is gone, so its temporary is stale");
        }
        finally
        {
            if (!writer.HasExited) writer.Kill();
        }
    }
}
