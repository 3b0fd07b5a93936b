using NativeMi.Compute.Cpu;
using NativeMi.Information;
using NativeMi.Measurement;
using NativeMi.Probing;
using Xunit;

namespace NativeMi.Tests.Measurement;

/// <summary>Probe + bounds on synthetic sentence vectors whose information content is known.</summary>
public class SyntheticProbeTests
{
    private const int Vocabulary = 16, Length = 3, VocabularySize = 1000;

    /// <summary>Random 3-token sentences over a 16-token vocabulary, split 70/10/20.</summary>
    private static (int[][] Targets, int Train, int Validation) Sentences(int count, ulong seed)
    {
        var random = new SplitMix64(seed);
        var targets = new int[count][];
        for (int s = 0; s < count; s++)
        {
            targets[s] = new int[Length];
            for (int i = 0; i < Length; i++) targets[s][i] = 100 + random.NextInt(Vocabulary);
        }
        return (targets, count * 7 / 10, count / 10);
    }

    private sealed record Splits(ProbeDataset Train, ProbeDataset Validation, ProbeDataset HeldOut, ClassMap Classes, TargetVariables Targets);

    private static Splits Split(float[] vectors, int width, int[][] targets, int train, int validation, int? classes = null, long vocabularySize = VocabularySize)
    {
        ProbeDataset Take(int from, int count) =>
            new(width, vectors.AsSpan(from * width, count * width).ToArray(), targets.Skip(from).Take(count).ToArray());
        var tr = Take(0, train);
        var va = Take(train, validation);
        var map = ClassMap.Build(tr.Targets, va.Targets, classes, vocabularySize);
        var heldOut = Take(train + validation, targets.Length - train - validation);
        return new Splits(tr, va, heldOut, map, TargetVariables.FromPopulation(targets, heldOut.Targets, map));
    }

    /// <summary>Each sentence vector is the concatenation of one one-hot block per position: it encodes every token exactly.</summary>
    private static (float[] Vectors, int Width) OneHotPerPosition(int[][] targets)
    {
        int width = Length * Vocabulary;
        var vectors = new float[targets.Length * width];
        for (int s = 0; s < targets.Length; s++)
            for (int i = 0; i < Length; i++)
                vectors[s * width + i * Vocabulary + (targets[s][i] - 100)] = 1f;
        return (vectors, width);
    }

    private static readonly ProbeOptions Probe = new() { Family = ProbeFamily.Positional, Hidden = 64, MaxEpochs = 60, Patience = 5, BatchSentences = 32, LearningRate = 3e-3f, Seed = 7 };

    private static (ControlResult Control, LayerResult Layer) Measure(Splits s, ProbeOptions options, int resamples = 50, bool list = false)
    {
        var backend = new CpuBackend();
        var figureOptions = new LayerFigureOptions { BootstrapResamples = resamples, ListDecoding = list };
        ControlResult control = ProbeMeasurement.TrainControl(backend, s.Train, s.Validation, s.HeldOut, s.Classes, options, s.Targets, figureOptions);
        return (control, ProbeMeasurement.MeasureLayer(backend, s.Train, s.Validation, s.HeldOut, s.Classes, options, s.Targets, figureOptions, control));
    }

    [Fact]
    public void VectorsThatEncodeEveryTokenGiveAccuracyNearOneAndBoundsNearTheEntropy()
    {
        var (targets, train, validation) = Sentences(1500, 11);
        var (vectors, width) = OneHotPerPosition(targets);
        var (control, layer) = Measure(Split(vectors, width, targets, train, validation), Probe);

        LayerFigures f = layer.Token;
        Assert.InRange(f.EntropyBits, 3.98, 4.0); // 16 equiprobable tokens: 4 bits
        Assert.True(f.Accuracy > 0.98, $"accuracy {f.Accuracy}");
        Assert.True(f.FanoBits > f.EntropyBits - 0.35, $"I_F {f.FanoBits} vs H(X) {f.EntropyBits}");
        Assert.True(f.BarberAgakovBits > f.EntropyBits - 0.3, $"I_BA {f.BarberAgakovBits} vs H(X) {f.EntropyBits}");
        // Position tells nothing about uniform tokens: H(X | I) is H(X), and the sentence-level bound is as large.
        Assert.True(f.SentenceLowerBoundBits > f.EntropyBits - 0.35, $"I_S {f.SentenceLowerBoundBits}");
        Assert.InRange(control.Token.BarberAgakovBits, -0.3, 0.1);
        Assert.True(layer.TokenGain.Bits > 3.5, $"gain {layer.TokenGain.Bits}");
        Assert.True(layer.TokenGain.Interval!.Value.Lower > 3, $"gain interval {layer.TokenGain.Interval}");
        // Every token has a class: the coarse target is the token target with one unused extra symbol, so the same CE.
        Assert.Equal(f.CrossEntropyBits, layer.Coarse.CrossEntropyBits, 12);
    }

    [Fact]
    public void VectorsIndependentOfTheSentenceGiveNoGainOverControl()
    {
        var (targets, train, validation) = Sentences(4000, 12);
        const int width = 24;
        var random = new SplitMix64(99);
        var vectors = new float[targets.Length * width];
        for (int i = 0; i < vectors.Length; i++) vectors[i] = (float)(random.NextDouble() * 2 - 1);
        var (control, layer) = Measure(Split(vectors, width, targets, train, validation), Probe with { LearningRate = 1e-3f }, resamples: 100);

        // gain = I_BA − I_ctrl with its paired interval: zero must lie (nearly) inside it.
        Interval gain = layer.TokenGain.Interval!.Value;
        Assert.True(gain.Lower <= 0.02 && gain.Upper >= -0.02, $"gain {layer.TokenGain.Bits:F3}, interval [{gain.Lower:F3}, {gain.Upper:F3}]");
        Assert.InRange(layer.TokenGain.Bits, -0.25, 0.1);
        Assert.True(layer.Token.Accuracy < 0.15, $"accuracy {layer.Token.Accuracy} should be near chance (1/16)");
        Assert.False(control.WorseThanUnigram);
    }

    [Fact]
    public void BagProbeReportsListFanoAndTheLinearProbeLearnsLessThanThePositionalOne()
    {
        var (targets, train, validation) = Sentences(900, 13);
        var (vectors, width) = OneHotPerPosition(targets);
        var splits = Split(vectors, width, targets, train, validation);
        var (_, bag) = Measure(splits, Probe with { Family = ProbeFamily.Bag }, resamples: 20, list: true);
        Assert.Equal(FanoKind.ListFano, bag.Token.FanoKind);
        Assert.True(bag.Token.Accuracy > 0.9, $"bag top-n accuracy {bag.Token.Accuracy}");
        Assert.True(bag.Token.FanoBits > 2.0, $"list-Fano {bag.Token.FanoBits}");
        Assert.True(bag.Token.FanoAtUpperErrorBits < bag.Token.FanoBits);
        Assert.NotNull(bag.Token.FanoInterval);
        Assert.All(bag.Token.Positions, p => Assert.True(p.FanoBits <= p.EntropyBits));

        // softmax(W z + P[i] + b) cannot select the block of position i from concatenated one-hots (no product of z
        // and i), so a linear probe recovers far less than the positional one, which adds an MLP over z and i.
        var (_, linear) = Measure(splits, Probe with { Family = ProbeFamily.Linear, LearningRate = 1e-2f }, resamples: 0);
        var (_, positional) = Measure(splits, Probe, resamples: 0);
        Assert.Equal(FanoKind.Fano, linear.Token.FanoKind);
        Assert.InRange(linear.Token.Accuracy, 0.25, 0.8);
        Assert.True(linear.TokenGain.Bits > 0.5, $"linear gain {linear.TokenGain.Bits}");
        Assert.True(positional.Token.Accuracy > linear.Token.Accuracy + 0.1, $"positional {positional.Token.Accuracy} vs linear {linear.Token.Accuracy}");
    }

    /// <summary>Zipf-distributed tokens independent of the position and of z: most types are rare, many held-out ones unseen in training.</summary>
    private static int[][] ZipfSentences(int count, int types, ulong seed, int length = 6)
    {
        var cumulative = new double[types];
        double sum = 0;
        for (int r = 0; r < types; r++) cumulative[r] = sum += 1 / Math.Pow(r + 1, 1.1);
        var random = new SplitMix64(seed);
        return [.. Enumerable.Range(0, count).Select(_ => Enumerable.Range(0, length).Select(_ =>
        {
            int index = Array.BinarySearch(cumulative, random.NextDouble() * sum);
            return 10 + (index < 0 ? ~index : index);
        }).ToArray())];
    }

    [Fact]
    public void TheOtherClassIsCalibratedSoARareTokenCorpusGivesAControlNearTheEntropy()
    {
        // 5,000 Zipf types over 6,000 vocabulary tokens; tokens carry no information about anything, so the best any probe
        // can do is H(X), and I_ctrl must be close to 0. An untrained "other" class (the first edition's bug) charged
        // each held-out token unseen in training ~log2 |V| bits and put I_ctrl several bits below zero.
        int[][] targets = ZipfSentences(2000, 5000, seed: 5);
        const int width = 8;
        var splits = Split(new float[targets.Length * width], width, targets, 1400, 200, classes: null, vocabularySize: 6000);
        var heldOutTokens = splits.HeldOut.Targets.SelectMany(t => t).ToArray();
        var trainingTokens = splits.Train.Targets.SelectMany(t => t).ToHashSet();
        double unseen = heldOutTokens.Count(t => !trainingTokens.Contains(t)) / (double)heldOutTokens.Length;
        Assert.True(unseen > 0.1, $"only {unseen:P1} of held-out tokens unseen in training; the test needs many");

        var backend = new CpuBackend();
        var figureOptions = new LayerFigureOptions { BootstrapResamples = 0 };
        ControlResult control = ProbeMeasurement.TrainControl(backend, splits.Train, splits.Validation, splits.HeldOut, splits.Classes,
            Probe with { LearningRate = 1e-2f }, splits.Targets, figureOptions);
        Assert.InRange(control.Token.BarberAgakovBits, -0.6, 0.1);
        Assert.False(control.WorseThanUnigram, $"control {control.Token.CrossEntropyBits:F3} vs unigram {control.UnigramToken.CrossEntropyBits:F3}");
        // The coarse target (singletons and unseen tokens as one symbol) loses nothing it could have known.
        // The coarse target's entropy comes from sentences the classes were not chosen on (here the held-out ones): over
        // the training sentences f(X) is spread over more classes, and counting them would make I_ctrl look positive.
        Assert.InRange(control.Coarse.BarberAgakovBits, -0.4, 0.05);
        var biased = TargetEntropies.FromSequences(targets, splits.Classes.ClassOf);
        Assert.True(biased.EntropyBits - control.Coarse.CrossEntropyBits > 0.1, "the whole population's H(f(X)) would have claimed information");
    }

    [Fact]
    public void TheControlLearnsWhatThePositionTellsAndBeatsTheUnigram()
    {
        // The token is drawn from a position-specific set: I(X; I) is large, and a control that ignored the position
        // would be no better than the unigram.
        var random = new SplitMix64(21);
        int[][] targets = [.. Enumerable.Range(0, 1500).Select(_ => Enumerable.Range(0, 4).Select(i => 100 + 8 * i + random.NextInt(8)).ToArray())];
        var splits = Split(new float[targets.Length * 4], 4, targets, 1050, 150);
        var backend = new CpuBackend();
        ControlResult control = ProbeMeasurement.TrainControl(backend, splits.Train, splits.Validation, splits.HeldOut, splits.Classes,
            Probe with { LearningRate = 1e-2f }, splits.Targets, new LayerFigureOptions { BootstrapResamples = 0 });
        Assert.Equal(2, splits.Targets.Token.Entropies.PositionInformationBits, 1);
        Assert.True(control.Token.CrossEntropyBits < control.UnigramToken.CrossEntropyBits - 1.5,
            $"control {control.Token.CrossEntropyBits:F3} vs unigram {control.UnigramToken.CrossEntropyBits:F3}");
        Assert.InRange(control.Token.BarberAgakovBits, 1.8, 2.05);
        // Position-aware, so I_ctrl is I(X; I); the sentence-level figure of a probe that sees no sentence stays at or below 0.
        Assert.InRange(control.Token.SentenceBarberAgakovBits, -0.2, 0.05);
    }
}
