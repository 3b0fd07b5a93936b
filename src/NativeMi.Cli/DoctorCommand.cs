using System.CommandLine;
using NativeMi.Compute;
using NativeMi.Compute.Cuda;
using NativeMi.Compute.Cpu;
using NativeMi.Compute.Cuda.Native;
using NativeMi.Measurement;

namespace NativeMi.Cli;

/// <summary>
/// `nativemi doctor`: which CUDA libraries were found where, which GPU (or "no GPU"), whether the kernels compile,
/// and, with a GPU, every CUDA op against the CPU backend on fresh random data (fp32 and TF32 GEMMs), the forward
/// pass of a real model on both backends, and a small measurement whose GPU figures must lie inside the CPU run's
/// bootstrap intervals. Exits 1 on any mismatch, 4 when --require-gpu is given and no GPU is usable.
/// </summary>
internal static class DoctorCommand
{
    public static Command Create(Option<bool> verbose)
    {
        var requireGpu = new Option<bool>("--require-gpu") { Description = "Exit with 4 when no GPU is usable (for GPU machines' checks)" };
        var tolerance = new Option<double>("--tolerance") { Description = "Relative L2 error accepted per op with fp32 GEMMs", DefaultValueFactory = _ => 1e-5 };
        var tf32Tolerance = new Option<double>("--tf32-tolerance") { Description = "Relative L2 error accepted per op with TF32 GEMMs", DefaultValueFactory = _ => 2e-3 };
        var forwardTolerance = new Option<double>("--forward-tolerance") { Description = "Relative L2 error accepted per layer of the model's forward pass and per parameter gradient of its training backward pass (fp32)", DefaultValueFactory = _ => 1e-4 };
        var seed = new Option<int>("--seed") { Description = "Seed of the random parity inputs", DefaultValueFactory = _ => 20_240_531 };
        var model = new Option<string>("--model") { Description = "Model of the forward-pass and probe checks (built-in name or folder)", DefaultValueFactory = _ => "minilm" };
        var probeSentences = new Option<int>("--probe-sentences") { Description = "Sentences of the probe check's measurement (run on the GPU and on the CPU)", DefaultValueFactory = _ => 1000 };
        var skipModelChecks = new Option<bool>("--skip-model-checks") { Description = "Only the op-by-op checks: no forward pass of a model, no probe training" };
        var command = new Command("doctor", "Report the CUDA libraries, the GPU and the kernels; check every CUDA op, a model's forward pass and a probe against the CPU backend")
        {
            requireGpu, tolerance, tf32Tolerance, forwardTolerance, seed, model, probeSentences, skipModelChecks,
        };
        command.SetAction(parse => ErrorBoundary.Run(parse.GetValue(verbose), () => Run(Console.Out, new DoctorSettings(
            parse.GetValue(requireGpu), parse.GetValue(seed), parse.GetValue(tolerance), parse.GetValue(tf32Tolerance), parse.GetValue(forwardTolerance),
            parse.GetValue(skipModelChecks) ? null : parse.GetValue(model)!, parse.GetValue(probeSentences)))));
        return command;
    }

    private sealed record DoctorSettings(bool RequireGpu, int Seed, double Tolerance, double Tf32Tolerance, double ForwardTolerance, string? Model, int ProbeSentences);

    private static int Run(TextWriter output, DoctorSettings settings)
    {
        bool requireGpu = settings.RequireGpu;
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
        // The default sends attention through cuBLAS strided-batched GEMMs; the second configuration uses the fused kernel
        // up to its sequence limit; the third lets cuBLAS use TF32 tensor cores, whose ~10-bit products get the looser tolerance.
        var configurations = new (CudaBackendOptions Options, double Tolerance, string Label)[]
        {
            (new CudaBackendOptions(), settings.Tolerance, ""),
            (new CudaBackendOptions(FusedAttentionMaxSequence: CudaBackendOptions.FusedAttentionLimit), settings.Tolerance, " [fused attention kernel]"),
            (new CudaBackendOptions(AllowTf32: true), settings.Tf32Tolerance, " [TF32]"),
        };
        foreach (var (options, tolerance, label) in configurations)
        {
            using CudaBackend? backend = CudaBackend.TryCreate(out string reason, options);
            if (backend is null)
            {
                output.WriteLine($"backend: cuda unusable: {reason}");
                return ExitCodes.Environment;
            }
            output.WriteLine($"backend: {backend.Description}{label}");
            ParityReport report = BackendParity.Run(backend, new ParityOptions(Seed: settings.Seed, Tolerance: tolerance));
            output.WriteLine(report.Format());
            allMatch &= report.Passed;
        }
        if (settings.Model is not null) allMatch &= RunModelChecks(output, settings);
        output.WriteLine(allMatch ? "doctor: every CUDA check matches the CPU backend" : "doctor: MISMATCH between the CUDA and CPU backends");
        return allMatch ? ExitCodes.Success : ExitCodes.Internal;
    }

    /// <summary>A real model's forward pass and its training backward pass on both backends, then a small measurement whose GPU figures must fall inside the CPU run's intervals.</summary>
    private static bool RunModelChecks(TextWriter output, DoctorSettings settings)
    {
        string model = settings.Model!;
        using CudaBackend cuda = CudaBackend.Create();
        using var cpu = new CpuBackend();
        string[] sentences = [.. NativeMi.Text.CorpusReader.Read(MeasurementRunner.DefaultCorpusPath).Select(l => l.Text).Take(96)];
        Console.Error.WriteLine($"doctor: forward pass of {model} on both backends ({sentences.Length} sentences)");
        ForwardAgreementReport forward = BackendAgreement.Forward(model, cuda, cpu, sentences, batchSize: 32, settings.ForwardTolerance);
        output.WriteLine(forward.Format());
        Console.Error.WriteLine($"doctor: training forward and backward pass of {model} on both backends (8 sentences)");
        BackwardAgreementReport backward = BackendAgreement.Backward(model, cuda, cpu, sentences[..8], settings.ForwardTolerance);
        output.WriteLine(backward.Format());

        var options = new MeasureOptions { Model = model, MaxSentences = settings.ProbeSentences };
        Console.Error.WriteLine($"doctor: measuring {model} on {settings.ProbeSentences} sentences on the CPU, then on the GPU (probe training; minutes on the CPU)");
        string lastPhase = "";
        var progress = new SynchronousProgress<MeasureEvent>(e =>
        {
            string phase = e.Phase == "probe" ? $"probe {e.Message?.Split(':')[0]}" : e.Phase;
            if (phase == lastPhase) return;
            lastPhase = phase;
            Console.Error.WriteLine($"  {phase}");
        });
        ProbeAgreementReport probe = BackendAgreement.Probe(options, cuda, cpu, progress);
        output.WriteLine(probe.Format());
        return forward.Passed && backward.Passed && probe.Passed;
    }
}
