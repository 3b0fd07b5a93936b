using NativeMi.Compute.Cpu;
using NativeMi.Compute.Cuda;

namespace NativeMi.Compute;

/// <summary>
/// The backend choice every program that runs a model shares (the CLI's --backend, <see cref="LanguageModel.Open"/>, the
/// C ABI): cpu, cuda, or auto (CUDA when a usable GPU is present, else the CPU).
/// </summary>
internal static class BackendSelection
{
    /// <summary>The choices <see cref="Choose"/> accepts.</summary>
    public static IReadOnlyList<string> Choices { get; } = ["auto", "cpu", "cuda"];

    /// <summary>
    /// Creates the backend <paramref name="choice"/> names. A CUDA backend is used only after every op matched the CPU
    /// backend on small random inputs; cuda is an error when no usable GPU passes that check, auto falls back to the CPU.
    /// What was chosen, and why auto fell back, is said in one line on <paramref name="log"/>.
    /// </summary>
    /// <param name="choice">"auto", "cpu" or "cuda".</param>
    /// <param name="allowTf32">Let cuBLAS use TF32 tensor cores for fp32 GEMMs on the GPU.</param>
    /// <param name="log">Receives the choice's line on the calling thread; null for none.</param>
    /// <exception cref="UsageException"><paramref name="choice"/> is none of the choices.</exception>
    /// <exception cref="EnvironmentException">cuda was asked for and no usable GPU passed the check.</exception>
    public static IComputeBackend Choose(string choice, bool allowTf32 = false, IProgress<string>? log = null)
    {
        ArgumentNullException.ThrowIfNull(choice);
        if (!Choices.Contains(choice))
            throw new UsageException($"backend must be one of {string.Join(", ", Choices)}, got '{choice}'");
        if (choice == "cpu") return new CpuBackend();
        var cuda = CudaBackend.TryCreate(out string reason, new CudaBackendOptions(AllowTf32: allowTf32));
        if (cuda is not null)
        {
            // The CUDA backend is young: every op is checked against the CPU on small random inputs before a
            // run trusts it (well under a second on a GPU). TF32 products get the looser tolerance doctor uses.
            ParityReport parity;
            try
            {
                parity = BackendParity.Run(cuda, new ParityOptions(Tolerance: allowTf32 ? 2e-3 : 1e-4));
            }
            catch
            {
                cuda.Dispose();
                throw;
            }
            if (parity.Passed)
            {
                log?.Report($"backend: {choice} -> {cuda.Description} (parity with the CPU backend: {parity.Results.Count} op cases match)");
                return cuda;
            }
            cuda.Dispose();
            reason = $"CUDA ops disagree with the CPU backend in {parity.Results.Count(r => !r.Passed)} of {parity.Results.Count} cases (run 'nativemi doctor' for the table)";
            if (choice == "cuda") throw new EnvironmentException($"--backend cuda: {reason}");
        }
        if (choice == "cuda") throw new EnvironmentException($"--backend cuda: no usable GPU: {reason}");
        log?.Report($"backend: auto -> cpu (no usable GPU: {reason.Split('\n', 2)[0].Trim()})");
        return new CpuBackend();
    }

    /// <summary>"cpu" or "cuda", with "-emulated" appended for the CPU-emulated CUDA device (emulator/).</summary>
    public static string ShortName(IComputeBackend backend)
    {
        ArgumentNullException.ThrowIfNull(backend);
        return backend is CudaBackend cuda && cuda.Device.Name.Contains("emulated", StringComparison.OrdinalIgnoreCase) ? "cuda-emulated" : backend.Name;
    }
}
