using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace NativeMi.IO;

/// <summary>
/// Writes files so that a reader never sees a half-written result: the content goes to a temporary
/// file in the destination folder, is flushed, and is then renamed over the destination.
/// </summary>
internal static partial class AtomicFile
{
    /// <summary>Writes the file by calling <paramref name="write"/> on a temporary stream, then renames it into place.</summary>
    /// <param name="path">Destination path.</param>
    /// <param name="write">Writes the whole content to the stream it is given.</param>
    public static void Write(string path, Action<Stream> write)
    {
        string fullPath = Path.GetFullPath(path);
        MoveIntoPlace(WriteTemporary(fullPath, write), fullPath);
    }

    /// <summary>Writes UTF-8 text atomically.</summary>
    public static void WriteAllText(string path, string text) => Write(path, TextWriter(text));

    /// <summary>Writes bytes atomically.</summary>
    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        byte[] copy = bytes.ToArray();
        Write(path, stream => stream.Write(copy));
    }

    /// <summary>
    /// Deletes the temporary files that writers killed before their rename left in <paramref name="folder"/>
    /// (a killed process cannot clean up after itself), and never one that a live writer is about to rename.
    /// </summary>
    /// <remarks>
    /// A temporary's name carries its writer's process id and a tag of the process-id namespace the writer ran in (the
    /// kernel's boot id and the pid namespace on Linux, the machine name elsewhere); see <see cref="TemporaryName(string)"/>.
    /// When the tag is this process's own, the id means the same process here as for the writer, and the file is stale
    /// exactly when no process has that id: a live writer, however slow, keeps its file. A process that reused the id
    /// of a dead writer only makes the file stay longer. When the tag differs (another machine or container sharing the
    /// cache folder) or is missing (a temporary of an older version), the id says nothing here, and the file is stale
    /// only when it has not been written for <see cref="ForeignStaleAfter"/>: a writer renames its temporary seconds
    /// after the last write, so a day leaves room for clock steps as well, and a wrongly removed file would only make that
    /// writer's rename fail, never give a reader a partial file.
    /// A missing folder is fine.
    /// </remarks>
    /// <returns>How many files were removed.</returns>
    public static int RemoveStaleTemporaries(string folder)
    {
        if (!Directory.Exists(folder)) return 0;
        int removed = 0;
        IEnumerable<string> candidates;
        try
        {
            candidates = Directory.EnumerateFiles(folder, ".*.tmp").ToArray();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return 0;
        }
        foreach (string file in candidates)
            if (IsStale(file) && TryDelete(file)) removed++;
        return removed;
    }

    /// <summary>How long a temporary whose writer cannot be checked (another machine or container) must sit unwritten to count as stale.</summary>
    public static TimeSpan ForeignStaleAfter { get; } = TimeSpan.FromDays(1);

    /// <summary>Whether <paramref name="file"/> is a temporary of this class that no live writer will rename (see <see cref="RemoveStaleTemporaries"/>).</summary>
    internal static bool IsStale(string file)
    {
        string name = Path.GetFileName(file);
        Match match = TemporaryName().Match(name);
        if (match.Success && match.Groups["tag"].Value == WriterTag
            && int.TryParse(match.Groups["pid"].ValueSpan, NumberStyles.None, CultureInfo.InvariantCulture, out int pid))
            return !IsAlive(pid);
        if (!match.Success && !LegacyTemporaryName().IsMatch(name)) return false;
        try
        {
            return DateTime.UtcNow - File.GetLastWriteTimeUtc(file) > ForeignStaleAfter;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>Whether the process <paramref name="pid"/> still runs (this process counts as running).</summary>
    internal static bool IsAlive(int pid)
    {
        if (pid == Environment.ProcessId) return true;
        try
        {
            using Process process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    /// <summary>
    /// A fresh hidden temporary name for <paramref name="fileName"/>, of the form <see cref="RemoveStaleTemporaries"/>
    /// recognises: <c>.&lt;name&gt;.&lt;tag&gt;.&lt;pid&gt;.&lt;guid&gt;.tmp</c>. The writer's process id and namespace tag in it let a later
    /// run tell a killed writer's leftover from a live write.
    /// </summary>
    public static string TemporaryName(string fileName) => TemporaryName(fileName, Environment.ProcessId);

    /// <summary>A temporary name as process <paramref name="pid"/> of this namespace would make it (tests name dead writers with it).</summary>
    internal static string TemporaryName(string fileName, int pid) =>
        $".{fileName}.{WriterTag}.{pid.ToString(CultureInfo.InvariantCulture)}.{Guid.NewGuid():N}.tmp";

    /// <summary>
    /// Eight hex digits naming the process-id namespace this process runs in: equal for two processes exactly when
    /// their process ids can be compared (same kernel boot, same pid namespace).
    /// </summary>
    internal static string WriterTag => Tag.Value;

    private static readonly Lazy<string> Tag = new(() =>
    {
        string identity = Environment.MachineName;
        if (OperatingSystem.IsLinux())
        {
            try
            {
                identity = File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim() + "|" + new FileInfo("/proc/self/ns/pid").LinkTarget;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // No /proc: the machine name is the best identity left.
            }
        }
        return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(identity)))[..8];
    });

    [GeneratedRegex(@"^\..+\.(?<tag>[0-9a-f]{8})\.(?<pid>[0-9]+)\.[0-9a-f]{32}\.tmp$", RegexOptions.CultureInvariant)]
    private static partial Regex TemporaryName();

    /// <summary>The form older versions wrote, without the namespace tag.</summary>
    [GeneratedRegex(@"^\..+\.[0-9]+\.[0-9a-f]{32}\.tmp$", RegexOptions.CultureInvariant)]
    private static partial Regex LegacyTemporaryName();

    internal static Action<Stream> TextWriter(string text) => stream => stream.Write(new System.Text.UTF8Encoding(false).GetBytes(text));

    /// <summary>Writes and flushes the content to a new temporary file beside <paramref name="fullPath"/> and returns its path.</summary>
    internal static string WriteTemporary(string fullPath, Action<Stream> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        string directory = Path.GetDirectoryName(fullPath) ?? ".";
        try
        {
            Directory.CreateDirectory(directory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new OutputWriteException(fullPath, $"cannot create folder '{directory}': {OutputWriteException.FolderProblem(directory, e)}", e);
        }
        string temporary = Path.Combine(directory, TemporaryName(Path.GetFileName(fullPath)));
        try
        {
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            return temporary;
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

    /// <summary>Renames a finished temporary file over <paramref name="fullPath"/> (deleting it when that fails).</summary>
    internal static void MoveIntoPlace(string temporary, string fullPath)
    {
        if (TestPausePoint.Armed) TestPausePoint.Reach("before-rename:" + Path.GetFileName(fullPath));
        try
        {
            File.Move(temporary, fullPath, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            TryDelete(temporary);
            throw new OutputWriteException(fullPath, e.Message, e);
        }
    }

    internal static bool TryDelete(string path)
    {
        try
        {
            File.Delete(path);
            return true;
        }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
    }
}

/// <summary>
/// Several files that belong together (a run's outputs), written in two steps: each is first written to its own
/// temporary file, and only when all are written are they renamed into place, in the order they were added.
/// A crash while writing leaves every destination as it was; one during the renames leaves each destination
/// either old or new, never partial, and a destination added after another is only new if that one is too.
/// </summary>
internal sealed class AtomicFileSet : IDisposable
{
    private readonly List<(string Temporary, string Path)> _staged = [];
    private int _renamed;
    private bool _committing, _disposed;

    /// <summary>Writes <paramref name="path"/>'s content to a temporary file now; it replaces the destination at <see cref="Commit"/>.</summary>
    public void Add(string path, Action<Stream> write)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_committing) throw new InvalidOperationException("the set has already been committed");
        string fullPath = Path.GetFullPath(path);
        _staged.Add((AtomicFile.WriteTemporary(fullPath, write), fullPath));
    }

    /// <summary>Adds UTF-8 text.</summary>
    public void AddText(string path, string text) => Add(path, AtomicFile.TextWriter(text));

    /// <summary>Adds bytes.</summary>
    public void AddBytes(string path, byte[] bytes)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        Add(path, stream => stream.Write(bytes));
    }

    /// <summary>Renames every added file into place, in the order added, and returns their paths.</summary>
    public IReadOnlyList<string> Commit()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _committing = true;
        for (; _renamed < _staged.Count; _renamed++) AtomicFile.MoveIntoPlace(_staged[_renamed].Temporary, _staged[_renamed].Path);
        return _staged.Select(s => s.Path).ToArray();
    }

    /// <summary>Deletes the temporary files not renamed into place (all of them when <see cref="Commit"/> was never called or failed).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        for (int i = _renamed; i < _staged.Count; i++) AtomicFile.TryDelete(_staged[i].Temporary);
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
    internal static string FolderProblem(string folder, Exception cause)
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
