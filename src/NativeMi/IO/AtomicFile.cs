namespace NativeMi.IO;

/// <summary>
/// Writes files so that a reader never sees a half-written result: the content goes to a temporary
/// file in the destination folder, is flushed, and is then renamed over the destination.
/// </summary>
public static class AtomicFile
{
    /// <summary>Writes the file by calling <paramref name="write"/> on a temporary stream, then renames it into place.</summary>
    /// <param name="path">Destination path.</param>
    /// <param name="write">Writes the whole content to the stream it is given.</param>
    public static void Write(string path, Action<Stream> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        string fullPath = Path.GetFullPath(path);
        string directory = Path.GetDirectoryName(fullPath) ?? ".";
        try
        {
            Directory.CreateDirectory(directory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new OutputWriteException(fullPath, $"cannot create folder '{directory}': {OutputWriteException.FolderProblem(directory, e)}", e);
        }
        string temporary = Path.Combine(directory, $".{Path.GetFileName(fullPath)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temporary, fullPath, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            TryDelete(temporary);
            throw new OutputWriteException(fullPath, e.Message, e);
        }
        catch
        {
            TryDelete(temporary);
            throw;
        }
    }

    /// <summary>Writes UTF-8 text atomically.</summary>
    public static void WriteAllText(string path, string text) =>
        Write(path, stream =>
        {
            var bytes = new System.Text.UTF8Encoding(false).GetBytes(text);
            stream.Write(bytes);
        });

    /// <summary>Writes bytes atomically.</summary>
    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        byte[] copy = bytes.ToArray();
        Write(path, stream => stream.Write(copy));
    }

    private static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

/// <summary>An output file could not be written (folder not writable, disk full, ...).</summary>
public sealed class OutputWriteException : IOException
{
    /// <summary>Creates the exception for <paramref name="filePath"/>.</summary>
    public OutputWriteException(string filePath, string reason, Exception? inner = null)
        : base($"{filePath}: cannot write output: {reason}", inner)
    {
        FilePath = filePath;
    }

    /// <summary>The output file that could not be written.</summary>
    public string FilePath { get; }

    /// <summary>
    /// Why <paramref name="folder"/> could not be created or written: "'/a/b' is a file, not a folder" when an existing
    /// ancestor is a regular file (the system's own message is misleading there), else the message of <paramref name="cause"/>.
    /// </summary>
    public static string FolderProblem(string folder, Exception cause)
    {
        ArgumentNullException.ThrowIfNull(cause);
        for (string? current = Path.GetFullPath(folder); !string.IsNullOrEmpty(current); current = Path.GetDirectoryName(current))
        {
            if (File.Exists(current)) return $"'{current}' is a file, not a folder";
            if (Directory.Exists(current)) break;
        }
        return cause.Message;
    }
}
