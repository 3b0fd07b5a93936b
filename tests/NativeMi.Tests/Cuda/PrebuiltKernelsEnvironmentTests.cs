using NativeMi.Cli;
using NativeMi.Compute.Cuda.Native;
using NativeMi.Tests.Cli;
using Xunit;

namespace NativeMi.Tests.Cuda;

/// <summary>
/// The locator and doctor as a user drives them, through NATIVEMI_KERNEL_PTX_PATH. The variable is process-wide, so
/// these run in the command-line collection, which runs alone.
/// </summary>
[Collection(CliCollection.Name)]
public class PrebuiltKernelsEnvironmentTests
{
    private static T WithFolderVariable<T>(string? value, Func<T> action)
    {
        string? original = Environment.GetEnvironmentVariable(PrebuiltKernels.FolderVariable);
        Environment.SetEnvironmentVariable(PrebuiltKernels.FolderVariable, value);
        try
        {
            return action();
        }
        finally
        {
            Environment.SetEnvironmentVariable(PrebuiltKernels.FolderVariable, original);
        }
    }

    [Fact]
    public void LocateFindsMatchingPtxInTheFolderNamedByTheVariable()
    {
        using var folder = new PrebuiltPtxFolder();
        folder.WriteAll("compute_90");

        PrebuiltKernels prebuilt = WithFolderVariable(folder.Path, PrebuiltKernels.Locate);
        Assert.Equal(folder.Path, prebuilt.Folder);
        Assert.Equal(PrebuiltKernels.FolderVariable, prebuilt.Origin);
        foreach (string file in KernelSource.EmbeddedFileNames)
        {
            Assert.True(prebuilt.TryFind(KernelSource.Embedded(file), 9, 0, out PrebuiltKernel? kernel, out string reason), reason);
            Assert.Equal(File.ReadAllText(folder.PtxPath(file, "compute_90")), kernel.Ptx);
        }
    }

    [Fact]
    public void DoctorReportsThePrebuiltFolderAndHowManyFilesMatch()
    {
        using var folder = new PrebuiltPtxFolder();
        folder.WriteAll("compute_90");
        folder.Write("attention.cu", "compute_90", sourceHash: new string('f', 64));
        int files = KernelSource.EmbeddedFileNames.Count;

        string output = WithFolderVariable(folder.Path, () => RunDoctor().Output);
        Assert.Contains($"  prebuilt PTX: {folder.Path} (NATIVEMI_KERNEL_PTX_PATH)\n", output);
        Assert.Contains($"    compute_90: {files - 1} of {files} kernel files match the embedded sources; attention.compute_90.ptx is stale", output);

        string unset = WithFolderVariable(null, () => RunDoctor().Output);
        Assert.Contains("  prebuilt PTX: none (NATIVEMI_KERNEL_PTX_PATH is not set; no ", unset);
    }

    private static (int Code, string Output) RunDoctor()
    {
        TextWriter original = Console.Out;
        using var captured = new StringWriter();
        Console.SetOut(captured);
        try
        {
            int code = CliApp.Run(["doctor"]);
            return (code, captured.ToString().ReplaceLineEndings("\n"));
        }
        finally
        {
            Console.SetOut(original);
        }
    }
}
