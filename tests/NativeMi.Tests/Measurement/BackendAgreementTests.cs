using NativeMi.Compute.Cpu;
using NativeMi.Measurement;
using NativeMi.Tests.Compute;
using Xunit;

namespace NativeMi.Tests.Measurement;

/// <summary>
/// The CPU side of doctor's model checks: the forward-pass comparison and the probe-within-intervals comparison agree
/// for two CPU backends and catch a backend that computes something else.
/// </summary>
public class BackendAgreementTests
{
    private static readonly string[] Sentences =
    [
        "the cat sat on the mat",
        "Hi.",
        "she was able to program her computer",
        "we were at last able to buy a car after saving for many years",
        "a",
    ];

    [Theory]
    [InlineData("bert-tiny", 4)]
    [InlineData("gpt2-tiny", 5)]
    public void TwoCpuBackendsAgreeOnEveryLayerOfTheForwardPass(string model, int expectedEntries)
    {
        using var candidate = new CpuBackend();
        using var reference = new CpuBackend();

        ForwardAgreementReport report = BackendAgreement.Forward(Fixtures.Folder(model), candidate, reference, Sentences, batchSize: 2, tolerance: 1e-5);

        Assert.True(report.Passed, report.Format());
        Assert.Equal(expectedEntries, report.Layers.Count);
        Assert.All(report.Layers, l => Assert.Equal(0, l.RelativeError));
        Assert.Contains($"{expectedEntries} of {expectedEntries} layers agree", report.Format());
    }

    [Fact]
    public void AnImpreciseGemmFailsTheForwardComparison()
    {
        using var candidate = new FaultyBackend(FaultKind.Imprecise);
        using var reference = new CpuBackend();

        ForwardAgreementReport report = BackendAgreement.Forward(Fixtures.Folder("bert-tiny"), candidate, reference, Sentences, batchSize: 3, tolerance: 1e-3);

        Assert.False(report.Passed);
        Assert.Contains(report.Layers, l => !l.Passed && l.RelativeError > 1e-3);
        Assert.Contains("FAIL", report.Format());
    }

    [Theory]
    [InlineData("bert-tiny", 53, 3)]
    [InlineData("llama-tiny", 29, 0)]
    public void TwoCpuBackendsAgreeOnEveryParameterGradient(string model, int tensors, int zeroInExactArithmetic)
    {
        using var candidate = new CpuBackend();
        using var reference = new CpuBackend();

        BackwardAgreementReport report = BackendAgreement.Backward(Fixtures.Folder(model), candidate, reference, Sentences, tolerance: 1e-5);

        Assert.True(report.Passed, report.Format());
        Assert.Equal(tensors, report.Tensors.Count);
        Assert.Equal(zeroInExactArithmetic, report.Tensors.Count(t => t.ZeroInExactArithmetic));
        Assert.All(report.Tensors.Where(t => !t.ZeroInExactArithmetic), t => Assert.Equal(0, t.RelativeError));
        Assert.Contains($"{tensors} of {tensors} parameter gradients agree", report.Format());
    }

    [Fact]
    public void ABrokenBackwardOpFailsTheBackwardComparison()
    {
        using var candidate = new FaultyBackend(FaultKind.LayerNormBackwardDropsMeanTerm);
        using var reference = new CpuBackend();

        BackwardAgreementReport report = BackendAgreement.Backward(Fixtures.Folder("gpt2-tiny"), candidate, reference, Sentences, tolerance: 1e-4);

        Assert.False(report.Passed);
        Assert.Equal(0, report.PooledError);
        Assert.Contains(report.Tensors, t => t.Tensor == "wte.weight" && !t.Passed);
        Assert.Contains("FAIL wte.weight", report.Format());
    }

    [Fact]
    public void ProbeFiguresOfTwoCpuBackendsLieInsideEachOthersIntervals()
    {
        using var folder = new TempFolder("agreement");
        string corpus = MeasurementTestSupport.WriteCorpus(folder.Combine("corpus.txt"), 300);
        MeasureOptions options = MeasurementTestSupport.SmallOptions(Fixtures.Folder("bert-tiny"), corpus, folder.Combine("unused-cache"));
        using var candidate = new CpuBackend();
        using var reference = new CpuBackend();

        ProbeAgreementReport report = BackendAgreement.Probe(options, candidate, reference);

        Assert.True(report.Passed, report.Format());
        Assert.Equal(4 * 4, report.Figures.Count); // accuracy, I_F, I_BA (headline target) and the token I_BA for layers 0..3
        Assert.All(report.Figures, f => Assert.Equal(f.Reference, f.Candidate));
        Assert.False(Directory.Exists(folder.Combine("unused-cache")), "each run gets its own temporary cache");
    }

    [Fact]
    public void ABackendThatLosesTheSentenceVectorsFailsTheProbeComparison()
    {
        using var folder = new TempFolder("agreement-fault");
        string corpus = MeasurementTestSupport.WriteCorpus(folder.Combine("corpus.txt"), 300);
        MeasureOptions options = MeasurementTestSupport.SmallOptions(Fixtures.Folder("bert-tiny"), corpus, folder.Combine("cache")) with { Epochs = 6 };
        using var candidate = new FaultyBackend(FaultKind.PoolsConstant);
        using var reference = new CpuBackend();

        ProbeAgreementReport report = BackendAgreement.Probe(options, candidate, reference);

        Assert.False(report.Passed, report.Format());
        Assert.Contains(report.Figures, f => f.Figure == "I_BA" && !f.Passed);
    }
}
