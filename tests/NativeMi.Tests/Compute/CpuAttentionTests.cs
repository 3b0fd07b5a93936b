using NativeMi.Compute.Cpu;
using Xunit;

namespace NativeMi.Tests.Compute;

public class CpuAttentionTests
{
    [Theory]
    [InlineData(3, 27, 4, 32, false)]
    [InlineData(3, 27, 4, 32, true)]
    [InlineData(2, 1, 2, 32, false)]
    [InlineData(2, 40, 3, 64, false)]
    [InlineData(2, 40, 3, 64, true)]
    [InlineData(4, 9, 2, 12, false)]
    [InlineData(4, 33, 2, 5, true)]
    [InlineData(2, 70, 2, 40, false)]
    public void MatchesAScalarReference(int batch, int seq, int heads, int headDim, bool causal)
    {
        double worst = AttentionChecks.WorstError(batch, seq, heads, headDim, causal);
        Assert.True(worst <= 1, $"error {worst:F2}× the tolerance");
    }

    [Fact]
    public void IsDeterministicAcrossRuns()
    {
        var rng = new Random(3);
        int batch = 16, seq = 27, heads = 12, headDim = 32, width = heads * headDim;
        float[] qkv = GemmChecks.RandomArray(rng, batch * seq * 3 * width);
        int[] mask = AttentionChecks.Mask(batch, seq);
        float[] first = new float[batch * seq * width], second = new float[first.Length];
        CpuAttention.Run(qkv, mask, first, batch, seq, heads, headDim, causal: false);
        for (int run = 0; run < 5; run++)
        {
            CpuAttention.Run(qkv, mask, second, batch, seq, heads, headDim, causal: false);
            Assert.Equal(first, second);
        }
    }
}

/// <summary>Attention against a double-precision reference, shared by the tests and the child-process probe.</summary>
public static class AttentionChecks
{
    /// <summary>Right padding of a different length per sequence; the second sequence is all padding.</summary>
    public static int[] Mask(int batch, int seq)
    {
        var mask = new int[batch * seq];
        for (int s = 0; s < batch; s++)
            for (int i = 0; i < seq; i++) mask[s * seq + i] = s == 1 ? 0 : i < seq - (3 * s) % Math.Max(1, seq) ? 1 : 0;
        return mask;
    }

    /// <summary>Largest |output - reference| over 1e-5 · (1 + max|v|).</summary>
    public static double WorstError(int batch, int seq, int heads, int headDim, bool causal)
    {
        var rng = new Random(batch * 31 + seq * 7 + heads * 5 + headDim + (causal ? 1000 : 0));
        int width = heads * headDim, stride = 3 * width;
        float[] qkv = GemmChecks.RandomArray(rng, batch * seq * stride);
        for (int i = 0; i < qkv.Length; i++) qkv[i] *= 2;
        int[] mask = Mask(batch, seq);
        float[] output = new float[batch * seq * width];
        output.AsSpan().Fill(float.NaN);
        CpuAttention.Run(qkv, mask, output, batch, seq, heads, headDim, causal);
        double worst = 0;
        var scores = new double[seq];
        for (int b = 0; b < batch; b++)
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < seq; i++)
                {
                    int keyEnd = causal ? i + 1 : seq;
                    double max = double.NegativeInfinity;
                    for (int j = 0; j < keyEnd; j++)
                    {
                        if (mask[b * seq + j] == 0) { scores[j] = double.NegativeInfinity; continue; }
                        double s = 0;
                        for (int d = 0; d < headDim; d++)
                            s += (double)qkv[(b * seq + i) * stride + h * headDim + d] * qkv[(b * seq + j) * stride + width + h * headDim + d];
                        scores[j] = s / Math.Sqrt(headDim);
                        max = Math.Max(max, scores[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < keyEnd; j++)
                    {
                        scores[j] = double.IsNegativeInfinity(scores[j]) ? 0 : Math.Exp(scores[j] - max);
                        sum += scores[j];
                    }
                    for (int d = 0; d < headDim; d++)
                    {
                        double expected = 0;
                        if (sum > 0)
                            for (int j = 0; j < keyEnd; j++) expected += scores[j] / sum * qkv[(b * seq + j) * stride + 2 * width + h * headDim + d];
                        float actual = output[(b * seq + i) * width + h * headDim + d];
                        double error = Math.Abs(actual - expected) / 1e-5 / 3;
                        worst = Math.Max(worst, double.IsNaN(actual) ? double.PositiveInfinity : error);
                    }
                }
        return worst;
    }
}
