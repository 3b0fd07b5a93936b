using System.Diagnostics;
using System.Runtime.Intrinsics.X86;
using NativeMi.Compute;
using NativeMi.Compute.Cpu;
using Xunit;

namespace NativeMi.Tests.Compute;

/// <summary>A theory on one GEMM micro-kernel path, forced in this process: skipped, with the reason, where the path is not accelerated.</summary>
public sealed class GemmPathTheoryAttribute : TheoryAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when the path would run in software here.</summary>
    public GemmPathTheoryAttribute(int path)
    {
        if (!CpuGemm.IsSupported((GemmPath)path))
            Skip = $"the {CpuGemm.Name((GemmPath)path)} GEMM path is not accelerated on this {System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture} machine";
    }
}

/// <summary>A fact on GEMM micro-kernel paths forced in this process: skipped, with the reason, unless all of them are accelerated.</summary>
public sealed class GemmPathFactAttribute : FactAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when any of the paths would run in software here.</summary>
    public GemmPathFactAttribute(params int[] paths)
    {
        foreach (int path in paths)
            if (!CpuGemm.IsSupported((GemmPath)path))
                Skip = $"the {CpuGemm.Name((GemmPath)path)} GEMM path is not accelerated on this {System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture} machine";
    }
}

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

    [GemmPathTheory((int)GemmPath.Scalar)]
    [MemberData(nameof(Shapes))]
    public void ScalarPathMatchesTheReference(int m, int k, int n) => GemmChecks.AssertPathMatches(m, k, n, GemmPath.Scalar);

    [GemmPathTheory((int)GemmPath.Vector128)]
    [MemberData(nameof(Shapes))]
    public void Vector128PathMatchesTheReference(int m, int k, int n) => GemmChecks.AssertPathMatches(m, k, n, GemmPath.Vector128);

    [GemmPathTheory((int)GemmPath.Vector256)]
    [MemberData(nameof(Shapes))]
    public void Vector256PathMatchesTheReference(int m, int k, int n) => GemmChecks.AssertPathMatches(m, k, n, GemmPath.Vector256);

    [GemmPathTheory((int)GemmPath.Vector512)]
    [MemberData(nameof(Shapes))]
    public void Vector512PathMatchesTheReference(int m, int k, int n) => GemmChecks.AssertPathMatches(m, k, n, GemmPath.Vector512);

    /// <summary>
    /// The vector paths sum every element of C in the same order with the same fused multiply-adds (only the number
    /// of elements per register differs), so each gives the bits of the 128-bit path: raw, packed, 16-bit packed,
    /// accumulating, with bias and activations, across K blocks (k = 800 is three of them).
    /// </summary>
    [GemmPathFact((int)GemmPath.Vector128, (int)GemmPath.Vector256)]
    public void The256BitPathGivesTheBitsOfThe128BitPath() => AssertSameBitsAs128(GemmPath.Vector256);

    [GemmPathFact((int)GemmPath.Vector128, (int)GemmPath.Vector512)]
    public void The512BitPathGivesTheBitsOfThe128BitPath() => AssertSameBitsAs128(GemmPath.Vector512);

    private static void AssertSameBitsAs128(GemmPath other)
    {
        foreach (var (m, k, n) in new[] { (1, 1, 1), (5, 3, 17), (37, 19, 129), (129, 257, 31), (30, 800, 70), (64, 384, 1536) })
            foreach (Activation activation in Enum.GetValues<Activation>())
                foreach (bool accumulate in new[] { false, true })
                {
                    string what = $"{m}×{k}×{n} {activation} accumulate={accumulate} on {CpuGemm.Name(other)}";
                    var results = new[] { GemmPath.Vector128, other }.Select(p => GemmChecks.AllForms(m, k, n, activation, accumulate, p)).ToArray();
                    for (int form = 0; form < results[0].Length; form++)
                        Assert.True(results[0][form].AsSpan().SequenceEqual(results[1][form]), $"{what}: form {form} differs from the 128-bit path");
                }
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
    [InlineData(nameof(Activation.GeluExact))]
    [InlineData(nameof(Activation.GeluTanh))]
    public void ActivationEpilogueEqualsCpuMathBitForBit(string activation) =>
        Assert.True(GemmChecks.EpilogueIsBitExact(Enum.Parse<Activation>(activation)), $"{activation} on {CpuGemm.ActivePath}");

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

    /// <summary>
    /// A few rows against pre-packed B (one sentence through minilm's projections) pack A on the calling thread and are
    /// tiled by column ranges alone, each B panel used by every row panel in turn; many rows pack A in parallel and tile
    /// C by row and column blocks. Each row of C must have the same bits either way.
    /// </summary>
    [Theory]
    [InlineData(24, 384, 1536)]
    [InlineData(3, 384, 32)]
    [InlineData(10, 384, 1152)]
    [InlineData(10, 384, 384)]
    [InlineData(10, 384, 1536)]
    [InlineData(10, 1536, 384)]
    [InlineData(1, 1536, 384)]
    public void FewRowsGiveTheBitsOfTheSameRowsInALargerProduct(int m, int k, int n)
    {
        const int manyRows = 300;
        var rng = new Random(11);
        float[] a = GemmChecks.RandomArray(rng, manyRows * k), b = GemmChecks.RandomArray(rng, k * n), bias = GemmChecks.RandomArray(rng, n);
        PackedMatrix packed = CpuGemm.PackB(b, k, n);
        foreach (Activation activation in new[] { Activation.None, Activation.GeluExact })
        {
            float[] few = new float[m * n], many = new float[manyRows * n];
            CpuGemm.Multiply(a, packed, bias, few, m, activation);
            CpuGemm.Multiply(a, packed, bias, many, manyRows, activation);
            for (int i = 0; i < m * n; i++)
                Assert.Equal(BitConverter.SingleToInt32Bits(many[i]), BitConverter.SingleToInt32Bits(few[i]));
        }
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

    /// <summary>
    /// Packing a transposed operand only reorders its values (B eight columns by eight K steps at a time in registers),
    /// so a product with transposed storage gives exactly the bits of the same product with the transposes written out
    /// row-major, on every path and for shapes with edge panels and K steps left over.
    /// </summary>
    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(7, 9, 13)]
    [InlineData(30, 17, 65)]
    [InlineData(245, 1001, 256)]
    [InlineData(64, 800, 100)]
    public void TransposedOperandsGiveTheBitsOfTheirRowMajorForm(int m, int k, int n)
    {
        var rng = new Random(m * 31 + k * 7 + n);
        float[] a = GemmChecks.RandomArray(rng, m * k), b = GemmChecks.RandomArray(rng, k * n), bias = GemmChecks.RandomArray(rng, n);
        float[] aT = new float[k * m], bT = new float[n * k];
        for (int i = 0; i < m; i++)
            for (int p = 0; p < k; p++) aT[p * m + i] = a[i * k + p];
        for (int p = 0; p < k; p++)
            for (int j = 0; j < n; j++) bT[j * k + p] = b[p * n + j];
        foreach (GemmPath path in Enum.GetValues<GemmPath>().Where(CpuGemm.IsSupported))
        {
            float[] expected = new float[m * n];
            CpuGemm.Multiply(a, b, bias, expected, m, k, n, Activation.None, false, false, false, path);
            foreach (var (transposeA, transposeB) in new[] { (true, false), (false, true), (true, true) })
            {
                float[] c = new float[m * n];
                CpuGemm.Multiply(transposeA ? aT : a, transposeB ? bT : b, bias, c, m, k, n, Activation.None, transposeA, transposeB, false, path);
                Assert.True(expected.AsSpan().SequenceEqual(c), $"{m}×{k}×{n} on {CpuGemm.Name(path)}, transposeA={transposeA} transposeB={transposeB}");
            }
        }
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
    [InlineData("avx512", "DOTNET_PreferredVectorBitWidth=256")]
    [InlineData("scalar", "DOTNET_EnableAVX2=0")]
    [InlineData("scalar", "DOTNET_EnableHWIntrinsic=0")]
    public void ForcedInstructionSetPathsMatchTheReference(string expected, params string[] environment)
    {
        if (expected == "avx2" && !(Avx2.IsSupported && Fma.IsSupported)) expected = "scalar";
        // Where the runtime prefers 256-bit code (Skylake-X), the kernel still takes AVX-512 and the epilogue its width.
        if (expected == "avx512" && !Avx512F.IsSupported) expected = CpuGemm.ActivePath;
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
internal static class GemmChecks
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
    public static double WorstError(int m, int k, int n, bool transposeA, bool transposeB, bool accumulate, bool bias, Activation activation, int seed = 1) =>
        WorstError(m, k, n, transposeA, transposeB, accumulate, bias, activation, seed, CpuGemm.Selected);

    internal static double WorstError(int m, int k, int n, bool transposeA, bool transposeB, bool accumulate, bool bias, Activation activation, int seed,
        GemmPath path)
    {
        var rng = new Random(seed + m * 7919 + k * 104729 + n * 31);
        float[] a = RandomArray(rng, m * k), b = RandomArray(rng, k * n), c0 = RandomArray(rng, m * n);
        float[] biasValues = bias ? RandomArray(rng, n) : [];
        float[] c = (float[])c0.Clone();
        CpuGemm.Multiply(a, b, biasValues, c, m, k, n, activation, transposeA, transposeB, accumulate, path);
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

    /// <summary>
    /// Every layout, bias and activation on a forced path against the reference, the products with B packed for that
    /// path (fp32 and BF16, the latter equal to the fp32 product over the widened values) and the fused epilogue.
    /// </summary>
    internal static void AssertPathMatches(int m, int k, int n, GemmPath path)
    {
        foreach (bool transposeA in new[] { false, true })
            foreach (bool transposeB in new[] { false, true })
                foreach (bool accumulate in new[] { false, true })
                    foreach (bool bias in new[] { false, true })
                        foreach (Activation activation in Enum.GetValues<Activation>())
                        {
                            double worst = WorstError(m, k, n, transposeA, transposeB, accumulate, bias, activation, 1, path);
                            Assert.True(worst <= 1, $"{m}×{k}×{n} transposeA={transposeA} transposeB={transposeB} accumulate={accumulate} bias={bias} " +
                                $"{activation} on {CpuGemm.Name(path)}: error {worst:F2}× the tolerance");
                        }
        foreach (Activation activation in Enum.GetValues<Activation>())
        {
            float[][] forms = AllForms(m, k, n, activation, accumulate: false, path);
            Assert.True(forms[0].AsSpan().SequenceEqual(forms[1]), $"{m}×{k}×{n} {activation} on {CpuGemm.Name(path)}: packed B differs from raw B");
            Assert.True(forms[2].AsSpan().SequenceEqual(forms[3]), $"{m}×{k}×{n} {activation} on {CpuGemm.Name(path)}: BF16 panels differ from the widened fp32 product");
        }
        foreach (Activation activation in new[] { Activation.GeluExact, Activation.GeluTanh })
            Assert.True(EpilogueIsBitExact(activation, path), $"{activation} epilogue on {CpuGemm.Name(path)} differs from CpuMath");
    }

    /// <summary>
    /// One product in four forms on <paramref name="path"/>: raw B, B packed as fp32, BF16-rounded B packed as fp32 and
    /// the same BF16 values packed 16-bit (transposed, as a Hugging Face weight), each into C = random when accumulating.
    /// </summary>
    internal static float[][] AllForms(int m, int k, int n, Activation activation, bool accumulate, GemmPath path)
    {
        var rng = new Random(m * 7919 + k * 104729 + n * 31);
        float[] a = RandomArray(rng, m * k), b = RandomArray(rng, k * n), bias = RandomArray(rng, n), c0 = RandomArray(rng, m * n);
        ushort[] bf16 = new ushort[k * n];
        float[] widened = new float[k * n];
        for (int p = 0; p < k; p++)
            for (int j = 0; j < n; j++)
            {
                bf16[j * k + p] = SixteenBitWeights.ToBFloat16(b[p * n + j]);
                widened[p * n + j] = SixteenBitWeights.Widen(bf16[j * k + p], WeightFormat.BFloat16);
            }
        float[] Run(Action<float[]> product)
        {
            float[] c = accumulate ? (float[])c0.Clone() : new float[m * n];
            product(c);
            return c;
        }
        return
        [
            Run(c => CpuGemm.Multiply(a, b, bias, c, m, k, n, activation, false, false, accumulate, path)),
            accumulate ? Run(c => CpuGemm.Multiply(a, b, bias, c, m, k, n, activation, false, false, accumulate, path))
                : Run(c => CpuGemm.Multiply(a, CpuGemm.PackB(b, k, n, path), bias, c, m, activation)),
            accumulate ? Run(c => CpuGemm.Multiply(a, widened, bias, c, m, k, n, activation, false, false, accumulate, path))
                : Run(c => CpuGemm.Multiply(a, CpuGemm.PackB(widened, k, n, path), bias, c, m, activation)),
            accumulate ? Run(c => CpuGemm.Multiply(a, widened, bias, c, m, k, n, activation, false, false, accumulate, path))
                : Run(c => CpuGemm.Multiply(a, CpuGemm.PackB(bf16, k, n, WeightFormat.BFloat16, transposed: true, path), bias, c, m, activation)),
        ];
    }

    /// <summary>The fused activation equals <see cref="CpuMath"/> applied afterwards, bit for bit.</summary>
    public static bool EpilogueIsBitExact(Activation activation) => EpilogueIsBitExact(activation, CpuGemm.Selected);

    internal static bool EpilogueIsBitExact(Activation activation, GemmPath path)
    {
        const int m = 37, k = 50, n = 301;
        var rng = new Random(11);
        float[] a = RandomArray(rng, m * k), b = RandomArray(rng, k * n), bias = RandomArray(rng, n);
        for (int i = 0; i < a.Length; i++) a[i] *= 3;
        float[] plain = new float[m * n], fused = new float[m * n];
        CpuGemm.Multiply(a, b, bias, plain, m, k, n, Activation.None, false, false, false, path);
        CpuGemm.Multiply(a, b, bias, fused, m, k, n, activation, false, false, false, path);
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
