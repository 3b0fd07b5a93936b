using System.Runtime.Intrinsics;
using NativeMi.Compute;
using NativeMi.Compute.Cpu;
using Xunit;

namespace NativeMi.Tests.Compute;

/// <summary>
/// The vectorised probe kernels must return the bits of their scalar definitions (the measurement's figures
/// are compared digit for digit across versions).
/// </summary>
public class CpuProbeKernelTests
{
    private static bool SameBits(float a, float b) => float.IsNaN(a) ? float.IsNaN(b) : BitConverter.SingleToUInt32Bits(a) == BitConverter.SingleToUInt32Bits(b);

    private static IEnumerable<float> SampledFloats()
    {
        // Every 4099th bit pattern (all exponents, many mantissas) plus the edges of the special ranges.
        for (ulong bits = 0; bits <= uint.MaxValue; bits += 4099) yield return BitConverter.UInt32BitsToSingle((uint)bits);
        foreach (uint edge in new uint[] { 0x42b17217, 0xc2cff1b4, 0xc2ce8ecf, 0x42b00000, 0xc2b00000, 0x7f800000, 0xff800000, 0x7fc00000, 0x80000000, 0 })
            for (int delta = -3; delta <= 3; delta++) yield return BitConverter.UInt32BitsToSingle((uint)(edge + delta));
    }

    [Fact]
    public void ScalarExpMatchesMathFExpOnGlibc()
    {
        // ExpF reproduces glibc's expf (x86-64 FMA build); elsewhere MathF.Exp may round differently.
        if (!OperatingSystem.IsLinux() || !System.Runtime.Intrinsics.X86.Fma.IsSupported) return;
        long mismatches = 0;
        string first = "";
        foreach (float x in SampledFloats())
        {
            if (SameBits(MathF.Exp(x), ExpF.Exp(x))) continue;
            if (mismatches++ == 0) first = $"x = {x:R}: MathF.Exp {MathF.Exp(x):R}, ExpF {ExpF.Exp(x):R}";
        }
        Assert.True(mismatches == 0, $"{mismatches} mismatches; first {first}");
    }

    [Fact]
    public void VectorExpMatchesScalarExp()
    {
        if (!ExpF.IsVectorised) return;
        float[] xs = SampledFloats().ToArray();
        var lane = new float[8];
        for (int i = 0; i + 8 <= xs.Length; i += 8)
        {
            ExpF.Exp(Vector256.Create(xs.AsSpan(i, 8))).CopyTo(lane);
            for (int k = 0; k < 8; k++)
                Assert.True(SameBits(ExpF.Exp(xs[i + k]), lane[k]), $"x = {xs[i + k]:R}: scalar {ExpF.Exp(xs[i + k]):R}, vector {lane[k]:R}");
        }
    }

    /// <summary>The scalar definition the kernel had before it was vectorised.</summary>
    private static (float Loss, int Argmax) ReferenceSoftmaxCrossEntropy(Span<float> row, int target, float scale, bool writeGradient)
    {
        float max = float.NegativeInfinity, sum = 0f;
        int argmax = 0;
        for (int j = 0; j < row.Length; j++)
        {
            float v = row[j];
            if (v > max) { sum = sum * ExpF.Exp(max - v) + 1f; max = v; argmax = j; }
            else sum += ExpF.Exp(v - max);
        }
        float loss = max + MathF.Log(sum) - row[target];
        if (writeGradient)
        {
            float inverse = 1f / sum;
            for (int j = 0; j < row.Length; j++) row[j] = ExpF.Exp(row[j] - max) * inverse * scale;
            row[target] -= scale;
        }
        return (loss, argmax);
    }

    [Theory]
    [InlineData(2500, 1)]
    [InlineData(2503, 2)]
    [InlineData(7, 3)]
    [InlineData(64, 4)]
    public void SoftmaxCrossEntropyRowIsBitIdenticalToTheScalarLoop(int classes, int seed)
    {
        var random = new Random(seed);
        for (int trial = 0; trial < 20; trial++)
        {
            var row = new float[classes];
            for (int j = 0; j < classes; j++) row[j] = (float)(random.NextDouble() * 20 - 10) * (trial % 3 == 0 ? 10 : 1);
            if (trial == 5) row[classes / 2] = float.NaN;
            if (trial == 6) row.AsSpan().Fill(float.NegativeInfinity);
            if (trial == 7) for (int j = 0; j < classes; j++) row[j] = j; // the maximum moves in every chunk
            if (trial == 8) row[0] = 500; // the maximum never moves again: every exponential is reused for the gradient
            if (trial == 9) row[classes - 1] = 500; // the maximum moves last, in the tail when classes % 8 != 0: none is reused
            if (trial == 10) row[classes * 2 / 3] = 500; // reused after two thirds of the row
            var expected = (float[])row.Clone();
            int target = random.Next(classes);
            foreach (bool gradient in new[] { false, true })
            {
                var a = (float[])row.Clone();
                var b = (float[])expected.Clone();
                var (loss, argmax) = CpuProbeKernels.SoftmaxCrossEntropyRow(a, target, 1f / 350, gradient);
                var (refLoss, refArgmax) = ReferenceSoftmaxCrossEntropy(b, target, 1f / 350, gradient);
                Assert.True(SameBits(refLoss, loss), $"trial {trial}: loss {loss:R} vs {refLoss:R}");
                Assert.Equal(refArgmax, argmax);
                for (int j = 0; j < classes; j++) Assert.True(SameBits(b[j], a[j]), $"trial {trial}, class {j}: {a[j]:R} vs {b[j]:R}");
            }
        }
    }

    /// <summary>Values with signed zeros among them, so that 0 + (−0) and (−0) + 0 orders would show.</summary>
    private static float[] Values(Random random, int length) =>
        Enumerable.Range(0, length).Select(i => i % 17 == 0 ? -0f : i % 13 == 0 ? 0f : (float)(random.NextDouble() - 0.5) * (i % 5 + 1)).ToArray();

    private static void AssertSameBits(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++) Assert.True(SameBits(expected[i], actual[i]), $"{what}[{i}]: {actual[i]:R} vs {expected[i]:R}");
    }

    [Theory]
    [InlineData(245, 1001, false, false)]
    [InlineData(245, 1001, true, false)]
    [InlineData(30, 256, false, true)]
    [InlineData(7, 13, true, true)]
    public void GatherSumGivesTheBitsOfGatherAddAndBias(int rows, int width, bool accumulate, bool gelu)
    {
        var backend = new CpuBackend();
        var random = new Random(rows + width);
        const int firstRows = 32, secondRows = 45;
        var first = new CpuBuffer<float>(Values(random, firstRows * width));
        var second = new CpuBuffer<float>(Values(random, secondRows * width));
        var bias = new CpuBuffer<float>(Values(random, width));
        var firstIndices = new CpuBuffer<int>(Enumerable.Range(0, rows).Select(r => r * 7 % firstRows).ToArray());
        var secondIndices = new CpuBuffer<int>(Enumerable.Range(0, rows).Select(r => r % 9 * 5 % secondRows).ToArray());
        float[] start = Values(random, rows * width);
        // The sequence ProbeNetwork runs on backends without the fused op.
        var expected = new CpuBuffer<float>((float[])start.Clone());
        var expectedActivated = new CpuBuffer<float>(new float[rows * width]);
        var row = new CpuBuffer<float>(new float[rows * width]);
        if (accumulate)
        {
            backend.GatherRows(first, firstIndices, row, rows, width);
            backend.AddInPlace(expected, row, (long)rows * width);
        }
        else backend.GatherRows(first, firstIndices, expected, rows, width);
        backend.GatherRows(second, secondIndices, row, rows, width);
        backend.AddInPlace(expected, row, (long)rows * width);
        backend.BiasActivation(expected, bias, expected, gelu ? expectedActivated : expected, rows, width, gelu);
        var actual = new CpuBuffer<float>((float[])start.Clone());
        var activated = new CpuBuffer<float>(new float[rows * width]);
        backend.GatherSum(first, firstIndices, second, secondIndices, bias, actual, gelu ? activated : null, rows, width, accumulate);
        AssertSameBits(expected.Data, actual.Data, "output");
        if (gelu) AssertSameBits(expectedActivated.Data, activated.Data, "activated");
    }

    [Theory]
    [InlineData(245, 1001)]
    [InlineData(245, 256)]
    [InlineData(9, 13)]
    public void ReduceRowsGivesTheBitsOfColumnSumsAndScatterAdds(int rows, int width)
    {
        var backend = new CpuBackend();
        var random = new Random(rows * width);
        const int firstRows = 32, secondRows = 45;
        var source = new CpuBuffer<float>(Values(random, rows * width));
        var firstIndices = new CpuBuffer<int>(Enumerable.Range(0, rows).Select(r => r * 7 % firstRows).ToArray());
        var secondIndices = new CpuBuffer<int>(Enumerable.Range(0, rows).Select(r => r % 9 * 5 % secondRows).ToArray());
        var sums = new CpuBuffer<float>(new float[width]);
        var first = new CpuBuffer<float>(new float[firstRows * width]);
        var second = new CpuBuffer<float>(new float[secondRows * width]);
        backend.ColumnSums(source, sums, rows, width);
        backend.ScatterAddRows(source, firstIndices, first, rows, width);
        backend.ScatterAddRows(source, secondIndices, second, rows, width);
        // The fused op zeroes its targets itself: start them dirty.
        var actualSums = new CpuBuffer<float>(Values(random, width));
        var actualFirst = new CpuBuffer<float>(Values(random, firstRows * width));
        var actualSecond = new CpuBuffer<float>(Values(random, secondRows * width));
        backend.ReduceRows(source, actualSums, firstIndices, actualFirst, firstRows, secondIndices, actualSecond, secondRows, rows, width);
        AssertSameBits(sums.Data, actualSums.Data, "column sums");
        AssertSameBits(first.Data, actualFirst.Data, "first");
        AssertSameBits(second.Data, actualSecond.Data, "second");
    }

    [Fact]
    public void FusedProbeOpsRejectIndicesOutsideTheirTables()
    {
        var backend = new CpuBackend();
        var table = new CpuBuffer<float>(new float[4 * 3]);
        var bad = new CpuBuffer<int>([0, 4]);
        var good = new CpuBuffer<int>([0, 1]);
        var output = new CpuBuffer<float>(new float[2 * 3]);
        var bias = new CpuBuffer<float>(new float[3]);
        Assert.Throws<ArgumentOutOfRangeException>(() => backend.GatherSum(table, bad, table, good, bias, output, null, 2, 3, accumulate: false));
        Assert.Throws<ArgumentOutOfRangeException>(() => backend.ReduceRows(output, bias, good, table, 4, bad, table, 4, 2, 3));
    }

    [Fact]
    public void AdamWIsBitIdenticalToTheScalarLoop()
    {
        const int n = 100_003;
        var random = new Random(7);
        float[] Fill(double scale) => Enumerable.Range(0, n).Select(_ => (float)((random.NextDouble() - 0.5) * scale)).ToArray();
        float[] p = Fill(1), g = Fill(0.01), m = Fill(0.001), v = Fill(1e-5).Select(Math.Abs).ToArray();
        float[] p2 = (float[])p.Clone(), m2 = (float[])m.Clone(), v2 = (float[])v.Clone();
        var step = new AdamWStep(1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 17);
        CpuProbeKernels.AdamW(p, g, m, v, step);
        float b1 = step.Beta1, b2 = step.Beta2;
        float c1 = 1f - MathF.Pow(b1, step.Step), c2 = 1f - MathF.Pow(b2, step.Step);
        float stepSize = step.LearningRate / c1, inverseSqrt = 1f / MathF.Sqrt(c2), decay = 1f - step.LearningRate * step.WeightDecay;
        for (int i = 0; i < n; i++)
        {
            float mi = m2[i] = b1 * m2[i] + (1f - b1) * g[i];
            float vi = v2[i] = b2 * v2[i] + (1f - b2) * g[i] * g[i];
            p2[i] = p2[i] * decay - stepSize * mi / (MathF.Sqrt(vi) * inverseSqrt + step.Epsilon);
        }
        for (int i = 0; i < n; i++)
        {
            Assert.True(SameBits(p2[i], p[i]), $"parameter {i}");
            Assert.True(SameBits(m2[i], m[i]) && SameBits(v2[i], v[i]), $"moment {i}");
        }
    }

    [Fact]
    public void GeluAndItsDerivativeAreBitIdenticalToCpuMath()
    {
        const int n = 40_009;
        var random = new Random(3);
        float[] u = Enumerable.Range(0, n).Select(i => i % 97 == 0 ? (i % 2 == 0 ? float.NaN : 30f) : (float)((random.NextDouble() - 0.5) * 12)).ToArray();
        float[] upstream = Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
        var gelu = new float[n];
        var derivative = new float[n];
        CpuProbeKernels.Gelu(u, gelu);
        CpuProbeKernels.GeluBackward(u, upstream, derivative);
        for (int i = 0; i < n; i++)
        {
            Assert.True(SameBits(CpuMath.GeluExact(u[i]), gelu[i]), $"gelu({u[i]:R})");
            float expected = upstream[i] * (0.5f * (1f + CpuMath.Erf(u[i] * 0.70710678118654752f)) + u[i] * 0.3989422804014327f * ExpF.Exp(-0.5f * u[i] * u[i]));
            Assert.True(SameBits(expected, derivative[i]), $"gelu'({u[i]:R}): {derivative[i]:R} vs {expected:R}");
        }
    }

    [Fact]
    public void ColumnSumsAddRowsInOrder()
    {
        const int rows = 350, width = 2503;
        var random = new Random(5);
        float[] x = Enumerable.Range(0, rows * width).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
        var sums = new float[width];
        CpuProbeKernels.ColumnSums(x, sums, rows, width);
        for (int j = 0; j < width; j++)
        {
            float s = 0;
            for (int r = 0; r < rows; r++) s += x[r * width + j];
            Assert.True(SameBits(s, sums[j]), $"column {j}");
        }
    }
}
