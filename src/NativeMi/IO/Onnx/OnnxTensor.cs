using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace NativeMi.IO.Onnx;

/// <summary>ONNX <c>TensorProto.DataType</c> values.</summary>
internal enum OnnxDataType
{
    /// <summary>Not set.</summary>
    Undefined = 0,
    /// <summary>32-bit float.</summary>
    Float = 1,
    /// <summary>Unsigned 8-bit integer.</summary>
    UInt8 = 2,
    /// <summary>Signed 8-bit integer.</summary>
    Int8 = 3,
    /// <summary>Unsigned 16-bit integer.</summary>
    UInt16 = 4,
    /// <summary>Signed 16-bit integer.</summary>
    Int16 = 5,
    /// <summary>Signed 32-bit integer.</summary>
    Int32 = 6,
    /// <summary>Signed 64-bit integer.</summary>
    Int64 = 7,
    /// <summary>Byte strings.</summary>
    String = 8,
    /// <summary>Boolean, one byte.</summary>
    Bool = 9,
    /// <summary>IEEE half precision.</summary>
    Float16 = 10,
    /// <summary>64-bit float.</summary>
    Double = 11,
    /// <summary>Unsigned 32-bit integer.</summary>
    UInt32 = 12,
    /// <summary>Unsigned 64-bit integer.</summary>
    UInt64 = 13,
    /// <summary>Complex of two 32-bit floats.</summary>
    Complex64 = 14,
    /// <summary>Complex of two 64-bit floats.</summary>
    Complex128 = 15,
    /// <summary>bfloat16.</summary>
    BFloat16 = 16,
}

/// <summary>
/// One ONNX tensor (an initializer or a Constant node's value). The element data is validated
/// against the shape when the model is read; <see cref="RawData"/> shares the model's buffer.
/// </summary>
internal sealed class OnnxTensor
{
    /// <summary>Largest rank accepted; real models stay far below it.</summary>
    public const int MaxRank = 32;

    internal OnnxTensor(string filePath, string name, OnnxDataType dataType, long[] dims, ReadOnlyMemory<byte> rawData,
        bool hasRawData, float[]? floatData, long[]? int64Data, int[]? int32Data, double[]? doubleData)
    {
        FilePath = filePath;
        Name = name;
        DataType = dataType;
        Dims = dims;
        RawData = rawData;
        HasRawData = hasRawData;
        _floatData = floatData;
        _int64Data = int64Data;
        _int32Data = int32Data;
        _doubleData = doubleData;
        ElementCount = CountElements(filePath, name, dims);
        Validate();
    }

    private readonly float[]? _floatData;
    private readonly long[]? _int64Data;
    private readonly int[]? _int32Data;
    private readonly double[]? _doubleData;

    /// <summary>The model file this tensor was read from.</summary>
    public string FilePath { get; }

    /// <summary>Tensor name (empty for an unnamed Constant value).</summary>
    public string Name { get; }

    /// <summary>Element type.</summary>
    public OnnxDataType DataType { get; }

    /// <summary>Dimensions, outermost first; empty for a scalar.</summary>
    public IReadOnlyList<long> Dims { get; }

    /// <summary>Number of elements (product of <see cref="Dims"/>).</summary>
    public long ElementCount { get; }

    /// <summary>True when the values are stored in <c>raw_data</c> (little-endian bytes).</summary>
    public bool HasRawData { get; }

    /// <summary>The <c>raw_data</c> bytes; empty when the values are in a typed field.</summary>
    public ReadOnlyMemory<byte> RawData { get; }

    /// <summary>The dimensions written as [a, b].</summary>
    public string ShapeText => "[" + string.Join(", ", Dims) + "]";

    /// <summary>Size in bytes of one element of <paramref name="dataType"/>, or 0 when it has no fixed size.</summary>
    public static int ElementSize(OnnxDataType dataType) => dataType switch
    {
        OnnxDataType.UInt8 or OnnxDataType.Int8 or OnnxDataType.Bool => 1,
        OnnxDataType.UInt16 or OnnxDataType.Int16 or OnnxDataType.Float16 or OnnxDataType.BFloat16 => 2,
        OnnxDataType.Float or OnnxDataType.Int32 or OnnxDataType.UInt32 => 4,
        OnnxDataType.Int64 or OnnxDataType.UInt64 or OnnxDataType.Double or OnnxDataType.Complex64 => 8,
        OnnxDataType.Complex128 => 16,
        _ => 0,
    };

    /// <summary>The values as little-endian F32 bytes; requires <see cref="DataType"/> Float.</summary>
    public ReadOnlyMemory<byte> GetFloat32Bytes()
    {
        RequireType(OnnxDataType.Float);
        if (HasRawData) return RawData;
        float[] values = _floatData ?? [];
        byte[] bytes = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), values[i]);
        return bytes;
    }

    /// <summary>The values as floats; requires <see cref="DataType"/> Float.</summary>
    public float[] ToFloatArray()
    {
        RequireType(OnnxDataType.Float);
        if (!HasRawData) return (float[])(_floatData ?? []).Clone();
        ReadOnlySpan<byte> bytes = RawData.Span;
        float[] values = new float[bytes.Length / 4];
        if (BitConverter.IsLittleEndian) bytes.CopyTo(MemoryMarshal.AsBytes(values.AsSpan()));
        else for (int i = 0; i < values.Length; i++) values[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes.Slice(i * 4));
        return values;
    }

    /// <summary>The values widened to int64; requires an Int64 or Int32 tensor.</summary>
    public long[] ToInt64Array()
    {
        switch (DataType)
        {
            case OnnxDataType.Int64:
                if (!HasRawData) return (long[])(_int64Data ?? []).Clone();
                return ReadRaw(8, static b => BinaryPrimitives.ReadInt64LittleEndian(b));
            case OnnxDataType.Int32:
                if (!HasRawData) return (_int32Data ?? []).Select(v => (long)v).ToArray();
                return ReadRaw(4, static b => (long)BinaryPrimitives.ReadInt32LittleEndian(b));
            default:
                throw new ModelFormatException(FilePath, $"tensor '{Name}' has type {DataType}; expected an integer tensor (Int64 or Int32)");
        }
    }

    /// <summary>The values widened to double; requires a Float or Double tensor.</summary>
    public double[] ToDoubleArray()
    {
        switch (DataType)
        {
            case OnnxDataType.Float:
                return ToFloatArray().Select(v => (double)v).ToArray();
            case OnnxDataType.Double:
                if (!HasRawData) return (double[])(_doubleData ?? []).Clone();
                return ReadRaw(8, static b => BinaryPrimitives.ReadDoubleLittleEndian(b));
            default:
                throw new ModelFormatException(FilePath, $"tensor '{Name}' has type {DataType}; expected a floating-point tensor (Float or Double)");
        }
    }

    private delegate T ElementReader<T>(ReadOnlySpan<byte> bytes);

    private T[] ReadRaw<T>(int size, ElementReader<T> read)
    {
        ReadOnlySpan<byte> bytes = RawData.Span;
        var values = new T[bytes.Length / size];
        for (int i = 0; i < values.Length; i++) values[i] = read(bytes.Slice(i * size, size));
        return values;
    }

    private void RequireType(OnnxDataType expected)
    {
        if (DataType != expected)
            throw new ModelFormatException(FilePath, $"tensor '{Name}' has type {DataType}; expected {expected}");
    }

    private static long CountElements(string filePath, string name, long[] dims)
    {
        if (dims.Length > MaxRank)
            throw new ModelFormatException(filePath, $"tensor '{name}' has {dims.Length} dimensions; at most {MaxRank} are accepted");
        long count = 1;
        foreach (long d in dims)
        {
            if (d < 0) throw new ModelFormatException(filePath, $"tensor '{name}' has negative dimension {d} in [{string.Join(", ", dims)}]");
            try
            {
                count = checked(count * d);
            }
            catch (OverflowException)
            {
                throw new ModelFormatException(filePath, $"tensor '{name}' shape [{string.Join(", ", dims)}] has more elements than fit in 64 bits");
            }
        }
        return count;
    }

    private void Validate()
    {
        if (DataType == OnnxDataType.String) return;
        int size = ElementSize(DataType);
        if (size == 0)
            throw new ModelFormatException(FilePath, $"tensor '{Name}' has unsupported data type {(int)DataType}");
        if (HasRawData)
        {
            if (ElementCount > int.MaxValue / size || RawData.Length != ElementCount * size)
                throw new ModelFormatException(FilePath,
                    $"tensor '{Name}' shape {ShapeText} of {DataType} needs {ElementCount} x {size} bytes, but raw_data holds {RawData.Length}");
            return;
        }
        long typedCount = DataType switch
        {
            OnnxDataType.Float => _floatData?.Length ?? 0,
            OnnxDataType.Int64 => _int64Data?.Length ?? 0,
            OnnxDataType.Double => _doubleData?.Length ?? 0,
            OnnxDataType.Int32 or OnnxDataType.Int16 or OnnxDataType.Int8 or OnnxDataType.UInt16 or OnnxDataType.UInt8
                or OnnxDataType.Bool or OnnxDataType.Float16 or OnnxDataType.BFloat16 => _int32Data?.Length ?? 0,
            _ => -1,
        };
        if (typedCount == -1)
            throw new ModelFormatException(FilePath, $"tensor '{Name}' of type {DataType} has no raw_data; typed storage of this type is not supported");
        if (typedCount != ElementCount)
            throw new ModelFormatException(FilePath,
                $"tensor '{Name}' shape {ShapeText} has {ElementCount} elements, but its typed data field holds {typedCount}");
    }
}
