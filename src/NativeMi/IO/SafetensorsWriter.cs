using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace NativeMi.IO;

/// <summary>One tensor to write: name, element type, shape and its little-endian bytes.</summary>
/// <param name="Name">Tensor name.</param>
/// <param name="DType">Element type.</param>
/// <param name="Shape">Dimensions, outermost first.</param>
/// <param name="Data">Raw bytes; length must equal the element count times the element size.</param>
internal sealed record SafetensorsEntry(string Name, SafetensorsDType DType, long[] Shape, ReadOnlyMemory<byte> Data)
{
    /// <summary>An F32 tensor.</summary>
    public static SafetensorsEntry FromFloat32(string name, long[] shape, float[] values) =>
        new(name, SafetensorsDType.F32, shape, MemoryMarshal.AsBytes(values.AsSpan()).ToArray());

    /// <summary>An I64 tensor.</summary>
    public static SafetensorsEntry FromInt64(string name, long[] shape, long[] values) =>
        new(name, SafetensorsDType.I64, shape, MemoryMarshal.AsBytes(values.AsSpan()).ToArray());
}

/// <summary>Writes safetensors files (header padded to 8 bytes, tensors in the order given), atomically.</summary>
internal static class SafetensorsWriter
{
    /// <summary>Writes <paramref name="entries"/> to <paramref name="path"/> via a temporary file and rename.</summary>
    public static void Write(string path, IReadOnlyList<SafetensorsEntry> entries, IReadOnlyDictionary<string, string>? metadata = null)
    {
        byte[] header = BuildHeader(entries, metadata);
        AtomicFile.Write(path, stream => WriteFile(stream, header, entries));
    }

    /// <summary>The bytes of a whole safetensors file, in memory.</summary>
    public static byte[] ToBytes(IReadOnlyList<SafetensorsEntry> entries, IReadOnlyDictionary<string, string>? metadata = null)
    {
        using var stream = new MemoryStream();
        WriteFile(stream, BuildHeader(entries, metadata), entries);
        return stream.ToArray();
    }

    private static void WriteFile(Stream stream, byte[] header, IReadOnlyList<SafetensorsEntry> entries)
    {
        WritePrefix(stream, header);
        foreach (SafetensorsEntry entry in entries) stream.Write(entry.Data.Span);
    }

    /// <summary>The 8-byte little-endian header length followed by the padded header.</summary>
    internal static void WritePrefix(Stream stream, byte[] header)
    {
        Span<byte> length = stackalloc byte[8];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
        stream.Write(length);
        stream.Write(header);
    }

    private static byte[] BuildHeader(IReadOnlyList<SafetensorsEntry> entries, IReadOnlyDictionary<string, string>? metadata) =>
        BuildHeader(entries, metadata, checkData: true);

    /// <summary>The padded header for tensors whose data will be written later (their Data is ignored).</summary>
    internal static byte[] BuildHeaderForLayout(IReadOnlyList<SafetensorsEntry> entries, IReadOnlyDictionary<string, string>? metadata) =>
        BuildHeader(entries, metadata, checkData: false);

    private static byte[] BuildHeader(IReadOnlyList<SafetensorsEntry> entries, IReadOnlyDictionary<string, string>? metadata, bool checkData)
    {
        var header = new SafetensorsHeaderJson
        {
            Metadata = metadata is { Count: > 0 } ? new SortedDictionary<string, string>(metadata.ToDictionary(), StringComparer.Ordinal) : null,
        };
        long offset = 0;
        foreach (SafetensorsEntry entry in entries)
        {
            if (entry.Name == "__metadata__" || header.Tensors.ContainsKey(entry.Name))
                throw new ArgumentException($"tensor name '{entry.Name}' is reserved or repeated", nameof(entries));
            long elements = 1;
            foreach (long d in entry.Shape)
            {
                if (d < 0) throw new ArgumentException($"tensor '{entry.Name}' has a negative dimension", nameof(entries));
                elements = checked(elements * d);
            }
            long bytes = checked(elements * SafetensorsDTypes.SizeOf(entry.DType));
            if (checkData && bytes != entry.Data.Length)
                throw new ArgumentException($"tensor '{entry.Name}': shape [{string.Join(", ", entry.Shape)}] x {SafetensorsDTypes.ToName(entry.DType)} needs {bytes} bytes, got {entry.Data.Length}", nameof(entries));
            header.Tensors.Add(entry.Name, new SafetensorsTensorJson(SafetensorsDTypes.ToName(entry.DType), entry.Shape, [offset, offset + bytes]));
            offset += bytes;
        }
        byte[] json = JsonSerializer.SerializeToUtf8Bytes(header, SafetensorsJsonContext.Default.SafetensorsHeaderJson);
        // Padded with spaces to a multiple of 8 bytes, so the tensor data that follows is aligned.
        byte[] padded = new byte[(json.Length + 7) / 8 * 8];
        json.CopyTo(padded, 0);
        padded.AsSpan(json.Length).Fill((byte)' ');
        return padded;
    }
}

/// <summary>
/// A safetensors header: "__metadata__" first when there is any (its keys in ordinal order), then one entry per tensor,
/// keyed by its name, in file order.
/// </summary>
internal sealed class SafetensorsHeaderJson
{
    [JsonPropertyName("__metadata__")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public SortedDictionary<string, string>? Metadata { get; init; }

    /// <summary>The tensors by name, in the order added (values are <see cref="SafetensorsTensorJson"/>).</summary>
    [JsonExtensionData]
    public OrderedDictionary<string, object> Tensors { get; } = new(StringComparer.Ordinal);
}

/// <summary>One tensor's entry: element type, shape, and its [begin, end) byte range in the data after the header.</summary>
internal sealed record SafetensorsTensorJson(
    [property: JsonPropertyName("dtype")] string DType,
    [property: JsonPropertyName("shape")] long[] Shape,
    [property: JsonPropertyName("data_offsets")] long[] DataOffsets);

/// <summary>Source-generated serialisation of the safetensors header: compact, the default encoder's escaping.</summary>
[JsonSerializable(typeof(SafetensorsHeaderJson))]
[JsonSerializable(typeof(SafetensorsTensorJson))]
internal sealed partial class SafetensorsJsonContext : JsonSerializerContext;
