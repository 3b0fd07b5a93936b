using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace NativeMi.Compute.Cpu;

/// <summary>
/// Single-precision GEMM for the CPU backend: C[m,n] = act(A[m,k] · B[k,n] + bias[n]), B stored [k, n].
/// Work is split into tiles of rows × a column panel that stays in L2, spread over the thread pool;
/// a 4-row × 2-vector register tile accumulates with FMA.
/// </summary>
public static class CpuGemm
{
    private const int RowBlock = 64;
    private const int ColumnPanel = 64;

    /// <summary>Computes the product into <paramref name="c"/>, overwriting it.</summary>
    public static void Multiply(ReadOnlySpan<float> a, ReadOnlySpan<float> b, ReadOnlySpan<float> bias, Span<float> c,
        int m, int k, int n, Activation activation = Activation.None)
    {
        if (a.Length < (long)m * k) throw new ArgumentException($"A holds {a.Length} elements; needs {(long)m * k}", nameof(a));
        if (b.Length < (long)k * n) throw new ArgumentException($"B holds {b.Length} elements; needs {(long)k * n}", nameof(b));
        if (c.Length < (long)m * n) throw new ArgumentException($"C holds {c.Length} elements; needs {(long)m * n}", nameof(c));
        if (!bias.IsEmpty && bias.Length < n) throw new ArgumentException($"bias holds {bias.Length} elements; needs {n}", nameof(bias));
        if (m == 0 || n == 0) return;

        unsafe
        {
            fixed (float* pa = a, pb = b, pc = c, pbias = bias)
            {
                var args = new Args(pa, pb, bias.IsEmpty ? null : pbias, pc, m, k, n, activation);
                int rowBlocks = (m + RowBlock - 1) / RowBlock;
                int panels = (n + ColumnPanel - 1) / ColumnPanel;
                int tiles = rowBlocks * panels;
                if (tiles == 1 || (long)m * n * k < 32_768)
                {
                    for (int t = 0; t < tiles; t++) Tile(args, t / panels, t % panels);
                }
                else
                {
                    Parallel.For(0, tiles, t => Tile(args, t / panels, t % panels));
                }
            }
        }
    }

    private readonly unsafe struct Args(float* a, float* b, float* bias, float* c, int m, int k, int n, Activation activation)
    {
        public readonly float* A = a, B = b, Bias = bias, C = c;
        public readonly int M = m, K = k, N = n;
        public readonly Activation Activation = activation;
    }

    private static unsafe void Tile(in Args p, int rowBlock, int panel)
    {
        int rowStart = rowBlock * RowBlock, rowEnd = Math.Min(p.M, rowStart + RowBlock);
        int colStart = panel * ColumnPanel, colEnd = Math.Min(p.N, colStart + ColumnPanel);
        int i = rowStart;
        for (; i + 4 <= rowEnd; i += 4) Rows4(p, i, colStart, colEnd);
        for (; i < rowEnd; i++) Rows1(p, i, colStart, colEnd);
        for (i = rowStart; i < rowEnd; i++)
            Epilogue(p.C + (long)i * p.N, p.Bias, colStart, colEnd, p.Activation);
    }

    private static unsafe void Rows4(in Args p, int i, int colStart, int colEnd)
    {
        int k = p.K, n = p.N;
        float* a0 = p.A + (long)i * k, a1 = a0 + k, a2 = a1 + k, a3 = a2 + k;
        float* c0 = p.C + (long)i * n, c1 = c0 + n, c2 = c1 + n, c3 = c2 + n;
        int j = colStart;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; j + 16 <= colEnd; j += 16)
            {
                Vector256<float> s00 = default, s01 = default, s10 = default, s11 = default,
                                 s20 = default, s21 = default, s30 = default, s31 = default;
                float* bp = p.B + j;
                for (int kk = 0; kk < k; kk++, bp += n)
                {
                    Vector256<float> b0 = Vector256.Load(bp), b1 = Vector256.Load(bp + 8);
                    Vector256<float> x0 = Vector256.Create(a0[kk]), x1 = Vector256.Create(a1[kk]),
                                     x2 = Vector256.Create(a2[kk]), x3 = Vector256.Create(a3[kk]);
                    s00 = Vector256.FusedMultiplyAdd(x0, b0, s00); s01 = Vector256.FusedMultiplyAdd(x0, b1, s01);
                    s10 = Vector256.FusedMultiplyAdd(x1, b0, s10); s11 = Vector256.FusedMultiplyAdd(x1, b1, s11);
                    s20 = Vector256.FusedMultiplyAdd(x2, b0, s20); s21 = Vector256.FusedMultiplyAdd(x2, b1, s21);
                    s30 = Vector256.FusedMultiplyAdd(x3, b0, s30); s31 = Vector256.FusedMultiplyAdd(x3, b1, s31);
                }
                s00.Store(c0 + j); s01.Store(c0 + j + 8);
                s10.Store(c1 + j); s11.Store(c1 + j + 8);
                s20.Store(c2 + j); s21.Store(c2 + j + 8);
                s30.Store(c3 + j); s31.Store(c3 + j + 8);
            }
            for (; j + 8 <= colEnd; j += 8)
            {
                Vector256<float> s0 = default, s1 = default, s2 = default, s3 = default;
                float* bp = p.B + j;
                for (int kk = 0; kk < k; kk++, bp += n)
                {
                    Vector256<float> b0 = Vector256.Load(bp);
                    s0 = Vector256.FusedMultiplyAdd(Vector256.Create(a0[kk]), b0, s0);
                    s1 = Vector256.FusedMultiplyAdd(Vector256.Create(a1[kk]), b0, s1);
                    s2 = Vector256.FusedMultiplyAdd(Vector256.Create(a2[kk]), b0, s2);
                    s3 = Vector256.FusedMultiplyAdd(Vector256.Create(a3[kk]), b0, s3);
                }
                s0.Store(c0 + j); s1.Store(c1 + j); s2.Store(c2 + j); s3.Store(c3 + j);
            }
        }
        for (; j < colEnd; j++)
        {
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            float* bp = p.B + j;
            for (int kk = 0; kk < k; kk++, bp += n)
            {
                float bv = *bp;
                s0 = MathF.FusedMultiplyAdd(a0[kk], bv, s0);
                s1 = MathF.FusedMultiplyAdd(a1[kk], bv, s1);
                s2 = MathF.FusedMultiplyAdd(a2[kk], bv, s2);
                s3 = MathF.FusedMultiplyAdd(a3[kk], bv, s3);
            }
            c0[j] = s0; c1[j] = s1; c2[j] = s2; c3[j] = s3;
        }
    }

    private static unsafe void Rows1(in Args p, int i, int colStart, int colEnd)
    {
        int k = p.K, n = p.N;
        float* a0 = p.A + (long)i * k;
        float* c0 = p.C + (long)i * n;
        int j = colStart;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; j + 8 <= colEnd; j += 8)
            {
                Vector256<float> s0 = default;
                float* bp = p.B + j;
                for (int kk = 0; kk < k; kk++, bp += n)
                    s0 = Vector256.FusedMultiplyAdd(Vector256.Create(a0[kk]), Vector256.Load(bp), s0);
                s0.Store(c0 + j);
            }
        }
        for (; j < colEnd; j++)
        {
            float s0 = 0;
            float* bp = p.B + j;
            for (int kk = 0; kk < k; kk++, bp += n) s0 = MathF.FusedMultiplyAdd(a0[kk], *bp, s0);
            c0[j] = s0;
        }
    }

    private static unsafe void Epilogue(float* row, float* bias, int colStart, int colEnd, Activation activation)
    {
        if (bias != null)
            for (int j = colStart; j < colEnd; j++) row[j] += bias[j];
        switch (activation)
        {
            case Activation.GeluExact:
                for (int j = colStart; j < colEnd; j++) row[j] = CpuMath.GeluExact(row[j]);
                break;
            case Activation.GeluTanh:
                for (int j = colStart; j < colEnd; j++) row[j] = CpuMath.GeluTanh(row[j]);
                break;
        }
    }
}

/// <summary>Scalar math shared by the CPU kernels.</summary>
public static class CpuMath
{
    /// <summary>
    /// erf(x) for single precision, as a rational function of x² on [-4, 4] (the approximation Eigen
    /// uses); absolute error below 1e-7 against the exact value, far inside the 1e-4 parity budget.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Erf(float x)
    {
        x = Math.Clamp(x, -4f, 4f);
        float x2 = x * x;
        float p = -2.72614225801306e-10f;
        p = MathF.FusedMultiplyAdd(p, x2, 2.77068142495902e-08f);
        p = MathF.FusedMultiplyAdd(p, x2, -2.10102402082508e-06f);
        p = MathF.FusedMultiplyAdd(p, x2, -5.69250639462346e-05f);
        p = MathF.FusedMultiplyAdd(p, x2, -7.34990630326855e-04f);
        p = MathF.FusedMultiplyAdd(p, x2, -2.95459980854025e-03f);
        p = MathF.FusedMultiplyAdd(p, x2, -1.60960333262415e-02f);
        float q = -1.45660718464996e-05f;
        q = MathF.FusedMultiplyAdd(q, x2, -2.13374055278905e-04f);
        q = MathF.FusedMultiplyAdd(q, x2, -1.68282697438203e-03f);
        q = MathF.FusedMultiplyAdd(q, x2, -7.37332916720468e-03f);
        q = MathF.FusedMultiplyAdd(q, x2, -1.42647390514189e-02f);
        return x * p / q;
    }

    /// <summary>Exact GELU.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float GeluExact(float x) => 0.5f * x * (1f + Erf(x * 0.70710678118654752f));

    /// <summary>d/dx of exact GELU: Φ(x) + x·φ(x).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float GeluExactDerivative(float x) =>
        0.5f * (1f + Erf(x * 0.70710678118654752f)) + x * 0.3989422804014327f * MathF.Exp(-0.5f * x * x);

    /// <summary>GPT-2's tanh GELU.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float GeluTanh(float x) =>
        0.5f * x * (1f + MathF.Tanh(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}
