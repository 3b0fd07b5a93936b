using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace NativeMi.Compute.Cpu;

/// <summary>The GEMM micro-kernels: the register width each accumulates C in.</summary>
internal enum GemmPath
{
    /// <summary>4 × 4 floats, multiply then add.</summary>
    Scalar,
    /// <summary>8 × 12 with Vector128 FMA (AdvSimd; on x86 only when forced, since .NET 10 grants FMA3 only with AVX2).</summary>
    Vector128,
    /// <summary>6 × 16 with AVX2 FMA.</summary>
    Vector256,
    /// <summary>12 × 32 with AVX-512 FMA.</summary>
    Vector512,
}

/// <summary>
/// Single-precision GEMM for the CPU backend: C[m,n] = act(A[m,k] · B[k,n] + bias[n]), row-major, B stored [k, n]
/// (or either operand transposed in storage). Laid out as BLIS and MLAS do: both operands are packed into
/// contiguous zero-padded panels (A in MR-row panels, B in NR-column panels), the K dimension is cut into KC
/// blocks, and a register-tiled micro-kernel accumulates an MR × NR block of C with FMA (12 × 32 with AVX-512,
/// 6 × 16 with AVX2, 8 × 12 with 128-bit vectors (ARM64's AdvSimd), 4 × 4 scalar). Tiles of C (row block × column block) are spread over the thread pool;
/// bias is added when a tile's last K block is stored and the activation follows while the tile is in cache
/// (vectorised through the element-wise operators, bit-identical to <see cref="CpuMath"/>).
/// Every element of C is summed in one fixed order whatever the scheduling, so results are deterministic, and the
/// vector paths, which differ only in how many elements a register holds, give the same bits as each other.
/// </summary>
internal static class CpuGemm
{
    // Vector512.IsHardwareAccelerated is false on Skylake-X / Cascade Lake (the runtime prefers 256-bit code there
    // to avoid frequency drops), yet a dense GEMM gains from 512-bit FMA regardless, so the choice follows the ISA.
    // The 128-bit path needs FMA in hardware: emulated, its fused multiply-adds would be far slower than the scalar path.
    /// <summary>The micro-kernel this process uses; the others can be forced through the internal overloads.</summary>
    internal static readonly GemmPath Selected =
        Avx512F.IsSupported ? GemmPath.Vector512
        : Avx2.IsSupported && Fma.IsSupported ? GemmPath.Vector256
        : Vector128.IsHardwareAccelerated && (Fma.IsSupported || AdvSimd.IsSupported) ? GemmPath.Vector128
        : GemmPath.Scalar;

    /// <summary>Whether <paramref name="path"/> runs as vector instructions here (so a test may force it).</summary>
    internal static bool IsSupported(GemmPath path) => path switch
    {
        GemmPath.Scalar => true,
        GemmPath.Vector128 => Vector128.IsHardwareAccelerated,
        GemmPath.Vector256 => Vector256.IsHardwareAccelerated,
        GemmPath.Vector512 => Avx512F.IsSupported,
        _ => false,
    };

    // K block: with K = 384 (the models' hidden size) a tile is finished in one pass, so C is written once.
    private const int KC = 384;
    private const int Mr512 = 12, Nr512 = 32, Mr256 = 6, Nr256 = 16, Mr128 = 8, Nr128 = 12, MrScalar = 4, NrScalar = 4;
    private const int MaxTile = 16 * 32;
    // Packed B is prefetched this many floats (8 K steps of a 32-wide panel) ahead of the loads.
    private const int PrefetchFloats = 512;
    private const double ParallelFlops = 2_000_000;

    /// <summary>Packed A up to this many floats (128 KiB, within L2) is packed on the calling thread.</summary>
    private const long SerialPackAElements = 32_768;
    private const int BlockBytes = 512 * 1024;
    private const int MaxRowPanels = 8;
    // A product with at most this many row panels (one or a few sentences) is memory-bound on B, which each row panel
    // would otherwise stream again: its tiles are column ranges only and every packed B panel, once in L1, is used by
    // all of its row panels before the next is loaded.
    private const int FewRowPanels = 4;

    /// <summary>The instruction-set path the micro-kernel uses on this process: "avx512", "avx2", "vector128" or "scalar".</summary>
    public static string ActivePath => Name(Selected);

    internal static string Name(GemmPath path) =>
        path switch { GemmPath.Vector512 => "avx512", GemmPath.Vector256 => "avx2", GemmPath.Vector128 => "vector128", _ => "scalar" };

    /// <summary>Computes the product into <paramref name="c"/>, overwriting it.</summary>
    /// <param name="a">A, row-major [m, k].</param>
    /// <param name="b">B, row-major [k, n].</param>
    /// <param name="bias">Bias of length n added to every row, or empty.</param>
    /// <param name="c">C, row-major [m, n].</param>
    /// <param name="m">Rows of A and C.</param>
    /// <param name="k">Columns of A, rows of B.</param>
    /// <param name="n">Columns of B and C.</param>
    /// <param name="activation">Applied element-wise after the bias.</param>
    public static void Multiply(ReadOnlySpan<float> a, ReadOnlySpan<float> b, ReadOnlySpan<float> bias, Span<float> c,
        int m, int k, int n, Activation activation = Activation.None) =>
        Multiply(a, b, bias, c, m, k, n, activation, transposeA: false, transposeB: false, accumulate: false);

    /// <summary>
    /// C[m,n] = act((accumulate ? C : 0) + op(A) · op(B) + bias), where op(A) is [m, k] and op(B) is [k, n];
    /// a transposed operand is read from its stored transpose without copying.
    /// </summary>
    /// <param name="a">A: stored [m, k], or [k, m] when <paramref name="transposeA"/>.</param>
    /// <param name="b">B: stored [k, n], or [n, k] when <paramref name="transposeB"/>.</param>
    /// <param name="bias">Bias of length n added to every row, or empty.</param>
    /// <param name="c">C, row-major [m, n].</param>
    /// <param name="m">Rows of op(A) and C.</param>
    /// <param name="k">Columns of op(A), rows of op(B).</param>
    /// <param name="n">Columns of op(B) and C.</param>
    /// <param name="activation">Applied element-wise after the sum.</param>
    /// <param name="transposeA">A is stored as its transpose, [k, m].</param>
    /// <param name="transposeB">B is stored as its transpose, [n, k].</param>
    /// <param name="accumulate">Add to the existing contents of C instead of overwriting them.</param>
    public static void Multiply(ReadOnlySpan<float> a, ReadOnlySpan<float> b, ReadOnlySpan<float> bias, Span<float> c,
        int m, int k, int n, Activation activation, bool transposeA, bool transposeB, bool accumulate) =>
        Multiply(a, b, bias, c, m, k, n, activation, transposeA, transposeB, accumulate, Selected);

    /// <summary>The product on the micro-kernel <paramref name="path"/> rather than this process's.</summary>
    internal static unsafe void Multiply(ReadOnlySpan<float> a, ReadOnlySpan<float> b, ReadOnlySpan<float> bias, Span<float> c,
        int m, int k, int n, Activation activation, bool transposeA, bool transposeB, bool accumulate, GemmPath path)
    {
        if (!IsSupported(path)) throw new PlatformNotSupportedException($"the {Name(path)} GEMM path is not accelerated on this machine");
        if (m < 0 || k < 0 || n < 0) throw new ArgumentOutOfRangeException(nameof(m), $"negative shape {m}×{k}×{n}");
        if (a.Length < (long)m * k) throw new ArgumentException($"A holds {a.Length} elements; needs {(long)m * k}", nameof(a));
        if (b.Length < (long)k * n) throw new ArgumentException($"B holds {b.Length} elements; needs {(long)k * n}", nameof(b));
        if (c.Length < (long)m * n) throw new ArgumentException($"C holds {c.Length} elements; needs {(long)m * n}", nameof(c));
        if (!bias.IsEmpty && bias.Length < n) throw new ArgumentException($"bias holds {bias.Length} elements; needs {n}", nameof(bias));
        if (m == 0 || n == 0) return;

        fixed (float* pa = a, pb = b, pc = c, pbias = bias)
        {
            float* biasPointer = bias.IsEmpty ? null : pbias;
            if (k == 0)
            {
                for (int i = 0; i < m; i++)
                {
                    float* row = pc + (long)i * n;
                    if (!accumulate) new Span<float>(row, n).Clear();
                    Epilogue(row, biasPointer, 0, n, activation, EpilogueWidth(path));
                }
                return;
            }

            var (mr, nr) = Tiling(path);
            int mPanels = (m + mr - 1) / mr, nPanels = (n + nr - 1) / nr;
            long packedA = (long)mPanels * mr * k, packedB = (long)nPanels * nr * k;
            if (packedA + 16 > Array.MaxLength || packedB + 16 > Array.MaxLength)
                throw new ArgumentException($"GEMM {m}×{k}×{n} is too large to pack");
            float[] bufferA = ArrayPool<float>.Shared.Rent((int)packedA + 16);
            float[] bufferB = ArrayPool<float>.Shared.Rent((int)packedB + 16);
            try
            {
                fixed (float* fa = bufferA, fb = bufferB)
                {
                    var job = new Job
                    {
                        A = pa, B = pb, C = pc, Bias = biasPointer,
                        PackedA = Align64(fa), PackedB = Align64(fb),
                        M = m, K = k, N = n, Mr = mr, Nr = nr, MPanels = mPanels, NPanels = nPanels, Path = path,
                        TransposeA = transposeA, TransposeB = transposeB, Accumulate = accumulate, Activation = activation,
                    };
                    job.Run();
                }
            }
            finally
            {
                ArrayPool<float>.Shared.Return(bufferA);
                ArrayPool<float>.Shared.Return(bufferB);
            }
        }
    }

    private static unsafe float* Align64(float* p) => (float*)(((nuint)p + 63) & ~(nuint)63);

    /// <summary>
    /// Packs a constant right operand B [k, n] once, in the panel layout the micro-kernel reads, so that
    /// later products with it skip the packing (which dominates when A has few rows, as at batch size 1).
    /// </summary>
    public static PackedMatrix PackB(ReadOnlySpan<float> b, int k, int n) => PackB(b, k, n, Selected);

    /// <summary><see cref="PackB(ReadOnlySpan{float}, int, int)"/> for the micro-kernel <paramref name="path"/>, which products with it then use.</summary>
    internal static PackedMatrix PackB(ReadOnlySpan<float> b, int k, int n, GemmPath path) => PackB(b, k, n, transposed: false, path);

    /// <summary>
    /// <see cref="PackB(ReadOnlySpan{float}, int, int)"/> from B stored as its transpose [n, k] (a Hugging Face nn.Linear weight)
    /// when <paramref name="transposed"/>: the same panels, so the products are the same bits, without a transposed copy first.
    /// </summary>
    internal static PackedMatrix PackB(ReadOnlySpan<float> b, int k, int n, bool transposed) => PackB(b, k, n, transposed, Selected);

    /// <summary><see cref="PackB(ReadOnlySpan{float}, int, int, bool)"/> for the micro-kernel <paramref name="path"/>.</summary>
    internal static unsafe PackedMatrix PackB(ReadOnlySpan<float> b, int k, int n, bool transposed, GemmPath path)
    {
        if (!IsSupported(path)) throw new PlatformNotSupportedException($"the {Name(path)} GEMM path is not accelerated on this machine");
        if (k < 1 || n < 1) throw new ArgumentOutOfRangeException(nameof(k), $"cannot pack a {k}×{n} matrix");
        if (b.Length < (long)k * n) throw new ArgumentException($"B holds {b.Length} elements; needs {(long)k * n}", nameof(b));
        var (_, nr) = Tiling(path);
        int nPanels = (n + nr - 1) / nr;
        long length = (long)nPanels * nr * k + 16;
        if (length > Array.MaxLength) throw new ArgumentException($"a {k}×{n} matrix is too large to pack");
        // Pinned so the aligned pointer into it stays valid for the life of the packed matrix.
        float[] data = GC.AllocateUninitializedArray<float>((int)length, pinned: true);
        fixed (float* pb = b, pd = data)
        {
            var job = new Job { B = pb, PackedB = Align64(pd), K = k, N = n, Nr = nr, NPanels = nPanels, TransposeB = transposed };
            for (int panel = 0; panel < nPanels; panel++) job.PackBPanel(panel);
            return new PackedMatrix(data, (int)(Align64(pd) - pd), k, n, nr, path);
        }
    }

    /// <summary>
    /// <see cref="PackB(ReadOnlySpan{float}, int, int)"/> for 16-bit B (F16 or BF16): the panels keep the 16-bit values, half
    /// the memory of fp32 panels, and the kernel widens a KC-deep slab of them to fp32 per thread just before using it.
    /// Widening is exact, so the product equals the fp32 product over the widened matrix bit for bit.
    /// </summary>
    /// <param name="b">B as [k, n], or as [n, k] (a Hugging Face nn.Linear weight) when <paramref name="transposed"/>.</param>
    /// <param name="k">Rows of B (the inner dimension).</param>
    /// <param name="n">Columns of B.</param>
    /// <param name="format">Float16 or BFloat16.</param>
    /// <param name="transposed">B is stored as its transpose.</param>
    public static PackedMatrix PackB(ReadOnlySpan<ushort> b, int k, int n, WeightFormat format, bool transposed) =>
        PackB(b, k, n, format, transposed, Selected);

    /// <summary>The 16-bit <see cref="PackB(ReadOnlySpan{ushort}, int, int, WeightFormat, bool)"/> for the micro-kernel <paramref name="path"/>.</summary>
    internal static unsafe PackedMatrix PackB(ReadOnlySpan<ushort> b, int k, int n, WeightFormat format, bool transposed, GemmPath path)
    {
        if (!IsSupported(path)) throw new PlatformNotSupportedException($"the {Name(path)} GEMM path is not accelerated on this machine");
        if (format == WeightFormat.Float32) throw new ArgumentException("16-bit packing needs Float16 or BFloat16", nameof(format));
        if (k < 1 || n < 1) throw new ArgumentOutOfRangeException(nameof(k), $"cannot pack a {k}×{n} matrix");
        if (b.Length < (long)k * n) throw new ArgumentException($"B holds {b.Length} elements; needs {(long)k * n}", nameof(b));
        var (_, nr) = Tiling(path);
        int nPanels = (n + nr - 1) / nr;
        long length = (long)nPanels * nr * k + 32;
        if (length > Array.MaxLength) throw new ArgumentException($"a {k}×{n} matrix is too large to pack");
        ushort[] data = GC.AllocateUninitializedArray<ushort>((int)length, pinned: true);
        fixed (ushort* pb = b, pd = data)
        {
            ushort* aligned = (ushort*)(((nuint)pd + 63) & ~(nuint)63);
            for (int panel = 0; panel < nPanels; panel++) PackPanel(pb, aligned, k, n, nr, panel, transposed);
            return new PackedMatrix(data, (int)(aligned - pd), k, n, nr, format, path);
        }
    }

    /// <summary>Columns [panel·NR, +NR) of B as K steps of NR values, zero columns past N (the layout <see cref="Job"/> reads).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void PackPanel<T>(T* b, T* packed, int k, int n, int nr, int panel, bool transposed) where T : unmanaged
    {
        int col0 = panel * nr, cols = Math.Min(nr, n - col0);
        T* dst = packed + (long)panel * nr * k;
        if (transposed)
        {
            int p0 = 0;
            if (typeof(T) == typeof(float) && cols == nr && nr % 8 == 0 && Avx.IsSupported)
                p0 = PackTransposedPanel8((float*)(b + (long)col0 * k), (float*)dst, k, nr);
            if (p0 == k) return;
            for (int j = 0; j < nr; j++)
            {
                T* d = dst + j;
                if (j < cols)
                {
                    T* src = b + (long)(col0 + j) * k;
                    for (int p = p0; p < k; p++) d[(long)p * nr] = src[p];
                }
                else
                {
                    for (int p = p0; p < k; p++) d[(long)p * nr] = default;
                }
            }
        }
        else
        {
            T* src = b + col0;
            int bytes = nr * sizeof(T);
            if (cols == nr)
            {
                // One fixed-size copy per K step: a span copy of an NR-wide row calls memmove, which for 16 floats costs
                // more than the copy itself.
                switch (bytes)
                {
                    case 128: for (int p = 0; p < k; p++, src += n, dst += nr) Unsafe.CopyBlockUnaligned(dst, src, 128); return;
                    case 64: for (int p = 0; p < k; p++, src += n, dst += nr) Unsafe.CopyBlockUnaligned(dst, src, 64); return;
                    case 48: for (int p = 0; p < k; p++, src += n, dst += nr) Unsafe.CopyBlockUnaligned(dst, src, 48); return;
                    case 32: for (int p = 0; p < k; p++, src += n, dst += nr) Unsafe.CopyBlockUnaligned(dst, src, 32); return;
                    case 24: for (int p = 0; p < k; p++, src += n, dst += nr) Unsafe.CopyBlockUnaligned(dst, src, 24); return;
                    case 16: for (int p = 0; p < k; p++, src += n, dst += nr) Unsafe.CopyBlockUnaligned(dst, src, 16); return;
                    case 8: for (int p = 0; p < k; p++, src += n, dst += nr) Unsafe.CopyBlockUnaligned(dst, src, 8); return;
                }
            }
            for (int p = 0; p < k; p++, src += n, dst += nr)
            {
                new ReadOnlySpan<T>(src, cols).CopyTo(new Span<T>(dst, cols));
                if (cols < nr) new Span<T>(dst + cols, nr - cols).Clear();
            }
        }
    }

    /// <summary>
    /// The K steps [0, returned) of a full transposed panel: NR rows of the stored transpose (row j holds column j of the
    /// panel, K values) become K steps of NR values, eight rows by eight steps at a time transposed in AVX registers so
    /// that both the reads and the writes are whole vectors. The steps left over (fewer than eight) are the caller's.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe int PackTransposedPanel8(float* rows, float* dst, int k, int nr)
    {
        int p = 0;
        for (; p + 8 <= k; p += 8)
            for (int j = 0; j < nr; j += 8)
            {
                float* s = rows + (long)j * k + p;
                Vector256<float> r0 = Avx.LoadVector256(s), r1 = Avx.LoadVector256(s + k), r2 = Avx.LoadVector256(s + 2 * k), r3 = Avx.LoadVector256(s + 3 * k);
                Vector256<float> r4 = Avx.LoadVector256(s + 4 * k), r5 = Avx.LoadVector256(s + 5 * k), r6 = Avx.LoadVector256(s + 6 * k), r7 = Avx.LoadVector256(s + 7 * k);
                // Interleave pairs, then quads, then swap 128-bit halves: column q of the 8 × 8 block becomes vector q.
                Vector256<float> t0 = Avx.UnpackLow(r0, r1), t1 = Avx.UnpackHigh(r0, r1), t2 = Avx.UnpackLow(r2, r3), t3 = Avx.UnpackHigh(r2, r3);
                Vector256<float> t4 = Avx.UnpackLow(r4, r5), t5 = Avx.UnpackHigh(r4, r5), t6 = Avx.UnpackLow(r6, r7), t7 = Avx.UnpackHigh(r6, r7);
                Vector256<float> u0 = Avx.Shuffle(t0, t2, 0x44), u1 = Avx.Shuffle(t0, t2, 0xEE), u2 = Avx.Shuffle(t1, t3, 0x44), u3 = Avx.Shuffle(t1, t3, 0xEE);
                Vector256<float> u4 = Avx.Shuffle(t4, t6, 0x44), u5 = Avx.Shuffle(t4, t6, 0xEE), u6 = Avx.Shuffle(t5, t7, 0x44), u7 = Avx.Shuffle(t5, t7, 0xEE);
                float* d = dst + (long)p * nr + j;
                Avx.Store(d, Avx.Permute2x128(u0, u4, 0x20));
                Avx.Store(d + nr, Avx.Permute2x128(u1, u5, 0x20));
                Avx.Store(d + 2 * nr, Avx.Permute2x128(u2, u6, 0x20));
                Avx.Store(d + 3 * nr, Avx.Permute2x128(u3, u7, 0x20));
                Avx.Store(d + 4 * nr, Avx.Permute2x128(u0, u4, 0x31));
                Avx.Store(d + 5 * nr, Avx.Permute2x128(u1, u5, 0x31));
                Avx.Store(d + 6 * nr, Avx.Permute2x128(u2, u6, 0x31));
                Avx.Store(d + 7 * nr, Avx.Permute2x128(u3, u7, 0x31));
            }
        return p;
    }

    /// <summary>
    /// C[m,n] = act(A[m,k] · B + bias) with B packed by <see cref="PackB(ReadOnlySpan{float}, int, int)"/> or its 16-bit form,
    /// on the micro-kernel B was packed for.
    /// </summary>
    public static unsafe void Multiply(ReadOnlySpan<float> a, PackedMatrix b, ReadOnlySpan<float> bias, Span<float> c, int m, Activation activation)
    {
        int k = b.K, n = b.N;
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        if (a.Length < (long)m * k) throw new ArgumentException($"A holds {a.Length} elements; needs {(long)m * k}", nameof(a));
        if (c.Length < (long)m * n) throw new ArgumentException($"C holds {c.Length} elements; needs {(long)m * n}", nameof(c));
        if (!bias.IsEmpty && bias.Length < n) throw new ArgumentException($"bias holds {bias.Length} elements; needs {n}", nameof(bias));
        GemmPath path = b.Path;
        var (mr, nr) = Tiling(path);
        if (m == 0) return;
        int mPanels = (m + mr - 1) / mr;
        float[] bufferA = ArrayPool<float>.Shared.Rent(mPanels * mr * k + 16);
        try
        {
            fixed (float* pa = a, pc = c, pbias = bias, fa = bufferA, fb = b.Data)
            fixed (ushort* fb16 = b.Data16)
            {
                var job = new Job
                {
                    A = pa, C = pc, Bias = bias.IsEmpty ? null : pbias,
                    PackedA = Align64(fa), BIsPacked = true,
                    M = m, K = k, N = n, Mr = mr, Nr = nr, MPanels = mPanels, NPanels = (n + nr - 1) / nr, Path = path,
                    Activation = activation,
                };
                if (b.Format == WeightFormat.Float32) job.PackedB = fb + b.Offset;
                else
                {
                    job.PackedB16 = fb16 + b.Offset;
                    job.Format16 = b.Format;
                }
                job.Run();
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(bufferA);
        }
    }

    private static (int Mr, int Nr) Tiling(GemmPath path) => path switch
    {
        GemmPath.Vector512 => (Mr512, Nr512),
        GemmPath.Vector256 => (Mr256, Nr256),
        GemmPath.Vector128 => (Mr128, Nr128),
        _ => (MrScalar, NrScalar),
    };

    /// <summary>One multiplication: operand pointers, packed panels and the tiling of C.</summary>
    private sealed unsafe class Job : IParallelBody
    {
        public float* A, B, C, Bias, PackedA, PackedB;
        /// <summary>16-bit packed B (instead of <see cref="PackedB"/>), widened per KC slab in <see cref="Tile"/>.</summary>
        public ushort* PackedB16;
        public WeightFormat Format16;
        public int M, K, N, Mr, Nr, MPanels, NPanels;
        public GemmPath Path;
        public bool TransposeA, TransposeB, Accumulate, BIsPacked;
        public Activation Activation;
        private int _rowBlocks, _columnBlocks, _tiles;
        private bool _tilePhase;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Run()
        {
            int workers = 2.0 * M * N * K >= ParallelFlops ? Environment.ProcessorCount : 1;
            // A column block keeps a KC-deep slab of packed B within L2 while the row panels of the tile sweep over it;
            // row blocks of at most MaxRowPanels panels then cut C into enough tiles (a multiple of the worker count
            // where possible) for the thread pool to balance. Blocks differ in size by at most one panel.
            int maxColumnPanels = Math.Max(1, BlockBytes / (KC * Nr * sizeof(float)));
            _columnBlocks = (NPanels + maxColumnPanels - 1) / maxColumnPanels;
            _rowBlocks = (MPanels + MaxRowPanels - 1) / MaxRowPanels;
            if (workers > 1)
            {
                _rowBlocks = Math.Max(_rowBlocks, (4 * workers + _columnBlocks - 1) / _columnBlocks);
                while (_rowBlocks * _columnBlocks % workers != 0 && _rowBlocks < MPanels) _rowBlocks++;
            }
            _rowBlocks = Math.Min(_rowBlocks, MPanels);
            if (MPanels <= FewRowPanels)
            {
                _rowBlocks = 1;
                if (workers > 1) _columnBlocks = Math.Max(_columnBlocks, Math.Min(NPanels, 4 * workers));
            }
            _tiles = _rowBlocks * _columnBlocks;

            int packItems = MPanels + (BIsPacked ? 0 : NPanels);
            if (workers > 1)
            {
                // A few rows of A against pre-packed B (one sentence: M ≈ 10) pack in microseconds, less than a fork-join
                // costs, so they are packed here and the product pays one fork-join instead of two. Packing is a copy:
                // which thread does it does not change C.
                if (BIsPacked && (long)MPanels * Mr * K <= SerialPackAElements)
                    for (int i = 0; i < packItems; i++) Pack(i);
                else
                {
                    _tilePhase = false;
                    CpuWorkers.For(packItems, this);
                }
                _tilePhase = true;
                CpuWorkers.For(_tiles, this);
            }
            else
            {
                for (int i = 0; i < packItems; i++) Pack(i);
                for (int t = 0; t < _tiles; t++) Tile(t);
            }
        }

        /// <summary>One packing item or one tile of C, whichever phase <see cref="Run"/> is in.</summary>
        public void Invoke(int index)
        {
            if (_tilePhase) Tile(index);
            else Pack(index);
        }

        private void Pack(int item)
        {
            if (item < MPanels) PackA(item);
            else PackBPanel(item - MPanels);
        }

        /// <summary>Rows [panel·MR, +MR) of op(A) as K steps of MR values, zero rows past M.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void PackA(int panel)
        {
            int mr = Mr, k = K, row0 = panel * mr, rows = Math.Min(mr, M - row0);
            float* dst = PackedA + (long)panel * mr * k;
            if (TransposeA)
            {
                float* src = A + row0;
                if (rows == mr)
                {
                    // The panel's MR values of a K step lie side by side in the stored transpose: one fixed-size copy each.
                    switch (mr)
                    {
                        case 12: for (int p = 0; p < k; p++, src += M, dst += mr) Unsafe.CopyBlockUnaligned(dst, src, 12 * sizeof(float)); return;
                        case 8: for (int p = 0; p < k; p++, src += M, dst += mr) Unsafe.CopyBlockUnaligned(dst, src, 8 * sizeof(float)); return;
                        case 6: for (int p = 0; p < k; p++, src += M, dst += mr) Unsafe.CopyBlockUnaligned(dst, src, 6 * sizeof(float)); return;
                        case 4: for (int p = 0; p < k; p++, src += M, dst += mr) Unsafe.CopyBlockUnaligned(dst, src, 4 * sizeof(float)); return;
                    }
                }
                for (int p = 0; p < k; p++, src += M, dst += mr)
                {
                    int r = 0;
                    for (; r < rows; r++) dst[r] = src[r];
                    for (; r < mr; r++) dst[r] = 0;
                }
            }
            else if (rows == mr && Sse.IsSupported)
            {
                // Four steps of K at a time: 4×4 blocks of rows are transposed in registers, so that both the reads
                // (MR row streams) and the writes (4·MR contiguous values) are sequential.
                float* src = A + (long)row0 * k;
                int groups = mr / 4, p = 0;
                for (; p + 4 <= k; p += 4, dst += 4 * mr)
                {
                    for (int g = 0; g < groups; g++)
                    {
                        float* s0 = src + (long)(4 * g) * k + p;
                        Vector128<float> a0 = Sse.LoadVector128(s0), a1 = Sse.LoadVector128(s0 + k);
                        Vector128<float> a2 = Sse.LoadVector128(s0 + 2 * k), a3 = Sse.LoadVector128(s0 + 3 * k);
                        Vector128<float> t0 = Sse.UnpackLow(a0, a1), t1 = Sse.UnpackLow(a2, a3);
                        Vector128<float> t2 = Sse.UnpackHigh(a0, a1), t3 = Sse.UnpackHigh(a2, a3);
                        float* d = dst + 4 * g;
                        Sse.Store(d, Sse.MoveLowToHigh(t0, t1));
                        Sse.Store(d + mr, Sse.MoveHighToLow(t1, t0));
                        Sse.Store(d + 2 * mr, Sse.MoveLowToHigh(t2, t3));
                        Sse.Store(d + 3 * mr, Sse.MoveHighToLow(t3, t2));
                    }
                    for (int r = 4 * groups; r < mr; r++)
                    {
                        float* s0 = src + (long)r * k + p;
                        dst[r] = s0[0];
                        dst[mr + r] = s0[1];
                        dst[2 * mr + r] = s0[2];
                        dst[3 * mr + r] = s0[3];
                    }
                }
                for (; p < k; p++, dst += mr)
                    for (int r = 0; r < mr; r++) dst[r] = src[(long)r * k + p];
            }
            else
            {
                // One step of K at a time across the rows: sequential writes, MR sequential read streams.
                float* src = A + (long)row0 * k;
                for (int p = 0; p < k; p++, dst += mr)
                {
                    int r = 0;
                    for (; r < rows; r++) dst[r] = src[(long)r * k + p];
                    for (; r < mr; r++) dst[r] = 0;
                }
            }
        }

        /// <summary>Columns [panel·NR, +NR) of op(B) as K steps of NR values, zero columns past N.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void PackBPanel(int panel) => PackPanel(B, PackedB, K, N, Nr, panel, TransposeB);

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void Tile(int tile)
        {
            int rowBlock = tile / _columnBlocks, columnBlock = tile % _columnBlocks;
            int ip0 = (int)((long)rowBlock * MPanels / _rowBlocks), ip1 = (int)((long)(rowBlock + 1) * MPanels / _rowBlocks);
            int jp0 = (int)((long)columnBlock * NPanels / _columnBlocks), jp1 = (int)((long)(columnBlock + 1) * NPanels / _columnBlocks);
            int mr = Mr, nr = Nr, k = K, n = N;
            float* edge = stackalloc float[MaxTile];
            // 16-bit B: the tile's column panels for one K block, widened to fp32 (at most BlockBytes, so it stays in L2).
            float[]? slabArray = PackedB16 == null ? null : ArrayPool<float>.Shared.Rent((jp1 - jp0) * Math.Min(KC, k) * nr + 16);
            try
            {
                fixed (float* slabBase = slabArray)
                {
                    float* slab = slabBase == null ? null : Align64(slabBase);
                    for (int kb = 0; kb < k; kb += KC)
                    {
                        int kc = Math.Min(KC, k - kb);
                        bool load = kb > 0 || Accumulate;
                        float* bias = kb + kc == k ? Bias : null;
                        if (slab != null)
                            for (int jp = jp0; jp < jp1; jp++)
                                SixteenBitWeights.Widen(new ReadOnlySpan<ushort>(PackedB16 + (long)jp * nr * k + (long)kb * nr, kc * nr),
                                    new Span<float>(slab + (long)(jp - jp0) * kc * nr, kc * nr), Format16);
                        // The row panel (MR × KC, broadcast operand) stays in L1 while the column panels stream from L2;
                        // with few row panels, each column panel stays in L1 for all of them instead. Either order sums
                        // every element of C in the same order.
                        if (ip1 - ip0 <= FewRowPanels)
                            for (int jp = jp0; jp < jp1; jp++)
                            {
                                float* pb = slab != null ? slab + (long)(jp - jp0) * kc * nr : PackedB + (long)jp * nr * k + (long)kb * nr;
                                for (int ip = ip0; ip < ip1; ip++) Block(ip, jp, pb, kb, kc, load, bias, edge);
                            }
                        else
                            for (int ip = ip0; ip < ip1; ip++)
                                for (int jp = jp0; jp < jp1; jp++)
                                {
                                    float* pb = slab != null ? slab + (long)(jp - jp0) * kc * nr : PackedB + (long)jp * nr * k + (long)kb * nr;
                                    Block(ip, jp, pb, kb, kc, load, bias, edge);
                                }
                    }
                }
            }
            finally
            {
                if (slabArray is not null) ArrayPool<float>.Shared.Return(slabArray);
            }
            if (Activation != Activation.None)
            {
                int rowEnd = Math.Min(M, ip1 * mr), colStart = jp0 * nr, colEnd = Math.Min(n, jp1 * nr);
                VectorWidth width = EpilogueWidth(Path);
                for (int i = ip0 * mr; i < rowEnd; i++) Epilogue(C + (long)i * n, null, colStart, colEnd, Activation, width);
            }
        }

        /// <summary>One MR × NR block of C over one K block, through the edge buffer where it overhangs C.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void Block(int ip, int jp, float* pb, int kb, int kc, bool load, float* bias, float* edge)
        {
            int mr = Mr, nr = Nr, k = K, n = N;
            int row0 = ip * mr, rows = Math.Min(mr, M - row0);
            float* pa = PackedA + (long)ip * mr * k + (long)kb * mr;
            int col0 = jp * nr, cols = Math.Min(nr, n - col0);
            float* c = C + (long)row0 * n + col0;
            if (rows == mr && cols == nr)
            {
                Kernel(Path, kc, pa, pb, c, n, load, bias == null ? null : bias + col0);
            }
            else if (cols == nr && Path == GemmPath.Vector256)
            {
                // A short last panel (a sentence of 10 tokens is 6 + 4 rows) computes and stores only its real rows.
                Kernel256Rows(rows, kc, pa, pb, c, n, load, bias == null ? null : bias + col0);
            }
            else
            {
                Kernel(Path, kc, pa, pb, edge, nr, false, null);
                for (int r = 0; r < rows; r++)
                {
                    float* src = edge + r * nr, dst = c + (long)r * n;
                    for (int j = 0; j < cols; j++)
                    {
                        float v = src[j];
                        if (load) v += dst[j];
                        if (bias != null) v += bias[col0 + j];
                        dst[j] = v;
                    }
                }
            }
        }
    }

    /// <summary>The AVX2 micro-kernel on the first <paramref name="rows"/> (1 to 6) rows of a panel, stored straight to C.</summary>
    private static unsafe void Kernel256Rows(int rows, int kc, float* pa, float* pb, float* c, nint ldc, bool load, float* bias)
    {
        switch (rows)
        {
            case 1: Kernel256<OneRow>(kc, pa, pb, c, ldc, load, bias); break;
            case 2: Kernel256<TwoRows>(kc, pa, pb, c, ldc, load, bias); break;
            case 3: Kernel256<ThreeRows>(kc, pa, pb, c, ldc, load, bias); break;
            case 4: Kernel256<FourRows>(kc, pa, pb, c, ldc, load, bias); break;
            case 5: Kernel256<FiveRows>(kc, pa, pb, c, ldc, load, bias); break;
            default: Kernel256<SixRows>(kc, pa, pb, c, ldc, load, bias); break;
        }
    }

    /// <summary>How many rows of a micro-kernel's panel are real, as a type, so that each count compiles to its own kernel.</summary>
    private interface IRowCount
    {
        static abstract int Count { get; }
    }

    private struct OneRow : IRowCount { public static int Count => 1; }
    private struct TwoRows : IRowCount { public static int Count => 2; }
    private struct ThreeRows : IRowCount { public static int Count => 3; }
    private struct FourRows : IRowCount { public static int Count => 4; }
    private struct FiveRows : IRowCount { public static int Count => 5; }
    private struct SixRows : IRowCount { public static int Count => 6; }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Kernel(GemmPath path, int kc, float* pa, float* pb, float* c, nint ldc, bool load, float* bias)
    {
        switch (path)
        {
            case GemmPath.Vector512: Kernel512(kc, pa, pb, c, ldc, load, bias); break;
            case GemmPath.Vector256: Kernel256<SixRows>(kc, pa, pb, c, ldc, load, bias); break;
            case GemmPath.Vector128: Kernel128(kc, pa, pb, c, ldc, load, bias); break;
            default: KernelScalar(kc, pa, pb, c, ldc, load, bias); break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Store512(float* c, Vector512<float> v0, Vector512<float> v1, bool load, float* bias)
    {
        if (load) { v0 += Vector512.Load(c); v1 += Vector512.Load(c + 16); }
        if (bias != null) { v0 += Vector512.Load(bias); v1 += Vector512.Load(bias + 16); }
        v0.Store(c);
        v1.Store(c + 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Store256(float* c, Vector256<float> v0, Vector256<float> v1, bool load, float* bias)
    {
        if (load) { v0 += Vector256.Load(c); v1 += Vector256.Load(c + 8); }
        if (bias != null) { v0 += Vector256.Load(bias); v1 += Vector256.Load(bias + 8); }
        v0.Store(c);
        v1.Store(c + 8);
    }

    /// <summary>4×4 scalar micro-kernel for machines without vector FMA (multiply then add, as without FMA hardware).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void KernelScalar(int kc, float* pa, float* pb, float* c, nint ldc, bool load, float* bias)
    {
        float c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
        float c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
        for (int p = 0; p < kc; p++, pa += MrScalar, pb += NrScalar)
        {
            float b0 = pb[0], b1 = pb[1], b2 = pb[2], b3 = pb[3];
            float x = pa[0]; c00 += x * b0; c01 += x * b1; c02 += x * b2; c03 += x * b3;
            x = pa[1]; c10 += x * b0; c11 += x * b1; c12 += x * b2; c13 += x * b3;
            x = pa[2]; c20 += x * b0; c21 += x * b1; c22 += x * b2; c23 += x * b3;
            x = pa[3]; c30 += x * b0; c31 += x * b1; c32 += x * b2; c33 += x * b3;
        }
        StoreScalar(c, c00, c01, c02, c03, load, bias);
        StoreScalar(c + ldc, c10, c11, c12, c13, load, bias);
        StoreScalar(c + 2 * ldc, c20, c21, c22, c23, load, bias);
        StoreScalar(c + 3 * ldc, c30, c31, c32, c33, load, bias);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void StoreScalar(float* c, float v0, float v1, float v2, float v3, bool load, float* bias)
    {
        if (load) { v0 += c[0]; v1 += c[1]; v2 += c[2]; v3 += c[3]; }
        if (bias != null) { v0 += bias[0]; v1 += bias[1]; v2 += bias[2]; v3 += bias[3]; }
        c[0] = v0; c[1] = v1; c[2] = v2; c[3] = v3;
    }

    /// <summary>
    /// 8×12 micro-kernel: 24 Vector128 accumulators over <paramref name="kc"/> packed steps, sized for AdvSimd's 32
    /// registers (x86 runs this path only when forced, and has 32 vector registers only with AVX-512).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Kernel128(int kc, float* pa, float* pb, float* c, nint ldc, bool load, float* bias)
    {
        Vector128<float> c00 = default, c01 = default, c02 = default;
        Vector128<float> c10 = default, c11 = default, c12 = default;
        Vector128<float> c20 = default, c21 = default, c22 = default;
        Vector128<float> c30 = default, c31 = default, c32 = default;
        Vector128<float> c40 = default, c41 = default, c42 = default;
        Vector128<float> c50 = default, c51 = default, c52 = default;
        Vector128<float> c60 = default, c61 = default, c62 = default;
        Vector128<float> c70 = default, c71 = default, c72 = default;
        for (int p = 0; p < kc; p++, pa += Mr128, pb += Nr128)
        {
            Vector128<float> b0 = Vector128.Load(pb), b1 = Vector128.Load(pb + 4), b2 = Vector128.Load(pb + 8);
            Vector128<float> x;
            x = Vector128.Create(pa[0]); c00 = Vector128.FusedMultiplyAdd(x, b0, c00); c01 = Vector128.FusedMultiplyAdd(x, b1, c01); c02 = Vector128.FusedMultiplyAdd(x, b2, c02);
            x = Vector128.Create(pa[1]); c10 = Vector128.FusedMultiplyAdd(x, b0, c10); c11 = Vector128.FusedMultiplyAdd(x, b1, c11); c12 = Vector128.FusedMultiplyAdd(x, b2, c12);
            x = Vector128.Create(pa[2]); c20 = Vector128.FusedMultiplyAdd(x, b0, c20); c21 = Vector128.FusedMultiplyAdd(x, b1, c21); c22 = Vector128.FusedMultiplyAdd(x, b2, c22);
            x = Vector128.Create(pa[3]); c30 = Vector128.FusedMultiplyAdd(x, b0, c30); c31 = Vector128.FusedMultiplyAdd(x, b1, c31); c32 = Vector128.FusedMultiplyAdd(x, b2, c32);
            x = Vector128.Create(pa[4]); c40 = Vector128.FusedMultiplyAdd(x, b0, c40); c41 = Vector128.FusedMultiplyAdd(x, b1, c41); c42 = Vector128.FusedMultiplyAdd(x, b2, c42);
            x = Vector128.Create(pa[5]); c50 = Vector128.FusedMultiplyAdd(x, b0, c50); c51 = Vector128.FusedMultiplyAdd(x, b1, c51); c52 = Vector128.FusedMultiplyAdd(x, b2, c52);
            x = Vector128.Create(pa[6]); c60 = Vector128.FusedMultiplyAdd(x, b0, c60); c61 = Vector128.FusedMultiplyAdd(x, b1, c61); c62 = Vector128.FusedMultiplyAdd(x, b2, c62);
            x = Vector128.Create(pa[7]); c70 = Vector128.FusedMultiplyAdd(x, b0, c70); c71 = Vector128.FusedMultiplyAdd(x, b1, c71); c72 = Vector128.FusedMultiplyAdd(x, b2, c72);
        }
        Store128(c + 0 * ldc, c00, c01, c02, load, bias);
        Store128(c + 1 * ldc, c10, c11, c12, load, bias);
        Store128(c + 2 * ldc, c20, c21, c22, load, bias);
        Store128(c + 3 * ldc, c30, c31, c32, load, bias);
        Store128(c + 4 * ldc, c40, c41, c42, load, bias);
        Store128(c + 5 * ldc, c50, c51, c52, load, bias);
        Store128(c + 6 * ldc, c60, c61, c62, load, bias);
        Store128(c + 7 * ldc, c70, c71, c72, load, bias);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Store128(float* c, Vector128<float> v0, Vector128<float> v1, Vector128<float> v2, bool load, float* bias)
    {
        if (load) { v0 += Vector128.Load(c); v1 += Vector128.Load(c + 4); v2 += Vector128.Load(c + 8); }
        if (bias != null) { v0 += Vector128.Load(bias); v1 += Vector128.Load(bias + 4); v2 += Vector128.Load(bias + 8); }
        v0.Store(c);
        v1.Store(c + 4);
        v2.Store(c + 8);
    }

    /// <summary>12×32 micro-kernel: 24 Vector512 accumulators over <paramref name="kc"/> packed steps.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Kernel512(int kc, float* pa, float* pb, float* c, nint ldc, bool load, float* bias)
    {
        Vector512<float> c00 = default, c01 = default;
        Vector512<float> c10 = default, c11 = default;
        Vector512<float> c20 = default, c21 = default;
        Vector512<float> c30 = default, c31 = default;
        Vector512<float> c40 = default, c41 = default;
        Vector512<float> c50 = default, c51 = default;
        Vector512<float> c60 = default, c61 = default;
        Vector512<float> c70 = default, c71 = default;
        Vector512<float> c80 = default, c81 = default;
        Vector512<float> c90 = default, c91 = default;
        Vector512<float> cA0 = default, cA1 = default;
        Vector512<float> cB0 = default, cB1 = default;
        int p = 0;
        for (; p + 2 <= kc; p += 2)
        {
            {
                Vector512<float> b0 = Vector512.Load(pb + 0), b1 = Vector512.Load(pb + 16);
                Vector512<float> x;
                x = Vector512.Create(pa[0]); c00 = Vector512.FusedMultiplyAdd(x, b0, c00); c01 = Vector512.FusedMultiplyAdd(x, b1, c01);
                x = Vector512.Create(pa[1]); c10 = Vector512.FusedMultiplyAdd(x, b0, c10); c11 = Vector512.FusedMultiplyAdd(x, b1, c11);
                x = Vector512.Create(pa[2]); c20 = Vector512.FusedMultiplyAdd(x, b0, c20); c21 = Vector512.FusedMultiplyAdd(x, b1, c21);
                x = Vector512.Create(pa[3]); c30 = Vector512.FusedMultiplyAdd(x, b0, c30); c31 = Vector512.FusedMultiplyAdd(x, b1, c31);
                x = Vector512.Create(pa[4]); c40 = Vector512.FusedMultiplyAdd(x, b0, c40); c41 = Vector512.FusedMultiplyAdd(x, b1, c41);
                x = Vector512.Create(pa[5]); c50 = Vector512.FusedMultiplyAdd(x, b0, c50); c51 = Vector512.FusedMultiplyAdd(x, b1, c51);
                x = Vector512.Create(pa[6]); c60 = Vector512.FusedMultiplyAdd(x, b0, c60); c61 = Vector512.FusedMultiplyAdd(x, b1, c61);
                x = Vector512.Create(pa[7]); c70 = Vector512.FusedMultiplyAdd(x, b0, c70); c71 = Vector512.FusedMultiplyAdd(x, b1, c71);
                x = Vector512.Create(pa[8]); c80 = Vector512.FusedMultiplyAdd(x, b0, c80); c81 = Vector512.FusedMultiplyAdd(x, b1, c81);
                x = Vector512.Create(pa[9]); c90 = Vector512.FusedMultiplyAdd(x, b0, c90); c91 = Vector512.FusedMultiplyAdd(x, b1, c91);
                x = Vector512.Create(pa[10]); cA0 = Vector512.FusedMultiplyAdd(x, b0, cA0); cA1 = Vector512.FusedMultiplyAdd(x, b1, cA1);
                x = Vector512.Create(pa[11]); cB0 = Vector512.FusedMultiplyAdd(x, b0, cB0); cB1 = Vector512.FusedMultiplyAdd(x, b1, cB1);
            }
            {
                Vector512<float> b0 = Vector512.Load(pb + 32), b1 = Vector512.Load(pb + 48);
                Vector512<float> x;
                x = Vector512.Create(pa[12]); c00 = Vector512.FusedMultiplyAdd(x, b0, c00); c01 = Vector512.FusedMultiplyAdd(x, b1, c01);
                x = Vector512.Create(pa[13]); c10 = Vector512.FusedMultiplyAdd(x, b0, c10); c11 = Vector512.FusedMultiplyAdd(x, b1, c11);
                x = Vector512.Create(pa[14]); c20 = Vector512.FusedMultiplyAdd(x, b0, c20); c21 = Vector512.FusedMultiplyAdd(x, b1, c21);
                x = Vector512.Create(pa[15]); c30 = Vector512.FusedMultiplyAdd(x, b0, c30); c31 = Vector512.FusedMultiplyAdd(x, b1, c31);
                x = Vector512.Create(pa[16]); c40 = Vector512.FusedMultiplyAdd(x, b0, c40); c41 = Vector512.FusedMultiplyAdd(x, b1, c41);
                x = Vector512.Create(pa[17]); c50 = Vector512.FusedMultiplyAdd(x, b0, c50); c51 = Vector512.FusedMultiplyAdd(x, b1, c51);
                x = Vector512.Create(pa[18]); c60 = Vector512.FusedMultiplyAdd(x, b0, c60); c61 = Vector512.FusedMultiplyAdd(x, b1, c61);
                x = Vector512.Create(pa[19]); c70 = Vector512.FusedMultiplyAdd(x, b0, c70); c71 = Vector512.FusedMultiplyAdd(x, b1, c71);
                x = Vector512.Create(pa[20]); c80 = Vector512.FusedMultiplyAdd(x, b0, c80); c81 = Vector512.FusedMultiplyAdd(x, b1, c81);
                x = Vector512.Create(pa[21]); c90 = Vector512.FusedMultiplyAdd(x, b0, c90); c91 = Vector512.FusedMultiplyAdd(x, b1, c91);
                x = Vector512.Create(pa[22]); cA0 = Vector512.FusedMultiplyAdd(x, b0, cA0); cA1 = Vector512.FusedMultiplyAdd(x, b1, cA1);
                x = Vector512.Create(pa[23]); cB0 = Vector512.FusedMultiplyAdd(x, b0, cB0); cB1 = Vector512.FusedMultiplyAdd(x, b1, cB1);
            }
            if (Sse.IsSupported)
            {
                Sse.Prefetch0(pb + PrefetchFloats);
                Sse.Prefetch0(pb + PrefetchFloats + 16);
                Sse.Prefetch0(pb + PrefetchFloats + 32);
                Sse.Prefetch0(pb + PrefetchFloats + 48);
            }
            pa += 24;
            pb += 64;
        }
        if (p < kc)
        {
            Vector512<float> b0 = Vector512.Load(pb + 0), b1 = Vector512.Load(pb + 16);
            Vector512<float> x;
            x = Vector512.Create(pa[0]); c00 = Vector512.FusedMultiplyAdd(x, b0, c00); c01 = Vector512.FusedMultiplyAdd(x, b1, c01);
            x = Vector512.Create(pa[1]); c10 = Vector512.FusedMultiplyAdd(x, b0, c10); c11 = Vector512.FusedMultiplyAdd(x, b1, c11);
            x = Vector512.Create(pa[2]); c20 = Vector512.FusedMultiplyAdd(x, b0, c20); c21 = Vector512.FusedMultiplyAdd(x, b1, c21);
            x = Vector512.Create(pa[3]); c30 = Vector512.FusedMultiplyAdd(x, b0, c30); c31 = Vector512.FusedMultiplyAdd(x, b1, c31);
            x = Vector512.Create(pa[4]); c40 = Vector512.FusedMultiplyAdd(x, b0, c40); c41 = Vector512.FusedMultiplyAdd(x, b1, c41);
            x = Vector512.Create(pa[5]); c50 = Vector512.FusedMultiplyAdd(x, b0, c50); c51 = Vector512.FusedMultiplyAdd(x, b1, c51);
            x = Vector512.Create(pa[6]); c60 = Vector512.FusedMultiplyAdd(x, b0, c60); c61 = Vector512.FusedMultiplyAdd(x, b1, c61);
            x = Vector512.Create(pa[7]); c70 = Vector512.FusedMultiplyAdd(x, b0, c70); c71 = Vector512.FusedMultiplyAdd(x, b1, c71);
            x = Vector512.Create(pa[8]); c80 = Vector512.FusedMultiplyAdd(x, b0, c80); c81 = Vector512.FusedMultiplyAdd(x, b1, c81);
            x = Vector512.Create(pa[9]); c90 = Vector512.FusedMultiplyAdd(x, b0, c90); c91 = Vector512.FusedMultiplyAdd(x, b1, c91);
            x = Vector512.Create(pa[10]); cA0 = Vector512.FusedMultiplyAdd(x, b0, cA0); cA1 = Vector512.FusedMultiplyAdd(x, b1, cA1);
            x = Vector512.Create(pa[11]); cB0 = Vector512.FusedMultiplyAdd(x, b0, cB0); cB1 = Vector512.FusedMultiplyAdd(x, b1, cB1);
        }
        Store512(c + 0 * ldc, c00, c01, load, bias);
        Store512(c + 1 * ldc, c10, c11, load, bias);
        Store512(c + 2 * ldc, c20, c21, load, bias);
        Store512(c + 3 * ldc, c30, c31, load, bias);
        Store512(c + 4 * ldc, c40, c41, load, bias);
        Store512(c + 5 * ldc, c50, c51, load, bias);
        Store512(c + 6 * ldc, c60, c61, load, bias);
        Store512(c + 7 * ldc, c70, c71, load, bias);
        Store512(c + 8 * ldc, c80, c81, load, bias);
        Store512(c + 9 * ldc, c90, c91, load, bias);
        Store512(c + 10 * ldc, cA0, cA1, load, bias);
        Store512(c + 11 * ldc, cB0, cB1, load, bias);
    }

    /// <summary>
    /// 6×16 micro-kernel: 12 Vector256 accumulators over <paramref name="kc"/> packed steps, for the first
    /// <typeparamref name="TRows"/> rows of the panel (the others are padding; a row's sums do not depend on them).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Kernel256<TRows>(int kc, float* pa, float* pb, float* c, nint ldc, bool load, float* bias) where TRows : struct, IRowCount
    {
        Vector256<float> c00 = default, c01 = default;
        Vector256<float> c10 = default, c11 = default;
        Vector256<float> c20 = default, c21 = default;
        Vector256<float> c30 = default, c31 = default;
        Vector256<float> c40 = default, c41 = default;
        Vector256<float> c50 = default, c51 = default;
        int p = 0;
        for (; p + 2 <= kc; p += 2)
        {
            {
                Vector256<float> b0 = Vector256.Load(pb + 0), b1 = Vector256.Load(pb + 8);
                Vector256<float> x;
                x = Vector256.Create(pa[0]); c00 = Vector256.FusedMultiplyAdd(x, b0, c00); c01 = Vector256.FusedMultiplyAdd(x, b1, c01);
                if (TRows.Count > 1) { x = Vector256.Create(pa[1]); c10 = Vector256.FusedMultiplyAdd(x, b0, c10); c11 = Vector256.FusedMultiplyAdd(x, b1, c11); }
                if (TRows.Count > 2) { x = Vector256.Create(pa[2]); c20 = Vector256.FusedMultiplyAdd(x, b0, c20); c21 = Vector256.FusedMultiplyAdd(x, b1, c21); }
                if (TRows.Count > 3) { x = Vector256.Create(pa[3]); c30 = Vector256.FusedMultiplyAdd(x, b0, c30); c31 = Vector256.FusedMultiplyAdd(x, b1, c31); }
                if (TRows.Count > 4) { x = Vector256.Create(pa[4]); c40 = Vector256.FusedMultiplyAdd(x, b0, c40); c41 = Vector256.FusedMultiplyAdd(x, b1, c41); }
                if (TRows.Count > 5) { x = Vector256.Create(pa[5]); c50 = Vector256.FusedMultiplyAdd(x, b0, c50); c51 = Vector256.FusedMultiplyAdd(x, b1, c51); }
            }
            {
                Vector256<float> b0 = Vector256.Load(pb + 16), b1 = Vector256.Load(pb + 24);
                Vector256<float> x;
                x = Vector256.Create(pa[6]); c00 = Vector256.FusedMultiplyAdd(x, b0, c00); c01 = Vector256.FusedMultiplyAdd(x, b1, c01);
                if (TRows.Count > 1) { x = Vector256.Create(pa[7]); c10 = Vector256.FusedMultiplyAdd(x, b0, c10); c11 = Vector256.FusedMultiplyAdd(x, b1, c11); }
                if (TRows.Count > 2) { x = Vector256.Create(pa[8]); c20 = Vector256.FusedMultiplyAdd(x, b0, c20); c21 = Vector256.FusedMultiplyAdd(x, b1, c21); }
                if (TRows.Count > 3) { x = Vector256.Create(pa[9]); c30 = Vector256.FusedMultiplyAdd(x, b0, c30); c31 = Vector256.FusedMultiplyAdd(x, b1, c31); }
                if (TRows.Count > 4) { x = Vector256.Create(pa[10]); c40 = Vector256.FusedMultiplyAdd(x, b0, c40); c41 = Vector256.FusedMultiplyAdd(x, b1, c41); }
                if (TRows.Count > 5) { x = Vector256.Create(pa[11]); c50 = Vector256.FusedMultiplyAdd(x, b0, c50); c51 = Vector256.FusedMultiplyAdd(x, b1, c51); }
            }
            pa += 12;
            pb += 32;
        }
        if (p < kc)
        {
            Vector256<float> b0 = Vector256.Load(pb + 0), b1 = Vector256.Load(pb + 8);
            Vector256<float> x;
            x = Vector256.Create(pa[0]); c00 = Vector256.FusedMultiplyAdd(x, b0, c00); c01 = Vector256.FusedMultiplyAdd(x, b1, c01);
            if (TRows.Count > 1) { x = Vector256.Create(pa[1]); c10 = Vector256.FusedMultiplyAdd(x, b0, c10); c11 = Vector256.FusedMultiplyAdd(x, b1, c11); }
            if (TRows.Count > 2) { x = Vector256.Create(pa[2]); c20 = Vector256.FusedMultiplyAdd(x, b0, c20); c21 = Vector256.FusedMultiplyAdd(x, b1, c21); }
            if (TRows.Count > 3) { x = Vector256.Create(pa[3]); c30 = Vector256.FusedMultiplyAdd(x, b0, c30); c31 = Vector256.FusedMultiplyAdd(x, b1, c31); }
            if (TRows.Count > 4) { x = Vector256.Create(pa[4]); c40 = Vector256.FusedMultiplyAdd(x, b0, c40); c41 = Vector256.FusedMultiplyAdd(x, b1, c41); }
            if (TRows.Count > 5) { x = Vector256.Create(pa[5]); c50 = Vector256.FusedMultiplyAdd(x, b0, c50); c51 = Vector256.FusedMultiplyAdd(x, b1, c51); }
        }
        Store256(c + 0 * ldc, c00, c01, load, bias);
        if (TRows.Count > 1) Store256(c + 1 * ldc, c10, c11, load, bias);
        if (TRows.Count > 2) Store256(c + 2 * ldc, c20, c21, load, bias);
        if (TRows.Count > 3) Store256(c + 3 * ldc, c30, c31, load, bias);
        if (TRows.Count > 4) Store256(c + 4 * ldc, c40, c41, load, bias);
        if (TRows.Count > 5) Store256(c + 5 * ldc, c50, c51, load, bias);
    }

    /// <summary>The element width of the activation: the micro-kernel's, so a forced path forces both.</summary>
    private static VectorWidth EpilogueWidth(GemmPath path) => path switch
    {
        GemmPath.Vector512 => VectorWidth.Vector512,
        GemmPath.Vector256 => VectorWidth.Vector256,
        GemmPath.Vector128 => VectorWidth.Vector128,
        _ => VectorWidth.Scalar,
    };

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Epilogue(float* row, float* bias, int colStart, int colEnd, Activation activation, VectorWidth width)
    {
        if (bias != null)
            for (int j = colStart; j < colEnd; j++) row[j] += bias[j];
        var values = new Span<float>(row + colStart, colEnd - colStart);
        switch (activation)
        {
            case Activation.GeluExact:
                VectorLoop.Apply<GeluExactOperator>(values, values, width);
                break;
            case Activation.GeluTanh:
                VectorLoop.Apply<GeluTanhOperator>(values, values, width);
                break;
        }
    }
}

/// <summary>A constant GEMM right operand in the CPU kernel's packed panel layout (see <see cref="CpuGemm.PackB(ReadOnlySpan{float}, int, int)"/>).</summary>
internal sealed class PackedMatrix
{
    internal PackedMatrix(float[] data, int offset, int k, int n, int nr, GemmPath path)
    {
        Data = data;
        Offset = offset;
        K = k;
        N = n;
        Nr = nr;
        Path = path;
        Format = WeightFormat.Float32;
    }

    internal PackedMatrix(ushort[] data, int offset, int k, int n, int nr, WeightFormat format, GemmPath path)
    {
        Data16 = data;
        Offset = offset;
        K = k;
        N = n;
        Nr = nr;
        Path = path;
        Format = format;
    }

    /// <summary>fp32 panels, or null when the matrix is kept 16-bit.</summary>
    internal float[]? Data { get; }
    /// <summary>16-bit panels, or null when the matrix is fp32.</summary>
    internal ushort[]? Data16 { get; }
    internal int Offset { get; }
    /// <summary>How the panels store the values.</summary>
    public WeightFormat Format { get; }
    /// <summary>Bytes the panels occupy.</summary>
    public long Bytes => Data is not null ? Data.LongLength * sizeof(float) : Data16!.LongLength * sizeof(ushort);
    /// <summary>Rows of B (the inner dimension).</summary>
    public int K { get; }
    /// <summary>Columns of B.</summary>
    public int N { get; }
    internal int Nr { get; }
    /// <summary>The micro-kernel the panels are laid out for (their width is its NR).</summary>
    internal GemmPath Path { get; }

    /// <summary>Writes the first <c>destination.Length</c> elements of B in its original row-major [K, N] order.</summary>
    public void Unpack(Span<float> destination)
    {
        for (int i = 0; i < destination.Length; i++)
        {
            int row = i / N, column = i % N;
            long at = Offset + (long)(column / Nr) * K * Nr + (long)row * Nr + column % Nr;
            destination[i] = Data is not null ? Data[at] : SixteenBitWeights.Widen(Data16![at], Format);
        }
    }
}

/// <summary>
/// Scalar forms of the CPU kernels' element-wise functions. Each is the scalar lane of the operator the vector
/// kernels run (ElementwiseOperators.cs), so a value computed here equals the kernels' value bit for bit.
/// </summary>
internal static class CpuMath
{
    /// <summary>
    /// erf(x) for single precision, as a rational function of x² on [-4, 4] (the approximation Eigen
    /// uses); absolute error below 4e-7 against the exact value (largest just inside ±4), far inside the 1e-4 parity budget.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Erf(float x) => ErfOperator.Invoke(x);

    /// <summary>Exact GELU.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float GeluExact(float x) => GeluExactOperator.Invoke(x);

    /// <summary>d/dx of exact GELU: Φ(x) + x·φ(x) (what the backward kernel multiplies the upstream gradient by).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float GeluExactDerivative(float x) => GeluExactDerivativeOperator.Invoke(x);

    /// <summary>
    /// GPT-2's tanh GELU, ½x(1 + tanh(√(2/π)(x + 0.044715x³))), within 0.51 ulp of its exact value (evaluated
    /// without the float form's cancellation; see GeluTanhOperator).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float GeluTanh(float x) => GeluTanhOperator.Invoke(x);
}
