using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace NativeMi.Compute.Cpu;

/// <summary>The register widths an element-wise loop can run at; each value is the number of float lanes.</summary>
internal enum VectorWidth
{
    /// <summary>One float at a time.</summary>
    Scalar = 1,
    /// <summary>SSE, or AdvSimd (NEON) on ARM64.</summary>
    Vector128 = 4,
    /// <summary>AVX2.</summary>
    Vector256 = 8,
    /// <summary>AVX-512.</summary>
    Vector512 = 16,
}

/// <summary>
/// An element-wise function of one float, written once per register width in the manner of
/// System.Numerics.Tensors' operators. Every width must compute, lane by lane, the same float operations as
/// the scalar form, so that <see cref="VectorLoop"/> may mix widths (for the tail) without changing a bit.
/// </summary>
internal interface IUnaryOperator
{
    static abstract float Invoke(float x);
    static abstract Vector128<float> Invoke(Vector128<float> x);
    static abstract Vector256<float> Invoke(Vector256<float> x);
    static abstract Vector512<float> Invoke(Vector512<float> x);
}

/// <summary>An element-wise function of two floats, with the same contract as <see cref="IUnaryOperator"/>.</summary>
internal interface IBinaryOperator
{
    static abstract float Invoke(float x, float y);
    static abstract Vector128<float> Invoke(Vector128<float> x, Vector128<float> y);
    static abstract Vector256<float> Invoke(Vector256<float> x, Vector256<float> y);
    static abstract Vector512<float> Invoke(Vector512<float> x, Vector512<float> y);
}

/// <summary>
/// The one loop that runs an operator over spans: whole vectors of the chosen width, then what is left with
/// one vector of each narrower width and finally scalars, so a width-16 loop over 23 floats runs 16 + 4 + 3.
/// The destination may be the input itself (each element is read before it is written, and no element twice).
/// </summary>
internal static class VectorLoop
{
    // The operators are chains of fused multiply-adds; on x86 without FMA3 the vector forms would emulate each one
    // lane by lane, so element-wise work stays scalar there, as it did before the operators existed.
    private static readonly bool HardwareFma = Fma.IsSupported || AdvSimd.IsSupported;

    /// <summary>The widest width the runtime accelerates on this machine (what the overloads without a width use).</summary>
    public static VectorWidth Widest { get; } =
        !HardwareFma ? VectorWidth.Scalar
        : Vector512.IsHardwareAccelerated ? VectorWidth.Vector512
        : Vector256.IsHardwareAccelerated ? VectorWidth.Vector256
        : Vector128.IsHardwareAccelerated ? VectorWidth.Vector128
        : VectorWidth.Scalar;

    /// <summary>
    /// Whether <paramref name="width"/> runs as vector instructions here, so that a test may force it. 512-bit
    /// counts wherever AVX-512F exists, even on the parts where the runtime prefers 256-bit code (Skylake-X).
    /// </summary>
    public static bool IsSupported(VectorWidth width) => width switch
    {
        VectorWidth.Scalar => true,
        VectorWidth.Vector128 => Vector128.IsHardwareAccelerated,
        VectorWidth.Vector256 => Vector256.IsHardwareAccelerated,
        VectorWidth.Vector512 => Vector512.IsHardwareAccelerated || Avx512F.IsSupported,
        _ => false,
    };

    /// <summary>destination[i] = TOp(x[i]) at <see cref="Widest"/>.</summary>
    public static void Apply<TOp>(ReadOnlySpan<float> x, Span<float> destination) where TOp : IUnaryOperator =>
        Apply<TOp>(x, destination, Widest);

    /// <summary>destination[i] = TOp(x[i], y[i]) at <see cref="Widest"/>.</summary>
    public static void Apply<TOp>(ReadOnlySpan<float> x, ReadOnlySpan<float> y, Span<float> destination) where TOp : IBinaryOperator =>
        Apply<TOp>(x, y, destination, Widest);

    /// <summary>destination[i] = TOp(x[i]) with vectors no wider than <paramref name="width"/>.</summary>
    // Optimised at once: tier-0 code of these loops is several times slower, and a short run (a benchmark, a small
    // batch) can end before tiering replaces it.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Apply<TOp>(ReadOnlySpan<float> x, Span<float> destination, VectorWidth width) where TOp : IUnaryOperator
    {
        if (destination.Length < x.Length) throw new ArgumentException($"destination holds {destination.Length} elements; needs {x.Length}", nameof(destination));
        if (!IsSupported(width)) throw new PlatformNotSupportedException($"{width} is not accelerated on this machine");
        ref float xs = ref MemoryMarshal.GetReference(x), ds = ref MemoryMarshal.GetReference(destination);
        nuint n = (nuint)x.Length, i = 0;
        if (width >= VectorWidth.Vector512)
            for (; i + 16 <= n; i += 16) TOp.Invoke(Vector512.LoadUnsafe(ref xs, i)).StoreUnsafe(ref ds, i);
        if (width >= VectorWidth.Vector256)
            for (; i + 8 <= n; i += 8) TOp.Invoke(Vector256.LoadUnsafe(ref xs, i)).StoreUnsafe(ref ds, i);
        if (width >= VectorWidth.Vector128)
            for (; i + 4 <= n; i += 4) TOp.Invoke(Vector128.LoadUnsafe(ref xs, i)).StoreUnsafe(ref ds, i);
        for (; i < n; i++) Unsafe.Add(ref ds, i) = TOp.Invoke(Unsafe.Add(ref xs, i));
    }

    /// <summary>destination[i] = TOp(x[i], y[i]) with vectors no wider than <paramref name="width"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Apply<TOp>(ReadOnlySpan<float> x, ReadOnlySpan<float> y, Span<float> destination, VectorWidth width) where TOp : IBinaryOperator
    {
        if (y.Length < x.Length || destination.Length < x.Length)
            throw new ArgumentException($"the second operand ({y.Length}) and the destination ({destination.Length}) must hold the first's {x.Length} elements");
        if (!IsSupported(width)) throw new PlatformNotSupportedException($"{width} is not accelerated on this machine");
        ref float xs = ref MemoryMarshal.GetReference(x), ys = ref MemoryMarshal.GetReference(y), ds = ref MemoryMarshal.GetReference(destination);
        nuint n = (nuint)x.Length, i = 0;
        if (width >= VectorWidth.Vector512)
            for (; i + 16 <= n; i += 16) TOp.Invoke(Vector512.LoadUnsafe(ref xs, i), Vector512.LoadUnsafe(ref ys, i)).StoreUnsafe(ref ds, i);
        if (width >= VectorWidth.Vector256)
            for (; i + 8 <= n; i += 8) TOp.Invoke(Vector256.LoadUnsafe(ref xs, i), Vector256.LoadUnsafe(ref ys, i)).StoreUnsafe(ref ds, i);
        if (width >= VectorWidth.Vector128)
            for (; i + 4 <= n; i += 4) TOp.Invoke(Vector128.LoadUnsafe(ref xs, i), Vector128.LoadUnsafe(ref ys, i)).StoreUnsafe(ref ds, i);
        for (; i < n; i++) Unsafe.Add(ref ds, i) = TOp.Invoke(Unsafe.Add(ref xs, i), Unsafe.Add(ref ys, i));
    }
}
