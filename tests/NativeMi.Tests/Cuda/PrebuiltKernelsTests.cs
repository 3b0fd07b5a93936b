using System.Security.Cryptography;
using NativeMi.Compute.Cuda.Native;
using Xunit;

namespace NativeMi.Tests.Cuda;

public class PrebuiltKernelsTests
{
    private static readonly KernelSource Adamw = KernelSource.Embedded("adamw.cu");

    private static PrebuiltKernels In(PrebuiltPtxFolder folder) => PrebuiltKernels.Locate(folder.Path, "/nonexistent-executable-folder");

    [Fact]
    public void EngineHashFollowsTheDocumentedDefinitionForEveryKernelFile()
    {
        foreach (string file in KernelSource.EmbeddedFileNames)
        {
            KernelSource source = KernelSource.Embedded(file);
            Assert.Equal(PrebuiltPtxFolder.DocumentedSourceHash(source), PrebuiltKernels.SourceHash(source));
        }
    }

    [Fact]
    public void SourceHashChangesWithTheCodeAndWithAnyHeader()
    {
        string original = PrebuiltKernels.SourceHash(Adamw);
        Assert.NotEqual(original, PrebuiltKernels.SourceHash(Adamw with { Code = Adamw.Code + " " }));
        var headers = new Dictionary<string, string>(Adamw.Headers) { ["common.cuh"] = Adamw.Headers["common.cuh"] + "\n" };
        Assert.NotEqual(original, PrebuiltKernels.SourceHash(Adamw with { Headers = headers }));
        headers = new Dictionary<string, string>(Adamw.Headers) { ["unused.cuh"] = "" };
        Assert.NotEqual(original, PrebuiltKernels.SourceHash(Adamw with { Headers = headers }));
    }

    [Fact]
    public void AcceptsPtxWhoseManifestMatchesTheEmbeddedSources()
    {
        using var folder = new PrebuiltPtxFolder();
        string path = folder.Write("adamw.cu", "compute_90");

        Assert.True(In(folder).TryFind(Adamw, 9, 0, out PrebuiltKernel? kernel, out string reason), reason);
        Assert.Equal("", reason);
        Assert.Equal("compute_90", kernel.Architecture);
        Assert.Equal(path, kernel.PtxPath);
        Assert.Equal(File.ReadAllText(path), kernel.Ptx);
        Assert.Equal("test", kernel.Compiler);
    }

    [Fact]
    public void PicksTheNewestArchitectureTheDeviceRuns()
    {
        using var folder = new PrebuiltPtxFolder();
        folder.Write("adamw.cu", "compute_80");
        folder.Write("adamw.cu", "compute_90");
        PrebuiltKernels prebuilt = In(folder);

        Assert.Equal(["compute_80", "compute_90"], prebuilt.Architectures());
        Assert.True(prebuilt.TryFind(Adamw, 8, 0, out PrebuiltKernel? ampere, out _));
        Assert.Equal("compute_80", ampere.Architecture);
        Assert.True(prebuilt.TryFind(Adamw, 8, 9, out PrebuiltKernel? ada, out _));
        Assert.Equal("compute_80", ada.Architecture);
        Assert.True(prebuilt.TryFind(Adamw, 12, 0, out PrebuiltKernel? blackwell, out _));
        Assert.Equal("compute_90", blackwell.Architecture);

        Assert.False(prebuilt.TryFind(Adamw, 7, 5, out PrebuiltKernel? turing, out string reason));
        Assert.Null(turing);
        Assert.Contains("compute capability 7.5 or older", reason);
    }

    [Fact]
    public void RefusesAStaleSourceHash()
    {
        using var folder = new PrebuiltPtxFolder();
        string otherSources = Convert.ToHexStringLower(SHA256.HashData("an older adamw.cu"u8));
        folder.Write("adamw.cu", "compute_90", sourceHash: otherSources);

        Assert.False(In(folder).TryFind(Adamw, 9, 0, out PrebuiltKernel? kernel, out string reason));
        Assert.Null(kernel);
        Assert.Contains("adamw.compute_90.ptx is stale", reason);
        Assert.Contains(otherSources[..12], reason);
        Assert.DoesNotContain('\n', reason);
    }

    [Fact]
    public void RefusesPtxWithoutAManifest()
    {
        using var folder = new PrebuiltPtxFolder();
        string path = folder.Write("adamw.cu", "compute_90");
        File.Delete(path + PrebuiltKernels.ManifestSuffix);

        Assert.False(In(folder).TryFind(Adamw, 9, 0, out _, out string reason));
        Assert.Contains("adamw.compute_90.ptx.manifest missing", reason);
    }

    [Fact]
    public void RefusesGarbagePtxEvenWhenTheManifestVouchesForItsBytes()
    {
        using var folder = new PrebuiltPtxFolder();
        folder.Write("adamw.cu", "compute_90", ptx: "garbage\n.entry adamw_step(\n");

        Assert.False(In(folder).TryFind(Adamw, 9, 0, out _, out string reason));
        Assert.Contains("is not PTX for compute_90", reason);
    }

    [Fact]
    public void RefusesPtxForAnotherTargetOrMissingAKernel()
    {
        using var folder = new PrebuiltPtxFolder();
        folder.Write("adamw.cu", "compute_90", ptx: PrebuiltPtxFolder.FakePtx(Adamw, "compute_80"));
        Assert.False(In(folder).TryFind(Adamw, 9, 0, out _, out string wrongTarget));
        Assert.Contains("no .target sm_90", wrongTarget);

        folder.Write("adamw.cu", "compute_90", ptx: ".version 7.8\n.target sm_90\n.address_size 64\n");
        Assert.False(In(folder).TryFind(Adamw, 9, 0, out _, out string noKernel));
        Assert.Contains("does not define kernel adamw_step", noKernel);
    }

    [Fact]
    public void RefusesPtxChangedAfterTheBuild()
    {
        using var folder = new PrebuiltPtxFolder();
        string path = folder.Write("adamw.cu", "compute_90");
        File.AppendAllText(path, "\n// edited\n");

        Assert.False(In(folder).TryFind(Adamw, 9, 0, out _, out string reason));
        Assert.Contains("differs from the PTX its manifest describes", reason);
    }

    public static TheoryData<string, string> MalformedManifests()
    {
        string source = PrebuiltKernels.SourceHash(Adamw);
        string anyHash = new('a', 64);
        return new TheoryData<string, string>
        {
            { "", "does not start with" },
            { "\0\u00ff garbage", "does not start with" },
            { "nativemi-kernel-ptx 2\n", "does not start with" },
            { $"nativemi-kernel-ptx 1\nsource adamw.cu\narchitecture compute_90\nsource-sha256 {source}\n", "no 'ptx-sha256' line" },
            { $"nativemi-kernel-ptx 1\nsource adamw.cu\narchitecture compute_90\nsource-sha256 {source[..40]}\nptx-sha256 {anyHash}\n", "'source-sha256' is not 64 hex digits" },
            { $"nativemi-kernel-ptx 1\nsource adamw.cu\nsource adamw.cu\n", "key 'source' appears twice" },
            { "nativemi-kernel-ptx 1\njust-a-word\n", "is not 'key value'" },
            { $"nativemi-kernel-ptx 1\nsource probe.cu\narchitecture compute_90\nsource-sha256 {source}\nptx-sha256 {anyHash}\n", "describes probe.cu for compute_90" },
            { $"nativemi-kernel-ptx 1\nsource adamw.cu\narchitecture compute_80\nsource-sha256 {source}\nptx-sha256 {anyHash}\n", "describes adamw.cu for compute_80" },
        };
    }

    [Theory]
    [MemberData(nameof(MalformedManifests))]
    public void RefusesAMalformedOrMismatchedManifest(string manifest, string expectedReason)
    {
        using var folder = new PrebuiltPtxFolder();
        string path = folder.Write("adamw.cu", "compute_90");
        File.WriteAllText(path + PrebuiltKernels.ManifestSuffix, manifest);

        Assert.False(In(folder).TryFind(Adamw, 9, 0, out _, out string reason));
        Assert.Contains(expectedReason, reason);
        Assert.DoesNotContain('\n', reason);
    }

    [Fact]
    public void AMissingFileOrFolderIsAReasonNotAnException()
    {
        using var folder = new PrebuiltPtxFolder();
        folder.Write("probe.cu", "compute_90");
        Assert.False(In(folder).TryFind(Adamw, 9, 0, out _, out string missingFile));
        Assert.Contains("adamw.compute_90.ptx missing in " + folder.Path, missingFile);

        // A folder where the PTX should be, and a manifest that is a folder, are unreadable files: reasons too.
        Directory.CreateDirectory(folder.PtxPath("adamw.cu", "compute_90"));
        Assert.False(In(folder).TryFind(Adamw, 9, 0, out _, out string folderInstead));
        Assert.Contains("adamw.compute_90.ptx", folderInstead);
        string probe = folder.PtxPath("probe.cu", "compute_90") + PrebuiltKernels.ManifestSuffix;
        File.Delete(probe);
        Directory.CreateDirectory(probe);
        Assert.False(In(folder).TryFind(KernelSource.Embedded("probe.cu"), 9, 0, out _, out string manifestFolder));
        Assert.Contains("probe.compute_90.ptx", manifestFolder);

        PrebuiltKernels none = PrebuiltKernels.Locate(null, folder.Path);
        Assert.Null(none.Folder);
        Assert.False(none.TryFind(Adamw, 9, 0, out _, out string noFolder));
        Assert.Contains("NATIVEMI_KERNEL_PTX_PATH is not set", noFolder);
        Assert.Contains(Path.Combine(folder.Path, PrebuiltKernels.DefaultFolderName), noFolder);
        Assert.False(none.TryLoad(Adamw, "compute_90", out _, out _));
        Assert.Empty(none.Architectures());
        Assert.False(In(folder).TryLoad(Adamw, "sm_90", out _, out string badArchitecture));
        Assert.Contains("not a compute_NN architecture", badArchitecture);
    }

    [Fact]
    public void TheVariableComesFirstThenTheFolderNextToTheExecutable()
    {
        using var executable = new PrebuiltPtxFolder();
        using var named = new PrebuiltPtxFolder();
        string besideExecutable = Path.Combine(executable.Path, PrebuiltKernels.DefaultFolderName);

        Assert.Null(PrebuiltKernels.Locate("  ", executable.Path).Folder);
        Directory.CreateDirectory(besideExecutable);

        PrebuiltKernels fromVariable = PrebuiltKernels.Locate(named.Path, executable.Path);
        Assert.Equal(named.Path, fromVariable.Folder);
        Assert.Equal(PrebuiltKernels.FolderVariable, fromVariable.Origin);

        PrebuiltKernels unset = PrebuiltKernels.Locate(null, executable.Path);
        Assert.Equal(besideExecutable, unset.Folder);
        Assert.Equal("next to the executable", unset.Origin);

        // A variable naming no folder is skipped, not fatal.
        PrebuiltKernels wrongVariable = PrebuiltKernels.Locate(Path.Combine(named.Path, "absent"), executable.Path);
        Assert.Equal(besideExecutable, wrongVariable.Folder);
    }

    [Fact]
    public void DescribeCountsMatchingFilesPerArchitectureAndSaysWhyOthersFail()
    {
        using var folder = new PrebuiltPtxFolder();
        folder.WriteAll("compute_80");
        folder.WriteAll("compute_90");
        folder.Write("fano.cu", "compute_90", sourceHash: new string('0', 64));

        string description = In(folder).Describe();
        int files = KernelSource.EmbeddedFileNames.Count;
        Assert.StartsWith($"prebuilt PTX: {folder.Path} (NATIVEMI_KERNEL_PTX_PATH)", description);
        Assert.Contains($"compute_80: {files} of {files} kernel files match the embedded sources\n", description);
        Assert.Contains($"compute_90: {files - 1} of {files} kernel files match the embedded sources; fano.compute_90.ptx is stale", description);

        using var empty = new PrebuiltPtxFolder();
        Assert.Contains("holds no <name>.compute_NN.ptx files", In(empty).Describe());
        Assert.StartsWith("prebuilt PTX: none (NATIVEMI_KERNEL_PTX_PATH is not set", PrebuiltKernels.Locate(null, empty.Path).Describe());
    }
}
