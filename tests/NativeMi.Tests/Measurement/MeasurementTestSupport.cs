using System.Text.Json.Nodes;
using NativeMi.Measurement;
using NativeMi.Reporting;

namespace NativeMi.Tests.Measurement;

/// <summary>A temporary folder removed on dispose.</summary>
internal sealed class TempFolder : IDisposable
{
    public TempFolder(string tag)
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"nativemi-{tag}-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string Combine(params string[] parts) => System.IO.Path.Combine([Path, .. parts]);

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

/// <summary>Small corpora and option sets for measurement tests.</summary>
internal static class MeasurementTestSupport
{
    public static string PackagedCorpus => System.IO.Path.Combine(AppContext.BaseDirectory, "data", "wordnet-examples.txt");

    /// <summary>Writes the first <paramref name="count"/> distinct lines of the packaged corpus to <paramref name="path"/>.</summary>
    public static string WriteCorpus(string path, int count, int skip = 0)
    {
        string[] lines = File.ReadLines(PackagedCorpus).Where(l => l.Trim().Length > 0).Distinct(StringComparer.Ordinal).Skip(skip).Take(count).ToArray();
        if (lines.Length != count) throw new InvalidOperationException($"the packaged corpus has fewer than {count + skip} lines");
        File.WriteAllLines(path, lines);
        return path;
    }

    /// <summary>Small, fast options: every figure is still computed.</summary>
    public static MeasureOptions SmallOptions(string model, string corpus, string cache, ulong seed = 0) => new()
    {
        Model = model,
        Corpus = corpus,
        MaxSentences = null,
        Hidden = 32,
        Epochs = 3,
        Bootstrap = 20,
        Seed = seed,
        CacheDirectory = cache,
    };

    /// <summary>results.json as a tree, with the wall-clock timings removed.</summary>
    public static JsonObject JsonWithoutTimings(MeasurementResult result)
    {
        var node = JsonNode.Parse(ResultWriter.ToJson(result))!.AsObject();
        node.Remove("timings_s");
        return node;
    }
}
