using System.Reflection;
using System.Text;
using System.Text.Json;
using NativeMi.Cli;
using NativeMi.Compute;
using NativeMi.Measurement;
using NativeMi.Pooling;
using NativeMi.Tests.Measurement;
using NativeMi.Training;
using Xunit;

namespace NativeMi.Tests.Cli;

/// <summary>
/// The CLI's JSON files (bench --json, bench --ops --json, tune-probe --out, finetune.json), byte for byte against goldens
/// written by the hand-written code they had before; the machine description bench records is replaced by "&lt;machine&gt;".
/// </summary>
public class CliJsonGoldenTests
{
    private const string Awkward = ResultsJsonGoldenTests.Awkward;

    private static string Machine(string text) => text.Replace(
        JsonEncodedText.Encode($"{Environment.ProcessorCount} logical CPUs, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}").ToString(),
        "<machine>", StringComparison.Ordinal);

    private static string Written(Action<Stream> write)
    {
        using var stream = new MemoryStream();
        write(stream);
        return Encoding.UTF8.GetString(stream.ToArray());
    }

    private static BenchCommand.Row Row(int batch, double scale) =>
        new("minilm " + Awkward, "cpu", batch, 128, 10, 12.5 * scale, 1.0 / 3 * 1e5, 1e-7 * scale, 123456.789 * scale);

    [Fact]
    public void BenchRowsAreWrittenAsBefore()
    {
        BenchCommand.Row[] rows = [Row(1, 1), Row(8, 2.5), Row(32, 1e10)];
        GoldenJson.AssertMatches("bench.json", Machine(Written(s => BenchCommand.WriteJson(s, "cpu (GEMM kernel avx2, 2 threads)", null, rows))));
        GoldenJson.AssertMatches("bench-emulated.json", Machine(Written(s =>
            BenchCommand.WriteJson(s, "cuda (emulated " + Awkward + ")", "emulated device: these are the CPU emulator's timings, not GPU figures", []))));
    }

    /// <summary>A backend with a name and a description and nothing else (the ops JSON reads no more of it).</summary>
    public class DescribedBackend : DispatchProxy
    {
        public string Name { get; set; } = "";
        public string Description { get; set; } = "";

        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args) => targetMethod?.Name switch
        {
            "get_Name" => Name,
            "get_Description" => Description,
            "Dispose" => null,
            _ => throw new NotSupportedException(targetMethod?.Name),
        };

        internal static IComputeBackend Create(string name, string description)
        {
            IComputeBackend backend = DispatchProxy.Create<IComputeBackend, DescribedBackend>();
            var proxy = (DescribedBackend)(object)backend;
            proxy.Name = name;
            proxy.Description = description;
            return backend;
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void BenchOpsAreWrittenAsBefore(bool tf32)
    {
        OpTiming[] timings =
        [
            new("Gemm", "QKV projection", "[4096 x 384] x [384 x 1152]", 0.125, 2.0 * 4096 * 384 * 1152, 1e7),
            new("Attention", "attention " + Awkward, "b 32, h 12, s 128, d 32", 1.0 / 3, 3e9, 1.5e8),
            new("AddInPlace", "residual", "[4096 x 384]", 2e-3, 0, 4096 * 384 * 12.0),
        ];
        (IComputeBackend, IReadOnlyList<OpTiming>)[] results =
        [
            (DescribedBackend.Create("cpu", "cpu (GEMM kernel avx512, 2 threads)"), timings),
            (DescribedBackend.Create("cuda", "cuda (NVIDIA H200, 132 SMs, cc 9.0)"), timings),
            (DescribedBackend.Create("cuda", "cuda (emulated device)"), timings[..1]),
            (DescribedBackend.Create("cuda", "cuda (NVIDIA GeForce GTX 1080)"), []),
        ];
        var shapes = new OpShapes(32, 128, 384, 12, 32, 1536, 30522, Causal: false);
        GoldenJson.AssertMatches($"bench-ops{(tf32 ? "-tf32" : "")}.json", Machine(Written(s => BenchCommand.WriteOpsJson(s, "minilm", shapes, results, tf32))));
    }

    [Fact]
    public void TuneProbeScoresAreWrittenAsBefore()
    {
        var options = new MeasureOptions { Model = "minilm " + Awkward, MaxSentences = 2000, Layers = [0, 3, 6] };
        CandidateScore[] scores =
        [
            new(new ProbeCandidate(64, 0.003f, 2, 0.1f), [3.5, 1.0 / 3, 2e-9], 12.25),
            new(new ProbeCandidate(256, 1e-4f, 5, 1f), [3.25, 3.125, 3], 1e5),
        ];
        GoldenJson.AssertMatches("tune-probe.json", TuneProbeCommand.Json(options, scores, scores[1], 0.005));
        var unlimited = options with { MaxSentences = null, Layers = [] };
        GoldenJson.AssertMatches("tune-probe-unlimited.json", TuneProbeCommand.Json(unlimited, scores[..1], scores[0], 0));
    }

    private static FinetuneResult Finetuned(int epochs) => new()
    {
        SourceFolder = "<cache>/models/minilm " + Awkward,
        Layer = 6,
        Pool = PoolingMode.Mean,
        TrainSentences = 4000,
        ValidationSentences = 1000,
        HeldOutSentences = 7430,
        ExcludedEvaluationSentences = 0,
        InitialValidationCrossEntropyBits = 5.724390205433112,
        Epochs = [.. Enumerable.Range(1, epochs).Select(e => new FinetuneEpoch(e, 250 * e, 5.777354083456732 / e, 4.81406857737234 + 1e-17 * e))],
        Steps = [(1, 5.5, 0.25)],
        Parameters = [],
    };

    [Fact]
    public void TheFinetuneReportIsWrittenAsBefore()
    {
        var options = new FinetuneOptions { Model = "minilm", Corpus = "/data/finetune " + Awkward + ".txt", MaxTrainSentences = 4000, Seed = ulong.MaxValue };
        GoldenJson.AssertMatches("finetune.json", FinetuneCommand.ReportText(Finetuned(2), options, "cpu (GEMM kernel avx512, other kernels 512-bit vectors, 2 threads)", 168.9691103));
        var unlimited = options with
        {
            Corpus = "/c", Layer = 2, Pool = PoolingMode.Cls, Epochs = 3, ModelLearningRate = 1e-6f, ProbeLearningRate = 0.5f, BatchSize = 1, FreezeEmbeddings = true,
            MaxGradientNorm = 0.25, MaxTrainSentences = null, MaxValidationSentences = null, Classes = null, ProbeHidden = 8,
        };
        GoldenJson.AssertMatches("finetune-unlimited.json", FinetuneCommand.ReportText(Finetuned(0), unlimited, "cuda", 0));
    }
}
