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
internal static class CpuProbeKernels
{
    private const int ParallelChunk = 1 << 15;

    /// <summary>
    /// One logits row: an online pass finds the maximum, its index and the running sum of exponentials
    /// (rescaled when the maximum moves); a second pass overwrites the row with the gradient
    /// (softmax − onehot)·scale. Returns the loss −ln q(target) in nats and the argmax.
    /// The running sum is accumulated in index order (as the scalar definition does); only the
    /// exponentials of a chunk in which the maximum does not move are computed eight at a time. Those computed after
    /// the maximum's last move are exp(x − final maximum) already, so the gradient pass reuses them instead of
    /// evaluating exp again (the same function of the same value: the same bits).
    /// </summary>
    public static (float LossNats, int Argmax) SoftmaxCrossEntropyRow(Span<float> row, int target, float gradientScale, bool writeGradient)
    {
        const int StackCache = 4096;
        Span<float> exponentials = !writeGradient || !ExpF.IsVectorised ? default : row.Length <= StackCache ? stackalloc float[row.Length] : new float[row.Length];
        float max = float.NegativeInfinity, sum = 0f;
        int argmax = 0, j = 0;
        // Chunks from here on hold exponentials relative to the final maximum.
        int reusableFrom = 0;
        ref float start = ref MemoryMarshal.GetReference(row);
        ref float cache = ref MemoryMarshal.GetReference(exponentials);
        if (ExpF.IsVectorised)
        {
            for (; j <= row.Length - 8; j += 8)
            {
                Vector256<float> v = Vector256.LoadUnsafe(ref start, (nuint)j);
                Vector256<float> maxVector = Vector256.Create(max);
                if (Vector256.GreaterThanAny(v, maxVector))
                {
                    for (int k = j; k < j + 8; k++) OnlineStep(row[k], k, ref max, ref sum, ref argmax);
                    reusableFrom = j + 8;
                    continue;
                }
                Vector256<float> e = ExpF.Exp(v - maxVector);
                if (!exponentials.IsEmpty) e.StoreUnsafe(ref cache, (nuint)j);
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
        float maxBeforeTail = max;
        for (; j < row.Length; j++) OnlineStep(row[j], j, ref max, ref sum, ref argmax);
        // The maximum only ever grows, so a different value means it moved in the tail.
        if (max != maxBeforeTail) reusableFrom = row.Length;
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
                    Vector256<float> e = j >= reusableFrom ? Vector256.LoadUnsafe(ref cache, (nuint)j) : ExpF.Exp(Vector256.LoadUnsafe(ref start, (nuint)j) - maxVector);
                    (e * inverseVector * scaleVector).StoreUnsafe(ref start, (nuint)j);
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
                CpuWorkers.For(chunks, c =>
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

    /// <summary>gradient[i] = upstream[i] · GELU'(preActivation[i]) (exact GELU, <see cref="CpuMath.GeluExactDerivative"/>); upstream may be gradient.</summary>
    public static void GeluBackward(ReadOnlySpan<float> preActivation, ReadOnlySpan<float> upstream, Span<float> gradient) =>
        VectorLoop.Apply<GeluBackwardOperator>(preActivation[..gradient.Length], upstream, gradient);

    /// <summary>output[i] = exact GELU of input[i] (<see cref="CpuMath.GeluExact"/>).</summary>
    public static void Gelu(ReadOnlySpan<float> input, Span<float> output) => VectorLoop.Apply<GeluExactOperator>(input[..output.Length], output);

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
                CpuWorkers.For(blocks, b =>
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
/// expf as glibc's x86-64 FMA build computes it, equal to <see cref="MathF.Exp"/> on glibc (checked over all 2^32
/// inputs) and the same on every platform; the scalar and 8-lane forms of the one implementation in ExpOperator.
/// </summary>
internal static class ExpF
{
    /// <summary>True when <see cref="Exp(Vector256{float})"/> runs on AVX2 + FMA.</summary>
    public static bool IsVectorised => Avx2.IsSupported && Fma.IsSupported;

    /// <summary>e^x for one float.</summary>
    public static float Exp(float x) => ExpOperator.Invoke(x);

    /// <summary>e^x on eight lanes (requires <see cref="IsVectorised"/> to be fast).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Exp(Vector256<float> x) => ExpOperator.Invoke(x);
}
