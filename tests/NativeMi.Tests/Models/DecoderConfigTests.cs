using System.Text.Json.Nodes;
using NativeMi.Models;
using Xunit;

namespace NativeMi.Tests.Models;

/// <summary>The decoder families' config parsing: what each field maps to, and the fields that change the math refused by name.</summary>
public sealed class DecoderConfigTests : IDisposable
{
    private readonly string _folder = Path.Combine(Path.GetTempPath(), $"nativemi-decoder-config-{Guid.NewGuid():N}");

    public DecoderConfigTests() => Directory.CreateDirectory(_folder);

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private TransformerConfig Load(string fixture, Action<JsonObject> edit)
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures.Folder(fixture), "config.json")))!.AsObject();
        edit(json);
        string path = Path.Combine(_folder, "config.json");
        File.WriteAllText(path, json.ToJsonString());
        return TransformerConfig.Load(path);
    }

    [Fact]
    public void EachFamilyMapsItsFieldsToTheBlockLayout()
    {
        BlockLayout llama = TransformerConfig.Load(Path.Combine(Fixtures.Folder("llama-tiny"), "config.json")).Layout;
        Assert.Equal((NormKind.RmsNorm, NormPlacement.Pre, PositionEncoding.Rotary, FeedForwardKind.SwiGlu), (llama.Norm, llama.Placement, llama.Positions, llama.FeedForward.Kind));
        Assert.Equal((4, 2, 16, false, true), (llama.Attention.Heads, llama.Attention.KeyValueHeads, llama.Attention.HeadDim, llama.Attention.QkvBias, llama.Attention.Causal));
        Assert.Equal("llama3", llama.Rotary!.Scaling!.Type);
        Assert.True(llama.FinalNorm);

        BlockLayout qwen2 = TransformerConfig.Load(Path.Combine(Fixtures.Folder("qwen2-tiny"), "config.json")).Layout;
        Assert.True(qwen2.Attention.QkvBias);
        Assert.False(qwen2.Attention.OutputBias);

        BlockLayout qwen3 = TransformerConfig.Load(Path.Combine(Fixtures.Folder("qwen3-tiny"), "config.json")).Layout;
        Assert.True(qwen3.Attention.QkNorm);
        Assert.Equal(16, qwen3.Attention.HeadDim); // explicit head_dim, not 48 / 4

        TransformerConfig gemma = TransformerConfig.Load(Path.Combine(Fixtures.Folder("gemma-tiny"), "config.json"));
        Assert.Equal(NormKind.RmsNormPlusOne, gemma.Layout.Norm);
        Assert.Equal((FeedForwardKind.GeGlu, GeluKind.Tanh), (gemma.Layout.FeedForward.Kind, gemma.Layout.FeedForward.Gelu));
        Assert.Equal((float)Math.Sqrt(48), gemma.Layout.EmbeddingScale);
    }

    [Theory]
    [InlineData("num_local_experts", "8", "mixture-of-experts")]
    [InlineData("num_experts", "4", "mixture-of-experts")]
    [InlineData("attn_logit_softcapping", "50.0", "soft-capping")]
    [InlineData("final_logit_softcapping", "30.0", "soft-capping")]
    [InlineData("partial_rotary_factor", "0.5", "partial rotary")]
    [InlineData("layer_types", "[\"full_attention\"]", "per-layer attention")]
    [InlineData("rope_scaling", "{\"rope_type\": \"yarn\", \"factor\": 4.0}", "rope_scaling.rope_type")]
    [InlineData("hidden_act", "\"relu\"", "hidden_act")]
    [InlineData("num_key_value_heads", "3", "num_key_value_heads")]
    public void FieldsThatChangeTheMathAreRefusedByName(string field, string value, string expected)
    {
        var error = Assert.Throws<ModelFormatException>(() => Load("llama-tiny", json => json[field] = JsonNode.Parse(value)));
        Assert.Contains(field, error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ASlidingWindowCapsTheContextInsteadOfChangingTheMath()
    {
        TransformerConfig mistral = Load("mistral-tiny", json => json["sliding_window"] = 32);
        Assert.Equal(32, mistral.MaxSequenceLength);
        // Qwen's window counts only with use_sliding_window.
        TransformerConfig qwen = Load("qwen2-tiny", json => { json["sliding_window"] = 32; json["use_sliding_window"] = false; });
        Assert.True(qwen.MaxSequenceLength > 32);
        Assert.Equal(32, Load("qwen2-tiny", json => { json["sliding_window"] = 32; json["use_sliding_window"] = true; }).MaxSequenceLength);
    }

    [Fact]
    public void AListOfEndOfTextIdsTakesTheFirstAndPaddingFallsBackToIt()
    {
        TransformerConfig config = Load("llama-tiny", json => { json["eos_token_id"] = new JsonArray(7, 9); json.Remove("pad_token_id"); });
        Assert.Equal(7, config.EosTokenId);
        Assert.Equal(7, config.PadTokenId);
    }

    [Fact]
    public void TheLlama3ScalingDividesLowFrequenciesKeepsHighOnesAndBlendsBetween()
    {
        // θ 10000 over 16 dimensions, original context 64, factor 8, low 1, high 4: wavelengths above 64 are divided by 8,
        // below 16 kept, in between blended.
        var rotary = new RotarySpec(10_000, 16, new RopeScaling("llama3", 8, 1, 4, 64));
        float[] scaled = RotaryFrequencies.Inverse(rotary), plain = RotaryFrequencies.Inverse(rotary with { Scaling = null });
        for (int i = 0; i < 8; i++)
        {
            double wavelength = 2 * Math.PI / plain[i];
            if (wavelength < 16) Assert.Equal(plain[i], scaled[i]);
            else if (wavelength > 64) Assert.Equal(plain[i] / 8, scaled[i], 6);
            else Assert.InRange(scaled[i], plain[i] / 8, plain[i]);
        }
        Assert.Equal(1f, plain[0]);
        Assert.Equal((float)Math.Pow(10_000, -2.0 / 16), plain[1], 6);
    }
}
