using NativeMi.Compute.Cuda.Native;
using Xunit;

namespace NativeMi.Tests.Cuda;

public class CudaLibrariesTests
{
    [Fact]
    public void MissingDriverIsReportedWithWhatAndWhereNotThrown()
    {
        string empty = Directory.CreateTempSubdirectory("nativemi-no-cuda-").FullName;
        try
        {
            // Only folders, no system loader: the outcome does not depend on what this machine has installed.
            var locations = new LibrarySearchLocations(
                [new LibrarySearchStep(CudaLibraries.PathVariable, empty), new LibrarySearchStep("CUDA_HOME/lib64", Path.Combine(empty, "lib64"))],
                ["CUDA_PATH is not set"]);
            LibraryProbe probe = CudaLibraries.Probe(CudaLibrary.Driver, locations);

            Assert.False(probe.Found);
            string report = probe.Describe();
            Assert.Contains("libcuda", report);
            Assert.Contains("libcuda.so.1", report);
            Assert.Contains(empty, report);
            Assert.Contains("no such folder", report);
            Assert.Contains("CUDA_PATH is not set", report);
            Assert.Contains(CudaLibraries.PathVariable, report);
        }
        finally
        {
            Directory.Delete(empty, recursive: true);
        }
    }

    [Fact]
    public void FileThatIsNotALibraryIsReportedAsFailedToLoad()
    {
        string folder = Directory.CreateTempSubdirectory("nativemi-fake-cuda-").FullName;
        try
        {
            string fake = Path.Combine(folder, CudaLibraries.FileNames(CudaLibrary.Cublas)[0]);
            File.WriteAllText(fake, "not an ELF file");
            LibraryProbe probe = CudaLibraries.Probe(CudaLibrary.Cublas, new LibrarySearchLocations([new LibrarySearchStep("test folder", folder)], []));

            Assert.False(probe.Found);
            Assert.Contains(fake, probe.Describe());
            Assert.Contains("present but failed to load", probe.Describe());
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void DefaultSearchOrderIsExplicitFolderThenCudaHomeThenSystemLoaderThenPython()
    {
        var environment = new Dictionary<string, string?> { [CudaLibraries.PathVariable] = "/opt/mine", ["CUDA_HOME"] = "/usr/local/cuda", ["PATH"] = "" };
        LibrarySearchLocations locations = CudaLibraries.DefaultLocations(name => environment.GetValueOrDefault(name));

        string[] labels = [.. locations.Steps.Select(s => s.Label)];
        Assert.Equal(CudaLibraries.PathVariable, labels[0]);
        Assert.Equal("/opt/mine", locations.Steps[0].Folder);
        int cudaHome = Array.IndexOf(labels, "CUDA_HOME/lib64");
        int systemLoader = Array.IndexOf(labels, "system loader");
        Assert.True(cudaHome > 0 && systemLoader > cudaHome);
        Assert.Null(locations.Steps[systemLoader].Folder);
        Assert.All(locations.Steps.Skip(systemLoader + 1), step => Assert.Equal("python site-packages", step.Label));
        Assert.Contains("CUDA_PATH is not set", locations.SkippedNotes);
    }

    [Fact]
    public void PythonNvidiaFoldersAreFoundUnderAVirtualEnvironment()
    {
        string prefix = Directory.CreateTempSubdirectory("nativemi-venv-").FullName;
        try
        {
            string lib = Directory.CreateDirectory(Path.Combine(prefix, "lib", "python3.12", "site-packages", "nvidia", "cublas", "lib")).FullName;
            Directory.CreateDirectory(Path.Combine(prefix, "lib", "python3.12", "site-packages", "nvidia", "no_lib_folder"));
            var environment = new Dictionary<string, string?> { ["VIRTUAL_ENV"] = prefix, ["PATH"] = "" };
            IReadOnlyList<string> folders = CudaLibraries.PythonNvidiaLibraryFolders(name => environment.GetValueOrDefault(name));
            Assert.Contains(lib, folders);
            Assert.DoesNotContain(folders, f => f.Contains("no_lib_folder", StringComparison.Ordinal));
        }
        finally
        {
            Directory.Delete(prefix, recursive: true);
        }
    }

    [Fact]
    public void SonamesOfCuda13Then12Then11AreTried()
    {
        if (OperatingSystem.IsWindows()) return;
        Assert.Equal(["libcuda.so.1", "libcuda.so"], CudaLibraries.FileNames(CudaLibrary.Driver));
        Assert.Equal(["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"], CudaLibraries.FileNames(CudaLibrary.Nvrtc));
        Assert.Equal(["libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so"], CudaLibraries.FileNames(CudaLibrary.Cublas));
    }

    [Fact]
    public void ProbingThisMachineNeverThrowsAndAMissingLibraryExplainsItself()
    {
        foreach (LibraryProbe probe in CudaLibraries.All())
        {
            string report = probe.Describe();
            if (probe.Found) Assert.False(string.IsNullOrEmpty(probe.LoadedFrom));
            else
            {
                Assert.Contains("not found", report);
                Assert.Contains("system loader", report);
                Assert.Contains(probe.FileNames[0], report);
            }
        }
        if (!CudaLibraries.Get(CudaLibrary.Driver).Found)
        {
            var error = Assert.Throws<CudaException>(() => CudaLibraries.Require(CudaLibrary.Driver));
            Assert.Equal("LIBRARY_NOT_FOUND", error.StatusName);
            Assert.Contains("libcuda.so.1", error.Message);
        }
    }
}
