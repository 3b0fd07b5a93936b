using System.CommandLine;
using NativeMi.Compute;

namespace NativeMi.Cli;

/// <summary>The --backend and --tf32 options every command that runs a model shares, and the choice they make.</summary>
internal static class BackendChoice
{
    public static Option<string> BackendOption()
    {
        var backend = new Option<string>("--backend") { Description = "Compute backend: auto (CUDA when a usable GPU is present), cpu or cuda", DefaultValueFactory = _ => "auto" };
        backend.AcceptOnlyFromAmong([.. BackendSelection.Choices]);
        return backend;
    }

    public static Option<bool> Tf32Option() =>
        new("--tf32") { Description = "Let cuBLAS use TF32 tensor cores for fp32 GEMMs on the GPU (faster, ~10-bit products; off by default)" };

    /// <summary>cpu, cuda (an error when unusable) or auto (CUDA when a usable GPU is present, else the CPU, said in one line on standard error).</summary>
    public static IComputeBackend Choose(string choice, bool allowTf32 = false) =>
        BackendSelection.Choose(choice, allowTf32, new SynchronousProgress<string>(line => Console.Error.WriteLine(line)));
}
