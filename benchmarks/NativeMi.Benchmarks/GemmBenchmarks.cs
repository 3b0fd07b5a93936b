using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using NativeMi.Compute;
using NativeMi.Compute.Cpu;

namespace NativeMi.Benchmarks;

/// <summary>
/// CpuGemm on the shapes of minilm's layers (1024 tokens: QKV, attention output, FFN up and down) and two probe
/// shapes, with bias. The GFLOP/s column is 2·m·k·n over the mean time; compare it with <see cref="FmaPeakBenchmarks"/>
/// (run both with <c>--filter *Gemm* *FmaPeak* --join</c>).
/// </summary>
[Config(typeof(GflopsConfig))]
public class GemmBenchmarks
{
    private float[] _a = [], _b = [], _bias = [], _c = [];
    private int _m, _k, _n;

    /// <summary>m×k×n.</summary>
    [Params("1024x384x1152", "1024x384x384", "1024x384x1536", "1024x1536x384", "350x512x879", "512x350x879")]
    public string Shape { get; set; } = "1024x384x1152";

    [GlobalSetup]
    public void Setup()
    {
        (_m, _k, _n) = ParseShape(Shape);
        var rng = new Random(1);
        _a = Fill(rng, _m * _k);
        _b = Fill(rng, _k * _n);
        _bias = Fill(rng, _n);
        _c = new float[_m * _n];
    }

    [Benchmark]
    public float Multiply()
    {
        CpuGemm.Multiply(_a, _b, _bias, _c, _m, _k, _n, Activation.None);
        return _c[0];
    }

    /// <summary>Parses "MxKxN".</summary>
    public static (int M, int K, int N) ParseShape(string shape)
    {
        int[] parts = shape.Split('x').Select(int.Parse).ToArray();
        return (parts[0], parts[1], parts[2]);
    }

    private static float[] Fill(Random rng, int length)
    {
        var x = new float[length];
        for (int i = 0; i < length; i++) x[i] = (float)(rng.NextDouble() - 0.5);
        return x;
    }
}

/// <summary>
/// Peak FMA throughput: independent FMA chains held in registers (12 accumulators, enough to cover FMA latency on
/// two ports), 512- and 256-bit, on one thread and on every core. The ceiling for <see cref="GemmBenchmarks"/>.
/// </summary>
[Config(typeof(GflopsConfig))]
public class FmaPeakBenchmarks
{
    /// <summary>Loop trips per thread; each trip is 12 FMAs.</summary>
    public const long Iterations = 10_000_000;

    /// <summary>Chains of 512-bit FMAs on one thread.</summary>
    [Benchmark]
    public float Fma512OneThread() => Avx512F.IsSupported ? Chains512(Iterations) : float.NaN;

    /// <summary>Chains of 512-bit FMAs on every core.</summary>
    [Benchmark]
    public float Fma512AllThreads() => AllThreads(() => Avx512F.IsSupported ? Chains512(Iterations) : float.NaN);

    /// <summary>Chains of 256-bit FMAs on one thread.</summary>
    [Benchmark]
    public float Fma256OneThread() => Fma.IsSupported ? Chains256(Iterations) : float.NaN;

    /// <summary>Chains of 256-bit FMAs on every core.</summary>
    [Benchmark]
    public float Fma256AllThreads() => AllThreads(() => Fma.IsSupported ? Chains256(Iterations) : float.NaN);

    /// <summary>Floating-point operations one invocation of <paramref name="method"/> performs.</summary>
    public static double Flops(string method)
    {
        double lanes = method.StartsWith("Fma512", StringComparison.Ordinal) ? 16 : 8;
        double threads = method.EndsWith("AllThreads", StringComparison.Ordinal) ? Environment.ProcessorCount : 1;
        return threads * Iterations * 12 * lanes * 2;
    }

    /// <summary>
    /// <paramref name="body"/> once per core on the engine's own worker threads, as the GEMMs run: on the .NET pool the
    /// wake-up fell inside a short timing, which understated the peak and overstated every share of it.
    /// </summary>
    internal static float AllThreads(Func<float> body)
    {
        var results = new float[Environment.ProcessorCount];
        CpuWorkers.For(results.Length, i => results[i] = body());
        return results.Sum();
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    internal static float Chains512(long iterations)
    {
        Vector512<float> m = Vector512.Create(0.999999f), a = Vector512.Create(1e-7f);
        Vector512<float> s0 = Vector512.Create(1f), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0,
                         s6 = s0, s7 = s0, s8 = s0, s9 = s0, s10 = s0, s11 = s0;
        for (long i = 0; i < iterations; i++)
        {
            s0 = Avx512F.FusedMultiplyAdd(s0, m, a); s1 = Avx512F.FusedMultiplyAdd(s1, m, a);
            s2 = Avx512F.FusedMultiplyAdd(s2, m, a); s3 = Avx512F.FusedMultiplyAdd(s3, m, a);
            s4 = Avx512F.FusedMultiplyAdd(s4, m, a); s5 = Avx512F.FusedMultiplyAdd(s5, m, a);
            s6 = Avx512F.FusedMultiplyAdd(s6, m, a); s7 = Avx512F.FusedMultiplyAdd(s7, m, a);
            s8 = Avx512F.FusedMultiplyAdd(s8, m, a); s9 = Avx512F.FusedMultiplyAdd(s9, m, a);
            s10 = Avx512F.FusedMultiplyAdd(s10, m, a); s11 = Avx512F.FusedMultiplyAdd(s11, m, a);
        }
        return Vector512.Sum(s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7 + s8 + s9 + s10 + s11);
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    internal static float Chains256(long iterations)
    {
        Vector256<float> m = Vector256.Create(0.999999f), a = Vector256.Create(1e-7f);
        Vector256<float> s0 = Vector256.Create(1f), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0,
                         s6 = s0, s7 = s0, s8 = s0, s9 = s0, s10 = s0, s11 = s0;
        for (long i = 0; i < iterations; i++)
        {
            s0 = Fma.MultiplyAdd(s0, m, a); s1 = Fma.MultiplyAdd(s1, m, a);
            s2 = Fma.MultiplyAdd(s2, m, a); s3 = Fma.MultiplyAdd(s3, m, a);
            s4 = Fma.MultiplyAdd(s4, m, a); s5 = Fma.MultiplyAdd(s5, m, a);
            s6 = Fma.MultiplyAdd(s6, m, a); s7 = Fma.MultiplyAdd(s7, m, a);
            s8 = Fma.MultiplyAdd(s8, m, a); s9 = Fma.MultiplyAdd(s9, m, a);
            s10 = Fma.MultiplyAdd(s10, m, a); s11 = Fma.MultiplyAdd(s11, m, a);
        }
        return Vector256.Sum(s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7 + s8 + s9 + s10 + s11);
    }
}

/// <summary>Adds the GFLOP/s column (and the GEMM path) to the default configuration.</summary>
public sealed class GflopsConfig : ManualConfig
{
    public GflopsConfig()
    {
        AddColumn(new GflopsColumn());
        AddColumn(new TagColumn("Path", _ => CpuGemm.ActivePath));
    }
}

/// <summary>Floating-point operations per invocation over the mean time, in GFLOP/s.</summary>
public sealed class GflopsColumn : IColumn
{
    public string Id => nameof(GflopsColumn);
    public string ColumnName => "GFLOP/s";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 0;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => "Floating-point operations per second (2·m·k·n for a GEMM), 1e9, from the mean time";
    public bool IsAvailable(Summary summary) => true;
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        double? meanNanoseconds = summary[benchmarkCase]?.ResultStatistics?.Mean;
        if (meanNanoseconds is not > 0) return "-";
        double flops;
        if (benchmarkCase.Descriptor.Type == typeof(GemmBenchmarks))
        {
            var (m, k, n) = GemmBenchmarks.ParseShape((string)benchmarkCase.Parameters[nameof(GemmBenchmarks.Shape)]);
            flops = 2.0 * m * k * n;
        }
        else if (benchmarkCase.Descriptor.Type == typeof(FmaPeakBenchmarks))
        {
            flops = FmaPeakBenchmarks.Flops(benchmarkCase.Descriptor.WorkloadMethod.Name);
        }
        else return "-";
        return (flops / meanNanoseconds.Value).ToString("F1", System.Globalization.CultureInfo.InvariantCulture);
    }
}
