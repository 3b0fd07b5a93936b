using NativeMi.Compute.Cpu;
using NativeMi.Information;
using NativeMi.Measurement;
using NativeMi.Probing;
using Xunit;

namespace NativeMi.Tests.Measurement;

/// <summary>Probe + bounds on synthetic sentence vectors whose information content is known.</summary>
public class SyntheticProbeTests
{
    private const int Vocabulary = 16, Length = 3;

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

    private static (ProbeDataset Train, ProbeDataset Validation, ProbeDataset HeldOut) Split(float[] vectors, int width, int[][] targets, int train, int validation)
    {
        ProbeDataset Take(int from, int count) =>
            new(width, vectors.AsSpan(from * width, count * width).ToArray(), targets.Skip(from).Take(count).ToArray());
        return (Take(0, train), Take(train, validation), Take(train + validation, targets.Length - train - validation));
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

    [Fact]
    public void VectorsThatEncodeEveryTokenGiveAccuracyNearOneAndFanoNearEntropy()
    {
        var (targets, train, validation) = Sentences(1500, 11);
        var (vectors, width) = OneHotPerPosition(targets);
        var (tr, va, ho) = Split(vectors, width, targets, train, validation);
        var backend = new CpuBackend();
        var figureOptions = new LayerFigureOptions { VocabularySize = 1000, BootstrapResamples = 50 };
        ControlFigures control = ProbeMeasurement.TrainControl(backend, tr, va, ho, Probe, 1000);
        LayerResult layer = ProbeMeasurement.MeasureLayer(backend, tr, va, ho, Probe, figureOptions, control);

        Assert.True(layer.Figures.Accuracy > 0.98, $"accuracy {layer.Figures.Accuracy}");
        Assert.True(layer.Figures.FanoBits > layer.Figures.EntropyBits - 0.35, $"I_F {layer.Figures.FanoBits} vs H(X) {layer.Figures.EntropyBits}");
        Assert.True(layer.Figures.BarberAgakovBits > layer.Figures.EntropyBits - 0.3, $"I_BA {layer.Figures.BarberAgakovBits} vs H(X) {layer.Figures.EntropyBits}");
        Assert.InRange(layer.Figures.EntropyBits, 3.9, 4.05); // 16 equiprobable tokens: 4 bits
        // Position alone tells nothing about uniform tokens, so the control is near 0 and the gain near H(X).
        Assert.InRange(layer.ControlBarberAgakovBits, -0.3, 0.1);
        Assert.True(layer.GainBits > 3.5, $"gain {layer.GainBits}");
    }

    [Fact]
    public void VectorsIndependentOfTheSentenceGiveNoGainOverControl()
    {
        var (targets, train, validation) = Sentences(4000, 12);
        const int width = 24;
        var random = new SplitMix64(99);
        var vectors = new float[targets.Length * width];
        for (int i = 0; i < vectors.Length; i++) vectors[i] = (float)(random.NextDouble() * 2 - 1);
        var (tr, va, ho) = Split(vectors, width, targets, train, validation);
        var backend = new CpuBackend();
        var figureOptions = new LayerFigureOptions { VocabularySize = 1000, BootstrapResamples = 100 };
        ControlFigures control = ProbeMeasurement.TrainControl(backend, tr, va, ho, Probe with { LearningRate = 1e-3f }, 1000);
        LayerResult layer = ProbeMeasurement.MeasureLayer(backend, tr, va, ho, Probe with { LearningRate = 1e-3f }, figureOptions, control);

        Interval ba = layer.Figures.BarberAgakovInterval!.Value;
        // gain = I_BA - I_ctrl: zero must lie within the I_BA interval shifted by I_ctrl.
        Assert.True(ba.Lower - layer.ControlBarberAgakovBits <= 0.02 && ba.Upper - layer.ControlBarberAgakovBits >= -0.02,
            $"gain {layer.GainBits:F3}, I_BA interval [{ba.Lower:F3}, {ba.Upper:F3}], I_ctrl {layer.ControlBarberAgakovBits:F3}");
        Assert.InRange(layer.GainBits, -0.25, 0.1);
        Assert.True(layer.Figures.Accuracy < 0.15, $"accuracy {layer.Figures.Accuracy} should be near chance (1/16)");
    }

    [Fact]
    public void BagProbeReportsListFanoAndLinearProbeLearnsTheEncodedTokens()
    {
        var (targets, train, validation) = Sentences(900, 13);
        var (vectors, width) = OneHotPerPosition(targets);
        var (tr, va, ho) = Split(vectors, width, targets, train, validation);
        var backend = new CpuBackend();
        var figureOptions = new LayerFigureOptions { VocabularySize = 1000, BootstrapResamples = 0 };
        ControlFigures control = ProbeMeasurement.TrainControl(backend, tr, va, ho, Probe with { Family = ProbeFamily.Bag }, 1000);
        LayerResult bag = ProbeMeasurement.MeasureLayer(backend, tr, va, ho, Probe with { Family = ProbeFamily.Bag }, figureOptions, control);
        Assert.NotNull(bag.ListFanoBits);
        Assert.True(bag.Figures.Accuracy > 0.9, $"bag top-n accuracy {bag.Figures.Accuracy}");
        Assert.True(bag.ListFanoBits > 2.0, $"list-Fano {bag.ListFanoBits}");
        // The bag probe's Fano figures are list-Fano: point, and certified below it.
        Assert.Equal(bag.ListFanoBits!.Value, bag.Figures.FanoBits);
        Assert.True(bag.Figures.CertifiedFanoBits < bag.Figures.FanoBits);
        Assert.Null(bag.Figures.FanoInterval);

        // softmax(W z + P[i] + b) cannot select the block of position i from concatenated one-hots (no
        // product of z and i), so a linear probe recovers far less than the positional one, yet far above chance.
        LayerResult linear = ProbeMeasurement.MeasureLayer(backend, tr, va, ho, Probe with { Family = ProbeFamily.Linear, LearningRate = 1e-2f }, figureOptions, control);
        Assert.Null(linear.ListFanoBits);
        Assert.InRange(linear.Figures.Accuracy, 0.25, 0.8);
        Assert.True(linear.GainBits > 0.5, $"linear gain {linear.GainBits}");
    }
}
