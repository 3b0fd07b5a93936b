using NativeMi.Compute;
using NativeMi.Compute.Cpu;
using Xunit;
using NativeMi.Pooling;

namespace NativeMi.Tests.Compute;

public class BackendParityTests
{
    private static readonly string[] EveryOp =
    [
        "Allocate", "CopyFromHost", "Zero", "AddInPlace", "Gemm", "LayerNorm", "EmbeddingGather", "Attention", "GemmEx",
        "GatherRows", "ScatterAddRows", "BiasActivation", "GeluBackward", "ColumnSums", "SoftmaxCrossEntropy", "AdamW",
        "PoolSentences", "CountPredictions", "RmsNorm", "HeadRmsNorm", "Rotary", "ExpandKeyValueHeads", "GatedActivation", "ScaleInPlace",
        "ApplyActivation", "ActivationBackward", "GatedActivationBackward", "LayerNormBackward", "RmsNormBackward", "HeadRmsNormBackward",
        "RotaryBackward", "ReduceKeyValueHeads", "AttentionBackward", "PoolSentencesBackward", "SumOfSquares",
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
    [InlineData(FaultKind.PoolsNothingAsZero, "PoolSentences", "where the reference has NaN")]
    [InlineData(FaultKind.MiscountsErrors, "CountPredictions", "counts: 1 of ")]
    [InlineData(FaultKind.LayerNormBackwardDropsMeanTerm, "LayerNormBackward", "inputGradient: relative L2 error")]
    [InlineData(FaultKind.RmsNormBackwardDropsNormTerm, "RmsNormBackward", "Gradient: relative L2 error")]
    [InlineData(FaultKind.RotaryBackwardRotatesForward, "RotaryBackward", "qkvGradient: relative L2 error")]
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

public class ReductionOpTests
{
    [Fact]
    public void PoolSentencesOnTheCpuBackendEqualsPoolingBitForBitAndMarksEmptySentences()
    {
        var random = new Random(7);
        const int Batch = 3, Seq = 6, Width = 5;
        float[] layer = [.. Enumerable.Range(0, Batch * Seq * Width).Select(_ => (float)random.NextDouble())];
        // Sentence 0 right-padded, 1 left-padded, 2 special tokens only (no target).
        int[] mask = [1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0];
        bool[] targets = [false, true, true, false, false, false, false, false, true, true, true, false, false, false, false, false, false, false];
        var batch = new NativeMi.Transformer.EncodedBatch(Batch, Seq, new int[Batch * Seq], mask, null, targets);
        using var backend = new CpuBackend();
        foreach (NativeMi.Pooling.PoolingMode mode in Enum.GetValues<NativeMi.Pooling.PoolingMode>())
        {
            using var states = backend.Upload<float>(layer);
            using var maskBuffer = backend.Upload<int>(mask);
            using var targetBuffer = backend.Upload<int>(SentencePooling.TargetFlags(batch));
            using var output = backend.Allocate<float>(Batch * Width);
            backend.PoolSentences(states, maskBuffer, targetBuffer, output, Batch, Seq, Width, mode);
            float[] pooled = CpuBackend.Array(output);

            var firstTwo = new NativeMi.Transformer.EncodedBatch(2, Seq, new int[2 * Seq], mask[..(2 * Seq)], null, targets[..(2 * Seq)]);
            float[] expected = SentencePooling.Pool(layer.AsSpan(0, 2 * Seq * Width), firstTwo, Width, mode);
            Assert.Equal(expected, pooled[..(2 * Width)]);
            bool nothingToPool = mode is NativeMi.Pooling.PoolingMode.Mean or NativeMi.Pooling.PoolingMode.Max;
            Assert.All(pooled[(2 * Width)..], v => Assert.Equal(nothingToPool, float.IsNaN(v)));
        }
    }

    [Fact]
    public void CountPredictionsCountsErrorsHistogramAndPositions()
    {
        using var backend = new CpuBackend();
        int[] predicted = [0, 1, 2, 2, 1, 0];
        int[] target = [0, 2, 2, 5, 1, -1];
        int[] position = [0, 0, 1, 1, 2, -1];
        using var p = backend.Upload<int>(predicted);
        using var t = backend.Upload<int>(target);
        using var q = backend.Upload<int>(position);

        PredictionCounts counts = backend.CountPredictions(p, t, q, 6, classes: 3, positionCount: 2);

        Assert.Equal(3, counts.Errors);
        Assert.Equal([1L, 1, 2], counts.TargetHistogram);
        Assert.Equal(2, counts.TargetsOutOfRange);
        Assert.Equal([2L, 2], counts.PositionTrials);
        Assert.Equal([1L, 1], counts.PositionErrors);
    }
}
