using System.Text.RegularExpressions;
using NativeMi.Compute.Cuda.Native;
using Xunit;

namespace NativeMi.Tests.Cuda;

/// <summary>
/// The CMake side of prebuilt PTX (CMakeLists.txt, cmake/KernelPtxManifest.cmake) against the engine's locator. A
/// script stands in for nvcc, so neither a CUDA toolkit nor a GPU is needed.
/// </summary>
public class CmakePrebuiltKernelTests
{
    private static string Root => CmakeTools.RepositoryRoot ?? throw new InvalidOperationException("repository root not found");

    private static string ManifestScript => Path.Combine(Root, "cmake", "KernelPtxManifest.cmake");

    [CmakeFact]
    public void ManifestScriptComputesTheEngineSourceHashForEveryKernelFile()
    {
        foreach (string file in KernelSource.EmbeddedFileNames)
        {
            KernelSource embedded = KernelSource.Embedded(file);
            string onDisk = Path.Combine(Root, "kernels", file);
            Assert.Equal(embedded.Code, File.ReadAllText(onDisk));

            var (code, _, error) = CmakeTools.Run($"-DSOURCE={onDisk}", "-P", ManifestScript);
            Assert.True(code == 0, error);
            Match printed = Regex.Match(error, "^source-sha256 ([0-9a-f]{64})$", RegexOptions.Multiline);
            Assert.True(printed.Success, error);
            Assert.Equal(PrebuiltKernels.SourceHash(embedded), printed.Groups[1].Value);
        }
    }

    [CmakeFact]
    public void ManifestScriptWritesAManifestTheLocatorAccepts()
    {
        using var folder = new PrebuiltPtxFolder();
        KernelSource source = KernelSource.Embedded("attention.cu");
        string ptx = folder.PtxPath("attention.cu", "compute_80");
        File.WriteAllText(ptx, PrebuiltPtxFolder.FakePtx(source, "compute_80"));

        var (code, _, error) = CmakeTools.Run($"-DSOURCE={Path.Combine(Root, "kernels", "attention.cu")}", "-DARCHITECTURE=compute_80",
            $"-DPTX={ptx}", $"-DOUTPUT={ptx}{PrebuiltKernels.ManifestSuffix}", "-DCOMPILER=nvcc 0.0", "-P", ManifestScript);
        Assert.True(code == 0, error);

        PrebuiltKernels prebuilt = PrebuiltKernels.Locate(folder.Path, folder.Path);
        Assert.True(prebuilt.TryLoad(source, "compute_80", out PrebuiltKernel? kernel, out string reason), reason);
        Assert.Equal("nvcc 0.0", kernel.Compiler);
    }

    [CmakeFact(needsBuildTool: true)]
    public void CmakeBuildAndInstallProducePtxTheLocatorAcceptsForEveryKernelAndArchitecture()
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) return;  // the stand-in nvcc is a bash script
        using var work = new PrebuiltPtxFolder();
        string fakeNvcc = Path.Combine(work.Path, "nvcc");
        File.WriteAllText(fakeNvcc, FakeNvccScript);
        File.SetUnixFileMode(fakeNvcc, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        string build = Path.Combine(work.Path, "build"), prefix = Path.Combine(work.Path, "install");

        var configure = CmakeTools.Run("-S", Root, "-B", build, $"-DNVCC={fakeNvcc}");
        Assert.True(configure.Code == 0, configure.Output + configure.Error);
        Assert.Contains("nvcc 99.9.1", configure.Output);
        var compile = CmakeTools.Run("--build", build);
        Assert.True(compile.Code == 0, compile.Output + compile.Error);
        var install = CmakeTools.Run("--install", build, "--prefix", prefix);
        Assert.True(install.Code == 0, install.Output + install.Error);

        foreach (PrebuiltKernels prebuilt in new[]
                 {
                     PrebuiltKernels.Locate(Path.Combine(build, "ptx"), work.Path),
                     PrebuiltKernels.Locate(null, prefix),  // cmake --install into the executable's folder
                 })
        {
            Assert.NotNull(prebuilt.Folder);
            Assert.Equal(["compute_80", "compute_90"], prebuilt.Architectures());
            foreach (string file in KernelSource.EmbeddedFileNames)
                foreach (string architecture in prebuilt.Architectures())
                {
                    Assert.True(prebuilt.TryLoad(KernelSource.Embedded(file), architecture, out PrebuiltKernel? kernel, out string reason), reason);
                    Assert.Equal("nvcc 99.9.1", kernel.Compiler);
                }
            Assert.Equal(2 * 2 * KernelSource.EmbeddedFileNames.Count, Directory.GetFiles(prebuilt.Folder).Length);
        }
    }

    // Checks the options CMakeLists.txt passes to nvcc (warnings must stay errors) and writes PTX with an entry per kernel.
    private const string FakeNvccScript = """
        #!/usr/bin/env bash
        set -euo pipefail
        if [ "${1:-}" = --version ]; then echo "Cuda compilation tools, release 99.9, V99.9.1"; exit 0; fi
        out= arch= source= werror=
        while [ $# -gt 0 ]; do
          case "$1" in
            -o) out=$2; shift ;;
            -arch=compute_*) arch=${1#-arch=compute_} ;;
            -Werror) [ "$2" = all-warnings ] && werror=yes; shift ;;
            -ptx|-std=c++17) ;;
            -*) echo "stand-in nvcc: unexpected option $1" >&2; exit 2 ;;
            *) source=$1 ;;
          esac
          shift
        done
        [ -n "$werror" ] || { echo "stand-in nvcc: warnings are not errors" >&2; exit 2; }
        {
          printf '.version 7.8\n.target sm_%s\n.address_size 64\n' "$arch"
          grep -oE 'extern "C" __global__ void [A-Za-z_0-9]+' "$source" | awk '{ print "\n.visible .entry " $NF "(\n)\n{\n\tret;\n}" }'
        } > "$out"

        """;
}
