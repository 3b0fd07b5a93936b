using NativeMi.Compute;
using NativeMi.Compute.Cpu;
using Xunit;

namespace NativeMi.Tests.Compute;

/// <summary>The decoder families' CPU ops (the references the CUDA kernels are checked against) on cases with known answers.</summary>
public class DecoderOpTests
{
    private static readonly CpuBackend Backend = new();

    private static float[] Run(float[] input, Action<DeviceBuffer<float>> op)
    {
        var buffer = new CpuBuffer<float>((float[])input.Clone());
        op(buffer);
        return buffer.Data;
    }

    [Fact]
    public void RmsNormDividesByTheRootMeanSquareAndGemmaAddsOneToTheWeight()
    {
        // Row [3, 4]: mean of squares 12.5, so x / sqrt(12.5 + 0.5) = x / sqrt(13).
        var input = new CpuBuffer<float>([3f, 4f]);
        var gamma = new CpuBuffer<float>([2f, 0.5f]);
        var output = new CpuBuffer<float>(new float[2]);
        Backend.RmsNorm(input, gamma, output, 1, 2, 0.5f, addOneToGamma: false);
        Assert.Equal(3 / MathF.Sqrt(13) * 2, output.Data[0], 6);
        Assert.Equal(4 / MathF.Sqrt(13) * 0.5f, output.Data[1], 6);
        Backend.RmsNorm(input, gamma, output, 1, 2, 0.5f, addOneToGamma: true);
        Assert.Equal(3 / MathF.Sqrt(13) * 3, output.Data[0], 6);
        Assert.Equal(4 / MathF.Sqrt(13) * 1.5f, output.Data[1], 6);
    }

    [Fact]
    public void RotaryRotatesEachHalfPairByPositionTimesFrequencyAndLeavesValues()
    {
        // One row, one query head, one key-value head, head width 4: pairs (0, 2) and (1, 3) with frequencies 1 and 0.5.
        float[] qkv = [1, 2, 3, 4, /* key */ 5, 6, 7, 8, /* value */ 9, 10, 11, 12];
        var positions = new CpuBuffer<int>([3]);
        var frequencies = new CpuBuffer<float>([1f, 0.5f]);
        float[] rotated = Run(qkv, b => Backend.Rotary(b, positions, frequencies, 1, 1, 1, 4));
        double a0 = 3, a1 = 1.5;
        Assert.Equal(1 * Math.Cos(a0) - 3 * Math.Sin(a0), rotated[0], 5);
        Assert.Equal(3 * Math.Cos(a0) + 1 * Math.Sin(a0), rotated[2], 5);
        Assert.Equal(2 * Math.Cos(a1) - 4 * Math.Sin(a1), rotated[1], 5);
        Assert.Equal(4 * Math.Cos(a1) + 2 * Math.Sin(a1), rotated[3], 5);
        Assert.Equal(5 * Math.Cos(a0) - 7 * Math.Sin(a0), rotated[4], 5);
        Assert.Equal([9f, 10f, 11f, 12f], rotated[8..]);
        // Position 0 is the identity.
        Assert.Equal(qkv, Run(qkv, b => Backend.Rotary(b, new CpuBuffer<int>([0]), frequencies, 1, 1, 1, 4)));
    }

    [Fact]
    public void ExpandingKeyValueHeadsRepeatsEachForItsGroupOfQueryHeads()
    {
        // 4 query heads share 2 key-value heads (head width 1): keys [k0, k1] become [k0, k0, k1, k1].
        float[] compact = [1, 2, 3, 4, /* keys */ 10, 20, /* values */ 100, 200];
        var expanded = new CpuBuffer<float>(new float[12]);
        Backend.ExpandKeyValueHeads(new CpuBuffer<float>(compact), expanded, 1, 4, 2, 1);
        Assert.Equal([1f, 2, 3, 4, 10, 10, 20, 20, 100, 100, 200, 200], expanded.Data);
    }

    [Fact]
    public void GatedActivationMultipliesTheActivatedGateByTheUpProjection()
    {
        var gateUp = new CpuBuffer<float>([1f, -2f, /* up */ 3f, 5f]);
        var output = new CpuBuffer<float>(new float[2]);
        Backend.GatedActivation(gateUp, output, 1, 2, GateActivation.Silu);
        Assert.Equal(1 / (1 + Math.Exp(-1)) * 3, output.Data[0], 6);
        Assert.Equal(-2 / (1 + Math.Exp(2)) * 5, output.Data[1], 6);
        Backend.GatedActivation(gateUp, output, 1, 2, GateActivation.GeluTanh);
        Assert.Equal(CpuMath.GeluTanh(1f) * 3, output.Data[0], 6);
        Backend.GatedActivation(gateUp, output, 1, 2, GateActivation.GeluExact);
        Assert.Equal(CpuMath.GeluExact(-2f) * 5, output.Data[1], 6);
    }

    [Fact]
    public void HeadRmsNormNormalisesQueryAndKeyHeadsButNotValues()
    {
        // Heads of width 2: query [3, 4], key [6, 8], value [1, 1]; weights 1.
        float[] qkv = [3, 4, 6, 8, 1, 1];
        float[] normed = Run(qkv, b => Backend.HeadRmsNorm(b, new CpuBuffer<float>([1f, 1f]), new CpuBuffer<float>([1f, 1f]), 1, 1, 1, 2, 0f));
        Assert.Equal(3 / Math.Sqrt(12.5), normed[0], 6);
        Assert.Equal(6 / Math.Sqrt(50), normed[2], 6);
        Assert.Equal([1f, 1f], normed[4..]);
    }
}
