using NativeMi.Compute;
using NativeMi.Compute.Cpu;
using Xunit;

namespace NativeMi.Tests.Compute;

public class BackendParityTests
{
    private static readonly string[] EveryOp =
    [
        "Allocate", "CopyFromHost", "Zero", "AddInPlace", "Gemm", "LayerNorm", "EmbeddingGather", "Attention", "GemmEx",
        "GatherRows", "ScatterAddRows", "BiasActivation", "GeluBackward", "ColumnSums", "SoftmaxCrossEntropy", "AdamW",
    ];

    [Fact]
    public void CpuAgainstCpuMatchesOnEveryOp()
    {
        using var candidate = new CpuBackend();
        ParityReport report = BackendParity.Run(candidate);

        Assert.True(report.Passed, report.Format());
        Assert.Equal(EveryOp.Order(), report.Results.Select(r => r.Op).Distinct().Order());
        Assert.All(report.Results, r => Assert.Equal(0, r.RelativeError));
        Assert.Contains($"{report.Results.Count} of {report.Results.Count} cases match", report.Format());
    }

    [Theory]
    [InlineData(FaultKind.Imprecise, "Gemm", "relative L2 error")]
    [InlineData(FaultKind.NotANumber, "Gemm", "NaN at element")]
    [InlineData(FaultKind.Infinity, "Gemm", "Infinity at element")]
    [InlineData(FaultKind.WriteOutsideOutput, "Gemm", "output: wrote outside the buffer")]
    [InlineData(FaultKind.WriteToInput, "LayerNorm", "input: relative L2 error")]
    [InlineData(FaultKind.WrongIndex, "SoftmaxCrossEntropy", "argmax: ")]
    [InlineData(FaultKind.Throws, "Gemm", "threw InvalidOperationException: kernel gemm missing")]
    public void EachFaultIsCaughtOnTheFaultyOpOnly(FaultKind fault, string faultyOp, string expectedMessage)
    {
        using var candidate = new FaultyBackend(fault);
        ParityReport report = BackendParity.Run(candidate);

        Assert.False(report.Passed);
        Assert.All(report.Results.Where(r => r.Op != faultyOp), r => Assert.True(r.Passed, $"{r.Op} {r.Shape}: {string.Join("; ", r.Failures)}"));
        ParityResult[] failed = [.. report.Results.Where(r => !r.Passed)];
        Assert.NotEmpty(failed);
        Assert.All(failed, r => Assert.Equal(faultyOp, r.Op));
        Assert.Contains(failed.SelectMany(r => r.Failures), f => f.Contains(expectedMessage, StringComparison.Ordinal));
        Assert.Contains("FAIL", report.Format());
    }

    [Fact]
    public void ToleranceIsTheRelativeL2Threshold()
    {
        using var candidate = new FaultyBackend(FaultKind.Imprecise);
        // A 1 % scaling error is a relative L2 error of exactly 1e-2: above 5e-3, below 2e-2.
        Assert.False(BackendParity.Run(candidate, new ParityOptions(Tolerance: 5e-3)).Passed);
        Assert.True(BackendParity.Run(candidate, new ParityOptions(Tolerance: 2e-2)).Passed);
    }
}
