using NativeMi.Compute.Cuda.Native;
using Xunit;

namespace NativeMi.Tests.Cuda;

public class KernelCompileTests
{
    private static readonly string[] ExpectedKernelFiles =
        ["activation.cu", "adamw.cu", "attention.cu", "backward.cu", "decoder.cu", "embedding.cu", "fano.cu", "layernorm.cu", "pooling.cu", "probe.cu", "sixteen_bit.cu"];

    public static TheoryData<string, int> EveryKernelFileAndArchitecture()
    {
        var data = new TheoryData<string, int>();
        foreach (string file in ExpectedKernelFiles)
            foreach (int major in (int[])[8, 9])
                data.Add(file, major);
        return data;
    }

    [Fact]
    public void EveryKernelFileIsEmbeddedWithTheSharedHeader()
    {
        Assert.Equal(ExpectedKernelFiles, KernelSource.EmbeddedFileNames);
        foreach (string file in ExpectedKernelFiles)
        {
            KernelSource source = KernelSource.Embedded(file);
            Assert.Contains("common.cuh", source.Headers.Keys);
            Assert.NotEmpty(source.KernelNames());
            // NVRTC 11.8 ships no CUDA headers, so a system include would only compile where a toolkit is installed.
            Assert.DoesNotMatch(@"#include\s*<", source.Code);
        }
    }

    [NvrtcTheory]
    [MemberData(nameof(EveryKernelFileAndArchitecture))]
    public void KernelFileCompilesWithoutErrorsOrWarnings(string file, int major)
    {
        KernelSource source = KernelSource.Embedded(file);
        CompiledKernel compiled = new KernelCompiler(useCache: false).Compile(source, major, 0);

        Assert.False(compiled.FromCache);
        Assert.Equal($"compute_{major}0", compiled.Architecture);
        Assert.Equal("", compiled.Log);
        Assert.Contains($".target sm_{major}0", compiled.Ptx);
        foreach (string kernel in source.KernelNames())
            Assert.Contains($".entry {kernel}(", compiled.Ptx);
    }

    [NvrtcTheory]
    [MemberData(nameof(EveryKernelFileAndArchitecture))]
    public void KernelFileCompilesToACubinHoldingEveryKernel(string file, int major)
    {
        KernelSource source = KernelSource.Embedded(file);
        CompiledCubin compiled = KernelCompiler.CompileCubin(source, major, 0);

        Assert.Equal($"sm_{major}0", compiled.Architecture);
        Assert.Equal("", compiled.Log);
        Assert.Equal([0x7F, (byte)'E', (byte)'L', (byte)'F'], compiled.Image[..4]);
        // Kernel names sit in the ELF string table as plain bytes.
        string strings = System.Text.Encoding.ASCII.GetString(compiled.Image);
        foreach (string kernel in source.KernelNames())
            Assert.Contains(kernel, strings);
    }

    [NvrtcFact]
    public void CompileErrorCarriesTheStatusNameAndTheLog()
    {
        var broken = new KernelSource("broken.cu", "extern \"C\" __global__ void broken(float* x) { x[0] = undeclared_name; }",
            new Dictionary<string, string>());
        var error = Assert.Throws<CudaException>(() => new KernelCompiler(useCache: false).Compile(broken, 9, 0));
        Assert.Equal("NVRTC_ERROR_COMPILATION", error.StatusName);
        Assert.Contains("broken.cu", error.Call);
        Assert.Contains("undeclared_name", error.Detail);
    }

    [NvrtcFact]
    public void WarningIsAnErrorUnlessAllowed()
    {
        var warns = new KernelSource("warns.cu", "extern \"C\" __global__ void warns(float* x) { int unused_variable; x[0] = 1.0f; }",
            new Dictionary<string, string>());
        var compiler = new KernelCompiler(useCache: false);
        var error = Assert.Throws<CudaException>(() => compiler.Compile(warns, 8, 0));
        Assert.Contains("warnings are treated as errors", error.Detail);
        Assert.Contains("unused_variable", error.Detail);

        CompiledKernel allowed = compiler.Compile(warns, 8, 0, new KernelCompileOptions(TreatWarningsAsErrors: false));
        Assert.Contains("warning", allowed.Log, StringComparison.OrdinalIgnoreCase);
        Assert.Contains(".entry warns(", allowed.Ptx);
    }

    [NvrtcFact]
    public void SecondCompileComesFromTheCacheAndAChangedOptionDoesNot()
    {
        string folder = Path.Combine(Path.GetTempPath(), "nativemi-kernel-cache-" + Guid.NewGuid().ToString("N"));
        try
        {
            var compiler = new KernelCompiler(folder);
            KernelSource source = KernelSource.Embedded("adamw.cu");
            CompiledKernel first = compiler.Compile(source, 9, 0);
            CompiledKernel second = compiler.Compile(source, 9, 0);
            CompiledKernel otherArchitecture = compiler.Compile(source, 8, 0);
            CompiledKernel noFma = compiler.Compile(source, 9, 0, new KernelCompileOptions(FusedMultiplyAdd: false));

            Assert.False(first.FromCache);
            Assert.True(second.FromCache);
            Assert.Equal(first.Ptx, second.Ptx);
            Assert.False(otherArchitecture.FromCache);
            Assert.False(noFma.FromCache);
            Assert.Equal(3, Directory.GetFiles(folder, "*.ptx").Length);

            // A truncated cache file is not trusted: the kernel is compiled again.
            string cached = Directory.GetFiles(folder, "adamw-compute_90-*.ptx").OrderBy(File.GetLastWriteTimeUtc).First();
            File.WriteAllText(cached, "garbage");
            CompiledKernel afterCorruption = new KernelCompiler(folder).Compile(source, 9, 0);
            Assert.Contains(".entry adamw_step(", afterCorruption.Ptx);
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }
}
