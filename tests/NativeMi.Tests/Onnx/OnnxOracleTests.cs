using Xunit;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace NativeMi.Tests.Onnx;

[Collection(BuiltinModelCollection.Name)]
public sealed class OnnxOracleTests(BuiltinModelFixture models)
{
    // [CLS] the cat sat on the mat . [SEP] and a shorter, padded second sequence.
    private static readonly long[][] Sentences = [[101, 1996, 4937, 2938, 2006, 1996, 13523, 1012, 102], [101, 7592, 2088, 102]];

    [Theory]
    [InlineData("minilm")]
    [InlineData("arctic-xs")]
    public void ReturnsEveryLayerAndItsLastEntryIsOrtsOwnOutput(string name)
    {
        using var oracle = new OnnxOracle(models.OnnxPaths[name]);
        OnnxOracleResult result = oracle.RunPadded(Sentences);

        Assert.Equal(oracle.Graph.NumHiddenLayers + 1, result.HiddenStates.Count);
        Assert.Equal(7, result.HiddenStates.Count);
        Assert.All(result.HiddenStates, h => Assert.Equal(2 * 9 * 384, h.Length));
        Assert.All(result.HiddenStates, h => Assert.All(h, v => Assert.True(float.IsFinite(v))));
        Assert.Equal(result.LastHiddenState, result.HiddenStates[^1]);
        // Successive layers must actually differ, or the exposed values would be wrong ones.
        for (int i = 1; i < result.HiddenStates.Count; i++)
            Assert.NotEqual(result.HiddenStates[i - 1], result.HiddenStates[i]);

        // The unmodified model, run with the same options, must give bit-identical last_hidden_state.
        using var plain = new InferenceSession(models.OnnxPaths[name], OnnxOracle.CreateOptions());
        int batch = 2, length = 9;
        var ids = new long[batch * length];
        var mask = new long[batch * length];
        for (int b = 0; b < batch; b++)
        {
            Sentences[b].CopyTo(ids, b * length);
            mask.AsSpan(b * length, Sentences[b].Length).Fill(1);
        }
        var feeds = new List<NamedOnnxValue>
        {
            NamedOnnxValue.CreateFromTensor("input_ids", new DenseTensor<long>(ids, [batch, length])),
            NamedOnnxValue.CreateFromTensor("attention_mask", new DenseTensor<long>(mask, [batch, length])),
            NamedOnnxValue.CreateFromTensor("token_type_ids", new DenseTensor<long>(new long[batch * length], [batch, length])),
        };
        using var outputs = plain.Run(feeds, ["last_hidden_state"]);
        float[] reference = outputs[0].AsTensor<float>().ToArray();
        Assert.Equal(reference, result.LastHiddenState);
    }

    [Fact]
    public void EmbeddingLayerIsLayerNormalised()
    {
        using var oracle = new OnnxOracle(models.OnnxPaths["minilm"]);
        OnnxOracleResult result = oracle.RunPadded([Sentences[0]]);
        // Entry 0 is LayerNorm(word + position + type) times gamma plus beta; with gamma near 1
        // its per-token mean is near the mean of beta and the vector is not all zeros.
        ReadOnlySpan<float> first = result.At(0, 0, 0);
        Assert.Equal(384, first.Length);
        Assert.Contains(first.ToArray(), v => v != 0f);
    }
}
