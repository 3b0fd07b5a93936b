using NativeMi.Information;
using NativeMi.Measurement;
using NativeMi.Pooling;
using NativeMi.Probing;
using NativeMi.Reporting;
using Xunit;

namespace NativeMi.Tests.Measurement;

/// <summary>
/// results.json byte for byte against goldens written by the hand-written writer it had before: every field, the optional
/// parts present and absent, nulls, "all" in place of a count, float and double figures, and strings that need escaping.
/// </summary>
public class ResultsJsonGoldenTests
{
    /// <summary>Strings the default encoder escapes: non-ASCII, a surrogate pair, HTML-sensitive characters, quotes, controls.</summary>
    internal const string Awkward = "é ü 中 😀 <b> & 'q' \"dq\" a+b back\\slash tab\t nl\n \u0001 \u2028 `~";

    private static LayerFigures Figures(string target, double scale, bool intervals, FanoKind kind = FanoKind.Fano, int positions = 2) => new()
    {
        Target = target,
        SentenceCount = 60,
        TargetCount = 417 + (long)int.MaxValue,
        DistinctTargets = 151,
        AlphabetSize = 30_522,
        FanoKind = kind,
        Accuracy = 0.1 * scale,
        CrossEntropyBits = 1.0 / 3 * scale,
        EntropyBits = 10.653112233445566,
        ConditionalEntropyBits = 9.9,
        HeldOutPlugInEntropyBits = 7.766,
        HeldOutMillerMadowEntropyBits = 8.25100000000001,
        FanoBits = -0.0,
        UpperErrorRate = 1e-300,
        FanoAtUpperErrorBits = 5e-324,
        BarberAgakovBits = 1e21 * scale,
        SentenceFanoBits = 2.5e-7,
        AccuracyInterval = intervals ? new Interval(0.05, 0.15) : null,
        CrossEntropyInterval = intervals ? new Interval(1.0 / 7, 123456789.123) : null,
        FanoInterval = intervals ? new Interval(-1.5, 1e-5) : null,
        SentenceLowerBoundInterval = intervals ? new Interval(0, 1) : null,
        Positions = [.. Enumerable.Range(0, positions).Select(i => new PositionFigures(i, 29 + i, 0.5 / (i + 1), 2.0 / 3, 9.75, -0.125, 3e-8, Sparse: i == 0))],
    };

    private static PairedDifference Difference(string from, string to, double bits, bool interval) =>
        new(from, to, bits, interval ? new Interval(bits - 0.25, bits + 1e-9) : null);

    private static LayerResult Layer(int layer, string name, double depth, bool intervals, FanoKind kind, int seeds, int positions) => new()
    {
        Layer = layer,
        Name = name,
        Depth = depth,
        Token = Figures("token", 1 + layer, intervals, kind, positions),
        Coarse = Figures("coarse", 0.5 + layer, intervals, kind, positions),
        TokenGain = Difference("control", name, 0.75 * layer, intervals),
        CoarseGain = Difference("control", name, -0.1 * layer, intervals),
        Epochs = 20,
        BestEpoch = layer,
        ValidationCrossEntropyBits = 3.4901234567890123,
        Seeds = [.. Enumerable.Range(0, seeds).Select(s => new SeedFit(s == 0 ? ulong.MaxValue : (ulong)s, 3.5 + s, 0.1 * s, 1.0 / 3, 7))],
    };

    private static TargetVariable Target(string name, long alphabet) => new(name, alphabet, new TargetEntropies
    {
        SentenceCount = 42_508,
        TargetCount = 325_037,
        DistinctSymbols = 17_000,
        EntropyBits = 10.653,
        ConditionalEntropyBits = 9.917000000000002,
        Positions = [],
    });

    /// <summary>A run with every optional part: intervals, a baseline, limits given, a "final" entry, warnings and odd strings.</summary>
    internal static MeasurementResult Full()
    {
        LayerResult[] layers = [Layer(0, "0", 0, true, FanoKind.Fano, 2, 3), Layer(1, "1", 0.5, true, FanoKind.ListFano, 1, 1),
            Layer(2, "2", 1, true, FanoKind.ObservedPlugIn, 0, 0), Layer(3, "final", 1, true, FanoKind.Fano, 1, 2)];
        LayerResult[] baseline = [Layer(0, "0", 0, true, FanoKind.Fano, 1, 1), Layer(2, "2", 1, true, FanoKind.Fano, 1, 1)];
        return new MeasurementResult
        {
            Model = new ModelDescription("tiny " + Awkward, "/models/ünï <dir>", "gpt2", "gpt2 (decoder)", 2, 48, 320, long.MaxValue, new string('a', 64)),
            Corpus = new CorpusDescription("/data/corpus é.txt", new string('0', 64), 1234, 1200, 9_876_543_210, 300, 210, 30, 60, 3, 1),
            Options = new MeasureOptions
            {
                Model = "tiny+model",
                Corpus = "/data/corpus é.txt",
                MaxSentences = 300,
                Layers = [0, 6],
                Pool = PoolingMode.Last,
                Probe = ProbeFamily.Linear,
                Hidden = 256,
                Epochs = 2,
                Patience = 3,
                LearningRate = 0.003f,
                SecondStageLearningRateScale = 1e-10f,
                Classes = 150,
                ProbeSeeds = 3,
                HeadlineTarget = "token",
                BatchSize = 32,
                ProbeBatchSize = 64,
                Seed = ulong.MaxValue,
                MaxTokens = 64,
                FanoAlphabet = FanoAlphabet.ObservedPlusOne,
                Bootstrap = 200,
                Baseline = BaselineKind.RandomInit,
                TrainFraction = 0.7,
                ValidationFraction = 0.1,
                AllowNonFiniteWeights = true,
                WidenSixteenBitWeights = true,
            },
            Backend = "cpu (GEMM kernel avx2, 2 threads) " + Awkward,
            TimingsSeconds = new Dictionary<string, double> { ["load"] = 0.5, ["tokenise"] = 1.0 / 3, ["phase " + Awkward] = 1e-7, ["total"] = 12345.678 },
            Warnings = ["only 60 held-out sentences: intervals will be wide", Awkward, ""],
            Targets = new TargetVariables(Target("token", 30_522), Target("coarse", 151)),
            HeadlineTarget = "token",
            Classes = new ClassDescription(151, 150, 30_371, 0.5, 0.549),
            Control = new ControlResult(Figures("token", 0.25, true), Figures("coarse", 0.125, true), Figures("token", 0.3, true), Figures("coarse", 0.2, true), 20, 0),
            Layers = layers,
            Differences = [new LayerDifferences("coarse", [Difference("0", "1", 0.5, true), Difference("1", "2", -0.5, true), Difference("2", "final", 0, true)]),
                new LayerDifferences("token", [Difference("0", "1", 1e-12, true)])],
            Summaries = [new DepthSummary("coarse", 1, "1", 0.5, 2.25, 1.125, Difference("1", "2", 1.125, true), 0.75, 1.5),
                new DepthSummary("token", 0, "0", 0, 1e-3, -2, Difference("0", "2", 0, true), -0.0, 3)],
            Baseline = new BaselineResult("random-init", baseline),
        };
    }

    /// <summary>A run without resamples, baseline or limits: every interval null, every limit "all", empty lists.</summary>
    internal static MeasurementResult Bare() => new()
    {
        Model = new ModelDescription("bert-tiny", "/m", "bert", "bert", 1, 8, 10, 100, "b"),
        Corpus = new CorpusDescription("/c", "s", 1, 1, 1, 1, 1, 0, 0, 0, 0),
        Options = new MeasureOptions { Corpus = null, MaxSentences = null, Layers = null, Pool = null, Classes = null, MaxTokens = null, Bootstrap = 0 },
        Backend = "cpu",
        TimingsSeconds = new Dictionary<string, double>(),
        Warnings = [],
        Targets = new TargetVariables(Target("token", 10), Target("coarse", 2)),
        HeadlineTarget = "coarse",
        Classes = new ClassDescription(2, null, 9, 0, 1),
        Control = new ControlResult(Figures("token", 1, false, positions: 0), Figures("coarse", 1, false, positions: 0),
            Figures("token", 1, false, positions: 0), Figures("coarse", 1, false, positions: 0), 0, 0),
        Layers = [Layer(0, "0", 0, false, FanoKind.Fano, 1, 0)],
        Differences = [new LayerDifferences("coarse", []), new LayerDifferences("token", [])],
        Summaries = [new DepthSummary("coarse", 0, "0", 0, 0, 0, Difference("0", "0", 0, false), 0, 0)],
        Baseline = null,
    };

    [Fact]
    public void AFullRunIsWrittenAsBefore() => GoldenJson.AssertMatches("results-full.json", ResultWriter.ToJson(Full()));

    [Fact]
    public void ARunWithoutIntervalsBaselineOrLimitsIsWrittenAsBefore() => GoldenJson.AssertMatches("results-bare.json", ResultWriter.ToJson(Bare()));

    [Theory]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    [InlineData(double.NegativeInfinity)]
    public void ANonFiniteFigureIsRefusedNotWritten(double value)
    {
        // JSON has no NaN or infinity: a figure that is not a number stops the writer rather than producing an unreadable file.
        MeasurementResult result = Bare() with { Classes = new ClassDescription(2, null, 9, value, 1) };
        Assert.Throws<ArgumentException>(() => ResultWriter.ToJson(result));
    }
}
