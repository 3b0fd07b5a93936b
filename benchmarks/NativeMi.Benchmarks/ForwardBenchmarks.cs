using BenchmarkDotNet.Attributes;
using NativeMi.Models;
using NativeMi.Transformer;

namespace NativeMi.Benchmarks;

/// <summary>Forward pass of the built-in model on the CPU backend: the baseline for performance work.</summary>
[MemoryDiagnoser]
public class ForwardBenchmarks
{
    private TransformerModel _model = null!;
    private EncodedBatch _batch = null!;

    /// <summary>Sentences per batch.</summary>
    [Params(1, 8, 32)]
    public int BatchSize { get; set; }

    /// <summary>Built-in model.</summary>
    [Params("minilm")]
    public string Model { get; set; } = "minilm";

    [GlobalSetup]
    public void Setup()
    {
        _model = ModelResolver.Load(Model);
        string[] sentences = File.ReadLines(Path.Combine(AppContext.BaseDirectory, "data", "wordnet-examples.txt"))
            .Where(l => l.Length > 0).Take(BatchSize).ToArray();
        _batch = _model.Encode(sentences);
    }

    [Benchmark]
    public int Forward() => _model.Forward(_batch).Layers.Count;

    [GlobalCleanup]
    public void Cleanup() => _model.Dispose();
}
