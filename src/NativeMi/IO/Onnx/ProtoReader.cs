using System.Buffers.Binary;
using System.Text;

namespace NativeMi.IO.Onnx;

/// <summary>The protobuf wire types (the low three bits of a field tag).</summary>
internal enum ProtoWireType
{
    /// <summary>Base-128 varint.</summary>
    Varint = 0,
    /// <summary>Eight little-endian bytes.</summary>
    Fixed64 = 1,
    /// <summary>A varint length followed by that many bytes.</summary>
    LengthDelimited = 2,
    /// <summary>Deprecated group start; rejected.</summary>
    StartGroup = 3,
    /// <summary>Deprecated group end; rejected.</summary>
    EndGroup = 4,
    /// <summary>Four little-endian bytes.</summary>
    Fixed32 = 5,
}

/// <summary>
/// Reads protobuf wire format from a buffer that is treated as untrusted: every length, count and
/// varint is checked against the bytes that remain, and any violation raises
/// <see cref="ModelFormatException"/> naming the file, the message being read and the offset.
/// Slices (<see cref="ReadBytes()"/>) share the underlying buffer, so large tensors are not copied.
/// </summary>
internal struct ProtoReader
{
    private readonly ReadOnlyMemory<byte> _buffer;
    private readonly long _baseOffset;
    private int _position;

    /// <summary>Creates a reader over <paramref name="buffer"/>.</summary>
    /// <param name="filePath">The file the bytes came from, for error messages.</param>
    /// <param name="buffer">The encoded message.</param>
    /// <param name="context">The message being read (e.g. "ModelProto"), for error messages.</param>
    /// <param name="baseOffset">Offset of <paramref name="buffer"/> within the file, for error messages.</param>
    public ProtoReader(string filePath, ReadOnlyMemory<byte> buffer, string context, long baseOffset = 0)
    {
        FilePath = filePath;
        _buffer = buffer;
        Context = context;
        _baseOffset = baseOffset;
        _position = 0;
    }

    /// <summary>The file the bytes came from.</summary>
    public string FilePath { get; }

    /// <summary>The message being read, as a path such as "ModelProto.graph.node[3]".</summary>
    public string Context { get; }

    /// <summary>True when every byte has been consumed.</summary>
    public readonly bool AtEnd => _position >= _buffer.Length;

    /// <summary>Offset of the next byte within the file.</summary>
    public readonly long FileOffset => _baseOffset + _position;

    /// <summary>Reads the next field tag; returns false at the end of the message.</summary>
    public bool TryReadTag(out int fieldNumber, out ProtoWireType wireType)
    {
        if (AtEnd)
        {
            fieldNumber = 0;
            wireType = default;
            return false;
        }
        long tagOffset = FileOffset;
        ulong tag = ReadVarint();
        ulong number = tag >> 3;
        if (number == 0 || number > 0x1FFF_FFFF)
            throw Error($"field number {number} at offset {tagOffset} is outside 1..536870911");
        fieldNumber = (int)number;
        wireType = (ProtoWireType)(tag & 7);
        if (wireType is ProtoWireType.StartGroup or ProtoWireType.EndGroup)
            throw Error($"field {fieldNumber} at offset {tagOffset} uses the deprecated group encoding, which ONNX never writes");
        if ((int)wireType > 5)
            throw Error($"field {fieldNumber} at offset {tagOffset} has unknown wire type {(int)wireType}");
        return true;
    }

    /// <summary>Reads a base-128 varint of at most ten bytes.</summary>
    public ulong ReadVarint()
    {
        ReadOnlySpan<byte> span = _buffer.Span;
        ulong result = 0;
        for (int shift = 0, i = 0; i < 10; i++, shift += 7)
        {
            if (_position >= span.Length)
                throw Error($"varint at offset {FileOffset} runs past the end of the message");
            byte b = span[_position++];
            if (i == 9 && b > 1)
                throw Error($"varint ending at offset {FileOffset} does not fit in 64 bits");
            result |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return result;
        }
        throw Error($"varint ending at offset {FileOffset} is longer than 10 bytes");
    }

    /// <summary>Reads a varint as a two's-complement int64 (the encoding of protobuf <c>int64</c>).</summary>
    public long ReadInt64() => unchecked((long)ReadVarint());

    /// <summary>Reads a varint as protobuf <c>int32</c> (sign-extended to 64 bits on the wire), checking its range.</summary>
    public int ReadInt32()
    {
        long offset = FileOffset;
        long value = ReadInt64();
        if (value < int.MinValue || value > int.MaxValue)
            throw Error($"int32 value {value} at offset {offset} is out of range");
        return (int)value;
    }

    /// <summary>Reads four little-endian bytes.</summary>
    public uint ReadFixed32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4, "fixed32"));

    /// <summary>Reads eight little-endian bytes.</summary>
    public ulong ReadFixed64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8, "fixed64"));

    /// <summary>Reads an IEEE single-precision value (wire type fixed32).</summary>
    public float ReadFloat() => BitConverter.Int32BitsToSingle(unchecked((int)ReadFixed32()));

    /// <summary>Reads an IEEE double-precision value (wire type fixed64).</summary>
    public double ReadDouble() => BitConverter.Int64BitsToDouble(unchecked((long)ReadFixed64()));

    /// <summary>Reads a length-delimited field's bytes, without copying them.</summary>
    public ReadOnlyMemory<byte> ReadBytes() => ReadBytes(out _);

    private ReadOnlyMemory<byte> ReadBytes(out long contentFileOffset)
    {
        long lengthOffset = FileOffset;
        ulong length = ReadVarint();
        int remaining = _buffer.Length - _position;
        if (length > (ulong)remaining)
            throw Error($"length {length} at offset {lengthOffset} runs past the end of the message ({remaining} bytes remain)");
        contentFileOffset = FileOffset;
        ReadOnlyMemory<byte> slice = _buffer.Slice(_position, (int)length);
        _position += (int)length;
        return slice;
    }

    /// <summary>Reads a length-delimited field as UTF-8 text.</summary>
    public string ReadString()
    {
        long offset = FileOffset;
        ReadOnlyMemory<byte> bytes = ReadBytes();
        try
        {
            return StrictUtf8.GetString(bytes.Span);
        }
        catch (DecoderFallbackException)
        {
            throw Error($"string at offset {offset} is not valid UTF-8");
        }
    }

    /// <summary>Reads a length-delimited field as an embedded message.</summary>
    /// <param name="childContext">Name of the embedded message for error messages, e.g. "node[3]".</param>
    public ProtoReader ReadMessage(string childContext)
    {
        ReadOnlyMemory<byte> bytes = ReadBytes(out long start);
        return new ProtoReader(FilePath, bytes, Context + "." + childContext, start);
    }

    /// <summary>Skips a field's value of the given wire type.</summary>
    public void Skip(ProtoWireType wireType)
    {
        switch (wireType)
        {
            case ProtoWireType.Varint: ReadVarint(); break;
            case ProtoWireType.Fixed64: Take(8, "fixed64"); break;
            case ProtoWireType.Fixed32: Take(4, "fixed32"); break;
            case ProtoWireType.LengthDelimited: ReadBytes(); break;
            default: throw Error($"cannot skip wire type {(int)wireType}");
        }
    }

    /// <summary>
    /// Reads a repeated int64 field, which writers may encode packed (one length-delimited run) or as
    /// individual varints; appends the values to <paramref name="values"/>.
    /// </summary>
    public void ReadRepeatedInt64(ProtoWireType wireType, string fieldName, List<long> values)
    {
        if (wireType == ProtoWireType.Varint)
        {
            values.Add(ReadInt64());
            return;
        }
        ExpectWireType(wireType, ProtoWireType.LengthDelimited, fieldName);
        ReadOnlyMemory<byte> run = ReadBytes(out long start);
        var packed = new ProtoReader(FilePath, run, Context + "." + fieldName, start);
        while (!packed.AtEnd) values.Add(packed.ReadInt64());
    }

    /// <summary>Reads a repeated float field, packed or not; appends the values to <paramref name="values"/>.</summary>
    public void ReadRepeatedFloat(ProtoWireType wireType, string fieldName, List<float> values)
    {
        if (wireType == ProtoWireType.Fixed32)
        {
            values.Add(ReadFloat());
            return;
        }
        ExpectWireType(wireType, ProtoWireType.LengthDelimited, fieldName);
        long offset = FileOffset;
        ReadOnlySpan<byte> bytes = ReadBytes().Span;
        if (bytes.Length % 4 != 0)
            throw Error($"packed float field '{fieldName}' at offset {offset} has {bytes.Length} bytes, not a multiple of 4");
        for (int i = 0; i < bytes.Length; i += 4)
            values.Add(BinaryPrimitives.ReadSingleLittleEndian(bytes.Slice(i, 4)));
    }

    /// <summary>Reads a repeated double field, packed or not; appends the values to <paramref name="values"/>.</summary>
    public void ReadRepeatedDouble(ProtoWireType wireType, string fieldName, List<double> values)
    {
        if (wireType == ProtoWireType.Fixed64)
        {
            values.Add(ReadDouble());
            return;
        }
        ExpectWireType(wireType, ProtoWireType.LengthDelimited, fieldName);
        long offset = FileOffset;
        ReadOnlySpan<byte> bytes = ReadBytes().Span;
        if (bytes.Length % 8 != 0)
            throw Error($"packed double field '{fieldName}' at offset {offset} has {bytes.Length} bytes, not a multiple of 8");
        for (int i = 0; i < bytes.Length; i += 8)
            values.Add(BinaryPrimitives.ReadDoubleLittleEndian(bytes.Slice(i, 8)));
    }

    /// <summary>Raises <see cref="ModelFormatException"/> unless <paramref name="actual"/> is <paramref name="expected"/>.</summary>
    public readonly void ExpectWireType(ProtoWireType actual, ProtoWireType expected, string fieldName)
    {
        if (actual != expected)
            throw Error($"field '{fieldName}' has wire type {actual}; expected {expected}");
    }

    /// <summary>An exception naming the file, this message and <paramref name="problem"/>.</summary>
    public readonly ModelFormatException Error(string problem) => new(FilePath, $"malformed protobuf in {Context}: {problem}");

    private static readonly UTF8Encoding StrictUtf8 = new(false, true);

    private ReadOnlySpan<byte> Take(int count, string what)
    {
        if (_buffer.Length - _position < count)
            throw Error($"{what} at offset {FileOffset} runs past the end of the message");
        ReadOnlySpan<byte> span = _buffer.Span.Slice(_position, count);
        _position += count;
        return span;
    }
}

/// <summary>Writes the few protobuf wire-format pieces needed to re-serialise edited ONNX messages.</summary>
internal static class ProtoWriter
{
    /// <summary>Appends a varint.</summary>
    public static void WriteVarint(Stream stream, ulong value)
    {
        while (value >= 0x80)
        {
            stream.WriteByte((byte)(value | 0x80));
            value >>= 7;
        }
        stream.WriteByte((byte)value);
    }

    /// <summary>Appends a field tag.</summary>
    public static void WriteTag(Stream stream, int fieldNumber, ProtoWireType wireType) =>
        WriteVarint(stream, ((ulong)(uint)fieldNumber << 3) | (ulong)wireType);

    /// <summary>Appends a varint field.</summary>
    public static void WriteVarintField(Stream stream, int fieldNumber, ulong value)
    {
        WriteTag(stream, fieldNumber, ProtoWireType.Varint);
        WriteVarint(stream, value);
    }

    /// <summary>Appends a length-delimited field holding <paramref name="bytes"/>.</summary>
    public static void WriteBytesField(Stream stream, int fieldNumber, ReadOnlySpan<byte> bytes)
    {
        WriteTag(stream, fieldNumber, ProtoWireType.LengthDelimited);
        WriteVarint(stream, (ulong)bytes.Length);
        stream.Write(bytes);
    }

    /// <summary>Appends a length-delimited field holding UTF-8 <paramref name="text"/>.</summary>
    public static void WriteStringField(Stream stream, int fieldNumber, string text) =>
        WriteBytesField(stream, fieldNumber, Encoding.UTF8.GetBytes(text));
}
