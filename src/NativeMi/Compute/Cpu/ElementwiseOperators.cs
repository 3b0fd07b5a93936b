using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace NativeMi.Compute.Cpu;

// The element-wise functions of the CPU kernels, one struct each, every width in one place (see IUnaryOperator).
// The vector forms use the cross-platform Vector128/256/512 APIs, so ARM64 runs the Vector128 form on AdvSimd;
// x86 intrinsics appear only where no cross-platform API does the job (table gathers).

/// <summary>
/// erf(x) for single precision, as a rational function of x² on [-4, 4] (the approximation Eigen uses); absolute
/// error below 4e-7 against the exact value (largest just inside ±4), far inside the 1e-4 parity budget.
/// </summary>
internal readonly struct ErfOperator : IUnaryOperator
{
    private const float P0 = -2.72614225801306e-10f, P1 = 2.77068142495902e-08f, P2 = -2.10102402082508e-06f, P3 = -5.69250639462346e-05f,
        P4 = -7.34990630326855e-04f, P5 = -2.95459980854025e-03f, P6 = -1.60960333262415e-02f;
    private const float Q0 = -1.45660718464996e-05f, Q1 = -2.13374055278905e-04f, Q2 = -1.68282697438203e-03f, Q3 = -7.37332916720468e-03f,
        Q4 = -1.42647390514189e-02f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Invoke(float x)
    {
        x = Math.Clamp(x, -4f, 4f);
        float x2 = x * x;
        float p = MathF.FusedMultiplyAdd(P0, x2, P1);
        p = MathF.FusedMultiplyAdd(p, x2, P2);
        p = MathF.FusedMultiplyAdd(p, x2, P3);
        p = MathF.FusedMultiplyAdd(p, x2, P4);
        p = MathF.FusedMultiplyAdd(p, x2, P5);
        p = MathF.FusedMultiplyAdd(p, x2, P6);
        float q = MathF.FusedMultiplyAdd(Q0, x2, Q1);
        q = MathF.FusedMultiplyAdd(q, x2, Q2);
        q = MathF.FusedMultiplyAdd(q, x2, Q3);
        q = MathF.FusedMultiplyAdd(q, x2, Q4);
        return x * p / q;
    }

    // Min and Max propagate NaN (as Math.Clamp does), so erf(NaN) stays NaN at every width.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Invoke(Vector128<float> x)
    {
        x = Vector128.Min(Vector128.Max(x, Vector128.Create(-4f)), Vector128.Create(4f));
        Vector128<float> x2 = x * x;
        Vector128<float> p = Vector128.FusedMultiplyAdd(Vector128.Create(P0), x2, Vector128.Create(P1));
        p = Vector128.FusedMultiplyAdd(p, x2, Vector128.Create(P2));
        p = Vector128.FusedMultiplyAdd(p, x2, Vector128.Create(P3));
        p = Vector128.FusedMultiplyAdd(p, x2, Vector128.Create(P4));
        p = Vector128.FusedMultiplyAdd(p, x2, Vector128.Create(P5));
        p = Vector128.FusedMultiplyAdd(p, x2, Vector128.Create(P6));
        Vector128<float> q = Vector128.FusedMultiplyAdd(Vector128.Create(Q0), x2, Vector128.Create(Q1));
        q = Vector128.FusedMultiplyAdd(q, x2, Vector128.Create(Q2));
        q = Vector128.FusedMultiplyAdd(q, x2, Vector128.Create(Q3));
        q = Vector128.FusedMultiplyAdd(q, x2, Vector128.Create(Q4));
        return x * p / q;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Invoke(Vector256<float> x)
    {
        x = Vector256.Min(Vector256.Max(x, Vector256.Create(-4f)), Vector256.Create(4f));
        Vector256<float> x2 = x * x;
        Vector256<float> p = Vector256.FusedMultiplyAdd(Vector256.Create(P0), x2, Vector256.Create(P1));
        p = Vector256.FusedMultiplyAdd(p, x2, Vector256.Create(P2));
        p = Vector256.FusedMultiplyAdd(p, x2, Vector256.Create(P3));
        p = Vector256.FusedMultiplyAdd(p, x2, Vector256.Create(P4));
        p = Vector256.FusedMultiplyAdd(p, x2, Vector256.Create(P5));
        p = Vector256.FusedMultiplyAdd(p, x2, Vector256.Create(P6));
        Vector256<float> q = Vector256.FusedMultiplyAdd(Vector256.Create(Q0), x2, Vector256.Create(Q1));
        q = Vector256.FusedMultiplyAdd(q, x2, Vector256.Create(Q2));
        q = Vector256.FusedMultiplyAdd(q, x2, Vector256.Create(Q3));
        q = Vector256.FusedMultiplyAdd(q, x2, Vector256.Create(Q4));
        return x * p / q;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Invoke(Vector512<float> x)
    {
        x = Vector512.Min(Vector512.Max(x, Vector512.Create(-4f)), Vector512.Create(4f));
        Vector512<float> x2 = x * x;
        Vector512<float> p = Vector512.FusedMultiplyAdd(Vector512.Create(P0), x2, Vector512.Create(P1));
        p = Vector512.FusedMultiplyAdd(p, x2, Vector512.Create(P2));
        p = Vector512.FusedMultiplyAdd(p, x2, Vector512.Create(P3));
        p = Vector512.FusedMultiplyAdd(p, x2, Vector512.Create(P4));
        p = Vector512.FusedMultiplyAdd(p, x2, Vector512.Create(P5));
        p = Vector512.FusedMultiplyAdd(p, x2, Vector512.Create(P6));
        Vector512<float> q = Vector512.FusedMultiplyAdd(Vector512.Create(Q0), x2, Vector512.Create(Q1));
        q = Vector512.FusedMultiplyAdd(q, x2, Vector512.Create(Q2));
        q = Vector512.FusedMultiplyAdd(q, x2, Vector512.Create(Q3));
        q = Vector512.FusedMultiplyAdd(q, x2, Vector512.Create(Q4));
        return x * p / q;
    }
}

/// <summary>Exact GELU, ½x(1 + erf(x/√2)) (Hugging Face's "gelu"), on <see cref="ErfOperator"/>.</summary>
internal readonly struct GeluExactOperator : IUnaryOperator
{
    private const float InverseSqrt2 = 0.70710678118654752f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Invoke(float x) => 0.5f * x * (1f + ErfOperator.Invoke(x * InverseSqrt2));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Invoke(Vector128<float> x) =>
        Vector128.Create(0.5f) * x * (Vector128<float>.One + ErfOperator.Invoke(x * Vector128.Create(InverseSqrt2)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Invoke(Vector256<float> x) =>
        Vector256.Create(0.5f) * x * (Vector256<float>.One + ErfOperator.Invoke(x * Vector256.Create(InverseSqrt2)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Invoke(Vector512<float> x) =>
        Vector512.Create(0.5f) * x * (Vector512<float>.One + ErfOperator.Invoke(x * Vector512.Create(InverseSqrt2)));
}

/// <summary>
/// d/dx of <see cref="GeluExactOperator"/>, Φ(x) + x·φ(x), with Φ from the same <see cref="ErfOperator"/> as the
/// forward pass (so the backward pass differentiates the function the forward pass computed) and φ from <see cref="ExpOperator"/>.
/// </summary>
internal readonly struct GeluExactDerivativeOperator : IUnaryOperator
{
    private const float InverseSqrt2 = 0.70710678118654752f, InverseSqrt2Pi = 0.3989422804014327f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Invoke(float x) =>
        0.5f * (1f + ErfOperator.Invoke(x * InverseSqrt2)) + x * InverseSqrt2Pi * ExpOperator.Invoke(-0.5f * x * x);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Invoke(Vector128<float> x) =>
        Vector128.Create(0.5f) * (Vector128<float>.One + ErfOperator.Invoke(x * Vector128.Create(InverseSqrt2)))
        + x * Vector128.Create(InverseSqrt2Pi) * ExpOperator.Invoke(Vector128.Create(-0.5f) * x * x);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Invoke(Vector256<float> x) =>
        Vector256.Create(0.5f) * (Vector256<float>.One + ErfOperator.Invoke(x * Vector256.Create(InverseSqrt2)))
        + x * Vector256.Create(InverseSqrt2Pi) * ExpOperator.Invoke(Vector256.Create(-0.5f) * x * x);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Invoke(Vector512<float> x) =>
        Vector512.Create(0.5f) * (Vector512<float>.One + ErfOperator.Invoke(x * Vector512.Create(InverseSqrt2)))
        + x * Vector512.Create(InverseSqrt2Pi) * ExpOperator.Invoke(Vector512.Create(-0.5f) * x * x);
}

/// <summary>The exact GELU's backward step: (preActivation, upstream) → upstream · GELU'(preActivation).</summary>
internal readonly struct GeluBackwardOperator : IBinaryOperator
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Invoke(float preActivation, float upstream) => upstream * GeluExactDerivativeOperator.Invoke(preActivation);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Invoke(Vector128<float> preActivation, Vector128<float> upstream) => upstream * GeluExactDerivativeOperator.Invoke(preActivation);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Invoke(Vector256<float> preActivation, Vector256<float> upstream) => upstream * GeluExactDerivativeOperator.Invoke(preActivation);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Invoke(Vector512<float> preActivation, Vector512<float> upstream) => upstream * GeluExactDerivativeOperator.Invoke(preActivation);
}

/// <summary>
/// Tanh-approximated GELU as GPT-2 and Gemma define it (Hugging Face's "gelu_new" and "gelu_pytorch_tanh"),
/// ½x(1 + tanh u) with u = √(2/π)(x + 0.044715x³), evaluated as the equal x / (1 + e^(−2u)) in double precision and
/// rounded once. The float form's 1 + tanh u cancels for x below about −3 (a float tanh near −1 keeps few bits of
/// the difference), while this form has nothing to cancel: results are within one ulp of the exact function of the
/// float input. e^(−2u) is <see cref="ExpOperator"/>'s double-precision core (relative error about 2^-34).
/// </summary>
internal readonly struct GeluTanhOperator : IUnaryOperator
{
    // −2√(2/π) and −2√(2/π)·0.044715: t = x(A + B x²) is −2u.
    private const double A = -1.5957691216057308, B = A * 0.044715;
    // Beyond ±200, 1 + e^t is 1 (below) or x / (1 + e^t) rounds to a signed zero for every float x (above), and
    // the core's exponent arithmetic stays in range inside it. Above, e^t is taken as +∞ so x = −∞ gives NaN, as
    // ½x(1 + tanh u) does.
    private const double Saturation = 200;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Invoke(float x)
    {
        double xd = x;
        double t = xd * Math.FusedMultiplyAdd(B, xd * xd, A);
        double e = t > Saturation ? double.PositiveInfinity : ExpOperator.Core(Math.Max(t, -Saturation));
        return (float)(xd / (1 + e));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Invoke(Vector128<float> x)
    {
        (Vector128<double> lower, Vector128<double> upper) = Vector128.Widen(x);
        return Vector128.Narrow(Double(lower), Double(upper));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Invoke(Vector256<float> x)
    {
        (Vector256<double> lower, Vector256<double> upper) = Vector256.Widen(x);
        return Vector256.Narrow(Double(lower), Double(upper));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Invoke(Vector512<float> x)
    {
        (Vector512<double> lower, Vector512<double> upper) = Vector512.Widen(x);
        return Vector512.Narrow(Double(lower), Double(upper));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<double> Double(Vector128<double> x)
    {
        Vector128<double> t = x * Vector128.FusedMultiplyAdd(Vector128.Create(B), x * x, Vector128.Create(A));
        Vector128<double> e = Vector128.ConditionalSelect(Vector128.GreaterThan(t, Vector128.Create(Saturation)), Vector128.Create(double.PositiveInfinity),
            ExpOperator.Core(Vector128.Max(t, Vector128.Create(-Saturation))));
        return x / (Vector128<double>.One + e);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<double> Double(Vector256<double> x)
    {
        Vector256<double> t = x * Vector256.FusedMultiplyAdd(Vector256.Create(B), x * x, Vector256.Create(A));
        Vector256<double> e = Vector256.ConditionalSelect(Vector256.GreaterThan(t, Vector256.Create(Saturation)), Vector256.Create(double.PositiveInfinity),
            ExpOperator.Core(Vector256.Max(t, Vector256.Create(-Saturation))));
        return x / (Vector256<double>.One + e);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<double> Double(Vector512<double> x)
    {
        Vector512<double> t = x * Vector512.FusedMultiplyAdd(Vector512.Create(B), x * x, Vector512.Create(A));
        Vector512<double> e = Vector512.ConditionalSelect(Vector512.GreaterThan(t, Vector512.Create(Saturation)), Vector512.Create(double.PositiveInfinity),
            ExpOperator.Core(Vector512.Max(t, Vector512.Create(-Saturation))));
        return x / (Vector512<double>.One + e);
    }
}

/// <summary>SiLU (SwiGLU's gate), x / (1 + e^−x), on <see cref="ExpOperator"/> (so equal to MathF.Exp's result where glibc runs).</summary>
internal readonly struct SiluOperator : IUnaryOperator
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Invoke(float x) => x / (1f + ExpOperator.Invoke(-x));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Invoke(Vector128<float> x) => x / (Vector128<float>.One + ExpOperator.Invoke(-x));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Invoke(Vector256<float> x) => x / (Vector256<float>.One + ExpOperator.Invoke(-x));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Invoke(Vector512<float> x) => x / (Vector512<float>.One + ExpOperator.Invoke(-x));
}

/// <summary>A gated feed-forward layer's activation: (gate, up) → TGate(gate) · up.</summary>
internal readonly struct GatedOperator<TGate> : IBinaryOperator where TGate : IUnaryOperator
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Invoke(float gate, float up) => TGate.Invoke(gate) * up;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Invoke(Vector128<float> gate, Vector128<float> up) => TGate.Invoke(gate) * up;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Invoke(Vector256<float> gate, Vector256<float> up) => TGate.Invoke(gate) * up;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Invoke(Vector512<float> gate, Vector512<float> up) => TGate.Invoke(gate) * up;
}

/// <summary>
/// expf with the algorithm, constants and fused multiply-adds of glibc's x86-64 FMA variant (from Arm's
/// optimized-routines, MIT / Apache-2.0: 2^(k/32) table and a cubic in double), so that results equal
/// <see cref="MathF.Exp"/> on glibc (checked over all 2^32 inputs) at every width. Being our own code, it returns
/// the same bits on every platform.
/// </summary>
internal readonly struct ExpOperator : IUnaryOperator
{
    // Constants rather than static fields, so that the loops (optimised before the type is initialised) need no
    // class-initialisation check; each literal is the shortest decimal that rounds to the bits in its comment.
    private const double C0 = 1.6938359250920212e-06;        // 0x3ebc6af84b912394
    private const double C1 = 0.00023459809789509004;        // 0x3f2ebfce50fac4f3
    private const double C2 = 0.021660849396613134;          // 0x3f962e42ff0c52d6
    private const double InvLn2NExact = 46.16624130844683;   // 0x40471547652b82fe, 32/ln 2
    private const double Shift = 6755399441055744.0;         // 0x1.8p52
    private const float Overflow = 88.7228317f;              // 0x42b17217; above: +inf
    private const float Underflow = -103.972076f;            // 0xc2cff1b4; below: 0
    private const float MayUnderflow = -103.278923f;         // 0xc2ce8ecf; below: the smallest subnormal

    /// <summary>2^(i/32) with i·2^47 subtracted from the bits, i = 0..31.</summary>
    private static ReadOnlySpan<ulong> Table =>
    [
        0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51,
        0x3fef72b83c7d517b, 0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1,
        0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
        0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585,
        0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
        0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
        0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069,
        0x3fef5818dcfba487, 0x3fef7c97337b9b5f, 0x3fefa4afa2a490da, 0x3fefd0765b6e4540,
    ];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Invoke(float x)
    {
        uint bits = BitConverter.SingleToUInt32Bits(x);
        uint abstop = (bits >> 20) & 0x7ff;
        if (abstop >= 0x42b)
        {
            if (bits == 0xff800000u) return 0f;
            if (abstop >= 0x7f8) return x + x;
            if (x > Overflow) return float.PositiveInfinity;
            if (x < Underflow) return 0f;
            if (x < MayUnderflow) return float.Epsilon;
        }
        return (float)Core(x);
    }

    // The special cases of the scalar form, as masks (NaN: x + x).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Invoke(Vector128<float> x)
    {
        (Vector128<double> lower, Vector128<double> upper) = Vector128.Widen(x);
        Vector128<float> y = Vector128.Narrow(Core(lower), Core(upper));
        y = Vector128.ConditionalSelect(Vector128.LessThan(x, Vector128.Create(MayUnderflow)), Vector128.Create(float.Epsilon), y);
        y = Vector128.ConditionalSelect(Vector128.LessThan(x, Vector128.Create(Underflow)), Vector128<float>.Zero, y);
        y = Vector128.ConditionalSelect(Vector128.GreaterThan(x, Vector128.Create(Overflow)), Vector128.Create(float.PositiveInfinity), y);
        return Vector128.ConditionalSelect(Vector128.Equals(x, x), y, x + x);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Invoke(Vector256<float> x)
    {
        (Vector256<double> lower, Vector256<double> upper) = Vector256.Widen(x);
        Vector256<float> y = Vector256.Narrow(Core(lower), Core(upper));
        y = Vector256.ConditionalSelect(Vector256.LessThan(x, Vector256.Create(MayUnderflow)), Vector256.Create(float.Epsilon), y);
        y = Vector256.ConditionalSelect(Vector256.LessThan(x, Vector256.Create(Underflow)), Vector256<float>.Zero, y);
        y = Vector256.ConditionalSelect(Vector256.GreaterThan(x, Vector256.Create(Overflow)), Vector256.Create(float.PositiveInfinity), y);
        return Vector256.ConditionalSelect(Vector256.Equals(x, x), y, x + x);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Invoke(Vector512<float> x)
    {
        (Vector512<double> lower, Vector512<double> upper) = Vector512.Widen(x);
        Vector512<float> y = Vector512.Narrow(Core(lower), Core(upper));
        y = Vector512.ConditionalSelect(Vector512.LessThan(x, Vector512.Create(MayUnderflow)), Vector512.Create(float.Epsilon), y);
        y = Vector512.ConditionalSelect(Vector512.LessThan(x, Vector512.Create(Underflow)), Vector512<float>.Zero, y);
        y = Vector512.ConditionalSelect(Vector512.GreaterThan(x, Vector512.Create(Overflow)), Vector512.Create(float.PositiveInfinity), y);
        return Vector512.ConditionalSelect(Vector512.Equals(x, x), y, x + x);
    }

    /// <summary>
    /// e^x in double for |x| up to about 700 (no special cases): x = (k + r)·ln2/32 with k an integer and |r| ≤ ½,
    /// e^x = 2^(k/32) from the table and the exponent bits, times a cubic in r.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static double Core(double xd)
    {
        double kd = Math.FusedMultiplyAdd(InvLn2NExact, xd, Shift);
        ulong ki = BitConverter.DoubleToUInt64Bits(kd);
        kd -= Shift;
        double r = Math.FusedMultiplyAdd(InvLn2NExact, xd, -kd);
        double s = BitConverter.UInt64BitsToDouble(Table[(int)(ki & 31)] + (ki << 47));
        double z = Math.FusedMultiplyAdd(r, C0, C1);
        double r2 = r * r;
        double y = Math.FusedMultiplyAdd(r, C2, 1.0);
        y = Math.FusedMultiplyAdd(z, r2, y);
        return y * s;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector128<double> Core(Vector128<double> xd)
    {
        Vector128<double> invLn2N = Vector128.Create(InvLn2NExact), shift = Vector128.Create(Shift);
        Vector128<double> kd = Vector128.FusedMultiplyAdd(invLn2N, xd, shift);
        Vector128<ulong> ki = kd.AsUInt64();
        kd -= shift;
        Vector128<double> r = Vector128.FusedMultiplyAdd(invLn2N, xd, -kd);
        Vector128<double> s = (Lookup(ki) + (ki << 47)).AsDouble();
        Vector128<double> z = Vector128.FusedMultiplyAdd(r, Vector128.Create(C0), Vector128.Create(C1));
        Vector128<double> r2 = r * r;
        Vector128<double> y = Vector128.FusedMultiplyAdd(r, Vector128.Create(C2), Vector128<double>.One);
        y = Vector128.FusedMultiplyAdd(z, r2, y);
        return y * s;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<double> Core(Vector256<double> xd)
    {
        Vector256<double> invLn2N = Vector256.Create(InvLn2NExact), shift = Vector256.Create(Shift);
        Vector256<double> kd = Vector256.FusedMultiplyAdd(invLn2N, xd, shift);
        Vector256<ulong> ki = kd.AsUInt64();
        kd -= shift;
        Vector256<double> r = Vector256.FusedMultiplyAdd(invLn2N, xd, -kd);
        Vector256<double> s = (Lookup(ki) + (ki << 47)).AsDouble();
        Vector256<double> z = Vector256.FusedMultiplyAdd(r, Vector256.Create(C0), Vector256.Create(C1));
        Vector256<double> r2 = r * r;
        Vector256<double> y = Vector256.FusedMultiplyAdd(r, Vector256.Create(C2), Vector256<double>.One);
        y = Vector256.FusedMultiplyAdd(z, r2, y);
        return y * s;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<double> Core(Vector512<double> xd)
    {
        Vector512<double> invLn2N = Vector512.Create(InvLn2NExact), shift = Vector512.Create(Shift);
        Vector512<double> kd = Vector512.FusedMultiplyAdd(invLn2N, xd, shift);
        Vector512<ulong> ki = kd.AsUInt64();
        kd -= shift;
        Vector512<double> r = Vector512.FusedMultiplyAdd(invLn2N, xd, -kd);
        Vector512<double> s = (Lookup(ki) + (ki << 47)).AsDouble();
        Vector512<double> z = Vector512.FusedMultiplyAdd(r, Vector512.Create(C0), Vector512.Create(C1));
        Vector512<double> r2 = r * r;
        Vector512<double> y = Vector512.FusedMultiplyAdd(r, Vector512.Create(C2), Vector512<double>.One);
        y = Vector512.FusedMultiplyAdd(z, r2, y);
        return y * s;
    }

    // Table[k & 31] per lane. The cross-platform APIs have no gather, so two lanes are two loads (what AdvSimd
    // would do anyway); AVX2 gathers four, AVX-512 permutes the table held in four registers.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<ulong> Lookup(Vector128<ulong> k) =>
        Vector128.Create(Table[(int)(k.ToScalar() & 31)], Table[(int)(k.GetElement(1) & 31)]);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe Vector256<ulong> Lookup(Vector256<ulong> k)
    {
        if (!Avx2.IsSupported) return Vector256.Create(Lookup(k.GetLower()), Lookup(k.GetUpper()));
        fixed (ulong* table = Table)
            return Avx2.GatherVector256(table, (k & Vector256.Create(31UL)).AsInt64(), 8);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<ulong> Lookup(Vector512<ulong> k)
    {
        if (!Avx512F.IsSupported) return Vector512.Create(Lookup(k.GetLower()), Lookup(k.GetUpper()));
        ReadOnlySpan<ulong> table = Table;
        // The permutes read the low four bits of each index; bit 4 picks the half of the table.
        Vector512<ulong> low = Avx512F.PermuteVar8x64x2(Vector512.Create(table[..8]), k, Vector512.Create(table[8..16]));
        Vector512<ulong> high = Avx512F.PermuteVar8x64x2(Vector512.Create(table[16..24]), k, Vector512.Create(table[24..]));
        return Vector512.ConditionalSelect(Vector512.Equals(k & Vector512.Create(16UL), Vector512<ulong>.Zero), low, high);
    }
}
