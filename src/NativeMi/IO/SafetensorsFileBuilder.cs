using System.Runtime.InteropServices;

namespace NativeMi.IO;

/// <summary>
/// Writes a safetensors file whose tensors are filled piece by piece (for example one sentence's hidden
/// states at a time), without holding them in memory. The layout is fixed up front; the content goes to a
/// temporary file that <see cref="Commit"/> renames into place, so an interrupted run leaves nothing behind.
/// </summary>
internal sealed class SafetensorsFileBuilder : IDisposable
{
    private readonly string _path;
    private readonly string _temporary;
    private readonly FileStream _stream;
    private readonly Dictionary<string, (SafetensorsDType DType, long Begin, long Bytes)> _layout = new(StringComparer.Ordinal);
    private readonly long _dataStart;
    private bool _committed;

    /// <summary>Creates the temporary file with the header for <paramref name="tensors"/>; the data starts zero-filled.</summary>
    public SafetensorsFileBuilder(string path, IReadOnlyList<(string Name, SafetensorsDType DType, long[] Shape)> tensors,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        _path = Path.GetFullPath(path);
        string directory = Path.GetDirectoryName(_path)!;
        try { Directory.CreateDirectory(directory); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new OutputWriteException(_path, $"cannot create folder '{directory}': {OutputWriteException.FolderProblem(directory, e)}", e);
        }
        // The header is built from zero-length placeholders of the right size: SafetensorsWriter validates
        // names and shapes and produces the exact same header bytes the real data will need.
        var placeholders = new List<SafetensorsEntry>(tensors.Count);
        long offset = 0;
        foreach (var (name, dtype, shape) in tensors)
        {
            long elements = 1;
            foreach (long d in shape) elements = checked(elements * d);
            long bytes = checked(elements * SafetensorsDTypes.SizeOf(dtype));
            placeholders.Add(new SafetensorsEntry(name, dtype, shape, ReadOnlyMemory<byte>.Empty));
            _layout[name] = (dtype, offset, bytes);
            offset += bytes;
        }
        byte[] header = SafetensorsWriter.BuildHeaderForLayout(placeholders, metadata);
        _dataStart = 8 + header.Length;
        _temporary = Path.Combine(directory, $".{Path.GetFileName(_path)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            _stream = new FileStream(_temporary, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 20);
            SafetensorsWriter.WritePrefix(_stream, header);
            _stream.SetLength(_dataStart + offset);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try { File.Delete(_temporary); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw new OutputWriteException(_path, e.Message, e);
        }
    }

    /// <summary>Writes <paramref name="values"/> into tensor <paramref name="name"/> starting at element <paramref name="elementOffset"/>.</summary>
    public void Write<T>(string name, long elementOffset, ReadOnlySpan<T> values) where T : unmanaged
    {
        var (dtype, begin, bytes) = _layout.TryGetValue(name, out var entry) ? entry : throw new ArgumentException($"no tensor '{name}' in the layout", nameof(name));
        int size = SafetensorsDTypes.SizeOf(dtype);
        if (Marshal.SizeOf<T>() != size) throw new ArgumentException($"tensor '{name}' is {SafetensorsDTypes.ToName(dtype)}; element size {size}, not {Marshal.SizeOf<T>()}");
        ReadOnlySpan<byte> raw = MemoryMarshal.AsBytes(values);
        long start = elementOffset * size;
        if (elementOffset < 0 || start + raw.Length > bytes) throw new ArgumentOutOfRangeException(nameof(elementOffset), $"write runs outside tensor '{name}'");
        _stream.Position = _dataStart + begin + start;
        _stream.Write(raw);
    }

    /// <summary>Flushes and renames the finished file into place.</summary>
    public void Commit()
    {
        try
        {
            _stream.Flush(flushToDisk: true);
            _stream.Dispose();
            File.Move(_temporary, _path, overwrite: true);
            _committed = true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new OutputWriteException(_path, e.Message, e);
        }
    }

    /// <summary>Deletes the temporary file unless <see cref="Commit"/> succeeded.</summary>
    public void Dispose()
    {
        _stream.Dispose();
        if (!_committed)
        {
            try { File.Delete(_temporary); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}
