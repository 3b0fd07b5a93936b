using System.CommandLine;
using NativeMi.Compute;
using NativeMi.Compute.Cpu;
using NativeMi.Compute.Cuda;

namespace NativeMi.Cli;

/// <summary>The --backend and --tf32 options every command that runs a model shares, and the choice they make.</summary>
internal static class BackendChoice
{
    public static Option<string> BackendOption()
    {
        var backend = new Option<string>("--backend") { Description = "Compute backend: auto (CUDA when a usable GPU is present), cpu or cuda", DefaultValueFactory = _ => "auto" };
        backend.AcceptOnlyFromAmong("auto", "cpu", "cuda");
        return backend;
    }

    public static Option<bool> Tf32Option() =>
        new("--tf32") { Description = "Let cuBLAS use TF32 tensor cores for fp32 GEMMs on the GPU (faster, ~10-bit products; off by default)" };

    /// <summary>cpu, cuda (an error when unusable) or auto (CUDA when a usable GPU is present, else the CPU, said in one line).</summary>
    public static IComputeBackend Choose(string choice, bool allowTf32 = false)
    {
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
            catch (DeviceOutOfMemoryException)
            {
                cuda.Dispose();
                throw;
            }
            if (parity.Passed)
            {
                Console.Error.WriteLine($"backend: {choice} -> {cuda.Description} (parity with the CPU backend: {parity.Results.Count} op cases match)");
                return cuda;
            }
            cuda.Dispose();
            reason = $"CUDA ops disagree with the CPU backend in {parity.Results.Count(r => !r.Passed)} of {parity.Results.Count} cases (run 'nativemi doctor' for the table)";
            if (choice == "cuda") throw new EnvironmentException($"--backend cuda: {reason}");
        }
        if (choice == "cuda") throw new EnvironmentException($"--backend cuda: no usable GPU: {reason}");
        Console.Error.WriteLine($"backend: auto -> cpu (no usable GPU: {reason.Split('\n', 2)[0].Trim()})");
        return new CpuBackend();
    }
}
