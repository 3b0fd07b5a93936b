using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace NativeMi.IO;

/// <summary>Where one tensor lives in a safetensors file and what it holds.</summary>
/// <param name="Name">Tensor name.</param>
/// <param name="DType">Element type.</param>
/// <param name="Shape">Dimensions, outermost first.</param>
/// <param name="Begin">Start of its bytes, relative to the data section.</param>
/// <param name="End">End of its bytes (exclusive), relative to the data section.</param>
internal sealed record SafetensorsTensorInfo(string Name, SafetensorsDType DType, long[] Shape, long Begin, long End)
{
    /// <summary>Number of elements (product of the shape; 1 for a scalar).</summary>
    public long ElementCount
    {
        get
        {
            long count = 1;
            foreach (long d in Shape) count *= d;
            return count;
        }
    }

    /// <summary>Number of bytes.</summary>
    public long ByteLength => End - Begin;

    /// <summary>The shape written as [a, b, c].</summary>
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}

/// <summary>
/// A memory-mapped, validated safetensors file. Tensor bytes are read in place from the mapping.
/// Every header field is checked when the file is opened; any problem raises <see cref="SafetensorsException"/>.
/// </summary>
internal sealed unsafe partial class SafetensorsFile : IDisposable
{
    /// <summary>Largest header accepted (the reference implementation uses the same 100 MB limit).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private readonly MemoryMappedFile? _mapping;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly byte* _base;
    private readonly long _dataStart;
    private readonly Dictionary<string, SafetensorsTensorInfo> _tensors;
    private bool _disposed;
    private int _holders = 1; // this file and every lease that keeps the mapping valid after it is disposed

    private SafetensorsFile(string path, MemoryMappedFile? mapping, MemoryMappedViewAccessor? view, byte* basePointer,
        long fileLength, long dataStart, Dictionary<string, SafetensorsTensorInfo> tensors, Dictionary<string, string> metadata)
    {
        FilePath = path;
        _mapping = mapping;
        _view = view;
        _base = basePointer;
        FileLength = fileLength;
        _dataStart = dataStart;
        _tensors = tensors;
        Metadata = metadata;
        TensorsInFileOrder = tensors.Values.OrderBy(t => t.Begin).ThenBy(t => t.Name, StringComparer.Ordinal).ToArray();
    }

    /// <summary>The file this was opened from.</summary>
    public string FilePath { get; }

    /// <summary>Length of the whole file in bytes.</summary>
    public long FileLength { get; }

    /// <summary>The optional <c>__metadata__</c> string map.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Tensors by name.</summary>
    public IReadOnlyDictionary<string, SafetensorsTensorInfo> Tensors => _tensors;

    /// <summary>Tensors in the order of their bytes in the file.</summary>
    public IReadOnlyList<SafetensorsTensorInfo> TensorsInFileOrder { get; }

    /// <summary>Opens and validates <paramref name="path"/>.</summary>
    /// <exception cref="SafetensorsException">The file is malformed.</exception>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    public static SafetensorsFile Open(string path)
    {
        string fullPath = Path.GetFullPath(path);
        if (!File.Exists(fullPath)) throw new FileNotFoundException($"{fullPath}: safetensors file not found", fullPath);
        long length = new FileInfo(fullPath).Length;
        if (length < 8)
            throw new SafetensorsException(fullPath, null, $"file is {length} bytes; expected at least 8 (the header length)");

        var mapping = MemoryMappedFile.CreateFromFile(fullPath, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        MemoryMappedViewAccessor? view = null;
        byte* pointer = null;
        try
        {
            view = mapping.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
            pointer += view.PointerOffset;
            var (dataStart, tensors, metadata) = ParseHeader(fullPath, new ReadOnlySpan<byte>(pointer, (int)Math.Min(length, int.MaxValue)), length);
            return new SafetensorsFile(fullPath, mapping, view, pointer, length, dataStart, tensors, metadata);
        }
        catch
        {
            if (pointer != null) view!.SafeMemoryMappedViewHandle.ReleasePointer();
            view?.Dispose();
            mapping.Dispose();
            throw;
        }
    }

    /// <summary>Validates a whole safetensors image held in memory (used by tests and fuzzing); returns its tensors.</summary>
    public static IReadOnlyList<SafetensorsTensorInfo> ValidateBytes(string nameForMessages, ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < 8)
            throw new SafetensorsException(nameForMessages, null, $"file is {bytes.Length} bytes; expected at least 8 (the header length)");
        var (_, tensors, _) = ParseHeader(nameForMessages, bytes, bytes.Length);
        return tensors.Values.OrderBy(t => t.Begin).ToArray();
    }

    private static (long DataStart, Dictionary<string, SafetensorsTensorInfo> Tensors, Dictionary<string, string> Metadata)
        ParseHeader(string path, ReadOnlySpan<byte> file, long fileLength)
    {
        ulong headerLength = MemoryMarshal.Read<ulong>(file);
        if (!BitConverter.IsLittleEndian) headerLength = System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(headerLength);
        if (headerLength == 0)
            throw new SafetensorsException(path, null, "header length is 0; expected a JSON header of at least 2 bytes");
        if (headerLength > MaxHeaderBytes)
            throw new SafetensorsException(path, null, $"header length {headerLength} exceeds the limit of {MaxHeaderBytes} bytes");
        if ((long)headerLength > fileLength - 8)
            throw new SafetensorsException(path, null, $"header length {headerLength} runs past the end of the file ({fileLength} bytes)");

        long dataStart = 8 + (long)headerLength;
        long dataLength = fileLength - dataStart;
        ReadOnlySpan<byte> headerBytes = file.Slice(8, (int)headerLength);

        JsonDocument document;
        try
        {
            // Validate the encoding first so that a header with invalid UTF-8 gets a precise message.
            new UTF8Encoding(false, true).GetCharCount(headerBytes);
            document = JsonDocument.Parse(headerBytes.ToArray(), new JsonDocumentOptions { MaxDepth = 8 });
        }
        catch (DecoderFallbackException)
        {
            throw new SafetensorsException(path, null, "header is not valid UTF-8");
        }
        catch (JsonException e)
        {
            throw new SafetensorsException(path, null, $"header is not well-formed JSON: {e.Message}");
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new SafetensorsException(path, null, $"header must be a JSON object, found {document.RootElement.ValueKind}");

            var tensors = new Dictionary<string, SafetensorsTensorInfo>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            bool sawMetadata = false;
            foreach (JsonProperty property in document.RootElement.EnumerateObject())
            {
                if (property.Name == "__metadata__")
                {
                    if (sawMetadata) throw new SafetensorsException(path, null, "header has '__metadata__' twice");
                    sawMetadata = true;
                    ReadMetadata(path, property.Value, metadata);
                    continue;
                }
                if (tensors.ContainsKey(property.Name))
                    throw new SafetensorsException(path, property.Name, "appears twice in the header");
                tensors.Add(property.Name, ReadTensorEntry(path, property.Name, property.Value, dataLength));
            }

            CheckRangesCoverData(path, tensors.Values, dataLength);
            return (dataStart, tensors, metadata);
        }
    }

    private static void ReadMetadata(string path, JsonElement value, Dictionary<string, string> metadata)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw new SafetensorsException(path, null, $"'__metadata__' must be an object of strings, found {value.ValueKind}");
        foreach (JsonProperty entry in value.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.String)
                throw new SafetensorsException(path, null, $"'__metadata__.{entry.Name}' must be a string, found {entry.Value.ValueKind}");
            metadata[entry.Name] = entry.Value.GetString()!;
        }
    }

    private static SafetensorsTensorInfo ReadTensorEntry(string path, string name, JsonElement entry, long dataLength)
    {
        if (entry.ValueKind != JsonValueKind.Object)
            throw new SafetensorsException(path, name, $"entry must be an object with dtype, shape and data_offsets, found {entry.ValueKind}");

        JsonElement dtypeElement = default, shapeElement = default, offsetsElement = default;
        bool hasDType = false, hasShape = false, hasOffsets = false;
        foreach (JsonProperty field in entry.EnumerateObject())
        {
            switch (field.Name)
            {
                case "dtype": Once(ref hasDType, field.Name); dtypeElement = field.Value; break;
                case "shape": Once(ref hasShape, field.Name); shapeElement = field.Value; break;
                case "data_offsets": Once(ref hasOffsets, field.Name); offsetsElement = field.Value; break;
                default: throw new SafetensorsException(path, name, $"unknown field '{field.Name}'; expected only dtype, shape and data_offsets");
            }
        }
        if (!hasDType) throw new SafetensorsException(path, name, "missing field 'dtype'");
        if (!hasShape) throw new SafetensorsException(path, name, "missing field 'shape'");
        if (!hasOffsets) throw new SafetensorsException(path, name, "missing field 'data_offsets'");

        if (dtypeElement.ValueKind != JsonValueKind.String || !SafetensorsDTypes.TryParse(dtypeElement.GetString()!, out SafetensorsDType dtype))
            throw new SafetensorsException(path, name, $"unknown dtype {dtypeElement.GetRawText()}; expected one of {SafetensorsDTypes.AcceptedNames}");

        if (shapeElement.ValueKind != JsonValueKind.Array)
            throw new SafetensorsException(path, name, $"'shape' must be an array of non-negative integers, found {shapeElement.ValueKind}");
        int rank = shapeElement.GetArrayLength();
        if (rank > 16) throw new SafetensorsException(path, name, $"'shape' has {rank} dimensions; at most 16 are accepted");
        var shape = new long[rank];
        long elements = 1;
        bool overflow = false;
        for (int i = 0; i < rank; i++)
        {
            JsonElement d = shapeElement[i];
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long dim) || dim < 0)
                throw new SafetensorsException(path, name, $"shape[{i}] = {d.GetRawText()}; expected a non-negative integer");
            shape[i] = dim;
            if (!overflow)
            {
                try { elements = checked(elements * dim); } catch (OverflowException) { overflow = true; }
            }
        }

        if (offsetsElement.ValueKind != JsonValueKind.Array || offsetsElement.GetArrayLength() != 2)
            throw new SafetensorsException(path, name, "'data_offsets' must be an array [begin, end]");
        if (!offsetsElement[0].TryGetInt64Safe(out long begin) || !offsetsElement[1].TryGetInt64Safe(out long end) || begin < 0 || end < 0)
            throw new SafetensorsException(path, name, $"'data_offsets' {offsetsElement.GetRawText()} must be two non-negative integers");
        if (end < begin)
            throw new SafetensorsException(path, name, $"'data_offsets' [{begin}, {end}] end before begin");
        if (end > dataLength)
            throw new SafetensorsException(path, name, $"'data_offsets' [{begin}, {end}] run past the data section ({dataLength} bytes)");

        int size = SafetensorsDTypes.SizeOf(dtype);
        long expected;
        try { expected = overflow ? -1 : checked(elements * size); } catch (OverflowException) { expected = -1; }
        if (expected < 0)
            throw new SafetensorsException(path, name, $"shape [{string.Join(", ", shape)}] x {SafetensorsDTypes.ToName(dtype)} overflows a 64-bit byte count");
        if (expected != end - begin)
            throw new SafetensorsException(path, name,
                $"shape [{string.Join(", ", shape)}] x {SafetensorsDTypes.ToName(dtype)} ({size} bytes) = {expected} bytes, but data_offsets [{begin}, {end}] hold {end - begin}");

        return new SafetensorsTensorInfo(name, dtype, shape, begin, end);

        void Once(ref bool seen, string field)
        {
            if (seen) throw new SafetensorsException(path, name, $"field '{field}' appears twice");
            seen = true;
        }
    }

    private static void CheckRangesCoverData(string path, IEnumerable<SafetensorsTensorInfo> tensors, long dataLength)
    {
        long cursor = 0;
        SafetensorsTensorInfo? previous = null;
        foreach (SafetensorsTensorInfo t in tensors.Where(t => t.End > t.Begin).OrderBy(t => t.Begin))
        {
            if (t.Begin < cursor)
                throw new SafetensorsException(path, t.Name, $"data_offsets [{t.Begin}, {t.End}] overlap tensor '{previous!.Name}' [{previous.Begin}, {previous.End}]");
            if (t.Begin > cursor)
                throw new SafetensorsException(path, t.Name, $"data_offsets [{t.Begin}, {t.End}] leave a gap of {t.Begin - cursor} unused bytes before them; the data section must be covered exactly");
            cursor = t.End;
            previous = t;
        }
        if (cursor != dataLength)
            throw new SafetensorsException(path, null, $"data section is {dataLength} bytes but the tensors cover only {cursor}; trailing bytes are not allowed");
    }

    /// <summary>Info for <paramref name="name"/>; throws a <see cref="SafetensorsException"/> naming the file if absent.</summary>
    public SafetensorsTensorInfo GetInfo(string name) =>
        _tensors.TryGetValue(name, out SafetensorsTensorInfo? info)
            ? info
            : throw new SafetensorsException(FilePath, name, "not found in this file");

    /// <summary>The tensor's raw little-endian bytes, read in place from the mapping (no copy).</summary>
    public ReadOnlySpan<byte> GetBytes(string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        SafetensorsTensorInfo info = GetInfo(name);
        if (info.ByteLength > int.MaxValue)
            throw new SafetensorsException(FilePath, name, $"{info.ByteLength} bytes is more than one span can address; read it in parts");
        PopulateForReading(info);
        return new ReadOnlySpan<byte>(_base + _dataStart + info.Begin, (int)info.ByteLength);
    }

    /// <summary>The tensor as F32, in place for F32 tensors (no copy).</summary>
    /// <exception cref="SafetensorsException">The tensor is not F32.</exception>
    public ReadOnlySpan<float> GetFloat32Span(string name)
    {
        SafetensorsTensorInfo info = GetInfo(name);
        if (info.DType != SafetensorsDType.F32)
            throw new SafetensorsException(FilePath, name, $"dtype is {SafetensorsDTypes.ToName(info.DType)}; expected F32 for an in-place view");
        return MemoryMarshal.Cast<byte, float>(GetBytes(name));
    }

    /// <summary>Where the tensor's first byte lies in the file (for reads that bypass the mapping).</summary>
    public long FileOffset(string name) => _dataStart + GetInfo(name).Begin;

    /// <summary>Whether the tensor starts at a 4-byte boundary of the mapping, as an in-place F32 view needs.</summary>
    public bool IsFloat32Aligned(string name) => ((nuint)(_base + _dataStart + GetInfo(name).Begin) & 3) == 0;

    /// <summary>Copies the tensor into <paramref name="destination"/> as F32, converting F16, BF16 and F64.</summary>
    public void CopyToFloat32(string name, Span<float> destination)
    {
        SafetensorsTensorInfo info = GetInfo(name);
        if (destination.Length != info.ElementCount)
            throw new ArgumentException($"destination holds {destination.Length} elements; tensor '{name}' has {info.ElementCount}", nameof(destination));
        ReadOnlySpan<byte> bytes = GetBytes(name);
        switch (info.DType)
        {
            case SafetensorsDType.F32:
                MemoryMarshal.Cast<byte, float>(bytes).CopyTo(destination);
                break;
            case SafetensorsDType.F16:
                System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(bytes), destination);
                break;
            case SafetensorsDType.BF16:
                Compute.SixteenBitWeights.Widen(MemoryMarshal.Cast<byte, ushort>(bytes), destination, Compute.WeightFormat.BFloat16);
                break;
            case SafetensorsDType.F64:
                ReadOnlySpan<double> f64 = MemoryMarshal.Cast<byte, double>(bytes);
                for (int i = 0; i < f64.Length; i++) destination[i] = (float)f64[i];
                break;
            default:
                throw new SafetensorsException(FilePath, name, $"dtype is {SafetensorsDTypes.ToName(info.DType)}; expected a floating-point dtype (F32, F16, BF16, F64)");
        }
        DropPages(info);
    }

    /// <summary>
    /// Copies an F16 or BF16 tensor's raw 16-bit values into <paramref name="destination"/> (no conversion), so a model can
    /// keep them 16-bit in memory; returns the format.
    /// </summary>
    /// <exception cref="SafetensorsException">The tensor is not F16 or BF16.</exception>
    public Compute.WeightFormat CopySixteenBit(string name, Span<ushort> destination)
    {
        SafetensorsTensorInfo info = GetInfo(name);
        Compute.WeightFormat format = info.DType switch
        {
            SafetensorsDType.F16 => Compute.WeightFormat.Float16,
            SafetensorsDType.BF16 => Compute.WeightFormat.BFloat16,
            _ => throw new SafetensorsException(FilePath, name, $"dtype is {SafetensorsDTypes.ToName(info.DType)}; expected F16 or BF16"),
        };
        if (destination.Length != info.ElementCount)
            throw new ArgumentException($"destination holds {destination.Length} elements; tensor '{name}' has {info.ElementCount}", nameof(destination));
        MemoryMarshal.Cast<byte, ushort>(GetBytes(name)).CopyTo(destination);
        DropPages(info);
        return format;
    }

    /// <summary>
    /// Tells the kernel the copied tensor's pages of the mapping are not needed any more, so a loaded model does
    /// not also hold the whole file in its resident set until the mapping closes. The mapping is read-only and
    /// file-backed, so the data stays valid: a later read faults the pages in again from the page cache.
    /// </summary>
    public void DropPages(string name) => DropPages(GetInfo(name));

    private void DropPages(SafetensorsTensorInfo info)
    {
        if (!OperatingSystem.IsLinux() || info.ByteLength < 1 << 16) return;
        _ = Madvise(info, PageAdvice.DontNeed); // advisory: a failure only costs memory
    }

    /// <summary>
    /// Maps a large tensor's pages in one call (MADV_POPULATE_READ, Linux 5.14 and later) before it is read: a reader
    /// goes through the whole tensor, and faulting its pages in one by one was a fifth of opening a model. Per tensor,
    /// not per file, so a large shard is never resident all at once. Advisory: an older kernel refuses it and the read
    /// faults the pages in as before.
    /// </summary>
    private void PopulateForReading(SafetensorsTensorInfo info)
    {
        if (!OperatingSystem.IsLinux() || info.ByteLength < 1 << 20) return;
        _ = Madvise(info, PageAdvice.PopulateRead);
    }

    /// <summary>madvise over the whole pages that hold the tensor.</summary>
    private unsafe int Madvise(SafetensorsTensorInfo info, int advice) =>
        PageAdvice.Apply((void*)(_base + _dataStart + info.Begin), info.ByteLength, advice);

    /// <summary>Reads the tensor as a new F32 array (converting F16, BF16 and F64).</summary>
    public float[] ReadFloat32(string name)
    {
        SafetensorsTensorInfo info = GetInfo(name);
        if (info.ElementCount > Array.MaxLength)
            throw new SafetensorsException(FilePath, name, $"{info.ElementCount} elements do not fit one array");
        var result = new float[info.ElementCount];
        CopyToFloat32(name, result);
        return result;
    }

    /// <summary>Reads an integer or boolean tensor as a new I64 array.</summary>
    public long[] ReadInt64(string name)
    {
        SafetensorsTensorInfo info = GetInfo(name);
        ReadOnlySpan<byte> bytes = GetBytes(name);
        var result = new long[info.ElementCount];
        switch (info.DType)
        {
            case SafetensorsDType.I64: MemoryMarshal.Cast<byte, long>(bytes).CopyTo(result); break;
            case SafetensorsDType.U64:
                ReadOnlySpan<ulong> u64 = MemoryMarshal.Cast<byte, ulong>(bytes);
                for (int i = 0; i < result.Length; i++)
                    result[i] = u64[i] <= long.MaxValue ? (long)u64[i] : throw new SafetensorsException(FilePath, name, $"element {i} = {u64[i]} does not fit I64");
                break;
            case SafetensorsDType.I32: Widen(MemoryMarshal.Cast<byte, int>(bytes), result); break;
            case SafetensorsDType.U32: Widen(MemoryMarshal.Cast<byte, uint>(bytes), result); break;
            case SafetensorsDType.I16: Widen(MemoryMarshal.Cast<byte, short>(bytes), result); break;
            case SafetensorsDType.U16: Widen(MemoryMarshal.Cast<byte, ushort>(bytes), result); break;
            case SafetensorsDType.I8: Widen(MemoryMarshal.Cast<byte, sbyte>(bytes), result); break;
            case SafetensorsDType.U8:
            case SafetensorsDType.Bool: Widen(bytes, result); break;
            default:
                throw new SafetensorsException(FilePath, name, $"dtype is {SafetensorsDTypes.ToName(info.DType)}; expected an integer or BOOL dtype");
        }
        return result;

        static void Widen<T>(ReadOnlySpan<T> source, long[] target) where T : System.Numerics.IBinaryInteger<T>
        {
            for (int i = 0; i < source.Length; i++) target[i] = long.CreateTruncating(source[i]);
        }
    }

    /// <summary>
    /// Keeps the mapping valid after this file is disposed, until the lease is disposed too: a weight used where it
    /// lies in the mapping (see <see cref="GetFloat32Span"/>) outlives the loader that opened the file.
    /// </summary>
    public IDisposable Lease()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Interlocked.Increment(ref _holders);
        return new MappingLease(this);
    }

    /// <summary>
    /// Releases this file's hold on the mapping; the mapping closes once every <see cref="Lease"/> is released too.
    /// Spans obtained earlier must not be used afterwards except under a lease taken before.
    /// </summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        ReleaseHold();
    }

    private void ReleaseHold()
    {
        if (Interlocked.Decrement(ref _holders) != 0) return;
        if (_view is not null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }
        _mapping?.Dispose();
    }

    private sealed class MappingLease(SafetensorsFile file) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0) file.ReleaseHold();
        }
    }
}

internal static class JsonElementExtensions
{
    /// <summary>TryGetInt64 that answers false instead of throwing for non-numbers.</summary>
    public static bool TryGetInt64Safe(this JsonElement element, out long value)
    {
        value = 0;
        return element.ValueKind == JsonValueKind.Number && element.TryGetInt64(out value);
    }
}
