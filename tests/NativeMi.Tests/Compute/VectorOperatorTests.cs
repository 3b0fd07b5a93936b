using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using NativeMi.Compute.Cpu;
using Xunit;
using Xunit.Abstractions;

namespace NativeMi.Tests.Compute;

/// <summary>A theory at one vector width (given in float lanes): skipped, with the reason, where this machine does not accelerate it.</summary>
public sealed class WidthTheoryAttribute : TheoryAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when the width would run in software here.</summary>
    public WidthTheoryAttribute(int lanes)
    {
        if (!VectorLoop.IsSupported((VectorWidth)lanes))
            Skip = $"{(VectorWidth)lanes} is not accelerated on this {RuntimeInformation.ProcessArchitecture} machine (Avx512F {Avx512F.IsSupported}, Avx2 {Avx2.IsSupported})";
    }
}

/// <summary>
/// Each element-wise operator at each vector width, forced in this process: the width's results equal the scalar
/// form bit for bit (NaN for NaN) over a dense range, random bit patterns of every magnitude, the special values and
/// every tail length, and the scalar form is within a stated error of a double-precision reference.
/// </summary>
public class VectorOperatorTests(ITestOutputHelper output)
{
    private enum Metric { Absolute, AbsoluteOverMagnitude, Ulp }

    /// <summary>One operator: its scalar form, the driver at a width, a double reference and the error it is held to.</summary>
    private sealed record Case(
        Func<float, float> Scalar, Action<float[], float[], VectorWidth> Apply, Func<double, double> Reference,
        double DenseFrom, double DenseTo, Metric Metric, double Bound, Action<Func<float, float>>? Specials = null);

    private static Case Of<TOp>(Func<double, double> reference, double from, double to, Metric metric, double bound, Action<Func<float, float>>? specials = null)
        where TOp : IUnaryOperator =>
        new(TOp.Invoke, (x, y, width) => VectorLoop.Apply<TOp>(x, y, width), reference, from, to, metric, bound, specials);

    private static readonly Dictionary<string, Case> Cases = new()
    {
        // The rational fit's own error, largest just inside ±4 (3.7e-7 measured); erf(±4) and beyond round to ±1.
        ["erf"] = Of<ErfOperator>(Erf, -5, 5, Metric.Absolute, 4e-7, f =>
        {
            Assert.Equal(1f, f(float.PositiveInfinity));
            Assert.Equal(-1f, f(float.NegativeInfinity));
        }),
        // erf's absolute error scaled by ½|x|, so GELU is held to an absolute error relative to max(1, |x|).
        ["gelu-exact"] = Of<GeluExactOperator>(x => 0.5 * x * Erfc(-x / Math.Sqrt(2)), -12, 12, Metric.AbsoluteOverMagnitude, 2.5e-7, f =>
        {
            Assert.Equal(float.PositiveInfinity, f(float.PositiveInfinity));
            Assert.True(float.IsNaN(f(float.NegativeInfinity)), "−∞·0, as ½x(1 + erf) evaluates it");
        }),
        ["gelu-exact-derivative"] = Of<GeluExactDerivativeOperator>(
            x => 0.5 * Erfc(-x / Math.Sqrt(2)) + x * Math.Exp(-0.5 * x * x) / Math.Sqrt(2 * Math.PI), -12, 12, Metric.Absolute, 4e-7),
        // glibc's expf: 0.502 ulp at worst, below the normal range the scalar code's own special cases.
        ["exp"] = Of<ExpOperator>(Math.Exp, -104, 89, Metric.Ulp, 0.51, f =>
        {
            Assert.Equal(0f, f(float.NegativeInfinity));
            Assert.Equal(float.PositiveInfinity, f(float.PositiveInfinity));
            Assert.Equal(1f, f(-0f));
        }),
        ["gelu-tanh"] = Of<GeluTanhOperator>(GeluTanh, -14, 14, Metric.Ulp, 0.51, f =>
        {
            Assert.Equal(float.PositiveInfinity, f(float.PositiveInfinity));
            Assert.True(float.IsNaN(f(float.NegativeInfinity)), "−∞·0, as ½x(1 + tanh u) gives");
            Assert.Equal(BitConverter.SingleToInt32Bits(-0f), BitConverter.SingleToInt32Bits(f(-0f)));
            Assert.Equal(BitConverter.SingleToInt32Bits(-0f), BitConverter.SingleToInt32Bits(f(-30f)));
        }),
        // exp's rounding, then the sum's and the quotient's. Below −88.72, e^−x overflows float and the result is −0,
        // as x / (1 + MathF.Exp(−x)) gives (the true value is below 3e-37).
        ["silu"] = Of<SiluOperator>(x => x < -88.72 ? double.NaN : x / (1 + Math.Exp(-x)), -88.7, 88.7, Metric.Ulp, 2.5, f =>
        {
            Assert.Equal(float.PositiveInfinity, f(float.PositiveInfinity));
            Assert.True(float.IsNaN(f(float.NegativeInfinity)), "−∞/∞");
            Assert.Equal(BitConverter.SingleToInt32Bits(-0f), BitConverter.SingleToInt32Bits(f(-100f)));
        }),
    };

    public static TheoryData<string> Operators => new(Cases.Keys.Concat(BinaryCases.Keys));

    [WidthTheory(1)]
    [MemberData(nameof(Operators))]
    public void ScalarMatchesTheReference(string name) => Check(name, VectorWidth.Scalar);

    [WidthTheory(4)]
    [MemberData(nameof(Operators))]
    public void Vector128MatchesTheScalarFormAndTheReference(string name) => Check(name, VectorWidth.Vector128);

    [WidthTheory(8)]
    [MemberData(nameof(Operators))]
    public void Vector256MatchesTheScalarFormAndTheReference(string name) => Check(name, VectorWidth.Vector256);

    [WidthTheory(16)]
    [MemberData(nameof(Operators))]
    public void Vector512MatchesTheScalarFormAndTheReference(string name) => Check(name, VectorWidth.Vector512);

    private void Check(string name, VectorWidth width)
    {
        if (BinaryCases.ContainsKey(name))
        {
            CheckBinary(name, width);
            return;
        }
        Case c = Cases[name];
        float[] x = Inputs(c.DenseFrom, c.DenseTo);
        var y = new float[x.Length];
        c.Apply(x, y, width);
        for (int i = 0; i < x.Length; i++)
            Assert.True(SameValue(c.Scalar(x[i]), y[i]), $"{name} at {width}: x = {x[i]:R} gives {y[i]:R}, the scalar form {c.Scalar(x[i]):R}");
        AssertEveryTailLength(name, c, width);

        double worst = 0;
        float worstAt = 0;
        for (int i = 0; i < x.Length; i++)
        {
            if (!float.IsFinite(x[i])) continue;
            double reference = c.Reference(x[i]);
            if (double.IsNaN(reference)) continue;
            double error = Error(c.Metric, x[i], y[i], reference);
            if (!(error <= worst)) (worst, worstAt) = (error, x[i]);
        }
        output.WriteLine($"{name} at {width}: largest error {worst:G3} ({c.Metric}) at x = {worstAt:R}, bound {c.Bound:G3}, {x.Length} inputs");
        Assert.True(worst <= c.Bound, $"{name}: error {worst:G3} ({c.Metric}) at x = {worstAt:R} exceeds {c.Bound:G3}");
        c.Specials?.Invoke(v =>
        {
            var one = new float[17];
            one.AsSpan().Fill(v);
            var result = new float[17];
            c.Apply(one, result, width);
            Assert.All(result, r => Assert.True(SameValue(result[0], r), $"{name}({v}) differs between lanes and tail"));
            return result[0];
        });
        foreach (float special in Specials)
            Assert.True(SameValue(c.Scalar(special), Run(c, width, special)), $"{name}({special:R}) at {width}");
    }

    private static float Run(Case c, VectorWidth width, float v)
    {
        var x = new float[(int)width];
        x.AsSpan().Fill(v);
        var y = new float[x.Length];
        c.Apply(x, y, width);
        return y[0];
    }

    /// <summary>Every length up to four of the widest vectors and every start offset within one: the width's loop, then each narrower tail.</summary>
    private static void AssertEveryTailLength(string name, Case c, VectorWidth width)
    {
        var rng = new Random(5);
        float[] source = Enumerable.Range(0, 80).Select(_ => (float)(rng.NextDouble() * 16 - 8)).ToArray();
        for (int offset = 0; offset < 16; offset++)
            for (int length = 0; offset + length <= 80 && length <= 64; length++)
            {
                var y = new float[80];
                c.Apply(source.AsSpan(offset, length).ToArray(), y, width);
                for (int i = 0; i < length; i++)
                    Assert.True(SameValue(c.Scalar(source[offset + i]), y[i]), $"{name} at {width}, length {length}, element {i}");
                Assert.All(y.Skip(length), v => Assert.Equal(0f, v));
            }
        // In place, as the GEMM epilogue runs it.
        float[] inPlace = (float[])source.Clone();
        c.Apply(inPlace, inPlace, width);
        for (int i = 0; i < source.Length; i++) Assert.True(SameValue(c.Scalar(source[i]), inPlace[i]), $"{name} in place at {width}, element {i}");
    }

    /// <summary>A two-operand operator and the scalar definition it must equal bit for bit at every width.</summary>
    private sealed record BinaryCase(Func<float, float, float> Definition, Action<float[], float[], float[], VectorWidth> Apply);

    private static BinaryCase Binary<TOp>(Func<float, float, float> definition) where TOp : IBinaryOperator =>
        new(definition, (x, y, d, width) => VectorLoop.Apply<TOp>(x, y, d, width));

    private static readonly Dictionary<string, BinaryCase> BinaryCases = new()
    {
        ["gelu-backward"] = Binary<GeluBackwardOperator>((pre, upstream) => upstream * GeluExactDerivativeOperator.Invoke(pre)),
        ["swiglu"] = Binary<GatedOperator<SiluOperator>>((gate, up) => SiluOperator.Invoke(gate) * up),
        ["geglu-exact"] = Binary<GatedOperator<GeluExactOperator>>((gate, up) => GeluExactOperator.Invoke(gate) * up),
        ["geglu-tanh"] = Binary<GatedOperator<GeluTanhOperator>>((gate, up) => GeluTanhOperator.Invoke(gate) * up),
    };

    private static void CheckBinary(string name, VectorWidth width)
    {
        BinaryCase c = BinaryCases[name];
        float[] x = Inputs(-12, 12), y = new float[x.Length], result = new float[x.Length];
        var rng = new Random(9);
        for (int i = 0; i < y.Length; i++) y[i] = i % 97 == 0 ? Specials[i / 97 % Specials.Length] : (float)(rng.NextDouble() * 6 - 3);
        c.Apply(x, y, result, width);
        for (int i = 0; i < x.Length; i++)
            Assert.True(SameValue(c.Definition(x[i], y[i]), result[i]), $"{name} at {width}: ({x[i]:R}, {y[i]:R}) gives {result[i]:R}, the definition {c.Definition(x[i], y[i]):R}");
        for (int length = 0; length <= 64; length++)
        {
            var d = new float[length];
            c.Apply(x[..length], y[..length], d, width);
            for (int i = 0; i < length; i++) Assert.True(SameValue(result[i], d[i]), $"{name} at {width}, length {length}, element {i}");
        }
        // In place over the second operand, as the probe's backward pass runs it.
        float[] inPlace = (float[])y.Clone();
        c.Apply(x, inPlace, inPlace, width);
        for (int i = 0; i < x.Length; i++) Assert.True(SameValue(result[i], inPlace[i]), $"{name} in place at {width}, element {i}");
    }

    /// <summary>
    /// Tanh GELU against the float formula it replaced, ½x(1 + MathF.Tanh(u)) with u in float: at most 2 ulp apart for
    /// x ≥ 0, where 1 + tanh u keeps its bits, and for x &lt; 0 apart by at most 1e-7·|x|, which is mostly the float
    /// formula's cancellation: against the double reference the old formula is off by up to 6.7e-8·|x| there, the new
    /// one by its final rounding alone (half an ulp of x/2, 3e-8·|x|).
    /// </summary>
    [Fact]
    public void TanhGeluMovesFromTheFloatFormulaItReplacedOnlyByThatFormulasRoundingError()
    {
        float[] x = Inputs(-14, 14);
        double ulpAbove = 0, absoluteBelow = 0, oldErrorBelow = 0, newErrorBelow = 0;
        foreach (float v in x)
        {
            // Below 1e-30 both are x/2 up to the rounding of subnormals.
            if (!float.IsFinite(v) || Math.Abs(v) < 1e-30f) continue;
            float old = 0.5f * v * (1f + MathF.Tanh(0.7978845608028654f * (v + 0.044715f * v * v * v)));
            float now = CpuMath.GeluTanh(v);
            double reference = GeluTanh(v);
            if (v >= 0) ulpAbove = Math.Max(ulpAbove, Math.Abs((double)old - now) / Ulp(now));
            else
            {
                double scale = Math.Abs(v);
                absoluteBelow = Math.Max(absoluteBelow, Math.Abs((double)old - now) / scale);
                oldErrorBelow = Math.Max(oldErrorBelow, Math.Abs(old - reference) / scale);
                newErrorBelow = Math.Max(newErrorBelow, Math.Abs(now - reference) / scale);
            }
        }
        output.WriteLine($"x ≥ 0: at most {ulpAbove:G3} ulp apart; x < 0: at most {absoluteBelow:G3}·|x| apart " +
            $"(error against the double reference: old {oldErrorBelow:G3}·|x|, new {newErrorBelow:G3}·|x|)");
        Assert.True(ulpAbove <= 2, $"{ulpAbove} ulp");
        Assert.True(absoluteBelow <= 1e-7, $"{absoluteBelow}·|x|");
        Assert.True(newErrorBelow <= 3e-8 && newErrorBelow < oldErrorBelow, $"new {newErrorBelow}·|x|, old {oldErrorBelow}·|x|");
    }

    [Fact]
    public void TheDriverRefusesAShortDestination()
    {
        Assert.Throws<ArgumentException>(() => VectorLoop.Apply<ErfOperator>(new float[5], new float[4]));
        Assert.Throws<ArgumentException>(() => VectorLoop.Apply<GeluBackwardOperator>(new float[5], new float[4], new float[5]));
    }

    private static readonly float[] Specials =
    [
        float.NaN, -float.NaN, float.PositiveInfinity, float.NegativeInfinity, 0f, -0f, float.Epsilon, -float.Epsilon,
        float.MaxValue, float.MinValue, 1.17549435e-38f, -1.17549435e-38f, 1e-30f, -1e-30f, 1e30f, -1e30f, 1e10f, -1e10f,
        4f, -4f, MathF.BitIncrement(4f), MathF.BitDecrement(-4f), 88.72283f, 88.72284f, -87.33654f, -103.27892f, -103.97208f, -104f,
        20f, -20f, 9.1f, -9.1f, 1f, -1f, 0.5f, -0.5f,
    ];

    /// <summary>A dense grid of [from, to] (2^17 steps), 2^18 random bit patterns (every exponent, some NaNs) and the special values.</summary>
    private static float[] Inputs(double from, double to)
    {
        var values = new List<float>();
        const int Steps = 1 << 17;
        for (int i = 0; i <= Steps; i++) values.Add((float)(from + (to - from) * i / Steps));
        var rng = new Random(1);
        for (int i = 0; i < 1 << 18; i++) values.Add(BitConverter.Int32BitsToSingle(rng.Next() ^ (rng.Next(2) << 31)));
        values.AddRange(Specials);
        return values.ToArray();
    }

    private static bool SameValue(float expected, float actual) =>
        float.IsNaN(expected) ? float.IsNaN(actual) : BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(actual);

    private static double Error(Metric metric, float x, float actual, double reference)
    {
        if (float.IsInfinity(actual) && float.IsInfinity((float)reference) && Math.Sign(actual) == Math.Sign(reference)) return 0;
        double difference = Math.Abs(actual - reference);
        return metric switch
        {
            Metric.Absolute => difference,
            Metric.AbsoluteOverMagnitude => difference / Math.Max(1, Math.Abs(x)),
            _ => difference / Ulp(reference),
        };
    }

    /// <summary>The spacing of floats at |value| (the subnormal spacing below the normal range).</summary>
    private static double Ulp(double value)
    {
        double a = Math.Abs(value);
        return a < 1.1754943508222875e-38 ? float.Epsilon : Math.ScaleB(1, Math.ILogB(a) - 23);
    }

    /// <summary>½x(1 + tanh u) as x / (1 + e^(−2u)), in double with the runtime's exp.</summary>
    private static double GeluTanh(double x) => x / (1 + Math.Exp(-2 * Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));

    /// <summary>erfc to about 1e-15: Taylor series of erf below 2.5, the continued fraction of erfc above, reflection for x &lt; 0.</summary>
    internal static double Erfc(double x)
    {
        if (double.IsNaN(x)) return double.NaN;
        if (x < 0) return 2 - Erfc(-x);
        if (x < 2.5) return 1 - Erf(x);
        if (x > 27) return 0;
        double f = x;
        for (int n = 300; n >= 1; n--) f = x + n / 2.0 / f;
        return Math.Exp(-x * x) / (Math.Sqrt(Math.PI) * f);
    }

    internal static double Erf(double x)
    {
        double a = Math.Abs(x);
        if (a >= 2.5) return Math.CopySign(1 - Erfc(a), x);
        double term = a, sum = a, a2 = a * a;
        for (int n = 1; n < 200; n++)
        {
            term *= -a2 / n;
            double t = term / (2 * n + 1);
            sum += t;
            if (Math.Abs(t) < 1e-17 * sum) break;
        }
        return Math.CopySign(sum * 2 / Math.Sqrt(Math.PI), x);
    }
}
