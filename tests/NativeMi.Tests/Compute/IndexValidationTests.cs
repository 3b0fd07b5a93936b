using NativeMi.Compute;
using NativeMi.Compute.Cpu;
using NativeMi.Compute.Cuda.Native;
using Xunit;

namespace NativeMi.Tests.Compute;

/// <summary>A bad index is an error naming the op, never a read or write of other memory (issue 15).</summary>
public class IndexValidationTests
{
    [Fact]
    public void CpuGathersScattersAndTargetsRefuseOutOfRangeIndices()
    {
        using var backend = new CpuBackend();
        using DeviceBuffer<float> table = backend.Upload<float>(new float[5 * 3]), rows = backend.Allocate<float>(2 * 3);
        using DeviceBuffer<int> bad = backend.Upload<int>([1, 5]), negative = backend.Upload<int>([-1, 0]);
        Assert.Contains("index 5 at row 1", Assert.Throws<ArgumentOutOfRangeException>(() => backend.GatherRows(table, bad, rows, 2, 3)).Message);
        Assert.Contains("index -1 at row 0", Assert.Throws<ArgumentOutOfRangeException>(() => backend.ScatterAddRows(rows, negative, table, 2, 3)).Message);
        // The scatter checks every index before it adds anything.
        Assert.All(CpuBackend.Array(table), v => Assert.Equal(0f, v));

        using DeviceBuffer<float> logits = backend.Upload<float>(new float[2 * 4]), loss = backend.Allocate<float>(2);
        using DeviceBuffer<int> targets = backend.Upload<int>([3, 4]), argmax = backend.Allocate<int>(2);
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => backend.SoftmaxCrossEntropy(logits, targets, loss, argmax, 2, 4, 1f, true));
        Assert.Contains("SoftmaxCrossEntropy: target class 4 at row 1 is outside [0, 4)", error.Message);
    }

    [Theory]
    [InlineData("attention.cu(12): warning #177-D: variable \"x\" was declared but never referenced", true)]
    [InlineData("kernels/probe.cu(3): warning: something", true)]
    [InlineData("probe.cu(40): error: identifier \"warning_count\" is undefined", false)]
    [InlineData("note: 2 remarks and no warnings", false)]
    [InlineData("", false)]
    public void OnlyRealWarningLinesCountAsWarnings(string log, bool expected) =>
        Assert.Equal(expected, KernelCompiler.HasWarning(log));
}
