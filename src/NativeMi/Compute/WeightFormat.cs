using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace NativeMi.Compute;

/// <summary>How a constant weight (a GEMM matrix or an embedding table) is stored on a backend.</summary>
internal enum WeightFormat
{
    /// <summary>IEEE single precision.</summary>
    Float32,
    /// <summary>IEEE half precision (safetensors F16), widened to fp32 where it is used.</summary>
    Float16,
    /// <summary>bfloat16 (safetensors BF16): the upper 16 bits of an fp32, widened where it is used.</summary>
    BFloat16,
}

/// <summary>Conversions between 16-bit weight storage and fp32, shared by the loader and the CPU kernels.</summary>
internal static class SixteenBitWeights
{
    /// <summary>Bytes per element of <paramref name="format"/>.</summary>
    public static int BytesPerElement(WeightFormat format) => format == WeightFormat.Float32 ? 4 : 2;

    /// <summary>The format's name as safetensors spells it (F32, F16, BF16).</summary>
    public static string Name(WeightFormat format) => format switch
    {
        WeightFormat.Float16 => "F16",
        WeightFormat.BFloat16 => "BF16",
        _ => "F32",
    };

    /// <summary>
    /// destination[i] = the exact fp32 value of source[i]. Every F16 and BF16 value is representable in fp32, so this is
    /// lossless and a product over widened weights equals the product over weights widened at load.
    /// </summary>
    public static void Widen(ReadOnlySpan<ushort> source, Span<float> destination, WeightFormat format)
    {
        if (destination.Length < source.Length)
            throw new ArgumentException($"destination holds {destination.Length} elements; {source.Length} needed", nameof(destination));
        switch (format)
        {
            case WeightFormat.Float16:
                TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<ushort, Half>(source), destination);
                break;
            case WeightFormat.BFloat16:
                WidenBFloat16(source, destination);
                break;
            default:
                throw new ArgumentException($"{format} is not a 16-bit format", nameof(format));
        }
    }

    /// <summary>The fp32 value of one element.</summary>
    public static float Widen(ushort value, WeightFormat format) => format switch
    {
        WeightFormat.Float16 => (float)BitConverter.UInt16BitsToHalf(value),
        WeightFormat.BFloat16 => BitConverter.Int32BitsToSingle(value << 16),
        _ => throw new ArgumentException($"{format} is not a 16-bit format", nameof(format)),
    };

    private static void WidenBFloat16(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        Span<uint> bits = MemoryMarshal.Cast<float, uint>(destination);
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            int lanes = Vector<ushort>.Count;
            for (; i + lanes <= source.Length; i += lanes)
            {
                Vector.Widen(new Vector<ushort>(source[i..]), out Vector<uint> low, out Vector<uint> high);
                Vector.ShiftLeft(low, 16).CopyTo(bits[i..]);
                Vector.ShiftLeft(high, 16).CopyTo(bits[(i + lanes / 2)..]);
            }
        }
        for (; i < source.Length; i++) bits[i] = (uint)source[i] << 16;
    }

    /// <summary>Whether no element is NaN or infinite (all exponent bits set).</summary>
    public static bool AllFinite(ReadOnlySpan<ushort> values, WeightFormat format)
    {
        ushort exponent = ExponentMask(format);
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var mask = new Vector<ushort>(exponent);
            for (; i + Vector<ushort>.Count <= values.Length; i += Vector<ushort>.Count)
                if (Vector.EqualsAny(new Vector<ushort>(values[i..]) & mask, mask)) return false;
        }
        for (; i < values.Length; i++)
            if ((values[i] & exponent) == exponent) return false;
        return true;
    }

    /// <summary>The exponent field of <paramref name="format"/>: all ones means NaN or infinity.</summary>
    public static ushort ExponentMask(WeightFormat format) => format switch
    {
        WeightFormat.Float16 => 0x7C00,
        WeightFormat.BFloat16 => 0x7F80,
        _ => throw new ArgumentException($"{format} is not a 16-bit format", nameof(format)),
    };

    /// <summary>Round-to-nearest-even fp32 to BF16 (NaN kept quiet), for tests and the random-init writer.</summary>
    public static ushort ToBFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x40);
        uint rounding = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }
}
