using System.Text.RegularExpressions;
using Xunit;

namespace NativeMi.Tests.Cuda;

/// <summary>
/// Mistakes injected into the engine's own CUDA path (its bindings, NVRTC-compiled PTX loaded as modules, kernel
/// launches, cuBLAS, its stream), which the emulated device must catch: tests/NativeMi.CudaFaults runs each operation
/// in a child process on the emulator, once correctly (it must match the CPU reference, or the fault's detection would
/// prove nothing) and once with the fault (it must be caught, in the way asserted). emulator/tests/selftest.cpp covers
/// the same faults with the emulator's own test kernels; these show them caught through the engine.
/// </summary>
public class InjectedFaultTests
{
    // The child's exit codes (tests/NativeMi.CudaFaults/Program.cs).
    private const int Matched = 0, Mismatched = 1, CudaFailed = 2, NvrtcMissing = 77;

    private static (int Code, string Output) RunCase(string name, string mode, string setting, params int[] sizes)
    {
        string folder = CudaEmulator.RequireLibraryFolder();
        string tool = Path.Combine(AppContext.BaseDirectory, "NativeMi.CudaFaults.dll");
        Assert.True(File.Exists(tool), $"{tool} is missing: the test project references tests/NativeMi.CudaFaults so that it is built beside it");
        var environment = new Dictionary<string, string> { ["NATIVEMI_CUDA_PATH"] = folder };
        if (setting.Length > 0) environment[setting.Split('=')[0]] = setting.Split('=')[1];
        string host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
        return CudaEmulator.Run(host, ["exec", tool, name, mode, .. sizes.Select(s => s.ToString(System.Globalization.CultureInfo.InvariantCulture))],
            environment, TimeSpan.FromMinutes(2));
    }

    // False (the test then ends early) only where NVRTC is missing outside CI, the one case the child cannot run.
    private static bool ControlMatches(string name, string setting, params int[] sizes)
    {
        var (code, output) = RunCase(name, "control", setting, sizes);
        if (code == NvrtcMissing && !NvrtcAvailability.RunningInCi) return false;
        Assert.True(code == Matched, $"{name} control {setting} exited with {code} (0: matches the CPU reference):\n{output}");
        Assert.Contains($"match: {name} control: all ", output);
        return true;
    }

    private static string Fault(string name, int expectedCode, string setting, params int[] sizes)
    {
        var (code, output) = RunCase(name, "fault", setting, sizes);
        Assert.True(code == expectedCode, $"{name} fault {setting} exited with {code}, not {expectedCode} (1: a wrong result, 2: a CUDA error):\n{output}");
        return output;
    }

    [EmulatorTheory]
    [InlineData("")]
    [InlineData("NATIVEMI_EMU_DEFERRED=1")]
    public void GridOneBlockShortLeavesTheLastRowAsNaN(string setting)
    {
        if (!ControlMatches("grid-short", setting)) return;
        string output = Fault("grid-short", Mismatched, setting);
        // gather_rows of 5 rows of 40 with 4 blocks: the fifth row keeps the emulator's NaN fill.
        Assert.Contains("mismatch: grid-short fault: 40 of 200 values differ from the CPU reference; first at row 4, column 0:", output);
        Assert.Contains("got NaN", output);
    }

    [EmulatorTheory]
    // k < m: A's leading dimension (k) is below the m rows a transposed A has as stored.
    [InlineData(12, 5, 7, "", CudaFailed, "CUBLAS_STATUS_INVALID_VALUE from cublasSgemm", "cublasSgemm_v2: ldb=5 < max(1, 12), the rows of B as stored (transb=T")]
    // k > m: the transposed A reaches (k - 1)·k + m elements, past its m·k.
    [InlineData(5, 12, 7, "", CudaFailed, "CUBLAS_STATUS_EXECUTION_FAILED from cublasSgemm", "runs 308 bytes past the end of the 240-byte device allocation")]
    [InlineData(5, 12, 7, "NATIVEMI_EMU_DEFERRED=1", CudaFailed, "CUBLAS_STATUS_EXECUTION_FAILED from cublasSgemm", "the context now holds CUDA_ERROR_ILLEGAL_ADDRESS")]
    // k = m: a valid call on the wrong elements.
    [InlineData(6, 6, 10, "", Mismatched, "mismatch: transposed-operand fault: 60 of 60 values differ from the CPU reference", "first at row 0, column 0")]
    public void TransposedCublasOperandIsRejectedOrGivesAWrongProduct(int m, int k, int n, string setting, int expectedCode, string message, string detail)
    {
        if (!ControlMatches("transposed-operand", setting, m, k, n)) return;
        string output = Fault("transposed-operand", expectedCode, setting, m, k, n);
        Assert.Contains(message, output);
        Assert.Contains(detail, output);
    }

    [EmulatorFact]
    public void ReadingAnAsynchronousCopyWithoutSynchronisingSeesStaleData()
    {
        // Only deferred mode holds queued work until a synchronisation point; by default the emulator runs it at the call.
        const string setting = "NATIVEMI_EMU_DEFERRED=1";
        if (!ControlMatches("missing-sync", setting)) return;
        string output = Fault("missing-sync", Mismatched, setting);
        // add_inplace's 1000 sums copied into pinned memory cleared to 0, read before cuStreamSynchronize.
        Assert.Contains("mismatch: missing-sync fault: 1000 of 1000 values differ from the CPU reference", output);
        Assert.Contains("got 0", output);
    }

    [EmulatorTheory]
    [InlineData("", "cuLaunchKernel(layernorm_residual)")]
    [InlineData("NATIVEMI_EMU_REVERSE=1", "cuLaunchKernel(layernorm_residual)")]
    // Deferred, the launch is only queued: the fault surfaces at the download's synchronisation.
    [InlineData("NATIVEMI_EMU_DEFERRED=1", "cuStreamSynchronize")]
    public void WarpShuffleInAPartialWarpFailsNamingTheKernelBlockAndThread(string setting, string failedCall)
    {
        if (!ControlMatches("partial-warp", setting)) return;
        string output = Fault("partial-warp", CudaFailed, setting);
        Assert.Contains($"cuda-error: partial-warp fault: CUDA_ERROR_LAUNCH_FAILED from {failedCall}", output);
        // A block of 48 threads for a row of 48: warp 1 has lanes 0-15 only, and block_sum's shuffle names all 32.
        Assert.Matches(new Regex(@"kernel layernorm_residual, block \([0-2],0,0\), thread \((3[2-9]|4[0-7]),0,0\): __shfl_xor_sync with mask 0xffffffff " +
                                 @"in a partial warp: warp 1 of the block has only 16 threads \(blockDim 48x1x1 is not a multiple of 32\)"), output);
    }
}
