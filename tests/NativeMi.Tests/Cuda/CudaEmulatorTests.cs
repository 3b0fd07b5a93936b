using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;
using Xunit;

namespace NativeMi.Tests.Cuda;

/// <summary>
/// The emulated CUDA device (emulator/, built by scripts/build-cuda-emulator.sh): NATIVEMI_EMULATOR_PATH names the folder
/// holding its libcuda.so.1 and libcublas.so.12. CI builds it (see .ci/run), so with CI=true a missing emulator fails
/// the tests rather than hiding them; elsewhere they are skipped. Only child processes load it (with
/// NATIVEMI_CUDA_PATH set): this process must keep seeing the machine as it is.
/// </summary>
internal static class CudaEmulator
{
    public const string PathVariable = "NATIVEMI_EMULATOR_PATH";

    public static string? LibraryFolder { get; } = Environment.GetEnvironmentVariable(PathVariable) is { Length: > 0 } folder ? folder : null;

    /// <summary>The emulator's self-test program, built beside the libraries (build/cuda-emulator/bin).</summary>
    public static string? SelfTest => LibraryFolder is null ? null : Path.GetFullPath(Path.Combine(LibraryFolder, "..", "bin", "nativemi-emu-selftest"));

    public static string? SkipReason()
    {
        if (NvrtcAvailability.RunningInCi) return null;
        if (LibraryFolder is null) return $"{PathVariable} is not set (CI is not 'true', so skipping); build the emulator with scripts/build-cuda-emulator.sh";
        if (!File.Exists(Path.Combine(LibraryFolder, "libcuda.so.1"))) return $"{PathVariable}={LibraryFolder} holds no libcuda.so.1";
        return null;
    }

    /// <summary>The folder, or a failed assertion saying how to get one (in CI, where the tests must not be skipped).</summary>
    public static string RequireLibraryFolder()
    {
        Assert.True(LibraryFolder is not null && File.Exists(Path.Combine(LibraryFolder, "libcuda.so.1")),
            $"{PathVariable} must name the emulator's lib folder (scripts/build-cuda-emulator.sh prints it; .ci/run exports it)");
        return LibraryFolder!;
    }

    /// <summary>Runs <paramref name="program"/> with <paramref name="arguments"/> and extra environment variables; returns its exit code and output.</summary>
    public static (int Code, string Output) Run(string program, IEnumerable<string> arguments, IReadOnlyDictionary<string, string> environment, TimeSpan limit)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string argument in arguments) start.ArgumentList.Add(argument);
        foreach (var (name, value) in environment) start.Environment[name] = value;
        using Process process = Process.Start(start)!;
        Task<string> output = process.StandardOutput.ReadToEndAsync();
        Task<string> error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(limit))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', arguments)} ran over {limit.TotalSeconds:F0} s");
        }
        return (process.ExitCode, output.Result + error.Result);
    }
}

/// <summary>A theory that needs the emulated device: skipped outside CI when it is not built, failing inside CI.</summary>
public sealed class EmulatorTheoryAttribute : TheoryAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when the emulator is missing and CI is not set.</summary>
    public EmulatorTheoryAttribute()
    {
        if (CudaEmulator.SkipReason() is { } reason) Skip = reason;
    }
}

/// <summary>A fact that needs the emulated device: skipped outside CI when it is not built, failing inside CI.</summary>
public sealed class EmulatorFactAttribute : FactAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when the emulator is missing and CI is not set.</summary>
    public EmulatorFactAttribute()
    {
        if (CudaEmulator.SkipReason() is { } reason) Skip = reason;
    }
}

/// <summary>
/// The emulator's own checks (emulator/tests/selftest.cpp with the deliberately broken kernels of
/// emulator/tests/fault_kernels.cu): each case must be caught, with the CUDA status a GPU gives and a message naming
/// the kernel, block and thread (or the call, address and size), in forward, reversed and deferred modes where the
/// mode matters.
/// </summary>
public class CudaEmulatorTests
{
    [EmulatorTheory]
    [InlineData("warp-shuffle", "")]
    [InlineData("warp-shuffle", "NATIVEMI_EMU_REVERSE=1")]
    [InlineData("warp-shuffle", "NATIVEMI_EMU_DEFERRED=1")]
    [InlineData("skipped-barrier", "")]
    [InlineData("skipped-barrier", "NATIVEMI_EMU_REVERSE=1")]
    [InlineData("guard-page", "")]
    [InlineData("guard-page", "NATIVEMI_EMU_DEFERRED=1")]
    [InlineData("use-after-free", "")]
    [InlineData("use-after-free", "NATIVEMI_EMU_DEFERRED=1")]
    [InlineData("cublas", "")]
    [InlineData("cublas", "NATIVEMI_EMU_DEFERRED=1")]
    [InlineData("stream-order", "")]
    [InlineData("stream-order", "NATIVEMI_EMU_DEFERRED=1")]
    [InlineData("out-of-memory", "NATIVEMI_EMU_MEMORY_BYTES=64M")]
    [InlineData("launch-limits", "")]
    [InlineData("dynamic-shared-overrun", "")]
    [InlineData("missing-barrier", "")]
    [InlineData("missing-barrier", "NATIVEMI_EMU_REVERSE=1")]
    [InlineData("deadlock", "")]
    [InlineData("ptx", "")]
    public void SelfTestCasePasses(string name, string setting)
    {
        CudaEmulator.RequireLibraryFolder();
        string program = CudaEmulator.SelfTest!;
        Assert.True(File.Exists(program), $"{program} is missing: the emulator build makes it beside lib/");
        var environment = new Dictionary<string, string>();
        if (setting.Length > 0) environment[setting.Split('=')[0]] = setting.Split('=')[1];
        var (code, output) = CudaEmulator.Run(program, [name], environment, TimeSpan.FromMinutes(1));
        if (code == 77 && !NvrtcAvailability.RunningInCi) return;   // NVRTC missing outside CI: the self-test says so and skips
        Assert.True(code == 0, $"nativemi-emu-selftest {name} {setting} exited with {code}:\n{output}");
        Assert.Contains($"ok {name}", output);
    }

    [EmulatorFact]
    public void ExportsEveryEntryPointTheEngineBinds()
    {
        CudaEmulator.RequireLibraryFolder();
        // The entry points as compiled into the engine: the LibraryImport generator emits one DllImport per binding.
        var entryPoints = typeof(NativeMi.Compute.Cuda.CudaBackend).Assembly.GetTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public | BindingFlags.DeclaredOnly))
            .Select(m => m.GetCustomAttribute<DllImportAttribute>())
            .Where(a => a is not null && (a.Value == NativeMi.Compute.Cuda.Native.CudaLibraries.DriverImportName || a.Value == NativeMi.Compute.Cuda.Native.CudaLibraries.CublasImportName))
            .Select(a => a!.EntryPoint!)
            .Distinct()
            .Order(StringComparer.Ordinal)
            .ToArray();
        Assert.Contains("cuLaunchKernel", entryPoints);
        Assert.Contains("cublasGemmStridedBatchedEx", entryPoints);
        var (code, output) = CudaEmulator.Run(CudaEmulator.SelfTest!, ["symbols", .. entryPoints], new Dictionary<string, string>(), TimeSpan.FromMinutes(1));
        Assert.True(code == 0, $"the emulator lacks entry points the engine binds:\n{output}");
    }
}
