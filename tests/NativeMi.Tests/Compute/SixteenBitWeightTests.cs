using NativeMi.Compute;
using NativeMi.Compute.Cpu;
using NativeMi.Models;
using Xunit;

namespace NativeMi.Tests.Compute;

/// <summary>F16 and BF16 weights kept 16-bit: conversions with known answers, and the CPU kernels equal to fp32 over widened values.</summary>
public class SixteenBitWeightTests
{
    [Theory]
    [InlineData(nameof(WeightFormat.BFloat16), (ushort)0x3F80, 1.0f)]
    [InlineData(nameof(WeightFormat.BFloat16), (ushort)0xC000, -2.0f)]
    [InlineData(nameof(WeightFormat.BFloat16), (ushort)0x0001, 9.18354961579912e-41f)]
    [InlineData(nameof(WeightFormat.BFloat16), (ushort)0x7F80, float.PositiveInfinity)]
    [InlineData(nameof(WeightFormat.Float16), (ushort)0x3C00, 1.0f)]
    [InlineData(nameof(WeightFormat.Float16), (ushort)0x7BFF, 65504f)]
    [InlineData(nameof(WeightFormat.Float16), (ushort)0x0001, 5.9604644775390625e-8f)]
    [InlineData(nameof(WeightFormat.Float16), (ushort)0x8400, -6.103515625e-5f)]
    [InlineData(nameof(WeightFormat.Float16), (ushort)0xFC00, float.NegativeInfinity)]
    public void WideningGivesTheExactValue(string formatName, ushort bits, float expected)
    {
        WeightFormat format = Enum.Parse<WeightFormat>(formatName);
        Assert.Equal(expected, SixteenBitWeights.Widen(bits, format));
        // The vector path (a long span) and the scalar tail agree with the scalar function.
        ushort[] many = Enumerable.Repeat(bits, 77).ToArray();
        var widened = new float[77];
        SixteenBitWeights.Widen(many, widened, format);
        Assert.All(widened, v => Assert.Equal(expected, v));
    }

    [Theory]
    [InlineData(1.0f, (ushort)0x3F80)]
    [InlineData(1.00390625f, (ushort)0x3F80)]   // halfway between 0x3F80 and 0x3F81: to even
    [InlineData(1.01171875f, (ushort)0x3F82)]   // halfway between 0x3F81 and 0x3F82: to even
    [InlineData(1.0078125f, (ushort)0x3F81)]
    [InlineData(-3.0e38f, (ushort)0xFF62)]
    public void NarrowingToBFloat16RoundsToNearestEven(float value, ushort expected) =>
        Assert.Equal(expected, SixteenBitWeights.ToBFloat16(value));

    [Theory]
    [InlineData(nameof(WeightFormat.BFloat16))]
    [InlineData(nameof(WeightFormat.Float16))]
    public void NonFiniteValuesAreFoundAnywhere(string formatName)
    {
        WeightFormat format = Enum.Parse<WeightFormat>(formatName);
        var values = new ushort[101];
        for (int i = 0; i < values.Length; i++) values[i] = (ushort)(0x3C00 + i); // finite in both formats
        Assert.True(SixteenBitWeights.AllFinite(values, format));
        foreach (int at in new[] { 0, 37, 100 })
        {
            ushort[] copy = (ushort[])values.Clone();
            copy[at] = (ushort)(SixteenBitWeights.ExponentMask(format) | 1); // a NaN
            Assert.False(SixteenBitWeights.AllFinite(copy, format));
        }
    }

    private static ushort[] RandomSixteenBit(Random random, long count, WeightFormat format) =>
        Enumerable.Range(0, (int)count).Select(_ => (float)(random.NextDouble() * 2 - 1))
            .Select(v => format == WeightFormat.BFloat16 ? SixteenBitWeights.ToBFloat16(v) : BitConverter.HalfToUInt16Bits((Half)v)).ToArray();

    private static float[] Widened(ushort[] values, WeightFormat format)
    {
        var result = new float[values.Length];
        SixteenBitWeights.Widen(values, result, format);
        return result;
    }

    private static float[] Transpose(float[] values, int rows, int columns)
    {
        var result = new float[values.Length];
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < columns; j++) result[j * rows + i] = values[i * columns + j];
        return result;
    }

    [Theory]
    [InlineData(1, 7, 3)]
    [InlineData(13, 29, 45)]
    [InlineData(37, 400, 97)]   // K over one 384-deep block, N not a multiple of a panel
    [InlineData(130, 385, 64)]
    public void SixteenBitPanelsGiveTheFp32ProductBitForBit(int m, int k, int n)
    {
        var random = new Random(m * 1000 + k + n);
        float[] a = Enumerable.Range(0, m * k).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        float[] bias = Enumerable.Range(0, n).Select(_ => (float)random.NextDouble()).ToArray();
        foreach (WeightFormat format in new[] { WeightFormat.BFloat16, WeightFormat.Float16 })
            foreach (bool transposed in new[] { false, true })
                foreach (Activation activation in new[] { Activation.None, Activation.GeluExact })
                {
                    // The stored matrix: [k, n], or its transpose [n, k] as an nn.Linear weight.
                    ushort[] stored = RandomSixteenBit(random, (long)k * n, format);
                    float[] asKn = transposed ? Transpose(Widened(stored, format), n, k) : Widened(stored, format);
                    var expected = new float[m * n];
                    CpuGemm.Multiply(a, CpuGemm.PackB(asKn, k, n), bias, expected, m, activation);
                    var actual = new float[m * n];
                    PackedMatrix packed = CpuGemm.PackB(stored, k, n, format, transposed);
                    Assert.Equal(format, packed.Format);
                    CpuGemm.Multiply(a, packed, bias, actual, m, activation);
                    Assert.Equal(expected, actual);
                    var unpacked = new float[k * n];
                    packed.Unpack(unpacked);
                    Assert.Equal(asKn, unpacked);
                }
    }

    [Fact]
    public void SixteenBitPanelsTakeHalfTheMemory()
    {
        var random = new Random(5);
        ushort[] stored = RandomSixteenBit(random, 384 * 1536, WeightFormat.BFloat16);
        PackedMatrix sixteen = CpuGemm.PackB(stored, 384, 1536, WeightFormat.BFloat16, transposed: true);
        PackedMatrix full = CpuGemm.PackB(Widened(stored, WeightFormat.BFloat16), 384, 1536);
        Assert.InRange(sixteen.Bytes, full.Bytes / 2 - 256, full.Bytes / 2 + 256);
    }

    [Theory]
    [InlineData(nameof(WeightFormat.BFloat16))]
    [InlineData(nameof(WeightFormat.Float16))]
    public void GathersFromASixteenBitTableEqualTheFp32Table(string formatName)
    {
        WeightFormat format = Enum.Parse<WeightFormat>(formatName);
        var random = new Random(11);
        int rows = 19, width = 45, tableRows = 50, positionRows = 31;
        ushort[] table = RandomSixteenBit(random, (long)tableRows * width, format);
        float[] widened = Widened(table, format);
        int[] ids = Enumerable.Range(0, rows).Select(_ => random.Next(tableRows)).ToArray();
        int[] positions = Enumerable.Range(0, rows).Select(_ => random.Next(positionRows)).ToArray();
        int[] types = Enumerable.Range(0, rows).Select(_ => random.Next(2)).ToArray();
        float[] positionTable = Enumerable.Range(0, positionRows * width).Select(_ => (float)random.NextDouble()).ToArray();
        float[] typeTable = Enumerable.Range(0, 2 * width).Select(_ => (float)random.NextDouble()).ToArray();
        using var backend = new CpuBackend();
        using DeviceBuffer<float> sixteen = backend.UploadTable(table, tableRows, width, format), full = backend.Upload<float>(widened);
        using DeviceBuffer<int> idBuffer = backend.Upload<int>(ids), positionBuffer = backend.Upload<int>(positions), typeBuffer = backend.Upload<int>(types);
        using DeviceBuffer<float> positionBufferF = backend.Upload<float>(positionTable), typeBufferF = backend.Upload<float>(typeTable);
        using DeviceBuffer<float> expected = backend.Allocate<float>(rows * width), actual = backend.Allocate<float>(rows * width);

        backend.GatherRows(full, idBuffer, expected, rows, width);
        backend.GatherRows(sixteen, idBuffer, actual, rows, width);
        Assert.Equal(CpuBackend.Array(expected), CpuBackend.Array(actual));

        backend.EmbeddingGather(idBuffer, positionBuffer, typeBuffer, full, positionBufferF, typeBufferF, expected, rows, width);
        backend.EmbeddingGather(idBuffer, positionBuffer, typeBuffer, sixteen, positionBufferF, typeBufferF, actual, rows, width);
        Assert.Equal(CpuBackend.Array(expected), CpuBackend.Array(actual));
        // The 16-bit table as the position and type tables too: their rows are widened before they are added.
        backend.EmbeddingGather(idBuffer, positionBuffer, typeBuffer, full, full, full, expected, rows, width);
        backend.EmbeddingGather(idBuffer, positionBuffer, typeBuffer, full, sixteen, sixteen, actual, rows, width);
        Assert.Equal(CpuBackend.Array(expected), CpuBackend.Array(actual));

        var downloaded = new float[widened.Length];
        backend.Download(sixteen, downloaded.AsSpan());
        Assert.Equal(widened, downloaded);

        using DeviceBuffer<int> bad = backend.Upload<int>([3, tableRows]);
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => backend.GatherRows(sixteen, bad, actual, 2, width));
        Assert.Contains($"index {tableRows} at row 1", error.Message);
    }

    [Theory]
    [InlineData("llama-tiny-bf16", "BF16")]
    [InlineData("qwen2-tiny-f16", "F16")]
    public void SixteenBitCheckpointsStaySixteenBitAndGiveTheWidenedStates(string fixture, string format)
    {
        string folder = Fixtures.Folder(fixture);
        using TransformerModel kept = TransformerModel.Load(folder);
        using TransformerModel widened = TransformerModel.Load(folder, options: new ModelLoadOptions { WidenSixteenBitWeights = true });
        Assert.Contains(format, kept.ResidentWeightElements.Keys);
        Assert.Equal(["F32"], widened.ResidentWeightElements.Keys);
        Assert.Equal(kept.ParameterCount, widened.ParameterCount);
        // The GEMM matrices and the word embeddings are nearly all of a model: its footprint is close to half.
        double share = (double)kept.ResidentWeightElements[format] / kept.ResidentWeightElements.Values.Sum();
        Assert.True(share > 0.9, $"only {share:P1} of the elements stayed {format}");
        Assert.True(kept.ResidentWeightBytes < 0.6 * widened.ResidentWeightBytes, $"{kept.ResidentWeightBytes} bytes kept against {widened.ResidentWeightBytes} widened");

        string[] sentences = ["The quick brown fox jumps over the lazy dog.", "Short one.", "A third, somewhat longer sentence with more tokens in it."];
        var batch = kept.Encode(sentences);
        var a = kept.Forward(batch);
        var b = widened.Forward(batch);
        Assert.Equal(b.Layers.Count, a.Layers.Count);
        for (int l = 0; l < a.Layers.Count; l++) Assert.Equal(b.Layers[l], a.Layers[l]);
        Assert.Equal(b.Final, a.Final);
    }
}
