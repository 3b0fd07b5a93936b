using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace NativeMi.Compute.Cpu;

/// <summary>
/// The probe's fused kernels on the CPU. Every vectorised kernel computes, lane by lane, exactly the float
/// operations of its scalar definition in the same order (no reassociation, no contraction the scalar code
/// does not have), so results are bit-identical to the scalar loops they replace and independent of the
/// vector width and of the thread split.
/// </summary>
public static class CpuProbeKernels
{
    private const int ParallelChunk = 1 << 15;

    /// <summary>
    /// One logits row: an online pass finds the maximum, its index and the running sum of exponentials
    /// (rescaled when the maximum moves); a second pass overwrites the row with the gradient
    /// (softmax − onehot)·scale. Returns the loss −ln q(target) in nats and the argmax.
    /// The running sum is accumulated in index order (as the scalar definition does); only the
    /// exponentials of a chunk in which the maximum does not move are computed eight at a time.
    /// </summary>
    public static (float LossNats, int Argmax) SoftmaxCrossEntropyRow(Span<float> row, int target, float gradientScale, bool writeGradient)
    {
        float max = float.NegativeInfinity, sum = 0f;
        int argmax = 0, j = 0;
        ref float start = ref MemoryMarshal.GetReference(row);
        if (ExpF.IsVectorised)
        {
            for (; j <= row.Length - 8; j += 8)
            {
                Vector256<float> v = Vector256.LoadUnsafe(ref start, (nuint)j);
                Vector256<float> maxVector = Vector256.Create(max);
                if (Vector256.GreaterThanAny(v, maxVector))
                {
                    for (int k = j; k < j + 8; k++) OnlineStep(row[k], k, ref max, ref sum, ref argmax);
                    continue;
                }
                Vector256<float> e = ExpF.Exp(v - maxVector);
                sum += e.GetElement(0);
                sum += e.GetElement(1);
                sum += e.GetElement(2);
                sum += e.GetElement(3);
                sum += e.GetElement(4);
                sum += e.GetElement(5);
                sum += e.GetElement(6);
                sum += e.GetElement(7);
            }
        }
        for (; j < row.Length; j++) OnlineStep(row[j], j, ref max, ref sum, ref argmax);
        float logSumExp = max + MathF.Log(sum);
        float loss = logSumExp - row[target];
        if (writeGradient)
        {
            float inverse = 1f / sum;
            j = 0;
            if (ExpF.IsVectorised)
            {
                Vector256<float> maxVector = Vector256.Create(max), inverseVector = Vector256.Create(inverse), scaleVector = Vector256.Create(gradientScale);
                for (; j <= row.Length - 8; j += 8)
                {
                    Vector256<float> v = Vector256.LoadUnsafe(ref start, (nuint)j);
                    (ExpF.Exp(v - maxVector) * inverseVector * scaleVector).StoreUnsafe(ref start, (nuint)j);
                }
            }
            for (; j < row.Length; j++) row[j] = ExpF.Exp(row[j] - max) * inverse * gradientScale;
            row[target] -= gradientScale;
        }
        return (loss, argmax);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void OnlineStep(float v, int j, ref float max, ref float sum, ref int argmax)
    {
        if (v > max)
        {
            sum = sum * ExpF.Exp(max - v) + 1f;
            max = v;
            argmax = j;
        }
        else
        {
            sum += ExpF.Exp(v - max);
        }
    }

    /// <summary>AdamW with decoupled weight decay, bias-corrected moments, one fused loop (split over threads for large spans).</summary>
    public static void AdamW(Span<float> parameters, ReadOnlySpan<float> gradients, Span<float> m, Span<float> v, AdamWStep step)
    {
        int count = parameters.Length;
        if (gradients.Length < count || m.Length < count || v.Length < count) throw new ArgumentException("gradients and moments must be at least as long as the parameters");
        var constants = new AdamWConstants(step);
        if (count < 2 * ParallelChunk)
        {
            AdamWRange(parameters, gradients, m, v, constants);
            return;
        }
        unsafe
        {
            fixed (float* p = parameters, g = gradients, m1 = m, m2 = v)
            {
                nint pp = (nint)p, gp = (nint)g, mp = (nint)m1, vp = (nint)m2;
                int chunks = (count + ParallelChunk - 1) / ParallelChunk;
                Parallel.For(0, chunks, c =>
                {
                    int begin = c * ParallelChunk, length = Math.Min(ParallelChunk, count - begin);
                    AdamWRange(new Span<float>((float*)pp + begin, length), new ReadOnlySpan<float>((float*)gp + begin, length),
                        new Span<float>((float*)mp + begin, length), new Span<float>((float*)vp + begin, length), constants);
                });
            }
        }
    }

    private readonly struct AdamWConstants
    {
        public readonly float B1, B2, OneMinusB1, OneMinusB2, StepSize, InverseSqrtCorrection2, Decay, Epsilon;

        public AdamWConstants(AdamWStep step)
        {
            B1 = step.Beta1;
            B2 = step.Beta2;
            OneMinusB1 = 1f - B1;
            OneMinusB2 = 1f - B2;
            float correction1 = 1f - MathF.Pow(B1, step.Step), correction2 = 1f - MathF.Pow(B2, step.Step);
            StepSize = step.LearningRate / correction1;
            InverseSqrtCorrection2 = 1f / MathF.Sqrt(correction2);
            Decay = 1f - step.LearningRate * step.WeightDecay;
            Epsilon = step.Epsilon;
        }
    }

    private static void AdamWRange(Span<float> parameters, ReadOnlySpan<float> gradients, Span<float> m, Span<float> v, in AdamWConstants c)
    {
        int i = 0, count = parameters.Length;
        if (Vector256.IsHardwareAccelerated)
        {
            ref float p0 = ref MemoryMarshal.GetReference(parameters), m0 = ref MemoryMarshal.GetReference(m), v0 = ref MemoryMarshal.GetReference(v);
            ref float g0 = ref MemoryMarshal.GetReference(gradients);
            Vector256<float> b1 = Vector256.Create(c.B1), b2 = Vector256.Create(c.B2), ob1 = Vector256.Create(c.OneMinusB1), ob2 = Vector256.Create(c.OneMinusB2);
            Vector256<float> stepSize = Vector256.Create(c.StepSize), inverseSqrt = Vector256.Create(c.InverseSqrtCorrection2);
            Vector256<float> decay = Vector256.Create(c.Decay), epsilon = Vector256.Create(c.Epsilon);
            for (; i <= count - 8; i += 8)
            {
                Vector256<float> g = Vector256.LoadUnsafe(ref g0, (nuint)i);
                Vector256<float> mi = b1 * Vector256.LoadUnsafe(ref m0, (nuint)i) + ob1 * g;
                Vector256<float> vi = b2 * Vector256.LoadUnsafe(ref v0, (nuint)i) + ob2 * g * g;
                mi.StoreUnsafe(ref m0, (nuint)i);
                vi.StoreUnsafe(ref v0, (nuint)i);
                Vector256<float> p = Vector256.LoadUnsafe(ref p0, (nuint)i);
                (p * decay - stepSize * mi / (Vector256.Sqrt(vi) * inverseSqrt + epsilon)).StoreUnsafe(ref p0, (nuint)i);
            }
        }
        for (; i < count; i++)
        {
            float g = gradients[i];
            float mi = m[i] = c.B1 * m[i] + c.OneMinusB1 * g;
            float vi = v[i] = c.B2 * v[i] + c.OneMinusB2 * g * g;
            parameters[i] = parameters[i] * c.Decay - c.StepSize * mi / (MathF.Sqrt(vi) * c.InverseSqrtCorrection2 + c.Epsilon);
        }
    }

    /// <summary>gradient[i] = upstream[i] · GELU'(preActivation[i]) (exact GELU), bit-identical to <see cref="CpuMath.GeluExactDerivative"/>.</summary>
    public static void GeluBackward(ReadOnlySpan<float> preActivation, ReadOnlySpan<float> upstream, Span<float> gradient)
    {
        int i = 0, count = gradient.Length;
        if (ExpF.IsVectorised)
        {
            ref float u0 = ref MemoryMarshal.GetReference(preActivation), g0 = ref MemoryMarshal.GetReference(upstream), d0 = ref MemoryMarshal.GetReference(gradient);
            for (; i <= count - 8; i += 8)
            {
                Vector256<float> u = Vector256.LoadUnsafe(ref u0, (nuint)i);
                (Vector256.LoadUnsafe(ref g0, (nuint)i) * GeluDerivative(u)).StoreUnsafe(ref d0, (nuint)i);
            }
        }
        for (; i < count; i++) gradient[i] = upstream[i] * GeluDerivativeScalar(preActivation[i]);
    }

    /// <summary>output[i] = exact GELU of input[i], bit-identical to <see cref="CpuMath.GeluExact"/>.</summary>
    public static void Gelu(ReadOnlySpan<float> input, Span<float> output)
    {
        int i = 0, count = output.Length;
        if (Vector256.IsHardwareAccelerated && Fma.IsSupported)
        {
            ref float x0 = ref MemoryMarshal.GetReference(input), y0 = ref MemoryMarshal.GetReference(output);
            for (; i <= count - 8; i += 8)
            {
                Vector256<float> x = Vector256.LoadUnsafe(ref x0, (nuint)i);
                (Vector256.Create(0.5f) * x * (Vector256<float>.One + CpuMath.Erf(x * Vector256.Create(0.70710678118654752f)))).StoreUnsafe(ref y0, (nuint)i);
            }
        }
        for (; i < count; i++) output[i] = CpuMath.GeluExact(input[i]);
    }

    /// <summary>The scalar GELU derivative with <see cref="ExpF.Exp(float)"/> (equal to MathF.Exp where glibc's expf runs).</summary>
    private static float GeluDerivativeScalar(float x) =>
        0.5f * (1f + CpuMath.Erf(x * 0.70710678118654752f)) + x * 0.3989422804014327f * ExpF.Exp(-0.5f * x * x);

    private static Vector256<float> GeluDerivative(Vector256<float> x) =>
        Vector256.Create(0.5f) * (Vector256<float>.One + CpuMath.Erf(x * Vector256.Create(0.70710678118654752f)))
        + x * Vector256.Create(0.3989422804014327f) * ExpF.Exp(Vector256.Create(-0.5f) * x * x);

    /// <summary>columnSums[j] = Σ_r matrix[r, j], rows added in order (columns split over threads).</summary>
    public static void ColumnSums(float[] matrix, Span<float> columnSums, int rows, int width)
    {
        columnSums.Clear();
        const int Block = 256;
        if ((long)rows * width < 2 * ParallelChunk || width < 2 * Block)
        {
            for (int r = 0; r < rows; r++) System.Numerics.Tensors.TensorPrimitives.Add(columnSums, matrix.AsSpan(r * width, width), columnSums);
            return;
        }
        unsafe
        {
            fixed (float* s = columnSums)
            {
                nint sp = (nint)s;
                int blocks = (width + Block - 1) / Block;
                Parallel.For(0, blocks, b =>
                {
                    int begin = b * Block, length = Math.Min(Block, width - begin);
                    var sums = new Span<float>((float*)sp + begin, length);
                    for (int r = 0; r < rows; r++) System.Numerics.Tensors.TensorPrimitives.Add(sums, matrix.AsSpan(r * width + begin, length), sums);
                });
            }
        }
    }
}

/// <summary>
/// expf with the algorithm, constants and fused multiply-adds of glibc's x86-64 FMA variant (from Arm's
/// optimized-routines, MIT / Apache-2.0: 2^(k/32) table and a cubic in double), so that results equal
/// <see cref="MathF.Exp"/> on glibc (checked over all 2^32 inputs) while eight lanes run at once. Being our
/// own code, it returns the same bits on every platform.
/// </summary>
public static class ExpF
{
    private static readonly double C0 = BitConverter.UInt64BitsToDouble(0x3ebc6af84b912394);
    private static readonly double C1 = BitConverter.UInt64BitsToDouble(0x3f2ebfce50fac4f3);
    private static readonly double C2 = BitConverter.UInt64BitsToDouble(0x3f962e42ff0c52d6);
    private static readonly double InvLn2NExact = BitConverter.UInt64BitsToDouble(0x40471547652b82fe);
    private const double Shift = 6755399441055744.0; // 0x1.8p52
    private static readonly float Overflow = BitConverter.UInt32BitsToSingle(0x42b17217);      // above: +inf
    private static readonly float Underflow = BitConverter.UInt32BitsToSingle(0xc2cff1b4);     // below: 0
    private static readonly float MayUnderflow = BitConverter.UInt32BitsToSingle(0xc2ce8ecf);  // below: the smallest subnormal

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

    /// <summary>True when <see cref="Exp(Vector256{float})"/> runs on AVX2 + FMA.</summary>
    public static bool IsVectorised => Avx2.IsSupported && Fma.IsSupported;

    /// <summary>e^x for one float.</summary>
    public static float Exp(float x)
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
        double xd = x;
        double kd = Math.FusedMultiplyAdd(InvLn2NExact, xd, Shift);
        ulong ki = BitConverter.DoubleToUInt64Bits(kd);
        kd -= Shift;
        double r = Math.FusedMultiplyAdd(InvLn2NExact, xd, -kd);
        double s = BitConverter.UInt64BitsToDouble(Table[(int)(ki & 31)] + (ki << 47));
        double z = Math.FusedMultiplyAdd(r, C0, C1);
        double r2 = r * r;
        double y = Math.FusedMultiplyAdd(r, C2, 1.0);
        y = Math.FusedMultiplyAdd(z, r2, y);
        return (float)(y * s);
    }

    /// <summary>e^x on eight lanes (requires <see cref="IsVectorised"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Exp(Vector256<float> x)
    {
        (Vector256<double> lower, Vector256<double> upper) = Vector256.Widen(x);
        Vector256<float> y = Vector256.Narrow(Core(lower), Core(upper));
        // The special cases of the scalar code, as masks (NaN: x + x).
        y = Vector256.ConditionalSelect(Vector256.LessThan(x, Vector256.Create(MayUnderflow)), Vector256.Create(float.Epsilon), y);
        y = Vector256.ConditionalSelect(Vector256.LessThan(x, Vector256.Create(Underflow)), Vector256<float>.Zero, y);
        y = Vector256.ConditionalSelect(Vector256.GreaterThan(x, Vector256.Create(Overflow)), Vector256.Create(float.PositiveInfinity), y);
        return Vector256.ConditionalSelect(Vector256.Equals(x, x), y, x + x);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe Vector256<double> Core(Vector256<double> xd)
    {
        Vector256<double> invLn2N = Vector256.Create(InvLn2NExact), shift = Vector256.Create(Shift);
        Vector256<double> kd = Fma.MultiplyAdd(invLn2N, xd, shift);
        Vector256<ulong> ki = kd.AsUInt64();
        kd -= shift;
        Vector256<double> r = Fma.MultiplySubtract(invLn2N, xd, kd);
        Vector256<ulong> t;
        fixed (ulong* table = Table)
            t = Avx2.GatherVector256(table, (ki & Vector256.Create(31UL)).AsInt64(), 8);
        Vector256<double> s = (t + (ki << 47)).AsDouble();
        Vector256<double> z = Fma.MultiplyAdd(r, Vector256.Create(C0), Vector256.Create(C1));
        Vector256<double> r2 = r * r;
        Vector256<double> y = Fma.MultiplyAdd(r, Vector256.Create(C2), Vector256<double>.One);
        y = Fma.MultiplyAdd(z, r2, y);
        return y * s;
    }
}
