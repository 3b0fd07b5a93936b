using System.CommandLine;
using NativeMi.Compute;
using NativeMi.Compute.Cuda;
using NativeMi.Compute.Cuda.Native;

namespace NativeMi.Cli;

/// <summary>
/// `nativemi doctor`: which CUDA libraries were found where, which GPU (or "no GPU"), whether the kernels compile,
/// and, with a GPU, every CUDA op against the CPU backend on fresh random data. Exits 1 on any mismatch, 4 when
/// --require-gpu is given and no GPU is usable.
/// </summary>
internal static class DoctorCommand
{
    public static Command Create(Option<bool> verbose)
    {
        var requireGpu = new Option<bool>("--require-gpu") { Description = "Exit with 4 when no GPU is usable (for GPU machines' checks)" };
        var tolerance = new Option<double>("--tolerance") { Description = "Relative L2 error accepted per op", DefaultValueFactory = _ => 1e-4 };
        var seed = new Option<int>("--seed") { Description = "Seed of the random parity inputs", DefaultValueFactory = _ => 20_240_531 };
        var command = new Command("doctor", "Report the CUDA libraries, the GPU and the kernels, and check every CUDA op against the CPU backend")
        {
            requireGpu, tolerance, seed,
        };
        command.SetAction(parse => ErrorBoundary.Run(parse.GetValue(verbose), () =>
            Run(Console.Out, parse.GetValue(requireGpu), new ParityOptions(Seed: parse.GetValue(seed), Tolerance: parse.GetValue(tolerance)))));
        return command;
    }

    private static int Run(TextWriter output, bool requireGpu, ParityOptions parity)
    {
        output.WriteLine("libraries:");
        foreach (LibraryProbe probe in CudaLibraries.All())
            output.WriteLine("  " + probe.Describe().Replace("\n", "\n  ", StringComparison.Ordinal));

        output.WriteLine("kernels:");
        int compiled = 0;
        if (CudaLibraries.Get(CudaLibrary.Nvrtc).Found)
        {
            (int major, int minor) = KernelCompiler.NvrtcVersion();
            var compiler = new KernelCompiler(useCache: false);
            foreach (string file in KernelSource.EmbeddedFileNames)
            {
                try
                {
                    compiler.Compile(KernelSource.Embedded(file), 9, 0);
                    compiled++;
                }
                catch (CudaException e)
                {
                    output.WriteLine($"  {file}: {e.Message}");
                }
            }
            output.WriteLine($"  {compiled} of {KernelSource.EmbeddedFileNames.Count} kernel files compile for compute_90 with NVRTC {major}.{minor}");
        }
        else
        {
            output.WriteLine("  not compiled: NVRTC not found");
        }
        // Prebuilt PTX is optional, so what it reports is information, never a failure.
        output.WriteLine("  " + PrebuiltKernels.Locate().Describe().Replace("\n", "\n  ", StringComparison.Ordinal));
        bool kernelsOk = compiled == KernelSource.EmbeddedFileNames.Count || !CudaLibraries.Get(CudaLibrary.Nvrtc).Found;

        IReadOnlyList<CudaDeviceInfo> devices;
        try
        {
            devices = CudaDevices.List();
            (int driverMajor, int driverMinor) = CudaDevices.DriverVersion();
            output.WriteLine($"driver: CUDA {driverMajor}.{driverMinor}");
        }
        catch (CudaException e)
        {
            output.WriteLine($"gpu: no GPU ({e.Message.Split('\n')[0]})");
            output.WriteLine("backend: cpu only");
            return !kernelsOk ? ExitCodes.Internal : requireGpu ? ExitCodes.Environment : ExitCodes.Success;
        }
        if (devices.Count == 0)
        {
            output.WriteLine("gpu: no GPU (the driver reports no CUDA device)");
            return !kernelsOk ? ExitCodes.Internal : requireGpu ? ExitCodes.Environment : ExitCodes.Success;
        }
        foreach (CudaDeviceInfo device in devices) output.WriteLine($"gpu {device.Ordinal}: {device}");

        bool allMatch = kernelsOk;
        // The second configuration sends every attention call through the cuBLAS strided-batched path.
        foreach (CudaBackendOptions options in new[] { new CudaBackendOptions(), new CudaBackendOptions(FusedAttentionMaxSequence: 0) })
        {
            using CudaBackend? backend = CudaBackend.TryCreate(out string reason, options);
            if (backend is null)
            {
                output.WriteLine($"backend: cuda unusable: {reason}");
                return ExitCodes.Environment;
            }
            output.WriteLine($"backend: {backend.Description}{(options.FusedAttentionMaxSequence == 0 ? " [attention via cuBLAS]" : "")}");
            ParityReport report = BackendParity.Run(backend, parity);
            output.WriteLine(report.Format());
            allMatch &= report.Passed;
        }
        output.WriteLine(allMatch ? "doctor: every CUDA op matches the CPU backend" : "doctor: MISMATCH between the CUDA and CPU backends");
        return allMatch ? ExitCodes.Success : ExitCodes.Internal;
    }
}
