using NativeMi.Compute;
using NativeMi.Compute.Cpu;
using NativeMi.Pooling;
using Xunit;

namespace NativeMi.Tests.Compute;

/// <summary>
/// Each backward op of the CPU backend (the reference every other backend is held to) against central differences of its forward
/// op: for L = Σ c · forward(x) with a random c, the directional derivative of L along a random D (Richardson's extrapolation of two
/// central differences at h = 0.01 and 0.005, in double around fp32 forward ops) must equal ⟨∂L/∂x, D⟩ from the backward op.
/// The bound, 1e-3 of the derivative, is about 50 times the fp32 rounding a difference quotient over 2h carries here, and far below
/// what a wrong or missing term does.
/// </summary>
public sealed class BackwardOpTests : IDisposable
{
    private readonly CpuBackend _b = new();
    private readonly Random _random = new(31);

    public void Dispose() => _b.Dispose();

    private float[] Uniform(int count, float scale = 1f) => Enumerable.Range(0, count).Select(_ => (float)(_random.NextDouble() * 2 - 1) * scale).ToArray();

    private static double Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double sum = 0;
        for (int i = 0; i < a.Length; i++) sum += (double)a[i] * b[i];
        return sum;
    }

    /// <summary>Asserts the backward's gradient <paramref name="gradient"/> of L at <paramref name="x"/> along a random direction.</summary>
    private void Check(string what, Func<float[], double> loss, float[] x, float[] gradient)
    {
        float[] direction = Uniform(x.Length);
        double L(double h) => loss(x.Select((v, i) => (float)(v + h * direction[i])).ToArray());
        double Difference(double h) => (L(h) - L(-h)) / (2 * h);
        double numeric = (4 * Difference(0.005) - Difference(0.01)) / 3, analytic = Dot(gradient, direction);
        Assert.True(Math.Abs(numeric - analytic) <= 1e-3 * Math.Abs(analytic) + 1e-6, $"{what}: numeric {numeric:E6}, backward {analytic:E6}");
    }

    [Theory]
    [InlineData(nameof(Activation.GeluExact))]
    [InlineData(nameof(Activation.GeluTanh))]
    [InlineData(nameof(Activation.None))]
    public void ActivationBackwardIsTheDerivativeOfApplyActivation(string activationName)
    {
        Activation activation = Enum.Parse<Activation>(activationName);
        const int N = 301;
        float[] x = Uniform(N, 4f), c = Uniform(N), gradient = new float[N];
        _b.ActivationBackward(new CpuBuffer<float>(x), new CpuBuffer<float>(c), new CpuBuffer<float>(gradient), N, activation);
        Check($"{activation}", v =>
        {
            var y = new float[N];
            _b.ApplyActivation(new CpuBuffer<float>(v), new CpuBuffer<float>(y), N, activation);
            return Dot(c, y);
        }, x, gradient);
    }

    [Theory]
    [InlineData(nameof(GateActivation.Silu))]
    [InlineData(nameof(GateActivation.GeluExact))]
    [InlineData(nameof(GateActivation.GeluTanh))]
    public void GatedActivationBackwardIsTheDerivativeOfGatedActivation(string activationName)
    {
        GateActivation activation = Enum.Parse<GateActivation>(activationName);
        const int Rows = 7, Width = 23;
        float[] gateUp = Uniform(2 * Rows * Width, 3f), c = Uniform(Rows * Width), gradient = new float[2 * Rows * Width];
        _b.GatedActivationBackward(new CpuBuffer<float>(gateUp), new CpuBuffer<float>(c), new CpuBuffer<float>(gradient), Rows, Width, activation);
        Check($"{activation}", v =>
        {
            var y = new float[Rows * Width];
            _b.GatedActivation(new CpuBuffer<float>(v), new CpuBuffer<float>(y), Rows, Width, activation);
            return Dot(c, y);
        }, gateUp, gradient);
    }

    [Fact]
    public void LayerNormBackwardGivesEveryInputsGradient()
    {
        const int Rows = 5, Width = 37;
        float[] x = Uniform(Rows * Width, 2f), r = Uniform(Rows * Width), gamma = Uniform(Width), beta = Uniform(Width), c = Uniform(Rows * Width);
        float[] dx = new float[Rows * Width], dGamma = new float[Width], dBeta = new float[Width];
        _b.LayerNormBackward(new CpuBuffer<float>(x), new CpuBuffer<float>(r), new CpuBuffer<float>(gamma), new CpuBuffer<float>(c), new CpuBuffer<float>(dx),
            new CpuBuffer<float>(dGamma), new CpuBuffer<float>(dBeta), Rows, Width, 1e-5f);
        double Loss(float[] input, float[] residual, float[] g, float[] b)
        {
            var y = new float[Rows * Width];
            _b.LayerNorm(new CpuBuffer<float>(input), new CpuBuffer<float>(residual), new CpuBuffer<float>(g), new CpuBuffer<float>(b), new CpuBuffer<float>(y), Rows, Width, 1e-5f);
            return Dot(c, y);
        }
        Check("input", v => Loss(v, r, gamma, beta), x, dx);
        Check("residual", v => Loss(x, v, gamma, beta), r, dx);
        Check("gamma", v => Loss(x, r, v, beta), gamma, dGamma);
        Check("beta", v => Loss(x, r, gamma, v), beta, dBeta);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void RmsNormBackwardGivesTheInputAndGammaGradients(bool addOne)
    {
        const int Rows = 5, Width = 37;
        float[] x = Uniform(Rows * Width, 2f), gamma = Uniform(Width), c = Uniform(Rows * Width), dx = new float[Rows * Width], dGamma = new float[Width];
        _b.RmsNormBackward(new CpuBuffer<float>(x), new CpuBuffer<float>(gamma), new CpuBuffer<float>(c), new CpuBuffer<float>(dx), new CpuBuffer<float>(dGamma), Rows, Width, 1e-6f, addOne);
        double Loss(float[] input, float[] g)
        {
            var y = new float[Rows * Width];
            _b.RmsNorm(new CpuBuffer<float>(input), new CpuBuffer<float>(g), new CpuBuffer<float>(y), Rows, Width, 1e-6f, addOne);
            return Dot(c, y);
        }
        Check("input", v => Loss(v, gamma), x, dx);
        Check("gamma", v => Loss(x, v), gamma, dGamma);
    }

    [Fact]
    public void HeadRmsNormBackwardGivesTheFusedBuffersAndBothGammasGradients()
    {
        const int Rows = 4, Heads = 4, KeyValueHeads = 2, HeadDim = 6, Stride = (Heads + 2 * KeyValueHeads) * HeadDim;
        float[] qkv = Uniform(Rows * Stride, 2f), gq = Uniform(HeadDim), gk = Uniform(HeadDim), c = Uniform(Rows * Stride);
        float[] d = (float[])c.Clone(), dq = new float[HeadDim], dk = new float[HeadDim];
        _b.HeadRmsNormBackward(new CpuBuffer<float>(qkv), new CpuBuffer<float>(gq), new CpuBuffer<float>(gk), new CpuBuffer<float>(d), new CpuBuffer<float>(dq), new CpuBuffer<float>(dk),
            Rows, Heads, KeyValueHeads, HeadDim, 1e-6f);
        double Loss(float[] input, float[] q, float[] k)
        {
            float[] y = (float[])input.Clone();
            _b.HeadRmsNorm(new CpuBuffer<float>(y), new CpuBuffer<float>(q), new CpuBuffer<float>(k), Rows, Heads, KeyValueHeads, HeadDim, 1e-6f);
            return Dot(c, y);
        }
        Check("qkv", v => Loss(v, gq, gk), qkv, d);
        Check("query gamma", v => Loss(qkv, v, gk), gq, dq);
        Check("key gamma", v => Loss(qkv, gq, v), gk, dk);
    }

    [Fact]
    public void RotaryBackwardIsTheTransposeOfRotary()
    {
        const int Rows = 6, Heads = 4, KeyValueHeads = 2, HeadDim = 8, Stride = (Heads + 2 * KeyValueHeads) * HeadDim;
        float[] qkv = Uniform(Rows * Stride), c = Uniform(Rows * Stride), frequencies = [1f, 0.3f, 0.05f, 0.001f];
        int[] positions = [0, 3, 17, 250, 1, 9];
        float[] d = (float[])c.Clone();
        _b.RotaryBackward(new CpuBuffer<float>(d), new CpuBuffer<int>(positions), new CpuBuffer<float>(frequencies), Rows, Heads, KeyValueHeads, HeadDim);
        Check("qkv", v =>
        {
            float[] y = (float[])v.Clone();
            _b.Rotary(new CpuBuffer<float>(y), new CpuBuffer<int>(positions), new CpuBuffer<float>(frequencies), Rows, Heads, KeyValueHeads, HeadDim);
            return Dot(c, y);
        }, qkv, d);
    }

    [Theory]
    [InlineData(4, 2)]
    [InlineData(6, 1)]
    [InlineData(3, 3)]
    public void ReduceKeyValueHeadsIsTheTransposeOfExpandKeyValueHeads(int heads, int keyValueHeads)
    {
        const int Rows = 5, HeadDim = 4;
        int compact = Rows * (heads + 2 * keyValueHeads) * HeadDim, expanded = Rows * 3 * heads * HeadDim;
        float[] x = Uniform(compact), c = Uniform(expanded), gradient = new float[compact];
        _b.ReduceKeyValueHeads(new CpuBuffer<float>(c), new CpuBuffer<float>(gradient), Rows, heads, keyValueHeads, HeadDim);
        Check($"{heads}/{keyValueHeads}", v =>
        {
            var y = new float[expanded];
            _b.ExpandKeyValueHeads(new CpuBuffer<float>(v), new CpuBuffer<float>(y), Rows, heads, keyValueHeads, HeadDim);
            return Dot(c, y);
        }, x, gradient);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AttentionBackwardGivesTheQueryKeyAndValueGradients(bool causal)
    {
        const int Batch = 3, Seq = 7, Heads = 2, HeadDim = 5, Width = Heads * HeadDim;
        // Sentence 0 full, 1 left-padded (its padded queries see no key when causal), 2 right-padded.
        int[] mask = [.. Enumerable.Repeat(1, Seq), 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0];
        float[] qkv = Uniform(Batch * Seq * 3 * Width, 1.5f), c = Uniform(Batch * Seq * Width), gradient = new float[Batch * Seq * 3 * Width];
        _b.AttentionBackward(new CpuBuffer<float>(qkv), new CpuBuffer<int>(mask), new CpuBuffer<float>(c), new CpuBuffer<float>(gradient), Batch, Seq, Heads, HeadDim, causal);
        Check(causal ? "causal" : "bidirectional", v =>
        {
            var y = new float[Batch * Seq * Width];
            _b.Attention(new CpuBuffer<float>(v), new CpuBuffer<int>(mask), new CpuBuffer<float>(y), Batch, Seq, Heads, HeadDim, causal);
            return Dot(c, y);
        }, qkv, gradient);
        // Padded keys and values get nothing.
        for (int i = 0; i < 2; i++)
            Assert.All(gradient.AsSpan(((1 * Seq) + i) * 3 * Width + Width, 2 * Width).ToArray(), g => Assert.Equal(0f, g));
    }

    [Theory]
    [InlineData(PoolingMode.Mean)]
    [InlineData(PoolingMode.Cls)]
    [InlineData(PoolingMode.Last)]
    [InlineData(PoolingMode.Max)]
    public void PoolSentencesBackwardIsTheDerivativeOfPooling(PoolingMode mode)
    {
        const int Batch = 2, Seq = 6, Width = 9;
        int[] mask = [1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1];
        int[] targets = [0, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 0];
        // Distinct values 0.1 apart, so that no step of the differences moves the maximum to another token.
        float[] layer = Enumerable.Range(0, Batch * Seq * Width).OrderBy(_ => _random.Next()).Select(i => 0.1f * i - 5f).ToArray();
        float[] c = Uniform(Batch * Width), gradient = Uniform(Batch * Seq * Width);
        _b.PoolSentencesBackward(new CpuBuffer<float>(layer), new CpuBuffer<int>(mask), new CpuBuffer<int>(targets), new CpuBuffer<float>(c), new CpuBuffer<float>(gradient),
            Batch, Seq, Width, mode);
        Check($"{mode}", v =>
        {
            var y = new float[Batch * Width];
            _b.PoolSentences(new CpuBuffer<float>(v), new CpuBuffer<int>(mask), new CpuBuffer<int>(targets), new CpuBuffer<float>(y), Batch, Seq, Width, mode);
            return Dot(c, y);
        }, layer, gradient);
        // Padding cells get zero, not what the buffer held.
        Assert.All(gradient.AsSpan(4 * Width, 3 * Width).ToArray(), g => Assert.Equal(0f, g));
    }

    [Fact]
    public void SumOfSquaresFillsItsSlot()
    {
        float[] x = Uniform(1001), sums = [7f, 7f, 7f];
        _b.SumOfSquares(new CpuBuffer<float>(x), 1000, new CpuBuffer<float>(sums), 1);
        Assert.Equal((float)x.Take(1000).Sum(v => (double)v * v), sums[1]);
        Assert.Equal(7f, sums[0]);
        Assert.Equal(7f, sums[2]);
    }
}
