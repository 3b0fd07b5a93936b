using BenchmarkDotNet.Attributes;
using NativeMi.Compute;
using NativeMi.Compute.Cpu;

namespace NativeMi.Benchmarks;

/// <summary>
/// CpuGemm with B pre-packed on each micro-kernel path this machine accelerates, forced in-process: the vector128 row
/// is the kernel an ARM64 machine now runs (here on x86 with AVX-512's 32 registers, which AdvSimd also has) and the
/// scalar row the one it ran before, at minilm's feed-forward shapes for a batch of 32 (864 rows) and 8 (216 rows).
/// </summary>
[MedianColumn, MinColumn]
public class GemmPathBenchmarks
{
    private float[] _a = [], _bias = [], _c = [];
    private PackedMatrix? _b;
    private int _m;

    /// <summary>The forced path, as <see cref="CpuGemm.ActivePath"/> names it.</summary>
    [ParamsSource(nameof(Paths))]
    public string Path { get; set; } = "scalar";

    /// <summary>m×k×n.</summary>
    [Params("864x384x1536", "216x1536x384")]
    public string Shape { get; set; } = "864x384x1536";

    /// <summary>The accelerated paths, widest first, and the scalar one.</summary>
    public static IEnumerable<string> Paths => Enum.GetValues<GemmPath>().Reverse().Where(CpuGemm.IsSupported).Select(CpuGemm.Name);

    [GlobalSetup]
    public void Setup()
    {
        var (m, k, n) = GemmBenchmarks.ParseShape(Shape);
        GemmPath path = Enum.GetValues<GemmPath>().First(p => CpuGemm.Name(p) == Path);
        var rng = new Random(1);
        _m = m;
        _a = Fill(rng, m * k);
        _bias = Fill(rng, n);
        _c = new float[m * n];
        _b = CpuGemm.PackB(Fill(rng, k * n), k, n, path);
    }

    [Benchmark]
    public float Multiply()
    {
        CpuGemm.Multiply(_a, _b!, _bias, _c, _m, Activation.None);
        return _c[0];
    }

    internal static float[] Fill(Random rng, int length, float scale = 1f)
    {
        var x = new float[length];
        for (int i = 0; i < length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
        return x;
    }
}

/// <summary>The element-wise operators over 2^20 floats at each width this machine accelerates, forced in-process.</summary>
[MedianColumn, MinColumn]
public class ActivationWidthBenchmarks
{
    private readonly float[] _x = GemmPathBenchmarks.Fill(new Random(2), 1 << 20, 6f), _y = GemmPathBenchmarks.Fill(new Random(3), 1 << 20);
    private readonly float[] _result = new float[1 << 20];

    /// <summary>Float lanes of the forced width (1 is scalar).</summary>
    [ParamsSource(nameof(Widths))]
    public int Lanes { get; set; } = 1;

    /// <summary>The operator.</summary>
    [Params("gelu-exact", "gelu-tanh", "gelu-backward", "swiglu")]
    public string Operator { get; set; } = "gelu-exact";

    /// <summary>The accelerated widths.</summary>
    public static IEnumerable<int> Widths => Enum.GetValues<VectorWidth>().Where(VectorLoop.IsSupported).Select(w => (int)w);

    [Benchmark]
    public float Apply()
    {
        var width = (VectorWidth)Lanes;
        switch (Operator)
        {
            case "gelu-exact": VectorLoop.Apply<GeluExactOperator>(_x, _result, width); break;
            case "gelu-tanh": VectorLoop.Apply<GeluTanhOperator>(_x, _result, width); break;
            case "gelu-backward": VectorLoop.Apply<GeluBackwardOperator>(_x, _y, _result, width); break;
            default: VectorLoop.Apply<GatedOperator<SiluOperator>>(_x, _y, _result, width); break;
        }
        return _result[0];
    }
}
