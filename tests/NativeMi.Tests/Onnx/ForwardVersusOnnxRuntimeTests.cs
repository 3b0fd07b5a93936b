using NativeMi.Models;
using NativeMi.Text;
using NativeMi.Transformer;
using Xunit;
using Xunit.Abstractions;

namespace NativeMi.Tests.Onnx;

/// <summary>
/// The main oracle: our CPU forward pass on the real built-in models against ONNX Runtime running
/// the original ONNX export, every layer, on 72 corpus sentences of mixed length with padding.
/// </summary>
[Collection(BuiltinModelCollection.Name)]
public class ForwardVersusOnnxRuntimeTests(BuiltinModelFixture models, ITestOutputHelper output)
{
    public static TheoryData<string> Names => new(BuiltinModels.Names);

    /// <summary>72 sentences: the shortest, the longest and a spread between, from the packaged corpus.</summary>
    private static string[] MixedLengthSentences()
    {
        string[] all = File.ReadLines(Path.Combine(AppContext.BaseDirectory, "data", "wordnet-examples.txt")).Take(4000).ToArray();
        var byLength = all.OrderBy(s => s.Length).ThenBy(s => s, StringComparer.Ordinal).ToArray();
        var picked = new List<string> { "Hi.", "A café in Zürich — naïve? Yes!", byLength[^1], byLength[^2] };
        for (int i = 0; picked.Count < 72; i++) picked.Add(byLength[(int)((long)i * (byLength.Length - 1) / 67)]);
        return picked.ToArray();
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void EveryLayerMatchesOnnxRuntimeWithin1e4(string name)
    {
        using var model = TransformerModel.Load(models.Folders[name]);
        using var oracle = new OnnxOracle(models.OnnxPaths[name]);
        string[] sentences = MixedLengthSentences();
        EncodedBatch batch = model.Encode(sentences);
        Assert.True(batch.SequenceLength >= 40, "the batch should mix short and long sentences");
        Assert.Contains(batch.AttentionMask, m => m == 0);

        HiddenStates ours = model.Forward(batch);
        var reference = oracle.Run(batch.InputIds.Select(i => (long)i).ToArray(), batch.AttentionMask.Select(m => (long)m).ToArray(),
            batch.TokenTypeIds.Select(t => (long)t).ToArray(), batch.BatchSize, batch.SequenceLength);
        Assert.Equal(ours.Layers.Count, reference.HiddenStates.Count);

        int d = ours.Width;
        for (int layer = 0; layer < ours.Layers.Count; layer++)
        {
            double maxDiff = 0;
            for (int cell = 0; cell < batch.AttentionMask.Length; cell++)
            {
                if (batch.AttentionMask[cell] == 0) continue;
                for (int k = 0; k < d; k++)
                    maxDiff = Math.Max(maxDiff, Math.Abs(ours.Layers[layer][cell * d + k] - reference.HiddenStates[layer][cell * d + k]));
            }
            output.WriteLine($"{name} layer {layer}: max |ours - ORT| = {maxDiff:E2}");
            Assert.True(maxDiff <= 1e-4, $"{name} layer {layer}: max |ours - ORT| = {maxDiff:E3}");
        }
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void TokenizerGivesKnownBertUncasedIds(string name)
    {
        using var model = TransformerModel.Load(models.Folders[name]);
        // Ids of bert-base-uncased's vocabulary, which both packaged models use.
        Assert.Equal([101, 7592, 2088, 102], model.Tokenizer.Encode("Hello world", 512).Ids);
        Assert.Equal([101, 1996, 4248, 2829, 4419, 14523, 2058, 1996, 13971, 3899, 1012, 102],
            model.Tokenizer.Encode("The quick brown fox jumps over the lazy dog.", 512).Ids);
        Assert.Equal([101, 7668, 102], model.Tokenizer.Encode("Café", 512).Ids);
        EncodedSentence truncated = model.Tokenizer.Encode(string.Join(' ', Enumerable.Repeat("word", 600)), 512);
        Assert.True(truncated.Truncated);
        Assert.Equal(512, truncated.Ids.Length);
        Assert.Equal(102, truncated.Ids[^1]);
    }
}
