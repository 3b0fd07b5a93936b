using NativeMi.IO;
using NativeMi.Models;
using NativeMi.Transformer;
using Xunit;

namespace NativeMi.Tests.Transformer;

/// <summary>
/// Our forward pass against golden hidden states written by scripts/make_fixtures.py, an independent
/// float64 PyTorch implementation of Hugging Face's GPT2Model / BertModel / RobertaModel.
/// </summary>
public class GoldenForwardTests(Xunit.Abstractions.ITestOutputHelper output)
{
    public static TheoryData<string> Models => new(Fixtures.GoldenModels);

    /// <summary>Every layer within this fraction of the layer's largest golden magnitude (float32 against a float64 reference).</summary>
    internal const double Tolerance = 2e-5;

    private static (TransformerModel Model, EncodedBatch Batch, SafetensorsFile Golden) Load(string name)
    {
        string folder = Fixtures.Folder(name);
        var model = TransformerModel.Load(folder);
        var golden = SafetensorsFile.Open(Path.Combine(folder, "golden.safetensors"));
        var shape = golden.GetInfo("input_ids").Shape;
        int n = (int)shape[0], t = (int)shape[1];
        int[] ids = golden.ReadInt64("input_ids").Select(v => (int)v).ToArray();
        int[] mask = golden.ReadInt64("attention_mask").Select(v => (int)v).ToArray();
        int[]? types = golden.Tensors.ContainsKey("token_type_ids") ? golden.ReadInt64("token_type_ids").Select(v => (int)v).ToArray() : null;
        return (model, new EncodedBatch(n, t, ids, mask, types), golden);
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void EveryLayerMatchesTheReference(string name)
    {
        var (model, batch, golden) = Load(name);
        using (model)
        using (golden)
        {
            HiddenStates states = model.Forward(batch);
            Assert.Equal(model.Config.NumLayers + 1, states.Layers.Count);
            var entries = Enumerable.Range(0, states.Layers.Count).Select(l => ($"hidden.{l}", states.Layers[l])).ToList();
            if (model.Config.HasFinalEntry) entries.Add(("hidden.final", states.Final!));
            else Assert.Null(states.Final);
            double worst = 0;
            string worstTensor = "";
            foreach (var (tensor, ours) in entries)
            {
                var (maxAbs, maxRef) = Compare(ours, golden.ReadFloat32(tensor), batch.AttentionMask, states.Width);
                Assert.True(maxAbs <= Tolerance * maxRef, $"{name} {tensor}: max |ours - golden| = {maxAbs:E3}, {maxAbs / maxRef:E2} of the largest golden magnitude {maxRef:F3} (limit {Tolerance:E0})");
                if (maxAbs / maxRef > worst) (worst, worstTensor) = (maxAbs / maxRef, tensor);
            }
            output.WriteLine($"{name}: largest difference {worst:E2} of the layer's largest magnitude, at {worstTensor}");
        }
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void LeftPaddingGivesTheSameStatesAsRightPadding(string name)
    {
        var (model, right, golden) = Load(name);
        using (model)
        using (golden)
        {
            int n = right.BatchSize, t = right.SequenceLength;
            var ids = new int[n * t];
            var mask = new int[n * t];
            var types = new int[n * t];
            var lengths = new int[n];
            for (int s = 0; s < n; s++)
            {
                lengths[s] = right.AttentionMask.AsSpan(s * t, t).IndexOf(0) is int z and >= 0 ? z : t;
                Array.Fill(ids, model.Tokenizer.PadId, s * t, t - lengths[s]);
                for (int i = 0; i < lengths[s]; i++)
                {
                    int to = s * t + t - lengths[s] + i;
                    ids[to] = right.InputIds[s * t + i];
                    mask[to] = 1;
                    types[to] = right.TokenTypeIds[s * t + i];
                }
            }
            var left = new EncodedBatch(n, t, ids, mask, types);
            HiddenStates a = model.Forward(right), b = model.Forward(left);
            int d = a.Width;
            for (int l = 0; l < a.Layers.Count; l++)
                for (int s = 0; s < n; s++)
                    for (int i = 0; i < lengths[s]; i++)
                        for (int k = 0; k < d; k++)
                        {
                            float x = a.Layers[l][(s * t + i) * d + k], y = b.Layers[l][(s * t + t - lengths[s] + i) * d + k];
                            Assert.True(Math.Abs(x - y) <= 1e-5f * Math.Max(1f, Math.Abs(x)), $"{name} layer {l} sentence {s} token {i}: {x} vs {y}");
                        }
        }
    }

    private static (double MaxAbs, double MaxRef) Compare(float[] ours, float[] expected, int[] mask, int width)
    {
        Assert.Equal(expected.Length, ours.Length);
        double maxAbs = 0, maxRef = 0;
        for (int cell = 0; cell < mask.Length; cell++)
        {
            if (mask[cell] == 0) continue;
            for (int k = 0; k < width; k++)
            {
                float o = ours[cell * width + k], e = expected[cell * width + k];
                Assert.False(float.IsNaN(o) || float.IsInfinity(o), $"non-finite value at cell {cell}");
                maxAbs = Math.Max(maxAbs, Math.Abs(o - e));
                maxRef = Math.Max(maxRef, Math.Abs(e));
            }
        }
        return (maxAbs, maxRef);
    }
}
