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

    [Fact]
    public void ReportsLibrariesAndTheGpuOrItsAbsence()
    {
        var (code, output) = RunDoctor();
        Assert.Contains("libraries:", output);
        Assert.Contains("libcuda", output);
        Assert.Contains("libcublas", output);
        Assert.Contains("libnvrtc", output);
        if (!CudaLibraries.Get(CudaLibrary.Driver).Found)
        {
            Assert.Equal(0, code);
            Assert.Contains("gpu: no GPU", output);
            Assert.Contains("libcuda.so.1", output);
        }
        if (CudaLibraries.Get(CudaLibrary.Nvrtc).Found)
            Assert.Contains("8 of 8 kernel files compile for compute_90", output);
    }

    [Fact]
    public void RequireGpuFailsWithTheEnvironmentCodeWhenThereIsNone()
    {
        if (CudaLibraries.Get(CudaLibrary.Driver).Found) return;
        var (code, _) = RunDoctor("--require-gpu");
        Assert.Equal(4, code);
    }
}
