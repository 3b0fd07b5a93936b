using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace NativeMi.Compute.Cuda.Native;

/// <summary>The native CUDA libraries NativeMi binds to.</summary>
internal enum CudaLibrary
{
    /// <summary>The CUDA driver (libcuda), installed with the NVIDIA driver, never by pip.</summary>
    Driver,
    /// <summary>The run-time compiler (libnvrtc).</summary>
    Nvrtc,
    /// <summary>cuBLAS (libcublas).</summary>
    Cublas,
}

/// <summary>One place the loader looked in: a folder, or the system loader when <see cref="Folder"/> is null.</summary>
/// <param name="Label">Where the folder came from ("NATIVEMI_CUDA_PATH", "CUDA_HOME/lib64", "python site-packages").</param>
/// <param name="Folder">The folder, or null for the system loader (LD_LIBRARY_PATH, the ldconfig cache, the executable's RUNPATH).</param>
internal sealed record LibrarySearchStep(string Label, string? Folder);

/// <summary>The ordered places to look for the CUDA libraries, and notes on places that were skipped.</summary>
/// <param name="Steps">Places in search order.</param>
/// <param name="SkippedNotes">Places that were not searched and why ("CUDA_HOME is not set").</param>
internal sealed record LibrarySearchLocations(IReadOnlyList<LibrarySearchStep> Steps, IReadOnlyList<string> SkippedNotes);

/// <summary>What the search for one library found.</summary>
/// <param name="Library">The library.</param>
/// <param name="FileNames">The file names tried in each place, newest CUDA first.</param>
/// <param name="LoadedFrom">The path or soname that loaded, or null when none did.</param>
/// <param name="Attempts">Every place tried, with its outcome, in order.</param>
/// <param name="SkippedNotes">Places that were not searched and why.</param>
internal sealed record LibraryProbe(CudaLibrary Library, IReadOnlyList<string> FileNames, string? LoadedFrom,
    IReadOnlyList<string> Attempts, IReadOnlyList<string> SkippedNotes)
{
    /// <summary>Whether the library loaded.</summary>
    public bool Found => LoadedFrom is not null;

    /// <summary>The handle from the native loader (zero when not found).</summary>
    internal nint Handle { get; init; }

    /// <summary>One line when found; otherwise what was looked for, where, and how to point NativeMi at it.</summary>
    public string Describe()
    {
        string name = CudaLibraries.DisplayName(Library);
        if (Found) return $"{name}: {LoadedFrom}";
        var text = new System.Text.StringBuilder();
        text.Append(System.Globalization.CultureInfo.InvariantCulture, $"{name}: not found. Looked for {string.Join(", ", FileNames)} in:");
        foreach (string attempt in Attempts) text.Append("\n  ").Append(attempt);
        foreach (string note in SkippedNotes) text.Append("\n  (").Append(note).Append(')');
        text.Append($"\n  Set {CudaLibraries.PathVariable} to the folder that holds it.");
        return text.ToString();
    }
}

/// <summary>
/// Finds and loads libcuda, libnvrtc and libcublas. The search order is: the folder in
/// NATIVEMI_CUDA_PATH, CUDA_HOME and CUDA_PATH (lib64, lib), the system loader, then the
/// nvidia/*/lib folders of Python installations (where pip's CUDA wheels put them). In each place the
/// sonames of CUDA 13, 12 and 11 are tried in turn. Nothing here throws when a library is missing:
/// callers ask <see cref="Get"/> and report <see cref="LibraryProbe.Describe"/>.
/// </summary>
internal static class CudaLibraries
{
    /// <summary>Environment variable naming a folder that holds the CUDA libraries; searched first.</summary>
    public const string PathVariable = "NATIVEMI_CUDA_PATH";

    // The names LibraryImport declarations use; only this assembly's resolver maps them to files.
    internal const string DriverImportName = "nativemi-cuda-driver";
    internal const string NvrtcImportName = "nativemi-nvrtc";
    internal const string CublasImportName = "nativemi-cublas";

    private static readonly Lock ProbeLock = new();
    private static readonly Dictionary<CudaLibrary, LibraryProbe> Probes = [];

    // A library's P/Invoke resolver can be set once per assembly; every binding in NativeMi goes through
    // this one. CA2255 warns that module initializers in libraries run early; resolving library names is
    // the case they exist for, and the registration does no I/O.
#pragma warning disable CA2255
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void RegisterResolver() => NativeLibrary.SetDllImportResolver(typeof(CudaLibraries).Assembly, Resolve);

    private static nint Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
    {
        CudaLibrary? library = libraryName switch
        {
            DriverImportName => CudaLibrary.Driver,
            NvrtcImportName => CudaLibrary.Nvrtc,
            CublasImportName => CudaLibrary.Cublas,
            _ => null,
        };
        // Zero hands other names back to the runtime's default search.
        return library is null ? 0 : Get(library.Value).Handle;
    }

    /// <summary>The result of searching for <paramref name="library"/> with the default locations (searched once per process).</summary>
    public static LibraryProbe Get(CudaLibrary library)
    {
        lock (ProbeLock)
        {
            if (!Probes.TryGetValue(library, out LibraryProbe? probe))
            {
                probe = Probe(library, DefaultLocations(Environment.GetEnvironmentVariable));
                Probes[library] = probe;
            }
            return probe;
        }
    }

    /// <summary>All three libraries, in the order doctor prints them.</summary>
    public static IReadOnlyList<LibraryProbe> All() => [Get(CudaLibrary.Driver), Get(CudaLibrary.Cublas), Get(CudaLibrary.Nvrtc)];

    /// <summary>Throws a <see cref="CudaException"/> carrying the search report when the library is missing.</summary>
    public static void Require(CudaLibrary library)
    {
        LibraryProbe probe = Get(library);
        if (!probe.Found) throw new CudaException("LIBRARY_NOT_FOUND", 0, $"loading {DisplayName(library)}", probe.Describe());
    }

    /// <summary>Human name of a library ("libcuda (CUDA driver)").</summary>
    public static string DisplayName(CudaLibrary library) => library switch
    {
        CudaLibrary.Driver => "libcuda (CUDA driver)",
        CudaLibrary.Nvrtc => "libnvrtc (NVRTC)",
        CudaLibrary.Cublas => "libcublas (cuBLAS)",
        _ => library.ToString(),
    };

    /// <summary>The file names tried for a library on this operating system, newest CUDA first.</summary>
    public static IReadOnlyList<string> FileNames(CudaLibrary library) => OperatingSystem.IsWindows()
        ? library switch
        {
            CudaLibrary.Driver => ["nvcuda.dll"],
            CudaLibrary.Nvrtc => ["nvrtc64_130_0.dll", "nvrtc64_120_0.dll", "nvrtc64_112_0.dll"],
            _ => ["cublas64_13.dll", "cublas64_12.dll", "cublas64_11.dll"],
        }
        : library switch
        {
            CudaLibrary.Driver => ["libcuda.so.1", "libcuda.so"],
            CudaLibrary.Nvrtc => ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"],
            _ => ["libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so"],
        };

    /// <summary>The default search order, reading the environment through <paramref name="environment"/>.</summary>
    public static LibrarySearchLocations DefaultLocations(Func<string, string?> environment)
    {
        ArgumentNullException.ThrowIfNull(environment);
        var steps = new List<LibrarySearchStep>();
        var skipped = new List<string>();

        string? explicitFolder = environment(PathVariable);
        if (string.IsNullOrWhiteSpace(explicitFolder)) skipped.Add($"{PathVariable} is not set");
        else
        {
            steps.Add(new(PathVariable, explicitFolder));
            steps.Add(new($"{PathVariable}/lib64", Path.Combine(explicitFolder, "lib64")));
            steps.Add(new($"{PathVariable}/lib", Path.Combine(explicitFolder, "lib")));
        }
        foreach (string variable in (string[])["CUDA_HOME", "CUDA_PATH"])
        {
            string? root = environment(variable);
            if (string.IsNullOrWhiteSpace(root)) { skipped.Add($"{variable} is not set"); continue; }
            steps.Add(new($"{variable}/lib64", Path.Combine(root, "lib64")));
            steps.Add(new($"{variable}/lib", Path.Combine(root, "lib")));
            if (OperatingSystem.IsWindows()) steps.Add(new($"{variable}/bin", Path.Combine(root, "bin")));
        }
        steps.Add(new("system loader", null));

        IReadOnlyList<string> pythonFolders = PythonNvidiaLibraryFolders(environment);
        if (pythonFolders.Count == 0) skipped.Add("no Python site-packages/nvidia/*/lib folder was found");
        foreach (string folder in pythonFolders) steps.Add(new("python site-packages", folder));
        return new LibrarySearchLocations(steps, skipped);
    }

    /// <summary>Searches the given places for <paramref name="library"/> and loads the first file that loads.</summary>
    public static LibraryProbe Probe(CudaLibrary library, LibrarySearchLocations locations)
    {
        ArgumentNullException.ThrowIfNull(locations);
        IReadOnlyList<string> fileNames = FileNames(library);
        var attempts = new List<string>();
        foreach (LibrarySearchStep step in locations.Steps)
        {
            if (step.Folder is null)
            {
                foreach (string fileName in fileNames)
                {
                    if (TryLoad(fileName, out nint handle, out string? error))
                        return new LibraryProbe(library, fileNames, fileName + " (system loader)", attempts, locations.SkippedNotes) { Handle = handle };
                    attempts.Add($"system loader, {fileName}: {error}");
                }
                continue;
            }
            if (!Directory.Exists(step.Folder))
            {
                attempts.Add($"{step.Label} {step.Folder}: no such folder");
                continue;
            }
            bool anyPresent = false;
            foreach (string fileName in fileNames)
            {
                string path = Path.Combine(step.Folder, fileName);
                if (!File.Exists(path)) continue;
                anyPresent = true;
                PreloadCompanions(library, step.Folder, fileName);
                if (TryLoad(path, out nint handle, out string? error))
                    return new LibraryProbe(library, fileNames, path, attempts, locations.SkippedNotes) { Handle = handle };
                attempts.Add($"{step.Label} {path}: present but failed to load: {error}");
            }
            if (!anyPresent) attempts.Add($"{step.Label} {step.Folder}: none of the names present");
        }
        return new LibraryProbe(library, fileNames, null, attempts, locations.SkippedNotes);
    }

    // cuBLAS needs cuBLASLt and NVRTC loads its builtins library by soname at compile time; loading them
    // from the same folder first lets those lookups succeed when the folder is not on the loader's path
    // (pip's nvidia/*/lib folders usually are not).
    private static void PreloadCompanions(CudaLibrary library, string folder, string fileName)
    {
        string pattern = library switch
        {
            CudaLibrary.Cublas => fileName.Replace("cublas", "cublasLt", StringComparison.Ordinal),
            CudaLibrary.Nvrtc => OperatingSystem.IsWindows() ? "nvrtc-builtins64_*.dll" : "libnvrtc-builtins.so*",
            _ => "",
        };
        if (pattern.Length == 0) return;
        try
        {
            foreach (string companion in Directory.EnumerateFiles(folder, pattern).Order(StringComparer.Ordinal))
                NativeLibrary.TryLoad(companion, out _);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A companion that cannot be listed surfaces later as the main library's own load error.
        }
    }

    private static bool TryLoad(string nameOrPath, out nint handle, out string? error)
    {
        try
        {
            handle = NativeLibrary.Load(nameOrPath);
            error = null;
            return true;
        }
        catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
        {
            handle = 0;
            // The runtime's first line is generic advice; the lines after it carry the loader's own reason
            // ("cannot open shared object file", "wrong ELF class", "file too short").
            string[] lines = e.Message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            string message = lines.Length > 1 ? string.Join("; ", lines.Skip(1)) : lines.FirstOrDefault() ?? e.GetType().Name;
            error = message.Length > 300 ? message[..300] + "..." : message;
            return false;
        }
    }

    /// <summary>The nvidia/*/lib folders under every Python site-packages or dist-packages folder found.</summary>
    public static IReadOnlyList<string> PythonNvidiaLibraryFolders(Func<string, string?> environment)
    {
        ArgumentNullException.ThrowIfNull(environment);
        var prefixes = new List<string>();
        foreach (string variable in (string[])["VIRTUAL_ENV", "CONDA_PREFIX"])
            if (environment(variable) is { Length: > 0 } prefix) prefixes.Add(prefix);
        foreach (string directory in (environment("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            if (File.Exists(Path.Combine(directory, "python3")) || File.Exists(Path.Combine(directory, "python")))
                if (Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(directory)) is { } prefix) prefixes.Add(prefix);
        }
        prefixes.Add("/usr");
        prefixes.Add("/usr/local");
        if (environment("HOME") is { Length: > 0 } home) prefixes.Add(Path.Combine(home, ".local"));

        var folders = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (string prefix in prefixes)
        {
            string lib = Path.Combine(prefix, "lib");
            foreach (string python in SafeDirectories(lib, "python3*"))
                foreach (string packages in (string[])["site-packages", "dist-packages"])
                    foreach (string package in SafeDirectories(Path.Combine(python, packages, "nvidia"), "*"))
                    {
                        string candidate = Path.Combine(package, "lib");
                        if (Directory.Exists(candidate) && seen.Add(Path.GetFullPath(candidate))) folders.Add(candidate);
                    }
            // Windows Python keeps site-packages directly under Lib.
            foreach (string package in SafeDirectories(Path.Combine(prefix, "Lib", "site-packages", "nvidia"), "*"))
            {
                string candidate = Path.Combine(package, "bin");
                if (Directory.Exists(candidate) && seen.Add(Path.GetFullPath(candidate))) folders.Add(candidate);
            }
        }
        return folders;
    }

    private static string[] SafeDirectories(string folder, string pattern)
    {
        try
        {
            return Directory.Exists(folder) ? Directory.GetDirectories(folder, pattern).Order(StringComparer.Ordinal).ToArray() : [];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }
}
