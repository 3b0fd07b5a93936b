using System.Text.Json.Nodes;
using NativeMi.Measurement;
using Xunit;

namespace NativeMi.Tests.Measurement;

/// <summary>
/// The embedding cache across runs: reused when valid, a corrupt chunk rebuilt (with a warning), a missing chunk
/// (a run killed midway) rebuilt alone. 300 sentences make two chunks (256 + 44).
/// </summary>
public sealed class EmbeddingCacheRunTests : IDisposable
{
    private const int Sentences = 300;
    private readonly TempFolder _folder = new("cache-test");
    private readonly string _corpus;

    public EmbeddingCacheRunTests()
    {
        _corpus = MeasurementTestSupport.WriteCorpus(_folder.Combine("corpus.txt"), Sentences);
    }

    public void Dispose() => _folder.Dispose();

    private sealed class Recorder : IProgress<MeasureEvent>
    {
        public List<MeasureEvent> Events { get; } = [];
        public void Report(MeasureEvent value) { lock (Events) Events.Add(value); }
        public MeasureEvent[] Forward => Events.Where(e => e.Phase == "forward").ToArray();
        /// <summary>Events of batches actually run through the model (chunk-end events carry "cached" or come after a computed chunk).</summary>
        public long[] ComputedBatchEnds => Forward.Where(e => e.Message is null).Select(e => e.Completed).ToArray();
    }

    private MeasureOptions Options() => MeasurementTestSupport.SmallOptions(Fixtures.Folder("bert-tiny"), _corpus, _folder.Combine("cache")) with
    {
        Layers = [0],
        Hidden = 16,
        Epochs = 1,
        Bootstrap = 0,
    };

    private (MeasurementResult Result, Recorder Events) Run()
    {
        var recorder = new Recorder();
        return (MeasurementRunner.Run(Options(), recorder), recorder);
    }

    private string[] Chunks()
    {
        string[] keys = Directory.GetDirectories(Path.Combine(_folder.Combine("cache"), "embeddings"));
        Assert.Single(keys);
        return Directory.GetFiles(keys[0], "chunk-*.safetensors").Order(StringComparer.Ordinal).ToArray();
    }

    private static JsonObject Comparable(MeasurementResult result)
    {
        JsonObject json = MeasurementTestSupport.JsonWithoutTimings(result);
        json.Remove("warnings");
        return json;
    }

    private (MeasurementResult Result, string[] Chunks, byte[][] Bytes, DateTime[] Times) FirstRun()
    {
        var (result, events) = Run();
        Assert.Equal(Sentences, result.Corpus.Train + result.Corpus.Validation + result.Corpus.HeldOut);
        string[] chunks = Chunks();
        Assert.Equal(["chunk-00000.safetensors", "chunk-00001.safetensors"], chunks.Select(Path.GetFileName));
        // A fresh cache: both chunks computed, none reported as cached.
        Assert.DoesNotContain(events.Forward, e => e.Message == "cached");
        Assert.Contains(events.ComputedBatchEnds, c => c <= EmbeddingCache.ChunkSize);
        Assert.Contains(events.ComputedBatchEnds, c => c > EmbeddingCache.ChunkSize);
        Assert.DoesNotContain(result.Warnings, w => w.Contains("corrupt", StringComparison.OrdinalIgnoreCase));
        return (result, chunks, chunks.Select(File.ReadAllBytes).ToArray(), chunks.Select(File.GetLastWriteTimeUtc).ToArray());
    }

    [Fact]
    public void ASecondRunReadsEveryChunkFromTheCacheAndGivesTheSameResults()
    {
        var first = FirstRun();
        Thread.Sleep(20); // a rewrite would now show a later modification time

        var (second, events) = Run();
        Assert.Empty(events.ComputedBatchEnds);
        Assert.Equal([(long)EmbeddingCache.ChunkSize, Sentences], events.Forward.Select(e => e.Completed));
        Assert.All(events.Forward, e => Assert.Equal("cached", e.Message));
        for (int c = 0; c < first.Chunks.Length; c++)
        {
            Assert.Equal(first.Times[c], File.GetLastWriteTimeUtc(first.Chunks[c]));
            Assert.Equal(first.Bytes[c], File.ReadAllBytes(first.Chunks[c]));
        }
        Assert.Equal(first.Result.Warnings, second.Warnings);
        Assert.Equal(MeasurementTestSupport.JsonWithoutTimings(first.Result).ToJsonString(), MeasurementTestSupport.JsonWithoutTimings(second).ToJsonString());
    }

    [Theory]
    [InlineData("flip")]
    [InlineData("truncate")]
    public void ACorruptChunkIsRebuiltWithAWarningAndTheResultsDoNotChange(string damage)
    {
        var first = FirstRun();
        string victim = first.Chunks[0];
        if (damage == "flip")
        {
            byte[] bytes = File.ReadAllBytes(victim);
            for (int i = bytes.Length / 2; i < bytes.Length / 2 + 8; i++) bytes[i] ^= 0xFF;
            File.WriteAllBytes(victim, bytes);
        }
        else
        {
            using var stream = new FileStream(victim, FileMode.Open, FileAccess.Write);
            stream.SetLength(stream.Length / 2);
        }

        var (second, events) = Run();
        string warning = Assert.Single(second.Warnings, w => w.Contains("corrupt", StringComparison.OrdinalIgnoreCase));
        Assert.StartsWith("1 ", warning, StringComparison.Ordinal);
        // Only the damaged first chunk went through the model again.
        Assert.NotEmpty(events.ComputedBatchEnds);
        Assert.All(events.ComputedBatchEnds, c => Assert.InRange(c, 1, EmbeddingCache.ChunkSize));
        Assert.Equal("cached", events.Forward[^1].Message);
        // The rebuilt chunk is byte-for-byte what the first run wrote; the other was left alone.
        Assert.Equal(first.Bytes[0], File.ReadAllBytes(first.Chunks[0]));
        Assert.Equal(first.Times[1], File.GetLastWriteTimeUtc(first.Chunks[1]));
        Assert.Equal(Comparable(first.Result).ToJsonString(), Comparable(second).ToJsonString());

        // Repaired: the next run finds nothing wrong.
        var (third, thirdEvents) = Run();
        Assert.DoesNotContain(third.Warnings, w => w.Contains("corrupt", StringComparison.OrdinalIgnoreCase));
        Assert.Empty(thirdEvents.ComputedBatchEnds);
    }

    [Fact]
    public void AMissingChunkAfterAKilledRunIsRebuiltAloneAndTheResultsDoNotChange()
    {
        var first = FirstRun();
        File.Delete(first.Chunks[1]);
        Thread.Sleep(20);

        var (second, events) = Run();
        Assert.DoesNotContain(second.Warnings, w => w.Contains("corrupt", StringComparison.OrdinalIgnoreCase));
        Assert.Equal("cached", events.Forward[0].Message);
        Assert.Equal(EmbeddingCache.ChunkSize, events.Forward[0].Completed);
        Assert.NotEmpty(events.ComputedBatchEnds);
        Assert.All(events.ComputedBatchEnds, c => Assert.InRange(c, EmbeddingCache.ChunkSize + 1, Sentences));
        Assert.Equal(first.Times[0], File.GetLastWriteTimeUtc(first.Chunks[0]));
        Assert.Equal(first.Bytes[1], File.ReadAllBytes(first.Chunks[1]));
        Assert.Equal(MeasurementTestSupport.JsonWithoutTimings(first.Result).ToJsonString(), MeasurementTestSupport.JsonWithoutTimings(second).ToJsonString());
    }
}
