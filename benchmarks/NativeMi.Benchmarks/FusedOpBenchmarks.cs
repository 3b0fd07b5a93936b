using BenchmarkDotNet.Attributes;
using NativeMi.Compute;
using NativeMi.Compute.Cpu;
using NativeMi.Measurement;
using NativeMi.Probing;
using NativeMi.Transformer;
using NativeMi.Pooling;

namespace NativeMi.Benchmarks;

/// <summary>
/// The fused CPU ops at the shapes the built-in model (minilm) runs in the default measurement: a batch of 32
/// sentences padded to 27 tokens (864 rows), d = 384, 12 heads of 32, FFN 1536; and the probe's ops at the
/// default run's size (~350 targets per mini-batch, ~2500 classes, ~1.5M parameters).
/// </summary>
[MemoryDiagnoser]
public class FusedOpBenchmarks
{
    /// <summary>Sentences per batch.</summary>
    public const int Batch = 32;
    /// <summary>Padded tokens per sentence.</summary>
    public const int Sequence = 27;
    /// <summary>Rows of one forward batch.</summary>
    public const int Rows = Batch * Sequence;
    /// <summary>Hidden width.</summary>
    public const int Width = 384;
    /// <summary>Attention heads.</summary>
    public const int Heads = 12;
    /// <summary>Width of one head.</summary>
    public const int HeadDim = 32;
    /// <summary>FFN width.</summary>
    public const int FeedForward = 1536;
    /// <summary>Vocabulary of minilm.</summary>
    public const int Vocabulary = 30522;
    /// <summary>Targets in one probe mini-batch.</summary>
    public const int ProbeRows = 350;
    /// <summary>Probe classes.</summary>
    public const int ProbeClasses = 2500;
    /// <summary>Probe parameters (W1 384×512, P 16×512, W2 512×2500 and biases).</summary>
    public const int ProbeParameters = 384 * 512 + 512 + 16 * 512 + 512 * 2500 + 2500;

    private readonly CpuBackend _backend = new();
    private DeviceBuffer<float> _x = null!, _residual = null!, _gamma = null!, _beta = null!, _y = null!;
    private DeviceBuffer<float> _qkv = null!, _context = null!, _ffIn = null!, _ffBias = null!, _ffOut = null!;
    private DeviceBuffer<float> _words = null!, _positions = null!, _types = null!;
    private DeviceBuffer<int> _ids = null!, _positionIds = null!, _typeIds = null!, _mask = null!;
    private DeviceBuffer<float> _logits = null!, _loss = null!;
    private DeviceBuffer<int> _targets = null!, _argmax = null!;
    private float[] _logitsSource = [];
    private DeviceBuffer<float> _parameters = null!, _gradients = null!, _m = null!, _v = null!;
    private EncodedBatch _batch = null!;
    private float[] _layer = [];
    private int _adamStep;

    /// <summary>Releases the backend (BenchmarkDotNet calls it once the benchmarks of an instance have run).</summary>
    [GlobalCleanup]
    public void Cleanup() => _backend.Dispose();

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(1);
        _x = Up(rng, Rows * Width);
        _residual = Up(rng, Rows * Width);
        _gamma = Up(rng, Width);
        _beta = Up(rng, Width);
        _y = _backend.Allocate<float>(Rows * Width);
        _qkv = Up(rng, Rows * 3 * Width);
        _context = _backend.Allocate<float>(Rows * Width);
        _ffIn = _backend.UploadMatrix(Fill(rng, Width * FeedForward), Width, FeedForward);
        _ffBias = Up(rng, FeedForward);
        _ffOut = _backend.Allocate<float>(Rows * FeedForward);
        _words = Up(rng, Vocabulary * Width);
        _positions = Up(rng, 512 * Width);
        _types = Up(rng, 2 * Width);

        // Sentences of 10..27 real tokens, right-padded, as a length-sorted default batch looks after padding.
        var ids = new int[Rows];
        var mask = new int[Rows];
        var positions = new int[Rows];
        for (int s = 0; s < Batch; s++)
        {
            int length = 10 + s * (Sequence - 10) / (Batch - 1);
            for (int i = 0; i < Sequence; i++)
            {
                int cell = s * Sequence + i;
                bool real = i < length;
                ids[cell] = real ? rng.Next(Vocabulary) : 0;
                mask[cell] = real ? 1 : 0;
                positions[cell] = real ? i : 0;
            }
        }
        _ids = _backend.Upload<int>(ids);
        _mask = _backend.Upload<int>(mask);
        _positionIds = _backend.Upload<int>(positions);
        _typeIds = _backend.Allocate<int>(Rows);
        _batch = new EncodedBatch(Batch, Sequence, ids, mask);
        _layer = Fill(rng, Rows * Width);

        _logitsSource = Fill(rng, ProbeRows * ProbeClasses);
        _logits = _backend.Allocate<float>(_logitsSource.Length);
        _loss = _backend.Allocate<float>(ProbeRows);
        _argmax = _backend.Allocate<int>(ProbeRows);
        _targets = _backend.Upload<int>(Enumerable.Range(0, ProbeRows).Select(i => i * 7 % ProbeClasses).ToArray());

        _parameters = Up(rng, ProbeParameters);
        _gradients = Up(rng, ProbeParameters);
        _m = _backend.Allocate<float>(ProbeParameters);
        _v = _backend.Allocate<float>(ProbeParameters);
    }

    /// <summary>LayerNorm of 864×384 rows without a residual.</summary>
    [Benchmark]
    public void LayerNorm() => _backend.LayerNorm(_x, null, _gamma, _beta, _y, Rows, Width, 1e-12f);

    /// <summary>LayerNorm(x + residual), the post-LN block's fused form.</summary>
    [Benchmark]
    public void LayerNormResidual() => _backend.LayerNorm(_x, _residual, _gamma, _beta, _y, Rows, Width, 1e-12f);

    /// <summary>Masked multi-head attention over a 32×27 batch (softmax inside).</summary>
    [Benchmark]
    public void Attention() => _backend.Attention(_qkv, _mask, _context, Batch, Sequence, Heads, HeadDim, causal: false);

    /// <summary>FFN-in GEMM 864×384×1536 on the packed weight, bias only.</summary>
    [Benchmark]
    public void GemmFfnIn() => _backend.Gemm(_x, _ffIn, _ffBias, _ffOut, Rows, Width, FeedForward, Activation.None);

    /// <summary>The same GEMM with the exact-GELU epilogue.</summary>
    [Benchmark]
    public void GemmFfnInGelu() => _backend.Gemm(_x, _ffIn, _ffBias, _ffOut, Rows, Width, FeedForward, Activation.GeluExact);

    /// <summary>Word + position + type embedding sum for 864 tokens.</summary>
    [Benchmark]
    public void EmbeddingGather() =>
        _backend.EmbeddingGather(_ids, _positionIds, _typeIds, _words, _positions, _types, _y, Rows, Width);

    /// <summary>Mean pooling of one layer of the batch over its target tokens.</summary>
    [Benchmark]
    public float[] PoolMean() => SentencePooling.Pool(_layer, _batch, Width, PoolingMode.Mean);

    /// <summary>The fused probe step on 350×2500 logits (loss, argmax, gradient in place); includes refilling the logits.</summary>
    [Benchmark]
    public void SoftmaxCrossEntropy()
    {
        _backend.CopyFromHost<float>(_logitsSource, _logits);
        _backend.SoftmaxCrossEntropy(_logits, _targets, _loss, _argmax, ProbeRows, ProbeClasses, 1f / ProbeRows, writeGradient: true);
    }

    /// <summary>The refill alone, to subtract from <see cref="SoftmaxCrossEntropy"/>.</summary>
    [Benchmark]
    public void SoftmaxCrossEntropyRefillOnly() => _backend.CopyFromHost<float>(_logitsSource, _logits);

    /// <summary>One AdamW step over the probe's ~1.5M parameters.</summary>
    [Benchmark]
    public void AdamW() => _backend.AdamW(_parameters, _gradients, _m, _v, ProbeParameters,
        new AdamWStep(1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, ++_adamStep));

    private DeviceBuffer<float> Up(Random rng, int length) => _backend.Upload<float>(Fill(rng, length));

    private static float[] Fill(Random rng, int length)
    {
        var x = new float[length];
        for (int i = 0; i < length; i++) x[i] = (float)(rng.NextDouble() - 0.5);
        return x;
    }
}

/// <summary>One probe epoch (<see cref="ProbeTrainer.Train"/> with MaxEpochs = 1) at the default run's size.</summary>
[MemoryDiagnoser]
public class ProbeEpochBenchmarks
{
    private readonly CpuBackend _backend = new();
    private ProbeDataset _train = null!, _validation = null!;

    /// <summary>Releases the backend (BenchmarkDotNet calls it once the benchmarks of an instance have run).</summary>
    [GlobalCleanup]
    public void Cleanup() => _backend.Dispose();

    [GlobalSetup]
    public void Setup()
    {
        _train = SyntheticProbeData.Train();
        _validation = SyntheticProbeData.Validation();
    }

    /// <summary>Standardisation, initialisation, and for the positional probe one epoch of each stage (linear path, then the whole probe) of 44 mini-batches with their validation passes.</summary>
    [Benchmark]
    public int Epoch()
    {
        using var probe = ProbeTrainer.Train(_backend, _train, _validation, SyntheticProbeData.Classes(_train, _validation), new ProbeOptions { MaxEpochs = 1 });
        return probe.Epochs;
    }
}
