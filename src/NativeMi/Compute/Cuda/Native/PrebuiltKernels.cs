using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace NativeMi.Compute.Cuda.Native;

/// <summary>PTX that CMakeLists.txt built ahead of time with nvcc, verified against the embedded sources.</summary>
/// <param name="FileName">The kernel source's name ("attention.cu").</param>
/// <param name="Architecture">The virtual architecture it targets ("compute_90").</param>
/// <param name="Ptx">PTX text.</param>
/// <param name="PtxPath">Where it was read from.</param>
/// <param name="Compiler">The manifest's compiler line ("nvcc 11.8.89"), or "" when it has none.</param>
internal sealed record PrebuiltKernel(string FileName, string Architecture, string Ptx, string PtxPath, string Compiler);

/// <summary>
/// Finds PTX that <c>CMakeLists.txt</c> built with nvcc (<c>&lt;name&gt;.compute_&lt;NN&gt;.ptx</c>, each with a
/// <c>.ptx.manifest</c> written by <c>cmake/KernelPtxManifest.cmake</c>) and hands it out only when the manifest proves
/// it was built from exactly the kernel sources the engine embeds. The folder searched is the one named by
/// <see cref="FolderVariable"/>, else <see cref="DefaultFolderName"/> next to the executable; the first that exists is
/// used alone. Anything missing, stale or malformed is a one-line reason, never an exception: NVRTC is the fallback.
/// </summary>
internal sealed partial class PrebuiltKernels
{
    /// <summary>Environment variable naming a folder of prebuilt PTX (CMake's <c>&lt;build&gt;/ptx</c>, say).</summary>
    public const string FolderVariable = "NATIVEMI_KERNEL_PTX_PATH";

    /// <summary>The folder next to the executable searched when <see cref="FolderVariable"/> names none
    /// (<c>cmake --install &lt;build&gt; --prefix &lt;executable's folder&gt;</c> creates it).</summary>
    public const string DefaultFolderName = "kernels-ptx";

    /// <summary>What the manifest's name adds to its PTX file's name.</summary>
    public const string ManifestSuffix = ".manifest";

    private const string FormatLine = "nativemi-kernel-ptx 1";

    private PrebuiltKernels(string? folder, string origin)
    {
        Folder = folder;
        Origin = origin;
    }

    /// <summary>The folder in use, or null when none was found.</summary>
    public string? Folder { get; }

    /// <summary>Where <see cref="Folder"/> came from ("NATIVEMI_KERNEL_PTX_PATH", "next to the executable"), or,
    /// when there is none, everywhere that was looked.</summary>
    public string Origin { get; }

    /// <summary>Searches the folder named by <see cref="FolderVariable"/>, then <see cref="DefaultFolderName"/> in
    /// <see cref="AppContext.BaseDirectory"/>.</summary>
    public static PrebuiltKernels Locate() =>
        Locate(Environment.GetEnvironmentVariable(FolderVariable), AppContext.BaseDirectory);

    /// <summary>Searches <paramref name="variableValue"/> (the environment variable's value; null or blank when unset),
    /// then <see cref="DefaultFolderName"/> in <paramref name="executableFolder"/>.</summary>
    public static PrebuiltKernels Locate(string? variableValue, string executableFolder)
    {
        ArgumentNullException.ThrowIfNull(executableFolder);
        string variableNote;
        if (string.IsNullOrWhiteSpace(variableValue))
        {
            variableNote = $"{FolderVariable} is not set";
        }
        else
        {
            string named = Path.GetFullPath(variableValue);
            if (Directory.Exists(named)) return new PrebuiltKernels(named, FolderVariable);
            variableNote = $"{FolderVariable}={variableValue} is not a folder";
        }
        string besideExecutable = Path.GetFullPath(Path.Combine(executableFolder, DefaultFolderName));
        if (Directory.Exists(besideExecutable)) return new PrebuiltKernels(besideExecutable, "next to the executable");
        return new PrebuiltKernels(null, $"{variableNote}; no {besideExecutable}");
    }

    /// <summary>
    /// The source hash a manifest records (version 1, the definition in <c>cmake/KernelPtxManifest.cmake</c>): the
    /// lowercase hex SHA-256 of the ASCII lines "<c>&lt;name&gt; &lt;SHA-256 of its bytes&gt;\n</c>", first for the
    /// .cu file, then for every header in byte order of name. The bytes are the UTF-8 text, which is what the
    /// files hold (a file with a byte-order mark would hash differently and simply not match).
    /// </summary>
    public static string SourceHash(KernelSource source)
    {
        ArgumentNullException.ThrowIfNull(source);
        var lines = new StringBuilder();
        lines.Append(source.FileName).Append(' ').Append(Sha256Hex(source.Code)).Append('\n');
        foreach (var header in source.Headers.OrderBy(h => h.Key, StringComparer.Ordinal))
            lines.Append(header.Key).Append(' ').Append(Sha256Hex(header.Value)).Append('\n');
        return Sha256Hex(lines.ToString());
    }

    /// <summary>The architectures ("compute_80") with at least one PTX file in the folder, oldest first.</summary>
    public IReadOnlyList<string> Architectures()
    {
        if (Folder is null) return [];
        try
        {
            return Directory.EnumerateFiles(Folder, "*.ptx")
                .Select(path => PtxName().Match(Path.GetFileName(path)))
                .Where(m => m.Success)
                .Select(m => int.Parse(m.Groups["number"].Value, CultureInfo.InvariantCulture))
                .Distinct().Order()
                .Select(number => $"compute_{number}")
                .ToArray();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    /// <summary>
    /// The PTX of <paramref name="source"/> for the newest architecture in the folder that a device of compute
    /// capability <paramref name="major"/>.<paramref name="minor"/> runs (its own, else the newest older one; the
    /// driver JIT-compiles older PTX). False, with the reason, when there is no such architecture or its file fails
    /// any check of <see cref="TryLoad"/>.
    /// </summary>
    public bool TryFind(KernelSource source, int major, int minor, [NotNullWhen(true)] out PrebuiltKernel? kernel, out string reason)
    {
        ArgumentNullException.ThrowIfNull(source);
        kernel = null;
        if (Folder is null)
        {
            reason = "no prebuilt PTX folder (" + Origin + ")";
            return false;
        }
        int device = major * 10 + minor;
        string? newest = Architectures().LastOrDefault(a => ArchitectureNumber(a) <= device);
        if (newest is null)
        {
            reason = $"{Folder} holds no <name>.compute_NN.ptx for compute capability {major}.{minor} or older";
            return false;
        }
        return TryLoad(source, newest, out kernel, out reason);
    }

    /// <summary>
    /// The PTX of <paramref name="source"/> for exactly <paramref name="architecture"/> ("compute_90"), when the PTX
    /// file and its manifest both exist, the manifest is well formed and names this source and architecture, its
    /// source hash equals <see cref="SourceHash"/> of <paramref name="source"/>, its PTX hash equals the file's, and the
    /// PTX declares its version, targets that architecture and defines every kernel of the source. Otherwise false
    /// with a one-line reason.
    /// </summary>
    public bool TryLoad(KernelSource source, string architecture, [NotNullWhen(true)] out PrebuiltKernel? kernel, out string reason)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(architecture);
        kernel = null;
        if (Folder is null)
        {
            reason = "no prebuilt PTX folder (" + Origin + ")";
            return false;
        }
        if (ArchitectureNumber(architecture) < 0)
        {
            reason = $"'{architecture}' is not a compute_NN architecture";
            return false;
        }
        string ptxName = $"{Path.GetFileNameWithoutExtension(source.FileName)}.{architecture}.ptx";
        string ptxPath = Path.Combine(Folder, ptxName);
        string manifestPath = ptxPath + ManifestSuffix;
        byte[] ptxBytes;
        string manifestText;
        try
        {
            if (!File.Exists(ptxPath))
            {
                reason = $"{ptxName} missing in {Folder}";
                return false;
            }
            if (!File.Exists(manifestPath))
            {
                reason = $"{ptxName}{ManifestSuffix} missing in {Folder}, so nothing proves which sources {ptxName} was built from";
                return false;
            }
            ptxBytes = File.ReadAllBytes(ptxPath);
            manifestText = File.ReadAllText(manifestPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            reason = $"{ptxName} unreadable: {e.Message}";
            return false;
        }

        if (ParseManifest(manifestText, out string? problem) is not { } manifest)
        {
            reason = $"{ptxName}{ManifestSuffix} malformed: {problem}";
            return false;
        }
        string compiler = manifest.GetValueOrDefault("compiler", "");
        if (manifest["source"] != source.FileName || manifest["architecture"] != architecture)
        {
            reason = $"{ptxName}{ManifestSuffix} describes {manifest["source"]} for {manifest["architecture"]}, not {source.FileName} for {architecture}";
            return false;
        }
        string expected = SourceHash(source);
        if (!string.Equals(manifest["source-sha256"], expected, StringComparison.OrdinalIgnoreCase))
        {
            reason = $"{ptxName} is stale: built from sources hashing {Short(manifest["source-sha256"])}, the engine embeds {Short(expected)}";
            return false;
        }
        if (!string.Equals(manifest["ptx-sha256"], Convert.ToHexStringLower(SHA256.HashData(ptxBytes)), StringComparison.OrdinalIgnoreCase))
        {
            reason = $"{ptxName} differs from the PTX its manifest describes (changed or truncated after the build)";
            return false;
        }
        string ptx = Encoding.UTF8.GetString(ptxBytes).TrimEnd('\0');
        string target = "sm_" + architecture["compute_".Length..];
        if (!Regex.IsMatch(ptx, @"^\s*\.version\s+\d+\.\d+", RegexOptions.Multiline)
            || !Regex.IsMatch(ptx, @"^\s*\.target\s+" + target + @"\b", RegexOptions.Multiline))
        {
            reason = $"{ptxName} is not PTX for {architecture} (no .version line or no .target {target})";
            return false;
        }
        string? absent = source.KernelNames().FirstOrDefault(name => !Regex.IsMatch(ptx, @"\.entry\s+" + Regex.Escape(name) + @"\s*\("));
        if (absent is not null)
        {
            reason = $"{ptxName} does not define kernel {absent}";
            return false;
        }
        kernel = new PrebuiltKernel(source.FileName, architecture, ptx, ptxPath, compiler);
        reason = "";
        return true;
    }

    /// <summary>
    /// For doctor: the folder and where it came from, then per architecture in it how many of
    /// <paramref name="fileNames"/> (default: every embedded kernel file) match, with the first reason for a file that
    /// does not; or why no folder was used.
    /// </summary>
    public string Describe(IReadOnlyList<string>? fileNames = null)
    {
        if (Folder is null) return "prebuilt PTX: none (" + Origin + ")";
        fileNames ??= KernelSource.EmbeddedFileNames;
        IReadOnlyList<string> architectures = Architectures();
        if (architectures.Count == 0) return $"prebuilt PTX: {Folder} ({Origin}) holds no <name>.compute_NN.ptx files";
        var text = new StringBuilder($"prebuilt PTX: {Folder} ({Origin})");
        foreach (string architecture in architectures)
        {
            int matched = 0;
            string? firstReason = null;
            foreach (string file in fileNames)
            {
                if (TryLoad(KernelSource.Embedded(file), architecture, out _, out string reason)) matched++;
                else firstReason ??= reason;
            }
            text.Append('\n').Append(CultureInfo.InvariantCulture, $"  {architecture}: {matched} of {fileNames.Count} kernel files match the embedded sources");
            if (firstReason is not null) text.Append("; ").Append(firstReason);
        }
        return text.ToString();
    }

    // null (with the problem) unless the format line comes first and every required key is present once.
    private static Dictionary<string, string>? ParseManifest(string text, out string? problem)
    {
        string[] lines = text.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (lines.Length == 0 || lines[0] != FormatLine)
        {
            problem = $"does not start with '{FormatLine}'";
            return null;
        }
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string line in lines.Skip(1))
        {
            int space = line.IndexOf(' ', StringComparison.Ordinal);
            if (space <= 0)
            {
                problem = $"line '{line}' is not 'key value'";
                return null;
            }
            // Unknown keys are allowed, so a later CMakeLists.txt can record more without breaking older engines.
            if (!values.TryAdd(line[..space], line[(space + 1)..].Trim()))
            {
                problem = $"key '{line[..space]}' appears twice";
                return null;
            }
        }
        foreach (string key in (string[])["source", "architecture", "source-sha256", "ptx-sha256"])
        {
            if (!values.ContainsKey(key))
            {
                problem = $"no '{key}' line";
                return null;
            }
        }
        foreach (string key in (string[])["source-sha256", "ptx-sha256"])
        {
            if (!Sha256HexPattern().IsMatch(values[key]))
            {
                problem = $"'{key}' is not 64 hex digits";
                return null;
            }
        }
        problem = null;
        return values;
    }

    private static int ArchitectureNumber(string architecture)
    {
        Match match = ArchitectureName().Match(architecture);
        return match.Success ? int.Parse(match.Groups["number"].Value, CultureInfo.InvariantCulture) : -1;
    }

    private static string Sha256Hex(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));

    private static string Short(string hash) => hash.Length > 12 ? hash[..12] + "…" : hash;

    [GeneratedRegex(@"^compute_(?<number>\d{2,3})$")]
    private static partial Regex ArchitectureName();

    // Suffixed architectures (compute_90a) are deliberately not matched: their PTX runs only on that exact GPU.
    [GeneratedRegex(@"^[^.]+\.compute_(?<number>\d{2,3})\.ptx$")]
    private static partial Regex PtxName();

    [GeneratedRegex(@"^[0-9a-fA-F]{64}$")]
    private static partial Regex Sha256HexPattern();
}
