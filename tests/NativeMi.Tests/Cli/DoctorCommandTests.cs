using NativeMi.Cli;
using NativeMi.Compute.Cuda.Native;
using Xunit;

namespace NativeMi.Tests.Cli;

[Collection(CliCollection.Name)]
public class DoctorCommandTests
{
    private static (int Code, string Output) RunDoctor(params string[] extra)
    {
        TextWriter original = Console.Out;
        using var captured = new StringWriter();
        Console.SetOut(captured);
        try
        {
            int code = CliApp.Run(["doctor", .. extra]);
            return (code, captured.ToString());
        }
        finally
        {
            Console.SetOut(original);
        }
    }

    /// <summary>Whether the driver reports a usable device (false when libcuda is missing or cuInit fails).</summary>
    internal static bool GpuPresent()
    {
        try { return NativeMi.Compute.Cuda.CudaDevices.List().Count > 0; }
        catch (NativeMi.Compute.Cuda.Native.CudaException) { return false; }
    }

    [Fact]
    public void ReportsLibrariesAndTheGpuOrItsAbsence()
    {
        var (code, output) = RunDoctor("--skip-model-checks");
        Assert.Contains("libraries:", output);
        Assert.Contains("libcuda", output);
        Assert.Contains("libcublas", output);
        Assert.Contains("libnvrtc", output);
        if (!GpuPresent())
        {
            Assert.Equal(0, code);
            Assert.Contains("gpu: no GPU", output);
            Assert.Contains("backend: cpu only", output);
        }
        else
        {
            // On a GPU every op must match in every configuration doctor checks (fp32, fused attention, TF32).
            Assert.Equal(0, code);
            var counts = System.Text.RegularExpressions.Regex.Matches(output, @"(\d+) of (\d+) cases match");
            Assert.Equal(3, counts.Count);
            Assert.All(counts, count => Assert.Equal(count.Groups[2].Value, count.Groups[1].Value));
        }
        if (!CudaLibraries.Get(CudaLibrary.Driver).Found) Assert.Contains("libcuda.so.1", output);
        if (CudaLibraries.Get(CudaLibrary.Nvrtc).Found)
            Assert.Contains($"{KernelSource.EmbeddedFileNames.Count} of {KernelSource.EmbeddedFileNames.Count} kernel files compile for compute_90", output);
    }

    [NoGpuFact]
    public void RequireGpuFailsWithTheEnvironmentCodeWhenThereIsNone()
    {
        var (code, output) = RunDoctor("--require-gpu");
        Assert.Equal(4, code);
        Assert.Contains("gpu: no GPU", output);
    }
}

/// <summary>A fact about the machine without a GPU: skipped, with the reason, where the driver reports a device.</summary>
public sealed class NoGpuFactAttribute : FactAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when a GPU is present.</summary>
    public NoGpuFactAttribute()
    {
        if (DoctorCommandTests.GpuPresent()) Skip = "a CUDA device is present; this checks the behaviour without one";
    }
}
