using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using NativeMi.IO;

namespace NativeMi.Compute.Cuda.Native;

/// <summary>Options for one NVRTC compilation.</summary>
/// <param name="FusedMultiplyAdd">Let the compiler contract a*b+c into FMA (NVRTC's default); false passes --fmad=false,
/// which makes results closer to a CPU that does not fuse, at some speed cost.</param>
/// <param name="TreatWarningsAsErrors">Fail when the compile log holds a warning.</param>
internal sealed record KernelCompileOptions(bool FusedMultiplyAdd = true, bool TreatWarningsAsErrors = true)
{
    /// <summary>NVRTC's defaults, with warnings as errors.</summary>
    public static KernelCompileOptions Default { get; } = new();
}

/// <summary>The PTX of one compiled kernel source.</summary>
/// <param name="FileName">The source's name.</param>
/// <param name="Architecture">The virtual architecture it targets ("compute_90").</param>
/// <param name="Ptx">PTX text (without the trailing NUL).</param>
/// <param name="Log">NVRTC's log (empty on a clean compile, and for cache hits).</param>
/// <param name="FromCache">Whether the PTX came from the on-disk cache.</param>
internal sealed record CompiledKernel(string FileName, string Architecture, string Ptx, string Log, bool FromCache);

/// <summary>The machine code of one compiled kernel source.</summary>
/// <param name="FileName">The source's name.</param>
/// <param name="Architecture">The real architecture it targets ("sm_90").</param>
/// <param name="Image">The cubin (an ELF image), loadable with cuModuleLoadData.</param>
/// <param name="Log">NVRTC's log (empty on a clean compile).</param>
internal sealed record CompiledCubin(string FileName, string Architecture, byte[] Image, string Log);

/// <summary>
/// Compiles kernel sources to PTX with NVRTC. Results are cached on disk under
/// <c>&lt;cache root&gt;/kernels/</c>, keyed by a hash of the sources, the architecture, the options and the
/// NVRTC version, so a changed kernel, a new GPU or a new NVRTC never reuses stale PTX.
/// </summary>
internal sealed partial class KernelCompiler
{
    private readonly string? _cacheFolder;

    /// <summary>A compiler caching under <paramref name="cacheFolder"/> (default: the NativeMi cache root's kernels folder);
    /// pass <paramref name="useCache"/> false to always compile.</summary>
    public KernelCompiler(string? cacheFolder = null, bool useCache = true) =>
        _cacheFolder = useCache ? cacheFolder ?? IO.CachePaths.Kernels() : null;

    /// <summary>The NVRTC version, loading the library if needed.</summary>
    /// <exception cref="CudaException">NVRTC was not found (the detail lists where it was looked for).</exception>
    public static (int Major, int Minor) NvrtcVersion()
    {
        CudaLibraries.Require(CudaLibrary.Nvrtc);
        NvrtcApi.Check(NvrtcApi.Version(out int major, out int minor), "nvrtcVersion");
        return (major, minor);
    }

    /// <summary>The virtual architecture name for a compute capability (9, 0 → "compute_90").</summary>
    public static string Architecture(int major, int minor) =>
        major is >= 1 and <= 99 && minor is >= 0 and <= 9
            ? $"compute_{major}{minor}"
            : throw new ArgumentOutOfRangeException(nameof(major), $"compute capability {major}.{minor} is not a valid one");

    /// <summary>Compiles <paramref name="source"/> for compute capability <paramref name="major"/>.<paramref name="minor"/>.</summary>
    /// <exception cref="CudaException">NVRTC is missing, the source does not compile, or (with warnings as errors) it warns;
    /// the detail holds the compile log.</exception>
    /// <param name="source">The kernel file.</param>
    /// <param name="major">Compute capability, major.</param>
    /// <param name="minor">Compute capability, minor.</param>
    /// <param name="options">Compile options; the defaults when null.</param>
    /// <param name="driverVersion">The driver's CUDA version (cuDriverGetVersion, 12040 for 12.4) that will load the PTX, part of
    /// the cache key: PTX one driver rejected is never served from the cache to another.</param>
    public CompiledKernel Compile(KernelSource source, int major, int minor, KernelCompileOptions? options = null, int driverVersion = 0)
    {
        ArgumentNullException.ThrowIfNull(source);
        options ??= KernelCompileOptions.Default;
        string architecture = Architecture(major, minor);
        (int nvrtcMajor, int nvrtcMinor) = NvrtcVersion();
        string[] arguments = Arguments(architecture, options);

        string? cachePath = null;
        if (_cacheFolder is not null)
        {
            cachePath = Path.Combine(_cacheFolder, $"{Path.GetFileNameWithoutExtension(source.FileName)}-{architecture}-{CacheKey(source, arguments, nvrtcMajor, nvrtcMinor, driverVersion)}.ptx");
            string? cached = TryReadCache(cachePath);
            if (cached is not null) return new CompiledKernel(source.FileName, architecture, cached, "", FromCache: true);
        }

        (byte[] output, string log) = CompileWithNvrtc(source, arguments, architecture, cubin: false);
        int end = Array.IndexOf(output, (byte)0);
        string ptx = Encoding.UTF8.GetString(output, 0, end < 0 ? output.Length : end);
        if (options.TreatWarningsAsErrors && HasWarning(log))
            throw new CudaException("NVRTC_ERROR_COMPILATION", 6, $"nvrtcCompileProgram({source.FileName}, {architecture})",
                "warnings are treated as errors:\n" + log);

        if (cachePath is not null) TryWriteCache(cachePath, ptx);
        return new CompiledKernel(source.FileName, architecture, ptx, log, FromCache: false);
    }

    /// <summary>
    /// Compiles <paramref name="source"/> to a cubin (machine code) for the real architecture sm_<paramref name="major"/><paramref name="minor"/>,
    /// which the driver loads without a JIT step. Not cached: PTX is the portable, cached form.
    /// </summary>
    /// <exception cref="CudaException">NVRTC is missing or too old for cubins, the source does not compile, or (with warnings as errors) it warns.</exception>
    public static CompiledCubin CompileCubin(KernelSource source, int major, int minor, KernelCompileOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        options ??= KernelCompileOptions.Default;
        string architecture = "sm_" + Architecture(major, minor)["compute_".Length..];
        NvrtcVersion();
        (byte[] image, string log) = CompileWithNvrtc(source, Arguments(architecture, options), architecture, cubin: true);
        if (options.TreatWarningsAsErrors && HasWarning(log))
            throw new CudaException("NVRTC_ERROR_COMPILATION", 6, $"nvrtcCompileProgram({source.FileName}, {architecture})", "warnings are treated as errors:\n" + log);
        return new CompiledCubin(source.FileName, architecture, image, log);
    }

    /// <summary>
    /// Whether an NVRTC log reports a warning: a diagnostic line "file(line): warning ..." (with or without a number such as
    /// "#177-D"), not any line that merely contains the word (a kernel or a remark about warnings).
    /// </summary>
    public static bool HasWarning(string log) => WarningLine().IsMatch(log);

    [GeneratedRegex(@"^\S.*?\(\d+\): warning\b", RegexOptions.Multiline)]
    private static partial Regex WarningLine();

    // -lineinfo: a fault or a profiler then points at the kernel's source line; it changes no instruction.
    private static string[] Arguments(string architecture, KernelCompileOptions options)
    {
        var arguments = new List<string> { $"--gpu-architecture={architecture}", "--std=c++17", "--generate-line-info" };
        if (!options.FusedMultiplyAdd) arguments.Add("--fmad=false");
        return [.. arguments];
    }

    private static unsafe (byte[] Output, string Log) CompileWithNvrtc(KernelSource source, string[] arguments, string architecture, bool cubin)
    {
        string call = $"nvrtcCompileProgram({source.FileName}, {architecture})";
        var pinned = new List<byte[]>();
        byte[] Utf8(string text)
        {
            byte[] bytes = Encoding.UTF8.GetBytes(text + "\0");
            pinned.Add(bytes);
            return bytes;
        }

        string[] headerNames = [.. source.Headers.Keys];
        byte[][] headerTexts = [.. headerNames.Select(n => Utf8(source.Headers[n]))];
        byte[][] headerNameBytes = [.. headerNames.Select(Utf8)];
        byte[][] argumentBytes = [.. arguments.Select(Utf8)];
        byte[] code = Utf8(source.Code), name = Utf8(source.FileName);

        var handles = pinned.Select(b => System.Runtime.InteropServices.GCHandle.Alloc(b, System.Runtime.InteropServices.GCHandleType.Pinned)).ToArray();
        nint program = 0;
        try
        {
            nint* headerPointers = stackalloc nint[Math.Max(1, headerNames.Length)];
            nint* headerNamePointers = stackalloc nint[Math.Max(1, headerNames.Length)];
            nint* argumentPointers = stackalloc nint[arguments.Length];
            for (int i = 0; i < headerNames.Length; i++)
            {
                headerPointers[i] = AddressOf(headerTexts[i]);
                headerNamePointers[i] = AddressOf(headerNameBytes[i]);
            }
            for (int i = 0; i < arguments.Length; i++) argumentPointers[i] = AddressOf(argumentBytes[i]);

            NvrtcApi.Check(NvrtcApi.CreateProgram(out program, (byte*)AddressOf(code), (byte*)AddressOf(name), headerNames.Length,
                (byte**)headerPointers, (byte**)headerNamePointers), $"nvrtcCreateProgram({source.FileName})");
            int status = NvrtcApi.CompileProgram(program, arguments.Length, (byte**)argumentPointers);
            string log = ReadLog(program);
            NvrtcApi.Check(status, call, log);

            if (cubin)
            {
                NvrtcApi.Check(NvrtcApi.GetCubinSize(program, out nuint cubinSize), "nvrtcGetCUBINSize");
                byte[] image = new byte[(int)cubinSize];
                fixed (byte* imagePointer = image) NvrtcApi.Check(NvrtcApi.GetCubin(program, imagePointer), "nvrtcGetCUBIN");
                return (image, log);
            }
            NvrtcApi.Check(NvrtcApi.GetPtxSize(program, out nuint size), "nvrtcGetPTXSize");
            byte[] ptx = new byte[(int)size];
            fixed (byte* ptxPointer = ptx) NvrtcApi.Check(NvrtcApi.GetPtx(program, ptxPointer), "nvrtcGetPTX");
            return (ptx, log);
        }
        finally
        {
            if (program != 0) NvrtcApi.DestroyProgram(ref program);
            foreach (var handle in handles) handle.Free();
        }
    }

    private static nint AddressOf(byte[] pinnedBytes) => System.Runtime.InteropServices.Marshal.UnsafeAddrOfPinnedArrayElement(pinnedBytes, 0);

    private static unsafe string ReadLog(nint program)
    {
        if (NvrtcApi.GetProgramLogSize(program, out nuint size) != 0 || size <= 1) return "";
        byte[] log = new byte[(int)size];
        fixed (byte* logPointer = log)
            if (NvrtcApi.GetProgramLog(program, logPointer) != 0) return "";
        return Encoding.UTF8.GetString(log, 0, Math.Max(0, (int)size - 1)).Trim();
    }

    private static string CacheKey(KernelSource source, string[] arguments, int nvrtcMajor, int nvrtcMinor, int driverVersion)
    {
        var text = new StringBuilder();
        text.Append("nvrtc ").Append(nvrtcMajor).Append('.').Append(nvrtcMinor).Append(" driver ").Append(driverVersion).Append('\n');
        foreach (string argument in arguments) text.Append(argument).Append('\n');
        text.Append(source.FileName).Append('\n').Append(source.Code).Append('\0');
        foreach (var header in source.Headers.OrderBy(h => h.Key, StringComparer.Ordinal))
            text.Append(header.Key).Append('\n').Append(header.Value).Append('\0');
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())))[..24];
    }

    // A cache that cannot be read or written costs a recompile, never a failure.
    private static string? TryReadCache(string path)
    {
        try
        {
            if (!File.Exists(path)) return null;
            string ptx = File.ReadAllText(path);
            return ptx.Contains(".version", StringComparison.Ordinal) && ptx.Contains(".target", StringComparison.Ordinal) ? ptx : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static void TryWriteCache(string path, string ptx)
    {
        try
        {
            AtomicFile.Write(path, stream => stream.Write(Encoding.UTF8.GetBytes(ptx)));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or OutputWriteException)
        {
            // Compiling again next time is the only consequence.
        }
    }
}
