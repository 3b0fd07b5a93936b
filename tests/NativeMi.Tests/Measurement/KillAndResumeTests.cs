using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace NativeMi.Tests.Measurement;

/// <summary>
/// Runs of the built `nativemi measure` (a child process) on bert-tiny and 300 sentences (two cache chunks,
/// 256 + 44): one uninterrupted run as the reference, and one complete run with another seed whose outputs play
/// "the previous run" in an output folder that is being overwritten.
/// </summary>
public sealed class KillAndResumeFixture : IDisposable
{
    private readonly TempFolder _folder = new("kill-resume");

    public KillAndResumeFixture()
    {
        Corpus = MeasurementTestSupport.WriteCorpus(_folder.Combine("corpus.txt"), 300);
        Reference = NativemiProcess.RunToCompletion(this, _folder.Combine("reference-cache"), _folder.Combine("reference"), seed: 0);
        Previous = NativemiProcess.RunToCompletion(this, _folder.Combine("reference-cache"), _folder.Combine("previous"), seed: 1);
    }

    public string Corpus { get; }

    /// <summary>The uninterrupted seed-0 run's output folder.</summary>
    public string Reference { get; }

    /// <summary>A complete seed-1 run's output folder: different figures, so it is told apart from seed 0's.</summary>
    public string Previous { get; }

    public string NewFolder(string tag) => _folder.Combine($"{tag}-{Guid.NewGuid():N}");

    public void Dispose() => _folder.Dispose();
}

/// <summary>Starts the CLI assembly built beside the tests (the test project references the CLI project).</summary>
internal static class NativemiProcess
{
    public static readonly string[] Outputs = ["results.json", "layers.csv", "positions.csv", "mi.png", "mi.svg"];

    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(3);

    public static ProcessStartInfo StartInfo(KillAndResumeFixture fixture, string cache, string output, ulong seed, string? pauseAt)
    {
        string host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
        var start = new ProcessStartInfo(host)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        string[] arguments =
        [
            "exec", Path.Combine(AppContext.BaseDirectory, "nativemi.dll"),
            "measure", "--model", Fixtures.Folder("bert-tiny"), "--corpus", fixture.Corpus, "--max-sentences", "all",
            "--hidden", "16", "--epochs", "2", "--bootstrap", "10", "--seed", seed.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--backend", "cpu", "--out", output,
        ];
        foreach (string argument in arguments) start.ArgumentList.Add(argument);
        start.Environment["NATIVEMI_CACHE"] = cache;
        if (pauseAt is null) start.Environment.Remove(TestPausePoint.EnvironmentVariable);
        else start.Environment[TestPausePoint.EnvironmentVariable] = pauseAt;
        return start;
    }

    /// <summary>Runs to the end and returns the output folder; a failure carries the process's messages.</summary>
    public static string RunToCompletion(KillAndResumeFixture fixture, string cache, string output, ulong seed = 0)
    {
        using var process = Process.Start(StartInfo(fixture, cache, output, seed, pauseAt: null))!;
        Task<string> error = process.StandardError.ReadToEndAsync();
        Task<string> standard = process.StandardOutput.ReadToEndAsync();
        if (!process.WaitForExit(Limit))
        {
            process.Kill();
            throw new TimeoutException($"nativemi measure did not finish within {Limit}: {error.Result}");
        }
        if (process.ExitCode != 0) throw new InvalidOperationException($"nativemi measure exited {process.ExitCode}: {error.Result}\n{standard.Result}");
        return output;
    }

    /// <summary>
    /// Runs until the process announces that it stopped at <paramref name="point"/>, then SIGKILLs it. Waiting for the
    /// announcement, not a timer, is what makes the moment of the kill the same on every machine.
    /// </summary>
    public static void RunAndKillAt(KillAndResumeFixture fixture, string cache, string output, string point)
    {
        using var process = new Process { StartInfo = StartInfo(fixture, cache, output, 0, point) };
        var paused = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var error = new StringBuilder();
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (error) error.AppendLine(e.Data);
            // Contains, not StartsWith: the progress display writes to the same stream and may leave a partial line.
            if (e.Data.Contains(TestPausePoint.Announcement + point, StringComparison.Ordinal)) paused.TrySetResult();
        };
        process.OutputDataReceived += (_, _) => { };
        process.Start();
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        Task exited = process.WaitForExitAsync();
        Task first = Task.WhenAny(paused.Task, exited, Task.Delay(Limit)).Result;
        if (first != paused.Task)
        {
            if (!process.HasExited) process.Kill();
            process.WaitForExit();
            string messages;
            lock (error) messages = error.ToString();
            Assert.Fail(first == exited
                ? $"nativemi measure exited ({process.ExitCode}) without reaching pause point '{point}': {messages}"
                : $"nativemi measure did not reach pause point '{point}' within {Limit}: {messages}");
        }
        process.Kill(); // SIGKILL on Unix: no handler, no finally block, no flush runs
        Assert.True(process.WaitForExit(Limit), "the killed process did not go away");
    }
}

/// <summary>
/// Issue 6, item 3: SIGKILL `nativemi measure` at named moments (through the test-only pause hook
/// NATIVEMI_TEST_PAUSE_AT, see <see cref="TestPausePoint"/>), check after each kill that what it left is only
/// complete files (the previous run's or this run's) plus hidden temporaries, and run again. The kills are chained
/// to keep the test short: each run again is itself killed at the chain's next point, so it resumes from what the
/// previous kill left, and the last one runs to the end; its results must equal the uninterrupted run's apart from
/// timings, and no temporary file may be left in the output folder or the cache.
/// </summary>
public class KillAndResumeTests(KillAndResumeFixture fixture, ITestOutputHelper output) : IClassFixture<KillAndResumeFixture>
{
    private static readonly Regex Temporary = new(@"^\..+\.[0-9]+\.[0-9a-f]{32}\.tmp$", RegexOptions.CultureInvariant);

    public static TheoryData<string, bool> Chains => new()
    {
        // A fresh output folder and cache. In turn: the forward pass of the first chunk (nothing cached yet);
        // between chunks (the first complete in the cache, the second not started); the second chunk written to
        // its temporary file but not renamed (a cache write cut in half); the first epoch of layer 2's probe
        // (of 0..3), with layers 0 and 1 done.
        { "forward-batch:64 cache-chunk-written:0 before-rename:chunk-00001.safetensors probe-epoch:2:1", false },
        // An output folder holding a previous run's complete outputs, and a fresh cache. In turn: the data files
        // written to their temporaries, none renamed (the previous plots already removed); the CSVs renamed into
        // place, results.json not; the data files all renamed, the plots written to their temporaries but not renamed.
        // results.json must be the previous run's at the first two, and at the third this run's with no plot beside it.
        { "before-rename:layers.csv before-rename:results.json before-rename:mi.png", true },
    };

    [Theory]
    [MemberData(nameof(Chains))]
    public void RunsKilledAtEachPointAndRunAgainGiveTheUninterruptedResults(string chain, bool previousOutputs)
    {
        var clock = Stopwatch.StartNew();
        string cache = fixture.NewFolder("cache"), folder = fixture.NewFolder("out");
        Directory.CreateDirectory(folder);
        if (previousOutputs)
            foreach (string name in NativemiProcess.Outputs) File.Copy(Path.Combine(fixture.Previous, name), Path.Combine(folder, name));

        foreach (string point in chain.Split(' '))
        {
            NativemiProcess.RunAndKillAt(fixture, cache, folder, point);
            output.WriteLine($"killed at {point} after {clock.Elapsed.TotalSeconds:F1} s");
            AssertOnlyCompleteOutputs(folder, previousOutputs, dataWritten: point == "before-rename:mi.png");
            AssertCacheAfterKillAt(point, cache);
            if (point == "before-rename:results.json")
            {
                // Everything staged before results.json is already this run's; results.json is still the previous one.
                Assert.Equal(File.ReadAllBytes(Path.Combine(fixture.Reference, "layers.csv")), File.ReadAllBytes(Path.Combine(folder, "layers.csv")));
                Assert.Equal(File.ReadAllBytes(Path.Combine(fixture.Previous, "results.json")), File.ReadAllBytes(Path.Combine(folder, "results.json")));
            }
        }

        NativemiProcess.RunToCompletion(fixture, cache, folder);
        output.WriteLine($"resumed run done after {clock.Elapsed.TotalSeconds:F1} s");

        Assert.Equal(Comparable(Path.Combine(fixture.Reference, "results.json")).ToJsonString(), Comparable(Path.Combine(folder, "results.json")).ToJsonString());
        foreach (string name in NativemiProcess.Outputs.Skip(1))
            Assert.True(File.ReadAllBytes(Path.Combine(fixture.Reference, name)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(folder, name))),
                $"{name} differs from the uninterrupted run's");
        // Only the outputs: the resumed run swept the temporaries the killed ones could not clean up.
        Assert.Equal(NativemiProcess.Outputs.Order(StringComparer.Ordinal), Directory.GetFiles(folder).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.DoesNotContain(Directory.GetFiles(cache, "*", SearchOption.AllDirectories), f => Temporary.IsMatch(Path.GetFileName(f)));
    }

    /// <summary>The embedding cache holds exactly the chunks completed before the kill; a half-done chunk write is only a hidden temporary.</summary>
    private static void AssertCacheAfterKillAt(string point, string cache)
    {
        // The cache writes its folder with the first chunk.
        string embeddings = Path.Combine(cache, "embeddings");
        string[] Files() => Directory.Exists(embeddings) ? Directory.GetFiles(embeddings, "*", SearchOption.AllDirectories) : [];
        string[] Chunks() => Files().Select(f => Path.GetFileName(f)).Where(n => !Temporary.IsMatch(n)).Order(StringComparer.Ordinal).ToArray();
        string[] Temporaries() => Files().Where(f => Temporary.IsMatch(Path.GetFileName(f))).ToArray();
        switch (point)
        {
            case "forward-batch:64":
                Assert.Empty(Chunks());
                break;
            case "cache-chunk-written:0":
                Assert.Equal(["chunk-00000.safetensors"], Chunks());
                Assert.Empty(Temporaries());
                break;
            case "before-rename:chunk-00001.safetensors":
                Assert.Equal(["chunk-00000.safetensors"], Chunks());
                Assert.Single(Temporaries());
                break;
            default:
                Assert.Equal(["chunk-00000.safetensors", "chunk-00001.safetensors"], Chunks());
                break;
        }
    }

    /// <summary>
    /// Right after a kill: results.json is the previous run's, byte for byte (or absent when there was none), each
    /// other output is either the previous run's or this run's complete file, and anything else is a hidden temporary.
    /// When the kill came after the data files were renamed (<paramref name="dataWritten"/>, while the plots were being
    /// written), results.json is this run's instead, and there is no plot beside it: the previous run's were removed.
    /// </summary>
    private void AssertOnlyCompleteOutputs(string folder, bool previousOutputs, bool dataWritten)
    {
        string results = Path.Combine(folder, "results.json");
        if (dataWritten)
        {
            Assert.Equal(Comparable(Path.Combine(fixture.Reference, "results.json")).ToJsonString(), Comparable(results).ToJsonString());
            Assert.False(File.Exists(Path.Combine(folder, "mi.png")) || File.Exists(Path.Combine(folder, "mi.svg")),
                "a plot that is not this run's lies beside this run's results.json");
        }
        else if (previousOutputs)
        {
            Assert.True(File.ReadAllBytes(Path.Combine(fixture.Previous, "results.json")).AsSpan().SequenceEqual(File.ReadAllBytes(results)),
                "results.json after the kill is not the previous run's");
            Assert.NotNull(JsonNode.Parse(File.ReadAllBytes(results)));
        }
        else
        {
            Assert.False(File.Exists(results), "a killed run left a results.json");
        }
        foreach (string file in Directory.GetFiles(folder))
        {
            string name = Path.GetFileName(file);
            if (Temporary.IsMatch(name) || (dataWritten && name == "results.json")) continue; // this run's: compared above, without timings
            Assert.Contains(name, NativemiProcess.Outputs);
            byte[] bytes = File.ReadAllBytes(file);
            bool previous = previousOutputs && bytes.AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(fixture.Previous, name)));
            bool current = name != "results.json" && bytes.AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(fixture.Reference, name)));
            Assert.True(previous || current, $"{name} after the kill is neither the previous run's nor this run's complete file");
        }
    }

    /// <summary>results.json without the wall-clock timings, the one part that may differ between runs.</summary>
    private static JsonObject Comparable(string path)
    {
        var json = JsonNode.Parse(File.ReadAllBytes(path))!.AsObject();
        json.Remove("timings_s");
        return json;
    }
}
