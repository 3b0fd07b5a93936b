using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace NativeMi.Compute.Cpu;

/// <summary>
/// Scaled dot-product attention over a fused QKV buffer, vectorised over keys and over the head dimension.
/// One work item is one (sequence, head) pair: K is transposed once into a [headDim, keys] block so that a query's
/// scores are FMAs of broadcast query elements with contiguous key rows (8 keys per vector), the masked softmax runs
/// on whole vectors with a polynomial exp, and the context row is accumulated from V rows with the weights broadcast.
/// Each output element is summed in one fixed order, whatever the thread scheduling.
/// </summary>
internal static class CpuAttention
{
    private const int Lanes = 8;

    /// <summary>
    /// output[b·seq + i, h·headDim + d] = Σ_j softmax_j(q_i·k_j / √headDim over unmasked keys j) · v_j[d], where q, k, v
    /// are the three thirds of each row of <paramref name="qkv"/> ([batch·seq, 3·heads·headDim]). A row with no
    /// unmasked key gets zeros.
    /// </summary>
    /// <param name="qkv">Queries, keys and values, row-major [batch·seq, 3·heads·headDim].</param>
    /// <param name="mask">Per token: non-zero for a real token, 0 for padding (never attended to).</param>
    /// <param name="output">Context, row-major [batch·seq, heads·headDim].</param>
    /// <param name="batch">Sequences.</param>
    /// <param name="seq">Tokens per sequence.</param>
    /// <param name="heads">Attention heads.</param>
    /// <param name="headDim">Width of one head.</param>
    /// <param name="causal">Query i sees keys 0..i only.</param>
    public static void Run(float[] qkv, int[] mask, float[] output, int batch, int seq, int heads, int headDim, bool causal)
    {
        int width = heads * headDim;
        if (qkv.LongLength < (long)batch * seq * 3 * width) throw new ArgumentException("QKV buffer too small", nameof(qkv));
        if (output.LongLength < (long)batch * seq * width) throw new ArgumentException("output buffer too small", nameof(output));
        if (mask.LongLength < (long)batch * seq) throw new ArgumentException("mask too small", nameof(mask));
        int items = batch * heads;
        if (items == 0 || seq == 0) return;
        double work = (double)items * seq * seq * headDim;
        if (work < 200_000 || Environment.ProcessorCount == 1)
        {
            var scratch = new Scratch(seq, headDim);
            for (int item = 0; item < items; item++) Item(qkv, mask, output, item, seq, heads, headDim, causal, scratch);
            return;
        }
        // Contiguous ranges of items, four per thread: a thread that starts late leaves the ranges it has not claimed
        // to the others.
        int chunks = Math.Min(4 * CpuWorkers.Parallelism, items);
        CpuWorkers.For(chunks, w =>
        {
            var scratch = new Scratch(seq, headDim);
            int start = (int)((long)w * items / chunks), end = (int)((long)(w + 1) * items / chunks);
            for (int item = start; item < end; item++) Item(qkv, mask, output, item, seq, heads, headDim, causal, scratch);
        });
    }

    /// <summary>Per-worker buffers: transposed keys, scores and the key mask, each padded to whole vectors.</summary>
    private sealed class Scratch(int seq, int headDim)
    {
        public readonly int Padded = (seq + Lanes - 1) / Lanes * Lanes;
        public readonly float[] KeysT = new float[(long)headDim * ((seq + Lanes - 1) / Lanes * Lanes) + Lanes];
        public readonly float[] Scores = new float[(seq + Lanes - 1) / Lanes * Lanes];
        public readonly int[] Valid = new int[(seq + Lanes - 1) / Lanes * Lanes];
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Item(float[] qkv, int[] mask, float[] output, int item, int seq, int heads, int headDim, bool causal, Scratch scratch)
    {
        int b = item / heads, h = item % heads, width = heads * headDim, stride = 3 * width, padded = scratch.Padded;
        int rowBase = b * seq;
        float scale = 1f / MathF.Sqrt(headDim);
        fixed (float* x = qkv, o = output, kt = scratch.KeysT, scores = scratch.Scores)
        fixed (int* valid = scratch.Valid, m = mask)
        {
            bool any = false;
            for (int j = 0; j < padded; j++)
            {
                bool real = j < seq && m[rowBase + j] != 0;
                valid[j] = real ? -1 : 0;
                any |= real;
            }
            if (!any)
            {
                for (int i = 0; i < seq; i++) new Span<float>(o + (long)(rowBase + i) * width + h * headDim, headDim).Clear();
                return;
            }
            // K transposed: kt[d·padded + j] = k_j[d], zero for the padding keys past seq.
            for (int j = 0; j < padded; j++)
            {
                if (j < seq)
                {
                    float* key = x + (long)(rowBase + j) * stride + width + h * headDim;
                    for (int d = 0; d < headDim; d++) kt[(long)d * padded + j] = key[d];
                }
                else
                {
                    for (int d = 0; d < headDim; d++) kt[(long)d * padded + j] = 0;
                }
            }
            float* values = x + (long)rowBase * stride + 2 * width + h * headDim;
            for (int i = 0; i < seq; i++)
            {
                float* q = x + (long)(rowBase + i) * stride + h * headDim;
                float* dst = o + (long)(rowBase + i) * width + h * headDim;
                int keyEnd = causal ? i + 1 : seq;
                int vectors = (keyEnd + Lanes - 1) / Lanes;
                Scores(q, kt, scores, padded, vectors, headDim);
                // Masked, scaled scores and their maximum; a key is live when it is a real token within keyEnd.
                Vector256<float> max = Vector256.Create(float.NegativeInfinity);
                Vector256<int> lane = Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7);
                for (int v = 0; v < vectors; v++)
                {
                    int j0 = v * Lanes;
                    Vector256<float> live = Vector256.Load(valid + j0).AsSingle() &
                        Vector256.LessThan(lane + Vector256.Create(j0), Vector256.Create(keyEnd)).AsSingle();
                    Vector256<float> s = Vector256.ConditionalSelect(live, Vector256.Load(scores + j0) * scale, Vector256.Create(float.NegativeInfinity));
                    s.Store(scores + j0);
                    max = Vector256.Max(max, s);
                }
                float rowMax = HorizontalMax(max);
                if (float.IsNegativeInfinity(rowMax))
                {
                    new Span<float>(dst, headDim).Clear();
                    continue;
                }
                Vector256<float> maxVector = Vector256.Create(rowMax), sum = Vector256<float>.Zero;
                for (int v = 0; v < vectors; v++)
                {
                    int j0 = v * Lanes;
                    Vector256<float> s = Vector256.Load(scores + j0);
                    // exp(-inf − max) is 0 through the mask, not through the polynomial.
                    Vector256<float> e = Exp(Vector256.Max(s - maxVector, Vector256.Create(-87f))) &
                        ~Vector256.Equals(s, Vector256.Create(float.NegativeInfinity));
                    e.Store(scores + j0);
                    sum += e;
                }
                float inverse = 1f / Vector256.Sum(sum);
                Context(scores, values, stride, keyEnd, headDim, inverse, dst);
            }
        }
    }

    /// <summary>scores[j] = q · k_j for the first <paramref name="vectors"/>·8 keys, four vectors of keys at a time.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Scores(float* q, float* kt, float* scores, int padded, int vectors, int headDim)
    {
        int v = 0;
        for (; v + 4 <= vectors; v += 4)
        {
            float* k = kt + v * Lanes;
            Vector256<float> s0 = default, s1 = default, s2 = default, s3 = default;
            for (int d = 0; d < headDim; d++, k += padded)
            {
                Vector256<float> qd = Vector256.Create(q[d]);
                s0 = Vector256.FusedMultiplyAdd(qd, Vector256.Load(k), s0);
                s1 = Vector256.FusedMultiplyAdd(qd, Vector256.Load(k + 8), s1);
                s2 = Vector256.FusedMultiplyAdd(qd, Vector256.Load(k + 16), s2);
                s3 = Vector256.FusedMultiplyAdd(qd, Vector256.Load(k + 24), s3);
            }
            s0.Store(scores + v * Lanes);
            s1.Store(scores + v * Lanes + 8);
            s2.Store(scores + v * Lanes + 16);
            s3.Store(scores + v * Lanes + 24);
        }
        for (; v < vectors; v++)
        {
            float* k = kt + v * Lanes;
            Vector256<float> s0 = default;
            for (int d = 0; d < headDim; d++, k += padded)
                s0 = Vector256.FusedMultiplyAdd(Vector256.Create(q[d]), Vector256.Load(k), s0);
            s0.Store(scores + v * Lanes);
        }
    }

    /// <summary>dst = inverse · Σ_j weights[j] · v_j over keys 0..keyEnd, 32, then 8, then 1 column at a time.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Context(float* weights, float* values, int stride, int keyEnd, int headDim, float inverse, float* dst)
    {
        Vector256<float> scale = Vector256.Create(inverse);
        int d = 0;
        for (; d + 32 <= headDim; d += 32)
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            float* v = values + d;
            for (int j = 0; j < keyEnd; j++, v += stride)
            {
                Vector256<float> w = Vector256.Create(weights[j]);
                a0 = Vector256.FusedMultiplyAdd(w, Vector256.Load(v), a0);
                a1 = Vector256.FusedMultiplyAdd(w, Vector256.Load(v + 8), a1);
                a2 = Vector256.FusedMultiplyAdd(w, Vector256.Load(v + 16), a2);
                a3 = Vector256.FusedMultiplyAdd(w, Vector256.Load(v + 24), a3);
            }
            (a0 * scale).Store(dst + d);
            (a1 * scale).Store(dst + d + 8);
            (a2 * scale).Store(dst + d + 16);
            (a3 * scale).Store(dst + d + 24);
        }
        for (; d + 8 <= headDim; d += 8)
        {
            Vector256<float> a0 = default;
            float* v = values + d;
            for (int j = 0; j < keyEnd; j++, v += stride)
                a0 = Vector256.FusedMultiplyAdd(Vector256.Create(weights[j]), Vector256.Load(v), a0);
            (a0 * scale).Store(dst + d);
        }
        for (; d < headDim; d++)
        {
            float a = 0;
            float* v = values + d;
            for (int j = 0; j < keyEnd; j++, v += stride) a = MathF.FusedMultiplyAdd(weights[j], *v, a);
            dst[d] = a * inverse;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float HorizontalMax(Vector256<float> v)
    {
        Vector128<float> m = Vector128.Max(v.GetLower(), v.GetUpper());
        m = Vector128.Max(m, Vector128.Shuffle(m, Vector128.Create(2, 3, 0, 1)));
        m = Vector128.Max(m, Vector128.Shuffle(m, Vector128.Create(1, 0, 3, 2)));
        return m.ToScalar();
    }

    /// <summary>
    /// e^x on 8 lanes for x in [-87, 0] (Cephes' expf: x = n·ln2 + r, |r| ≤ ln2/2, a degree-6 polynomial for e^r,
    /// then 2^n through the exponent bits); relative error about 2e-7.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> Exp(Vector256<float> x)
    {
        Vector256<float> n = Vector256.Floor(Vector256.FusedMultiplyAdd(x, Vector256.Create(1.44269504088896341f), Vector256.Create(0.5f)));
        Vector256<float> r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-0.693359375f), x);
        r = Vector256.FusedMultiplyAdd(n, Vector256.Create(2.12194440e-4f), r);
        Vector256<float> p = Vector256.Create(1.9875691500e-4f);
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1.3981999507e-3f));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(8.3334519073e-3f));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(4.1665795894e-2f));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1.6666665459e-1f));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(5.0000001201e-1f));
        p = Vector256.FusedMultiplyAdd(p, r * r, r + Vector256<float>.One);
        Vector256<int> exponent = (Vector256.ConvertToInt32(n) + Vector256.Create(127)) << 23;
        return p * exponent.AsSingle();
    }
}
