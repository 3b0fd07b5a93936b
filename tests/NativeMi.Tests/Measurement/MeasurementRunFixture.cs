using NativeMi.Measurement;

namespace NativeMi.Tests.Measurement;

/// <summary>A 150-sentence corpus and one seed-0 run per fixture model, shared by the tests of a class.</summary>
public sealed class MeasurementRunFixture : IDisposable
{
    public const int Sentences = 150;
    private readonly TempFolder _folder = new("measure");
    private readonly Dictionary<string, MeasurementResult> _runs = new();
    private readonly Lock _gate = new();

    public MeasurementRunFixture()
    {
        CorpusPath = MeasurementTestSupport.WriteCorpus(_folder.Combine("corpus.txt"), Sentences);
        CacheDirectory = _folder.Combine("cache");
    }

    public string CorpusPath { get; }

    public string CacheDirectory { get; }

    /// <summary>A fresh folder inside the fixture's temporary folder.</summary>
    public string NewFolder(string tag)
    {
        string path = _folder.Combine($"{tag}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(path);
        return path;
    }

    public MeasureOptions Options(string model, ulong seed = 0) =>
        MeasurementTestSupport.SmallOptions(Fixtures.Folder(model), CorpusPath, CacheDirectory, seed);

    /// <summary>The seed-0 run of <paramref name="model"/> (computed once).</summary>
    public MeasurementResult Run(string model)
    {
        lock (_gate)
        {
            if (!_runs.TryGetValue(model, out MeasurementResult? result))
                _runs[model] = result = MeasurementRunner.Run(Options(model));
            return result;
        }
    }

    public void Dispose() => _folder.Dispose();
}
