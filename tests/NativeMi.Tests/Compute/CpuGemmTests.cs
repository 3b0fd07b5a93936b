using System.Diagnostics;
using System.Runtime.Intrinsics.X86;
using NativeMi.Compute;
using NativeMi.Compute.Cpu;
using Xunit;

namespace NativeMi.Tests.Compute;

/// <summary>CpuGemm against a double-precision reference, on awkward shapes and every operand layout.</summary>
public class CpuGemmTests
{
    public static TheoryData<int, int, int> Shapes => new()
    {
        { 1, 1, 1 }, { 1, 7, 3 }, { 5, 3, 17 }, { 17, 33, 65 }, { 129, 257, 31 }, { 13, 600, 70 }, { 37, 19, 129 },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void EveryLayoutBiasAndActivationMatchesTheReference(int m, int k, int n)
    {
        foreach (bool transposeA in new[] { false, true })
            foreach (bool transposeB in new[] { false, true })
                foreach (bool accumulate in new[] { false, true })
                    foreach (bool bias in new[] { false, true })
                        foreach (Activation activation in Enum.GetValues<Activation>())
                            GemmChecks.AssertMatches(m, k, n, transposeA, transposeB, accumulate, bias, activation);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void LargeShapeMatchesTheReference(bool transposeA, bool transposeB)
    {
        GemmChecks.AssertMatches(64, 384, 1536, transposeA, transposeB, accumulate: false, bias: true, Activation.GeluExact);
        GemmChecks.AssertMatches(64, 384, 1536, transposeA, transposeB, accumulate: true, bias: false, Activation.None);
    }

    [Theory]
    [InlineData(0, 5, 3)]
    [InlineData(3, 5, 0)]
    [InlineData(0, 0, 0)]
    public void EmptyOutputsAreNoOps(int m, int k, int n)
    {
        var c = new float[Math.Max(1, m * n)];
        c.AsSpan().Fill(42);
        CpuGemm.Multiply(new float[m * k], new float[k * n], new float[n], c, m, k, n, Activation.GeluExact, true, true, true);
        Assert.All(c, v => Assert.Equal(42f, v));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void EmptyInnerDimensionLeavesBiasAndActivation(bool accumulate)
    {
        int m = 3, n = 5;
        foreach (Activation activation in Enum.GetValues<Activation>())
            foreach (bool bias in new[] { false, true })
                GemmChecks.AssertMatches(m, 0, n, false, false, accumulate, bias, activation);
    }

    [Theory]
    [InlineData(Activation.GeluExact)]
    [InlineData(Activation.GeluTanh)]
    public void ActivationEpilogueEqualsCpuMathBitForBit(Activation activation) =>
        Assert.True(GemmChecks.EpilogueIsBitExact(activation), $"{activation} on {CpuGemm.ActivePath}");

    [Fact]
    public void UploadedMatrixKeepsNoRawCopyButDownloadsAndMultipliesExactly()
    {
        const int k = 37, n = 53, m = 5;
        var rng = new Random(3);
        float[] b = Enumerable.Range(0, k * n).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        float[] a = Enumerable.Range(0, m * k).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        using var backend = new CpuBackend();
        using var packed = backend.UploadMatrix(b, k, n);
        Assert.Equal(k * n, packed.Length);
        var back = new float[k * n];
        backend.Download(packed, back);
        Assert.Equal(b, back);
        var prefix = new float[100];
        backend.Download(packed, prefix);
        Assert.Equal(b.Take(100), prefix);
        Assert.Throws<ArgumentException>(() => CpuBackend.Array(packed));

        using var input = backend.Upload<float>(a);
        using var plain = backend.Upload<float>(b);
        using var viaPacked = backend.Allocate<float>(m * n);
        using var viaPlain = backend.Allocate<float>(m * n);
        backend.Gemm(input, packed, null, viaPacked, m, k, n, Activation.None);
        backend.Gemm(input, plain, null, viaPlain, m, k, n, Activation.None);
        Assert.Equal(CpuBackend.Array(viaPlain), CpuBackend.Array(viaPacked));
        Assert.Throws<ArgumentException>(() => backend.Gemm(input, packed, null, viaPacked, m, k - 1, n, Activation.None));
    }

    [Fact]
    public void RejectsShortBuffers()
    {
        Assert.Throws<ArgumentException>(() => CpuGemm.Multiply(new float[5], new float[6], default, new float[4], 2, 3, 2));
        Assert.Throws<ArgumentException>(() => CpuGemm.Multiply(new float[6], new float[6], new float[1], new float[4], 2, 3, 2));
    }

    [Fact]
    public void RepeatedAndConcurrentRunsAreBitIdentical()
    {
        const int m = 300, k = 700, n = 200;
        var rng = new Random(7);
        float[] a = GemmChecks.RandomArray(rng, m * k), b = GemmChecks.RandomArray(rng, k * n), bias = GemmChecks.RandomArray(rng, n);
        float[] first = new float[m * n];
        CpuGemm.Multiply(a, b, bias, first, m, k, n, Activation.GeluTanh);
        var results = new float[6][];
        Parallel.For(0, results.Length, i =>
        {
            results[i] = new float[m * n];
            CpuGemm.Multiply(a, b, bias, results[i], m, k, n, Activation.GeluTanh);
        });
        foreach (float[] r in results) Assert.True(first.AsSpan().SequenceEqual(r));
    }

    [Fact]
    public void BackendGemmExUsesTransposedOperandsInPlace()
    {
        var backend = new CpuBackend();
        var rng = new Random(3);
        int m = 23, k = 41, n = 37;
        float[] aT = GemmChecks.RandomArray(rng, k * m), bT = GemmChecks.RandomArray(rng, n * k), c0 = GemmChecks.RandomArray(rng, m * n);
        var c = new CpuBuffer<float>((float[])c0.Clone());
        backend.GemmEx(new CpuBuffer<float>(aT), true, new CpuBuffer<float>(bT), true, c, m, k, n, accumulate: true);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = c0[i * n + j];
                for (int p = 0; p < k; p++) s += (double)aT[p * m + i] * bT[j * k + p];
                Assert.True(Math.Abs(c.Data[i * n + j] - s) < 1e-4, $"({i},{j}): {c.Data[i * n + j]} vs {s}");
            }
    }

    /// <summary>
    /// Each instruction-set path, forced in a child process through the runtime's DOTNET_Enable* switches
    /// (the test assembly's own entry point runs <see cref="GemmChecks.Probe"/>); the child reports the path it took.
    /// </summary>
    [Theory]
    [InlineData("avx2", "DOTNET_EnableAVX512F=0", "DOTNET_EnableAVX512=0")]
    [InlineData("scalar", "DOTNET_EnableAVX2=0")]
    [InlineData("scalar", "DOTNET_EnableHWIntrinsic=0")]
    public void ForcedInstructionSetPathsMatchTheReference(string expected, params string[] environment)
    {
        if (expected == "avx2" && !(Avx2.IsSupported && Fma.IsSupported)) expected = "scalar";
        string output = RunProbe(environment);
        Assert.Contains($"path={expected}", output);
        Assert.Contains("failures=0", output);
    }

    [Fact]
    public void DefaultPathInAChildProcessMatchesThisProcess()
    {
        string output = RunProbe([]);
        Assert.Contains($"path={CpuGemm.ActivePath}", output);
        Assert.Contains("failures=0", output);
    }

    private static string RunProbe(string[] environment)
    {
        string host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
        var start = new ProcessStartInfo(host)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("exec");
        start.ArgumentList.Add(typeof(CpuGemmTests).Assembly.Location);
        start.ArgumentList.Add(GemmChecks.ProbeArgument);
        foreach (string pair in environment)
        {
            int eq = pair.IndexOf('=');
            start.Environment[pair[..eq]] = pair[(eq + 1)..];
        }
        using var process = Process.Start(start)!;
        Task<string> error = process.StandardError.ReadToEndAsync();
        string output = process.StandardOutput.ReadToEnd();
        Assert.True(process.WaitForExit(120_000), "GEMM probe did not finish");
        Assert.True(process.ExitCode == 0, $"GEMM probe exited {process.ExitCode}: {output} {error.Result}");
        return output;
    }
}

/// <summary>Reference comparison shared by the tests and the child-process probe.</summary>
public static class GemmChecks
{
    /// <summary>Argument that makes the test assembly's entry point run <see cref="Probe"/>.</summary>
    public const string ProbeArgument = "gemm-probe";

    public static float[] RandomArray(Random rng, int length)
    {
        var x = new float[length];
        for (int i = 0; i < length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        return x;
    }

    /// <summary>
    /// Largest |C - reference| over its tolerance: 1e-6 · sqrt(k + 1) · (1 + Σ|terms|), a few times the float
    /// rounding of a k-term sum, yet below the size of any single missing or doubled term.
    /// </summary>
    public static double WorstError(int m, int k, int n, bool transposeA, bool transposeB, bool accumulate, bool bias, Activation activation, int seed = 1)
    {
        var rng = new Random(seed + m * 7919 + k * 104729 + n * 31);
        float[] a = RandomArray(rng, m * k), b = RandomArray(rng, k * n), c0 = RandomArray(rng, m * n);
        float[] biasValues = bias ? RandomArray(rng, n) : [];
        float[] c = (float[])c0.Clone();
        CpuGemm.Multiply(a, b, biasValues, c, m, k, n, activation, transposeA, transposeB, accumulate);
        double worst = 0;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double sum = accumulate ? c0[i * n + j] : 0, magnitude = Math.Abs(sum);
                for (int p = 0; p < k; p++)
                {
                    double term = (double)(transposeA ? a[p * m + i] : a[i * k + p]) * (transposeB ? b[j * k + p] : b[p * n + j]);
                    sum += term;
                    magnitude += Math.Abs(term);
                }
                if (bias) { sum += biasValues[j]; magnitude += Math.Abs(biasValues[j]); }
                double expected = activation switch
                {
                    Activation.GeluExact => 0.5 * sum * (1 + Erf(sum / Math.Sqrt(2))),
                    Activation.GeluTanh => 0.5 * sum * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (sum + 0.044715 * sum * sum * sum))),
                    _ => sum,
                };
                double tolerance = 1e-6 * Math.Sqrt(k + 1) * (1 + magnitude);
                worst = Math.Max(worst, Math.Abs(c[i * n + j] - expected) / tolerance);
            }
        return worst;
    }

    public static void AssertMatches(int m, int k, int n, bool transposeA, bool transposeB, bool accumulate, bool bias, Activation activation)
    {
        double worst = WorstError(m, k, n, transposeA, transposeB, accumulate, bias, activation);
        Assert.True(worst <= 1, $"{m}×{k}×{n} transposeA={transposeA} transposeB={transposeB} accumulate={accumulate} bias={bias} " +
            $"{activation} on {CpuGemm.ActivePath}: error {worst:F2}× the tolerance");
    }

    /// <summary>The fused activation equals <see cref="CpuMath"/> applied afterwards, bit for bit.</summary>
    public static bool EpilogueIsBitExact(Activation activation)
    {
        const int m = 37, k = 50, n = 301;
        var rng = new Random(11);
        float[] a = RandomArray(rng, m * k), b = RandomArray(rng, k * n), bias = RandomArray(rng, n);
        for (int i = 0; i < a.Length; i++) a[i] *= 3;
        float[] plain = new float[m * n], fused = new float[m * n];
        CpuGemm.Multiply(a, b, bias, plain, m, k, n, Activation.None);
        CpuGemm.Multiply(a, b, bias, fused, m, k, n, activation);
        for (int i = 0; i < plain.Length; i++)
        {
            float expected = activation == Activation.GeluExact ? CpuMath.GeluExact(plain[i]) : CpuMath.GeluTanh(plain[i]);
            if (BitConverter.SingleToInt32Bits(expected) != BitConverter.SingleToInt32Bits(fused[i])) return false;
        }
        return true;
    }

    /// <summary>erf in double precision (Numerical Recipes' erfc Chebyshev fit, relative error below 1.2e-7).</summary>
    private static double Erf(double x)
    {
        double z = Math.Abs(x), t = 1 / (1 + 0.5 * z);
        double erfc = t * Math.Exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
            t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
        return x >= 0 ? 1 - erfc : erfc - 1;
    }

    /// <summary>
    /// Checks a compact set of shapes and layouts on whichever path this process selected, prints
    /// "path=…" and "failures=N" and returns N.
    /// </summary>
    public static int Probe()
    {
        Console.WriteLine($"path={CpuGemm.ActivePath}");
        int failures = 0;
        var shapes = new (int M, int K, int N)[] { (1, 1, 1), (5, 3, 17), (17, 33, 65), (129, 257, 31), (40, 300, 100), (30, 800, 70) };
        foreach (var (m, k, n) in shapes)
            foreach (bool transposeA in new[] { false, true })
                foreach (bool transposeB in new[] { false, true })
                    foreach (bool accumulate in new[] { false, true })
                    {
                        var activation = (Activation)((m + (transposeA ? 1 : 0) + (accumulate ? 2 : 0)) % 3);
                        double worst = WorstError(m, k, n, transposeA, transposeB, accumulate, bias: !accumulate, activation);
                        if (!(worst <= 1))
                        {
                            failures++;
                            Console.WriteLine($"FAIL {m}×{k}×{n} tA={transposeA} tB={transposeB} acc={accumulate} {activation}: {worst:F2}× tolerance");
                        }
                    }
        foreach (Activation activation in new[] { Activation.GeluExact, Activation.GeluTanh })
            if (!EpilogueIsBitExact(activation))
            {
                failures++;
                Console.WriteLine($"FAIL fused {activation} differs from CpuMath");
            }
        foreach (var (batch, seq, heads, headDim, causal) in new[] { (3, 27, 2, 32, false), (2, 19, 2, 12, true) })
        {
            double worst = AttentionChecks.WorstError(batch, seq, heads, headDim, causal);
            if (!(worst <= 1))
            {
                failures++;
                Console.WriteLine($"FAIL attention {batch}×{seq}, {heads}×{headDim} causal={causal}: {worst:F2}× tolerance");
            }
        }
        Console.WriteLine($"failures={failures}");
        return failures;
    }
}

/// <summary>Entry point of the test assembly, so a child process can run the GEMM probe under other runtime switches.</summary>
internal static class TestAssemblyEntryPoint
{
    private static int Main(string[] args) =>
        args.Length > 0 && args[0] == GemmChecks.ProbeArgument ? GemmChecks.Probe() : 0;
}
