using NativeMi.Measurement;
using NativeMi.Models;
using NativeMi.Text;
using NativeMi.Transformer;
using Xunit;
using NativeMi.Pooling;

namespace NativeMi.Tests.Measurement;

/// <summary>Pooling reads positions from the masks: padding side and padding cells never change a sentence vector.</summary>
public class PoolingTests
{
    public static TheoryData<string, PoolingMode> ModelsAndModes()
    {
        var data = new TheoryData<string, PoolingMode>();
        foreach (string model in new[] { "bert-tiny", "gpt2-tiny" })
            foreach (PoolingMode mode in Enum.GetValues<PoolingMode>())
                data.Add(model, mode);
        return data;
    }

    private static readonly string[] Sentences =
    [
        "Hi.",
        "the cat sat on the mat",
        "she was able to program her computer",
        "we were at last able to buy a car after saving for many years",
        "a",
    ];

    [Theory]
    [MemberData(nameof(ModelsAndModes))]
    public void LeftAndRightPaddingGiveTheSameVectorsAtEveryLayer(string name, PoolingMode mode)
    {
        using var model = TransformerModel.Load(Fixtures.Folder(name));
        EncodedSentence[] encoded = Sentences.Select(s => model.Tokenizer.Encode(s, model.Config.MaxSequenceLength)).ToArray();
        Assert.True(encoded.Select(e => e.Ids.Length).Distinct().Count() >= 3, "the sentences should have different lengths so that padding occurs");
        Assert.All(encoded, e => Assert.Contains(true, e.IsTarget));

        EncodedBatch right = EncodedBatch.Pad(encoded, model.Tokenizer.PadId);
        EncodedBatch left = EncodedBatch.Pad(encoded, model.Tokenizer.PadId, padLeft: true);
        Assert.Contains(0, right.AttentionMask);
        Assert.Equal(0, left.AttentionMask[0]); // the shortest sentences really are padded on the left
        Assert.NotEqual(right.InputIds, left.InputIds);

        HiddenStates rightStates = model.Forward(right), leftStates = model.Forward(left);
        var rightLayers = rightStates.Layers.ToList();
        var leftLayers = leftStates.Layers.ToList();
        if (model.Config.Family == ArchitectureFamily.Gpt2)
        {
            Assert.NotNull(rightStates.Final);
            rightLayers.Add(rightStates.Final);
            leftLayers.Add(leftStates.Final!);
        }
        else
        {
            Assert.Null(rightStates.Final);
        }
        Assert.Equal(model.Config.NumLayers + 1 + (model.Config.Family == ArchitectureFamily.Gpt2 ? 1 : 0), rightLayers.Count);

        int d = model.Config.HiddenSize;
        for (int l = 0; l < rightLayers.Count; l++)
        {
            float[] a = SentencePooling.Pool(rightLayers[l], right, d, mode);
            float[] b = SentencePooling.Pool(leftLayers[l], left, d, mode);
            Assert.Equal(Sentences.Length * d, a.Length);
            Assert.Equal(a.Length, b.Length);
            for (int k = 0; k < a.Length; k++)
            {
                Assert.True(float.IsFinite(a[k]), $"{name} layer {l} {mode}: non-finite value at {k}");
                double tolerance = 1e-5 * Math.Max(1.0, Math.Abs(a[k]));
                Assert.True(Math.Abs(a[k] - b[k]) <= tolerance,
                    $"{name} layer {l} {mode}: sentence {k / d} component {k % d}: right-padded {a[k]} vs left-padded {b[k]}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(ModelsAndModes))]
    public void PoolingOnTheBackendEqualsPoolingTheDownloadedStatesBitForBit(string name, PoolingMode mode)
    {
        using var model = TransformerModel.Load(Fixtures.Folder(name));
        EncodedSentence[] encoded = Sentences.Select(s => model.Tokenizer.Encode(s, model.Config.MaxSequenceLength)).ToArray();
        EncodedBatch batch = EncodedBatch.Pad(encoded, model.Tokenizer.PadId, padLeft: name.StartsWith("gpt2", StringComparison.Ordinal));
        int d = model.Config.HiddenSize;

        HiddenStates states = model.Forward(batch);
        float[][] pooled = model.ForwardPooled(batch, mode);

        List<float[]> layers = [.. states.Layers];
        if (states.Final is not null) layers.Add(states.Final);
        Assert.Equal(layers.Count, pooled.Length);
        for (int l = 0; l < layers.Count; l++)
            Assert.Equal(SentencePooling.Pool(layers[l], batch, d, mode), pooled[l]);
    }

    [Fact]
    public void PoolingOnTheBackendRefusesASentenceWithoutTargetsLikePoolingOnTheHost()
    {
        using var model = TransformerModel.Load(Fixtures.Folder("bert-tiny"));
        EncodedSentence sentence = model.Tokenizer.Encode("the cat", model.Config.MaxSequenceLength);
        var noTargets = new EncodedBatch(1, sentence.Ids.Length, sentence.Ids, [.. sentence.Ids.Select(_ => 1)], null, new bool[sentence.Ids.Length]);

        var error = Assert.Throws<ArgumentException>(() => model.ForwardPooled(noTargets, PoolingMode.Mean));
        Assert.Contains("sentence 0 of the batch has no target token to average", error.Message);
        Assert.Equal(model.LayerCount, model.ForwardPooled(noTargets, PoolingMode.Cls).Length);
    }

    [Theory]
    [MemberData(nameof(ModelsAndModes))]
    public void APaddedSentencePoolsLikeTheSameSentenceAlone(string name, PoolingMode mode)
    {
        using var model = TransformerModel.Load(Fixtures.Folder(name));
        EncodedSentence[] encoded = Sentences.Select(s => model.Tokenizer.Encode(s, model.Config.MaxSequenceLength)).ToArray();
        int d = model.Config.HiddenSize, last = model.LayerCount - 1;
        EncodedBatch batch = EncodedBatch.Pad(encoded, model.Tokenizer.PadId, padLeft: true);
        float[] pooled = SentencePooling.Pool(model.Forward(batch).Layers[last], batch, d, mode);
        for (int s = 0; s < encoded.Length; s++)
        {
            EncodedBatch alone = EncodedBatch.Pad([encoded[s]], model.Tokenizer.PadId);
            float[] single = SentencePooling.Pool(model.Forward(alone).Layers[last], alone, d, mode);
            for (int k = 0; k < d; k++)
                Assert.True(Math.Abs(single[k] - pooled[s * d + k]) <= 1e-5 * Math.Max(1.0, Math.Abs(single[k])),
                    $"{name} {mode}: sentence {s} component {k}: alone {single[k]} vs in a left-padded batch {pooled[s * d + k]}");
        }
    }

    /// <summary>
    /// Two sentences, T = 5, d = 2. Sentence 0 is right-padded: [CLS] a b [SEP] pad. Sentence 1 is left-padded:
    /// pad pad [CLS] c [SEP]. Padding rows carry huge values that must never leak into a vector.
    /// </summary>
    private static (float[] Layer, EncodedBatch Batch) Synthetic()
    {
        int[] mask = [1, 1, 1, 1, 0, /**/ 0, 0, 1, 1, 1];
        bool[] target = [false, true, true, false, false, /**/ false, false, false, true, false];
        int[] ids = [101, 7, 8, 102, 0, /**/ 0, 0, 101, 9, 102];
        float[] layer =
        [
            1, 10,      // [CLS]
            2, -4,      // a
            6, 3,       // b
            -7, 50,     // [SEP]
            999, 999,   // pad
            -999, 999,  // pad
            999, -999,  // pad
            5, 5,       // [CLS]
            -3, 0.5f,   // c
            8, -8,      // [SEP]
        ];
        return (layer, new EncodedBatch(2, 5, ids, mask, null, target));
    }

    [Theory]
    [InlineData(PoolingMode.Mean, new float[] { 4, -0.5f, -3, 0.5f })]
    [InlineData(PoolingMode.Max, new float[] { 6, 3, -3, 0.5f })]
    [InlineData(PoolingMode.Cls, new float[] { 1, 10, 5, 5 })]
    [InlineData(PoolingMode.Last, new float[] { -7, 50, 8, -8 })]
    public void HandComputedPoolingOfASyntheticLayer(PoolingMode mode, float[] expected)
    {
        var (layer, batch) = Synthetic();
        float[] pooled = SentencePooling.Pool(layer, batch, 2, mode);
        Assert.Equal(expected, pooled);
    }

    [Fact]
    public void MeanWithoutAnyTargetTokenIsRejectedButClsStillWorks()
    {
        // [CLS] [SEP]: real tokens but no target.
        var batch = new EncodedBatch(1, 2, [101, 102], [1, 1], null, [false, false]);
        float[] layer = [1, 2, 3, 4];
        Assert.Throws<ArgumentException>(() => SentencePooling.Pool(layer, batch, 2, PoolingMode.Mean));
        Assert.Throws<ArgumentException>(() => SentencePooling.Pool(layer, batch, 2, PoolingMode.Max));
        Assert.Equal([1f, 2f], SentencePooling.Pool(layer, batch, 2, PoolingMode.Cls));
        Assert.Equal([3f, 4f], SentencePooling.Pool(layer, batch, 2, PoolingMode.Last));
    }
}
