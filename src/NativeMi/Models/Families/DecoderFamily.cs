using System.Text.Json;
using NativeMi.Compute;

namespace NativeMi.Models.Families;

/// <summary>
/// The Llama lineage: pre-norm decoders with RMSNorm, rotary positions, grouped-query attention and a gated feed-forward
/// layer, named as transformers' LlamaModel names them (with or without the "model." prefix; an lm_head is ignored). One
/// class reads all five families; what differs between them is a few flags.
/// </summary>
/// <param name="modelType">The config.json model_type.</param>
/// <param name="qkvBias">Qwen2: q, k and v projections always have biases (o never).</param>
/// <param name="qkNorm">Qwen3: RMSNorm on every query and key head before the rotation.</param>
/// <param name="gemma">Gemma: (1 + w) RMSNorm, GeGLU with hidden_activation, embeddings scaled by sqrt(hidden_size).</param>
internal sealed class DecoderFamily(string modelType, bool qkvBias = false, bool qkNorm = false, bool gemma = false) : IModelFamily
{
    public IReadOnlyList<string> ModelTypes { get; } = [modelType];

    public TransformerConfig Parse(ConfigJson json, string type)
    {
        RefuseWhatChangesTheMath(json);
        int hidden = json.Int("hidden_size", null, 1, 1 << 16);
        int heads = json.Int("num_attention_heads", null, 1, 1024);
        int kvHeads = json.Int("num_key_value_heads", heads, 1, 1024);
        if (heads % kvHeads != 0)
            throw new ModelFormatException(json.Path, $"field 'num_attention_heads' = {heads} is not a multiple of 'num_key_value_heads' = {kvHeads}");
        if (!json.Has("head_dim") && hidden % heads != 0)
            throw new ModelFormatException(json.Path, $"field 'hidden_size' = {hidden} is not divisible by 'num_attention_heads' = {heads} (and there is no 'head_dim')");
        int headDim = json.Int("head_dim", hidden / heads, 2, 1 << 12);
        if (headDim % 2 != 0) throw new ModelFormatException(json.Path, $"field 'head_dim' = {headDim}: rotary embeddings need an even head width");
        int maxPositions = json.Int("max_position_embeddings", null, 1, 1 << 24);
        // A sliding window changes nothing for sequences no longer than it: the usable context is capped at the window instead.
        if (SlidingWindow(json) is int window && window < maxPositions) maxPositions = window;
        GateActivation gate = Activation(json);
        bool attentionBias = json.Bool("attention_bias", false);
        var layout = new BlockLayout(
            gemma ? NormKind.RmsNormPlusOne : NormKind.RmsNorm, NormPlacement.Pre, (float)json.Double("rms_norm_eps", 1e-6), PositionEncoding.Rotary,
            PositionOffset: 0, new RotarySpec(json.Double("rope_theta", 10_000), headDim, Scaling(json)), TokenTypes: 0, EmbeddingNorm: false,
            EmbeddingScale: gemma ? (float)Math.Sqrt(hidden) : 1f,
            new AttentionSpec(heads, kvHeads, headDim, QkvBias: qkvBias || attentionBias, OutputBias: !qkvBias && attentionBias, QkNorm: qkNorm, Causal: true),
            new FeedForwardSpec(gate == GateActivation.Silu ? FeedForwardKind.SwiGlu : FeedForwardKind.GeGlu, gate == GateActivation.GeluExact ? GeluKind.Exact : GeluKind.Tanh,
                json.Int("intermediate_size", null, 1, 1 << 20), Bias: json.Bool("mlp_bias", false)),
            FinalNorm: true);
        int vocabulary = json.Int("vocab_size", null, 1, 10_000_000);
        int? eos = FirstId(json, "eos_token_id"), bos = FirstId(json, "bos_token_id");
        return new TransformerConfig
        {
            ModelType = type,
            VocabSize = vocabulary,
            HiddenSize = hidden,
            NumLayers = json.Int("num_hidden_layers", null, 1, 1024),
            MaxPositions = maxPositions,
            // Decoders without a padding token pad with end-of-text (masked, so never read).
            PadTokenId = FirstId(json, "pad_token_id") ?? eos ?? 0,
            BosTokenId = bos,
            EosTokenId = eos,
            Layout = layout,
        };
    }

    /// <summary>The gate's activation: hidden_act (Llama lineage) or, for Gemma, hidden_activation as transformers prefers it.</summary>
    private GateActivation Activation(ConfigJson json)
    {
        string field = gemma && json.Has("hidden_activation") ? "hidden_activation" : "hidden_act";
        string act = json.String(field, gemma ? "gelu_pytorch_tanh" : "silu");
        return act switch
        {
            "silu" or "swish" => GateActivation.Silu,
            "gelu_pytorch_tanh" or "gelu_new" => GateActivation.GeluTanh,
            // transformers' Gemma replaces a legacy exact "gelu" in hidden_act by the tanh form; hidden_activation is taken as written.
            "gelu" => gemma && field == "hidden_act" ? GateActivation.GeluTanh : GateActivation.GeluExact,
            _ => throw new ModelFormatException(json.Path, $"field '{field}' is \"{act}\"; supported: silu, gelu, gelu_pytorch_tanh, gelu_new"),
        };
    }

    /// <summary>Fields that would change the forward pass in ways the engine does not implement: refused, never ignored.</summary>
    private static void RefuseWhatChangesTheMath(ConfigJson json)
    {
        foreach (string field in (string[])["num_experts", "num_local_experts", "moe_intermediate_size", "num_experts_per_tok"])
            if (json.Find(field) is { } value && !(value.ValueKind == JsonValueKind.Number && value.GetDouble() == 0))
                throw new ModelFormatException(json.Path, $"field '{field}' is set: mixture-of-experts layers are not supported");
        foreach (string field in (string[])["attn_logit_softcapping", "final_logit_softcapping"])
            if (json.Has(field)) throw new ModelFormatException(json.Path, $"field '{field}' is set: logit soft-capping is not supported");
        if (json.Has("partial_rotary_factor") && json.Double("partial_rotary_factor", 1) != 1)
            throw new ModelFormatException(json.Path, "field 'partial_rotary_factor' is not 1: partial rotary embeddings are not supported");
        if (json.Has("layer_types") || json.Has("sliding_window_pattern"))
            throw new ModelFormatException(json.Path, "field 'layer_types' / 'sliding_window_pattern' is set: per-layer attention kinds are not supported");
    }

    /// <summary>The attention window, when the config enables one (Mistral: sliding_window; Qwen: only with use_sliding_window).</summary>
    private static int? SlidingWindow(ConfigJson json)
    {
        if (!json.Has("sliding_window")) return null;
        if (json.Has("use_sliding_window") && !json.Bool("use_sliding_window", false)) return null;
        return json.Int("sliding_window", null, 1, int.MaxValue);
    }

    /// <summary>rope_scaling: the "llama3" and "linear" types; any other type changes the math in a way not implemented.</summary>
    private static RopeScaling? Scaling(ConfigJson json)
    {
        if (json.Find("rope_scaling") is not { } element) return null;
        if (element.ValueKind != JsonValueKind.Object) throw new ModelFormatException(json.Path, "field 'rope_scaling' must be an object or null");
        var scaling = new ConfigJson(json.Path, element);
        string type = scaling.Has("rope_type") ? scaling.String("rope_type") : scaling.String("type", "default");
        return type switch
        {
            "default" => null,
            "linear" => new RopeScaling("linear", scaling.Double("factor", 1)),
            "llama3" => new RopeScaling("llama3", scaling.Double("factor", 8), scaling.Double("low_freq_factor", 1), scaling.Double("high_freq_factor", 4),
                scaling.Int("original_max_position_embeddings", 8192, 1, int.MaxValue)),
            _ => throw new ModelFormatException(json.Path, $"field 'rope_scaling.rope_type' is \"{type}\"; supported: default, linear, llama3"),
        };
    }

    /// <summary>An id field that may be a list (Llama 3's eos_token_id): its first id.</summary>
    private static int? FirstId(ConfigJson json, string field)
    {
        if (json.Find(field) is not { } value) return null;
        if (value.ValueKind == JsonValueKind.Array)
        {
            if (value.GetArrayLength() == 0) return null;
            JsonElement first = value[0];
            if (first.ValueKind != JsonValueKind.Number || !first.TryGetInt32(out int id) || id < 0)
                throw new ModelFormatException(json.Path, $"field '{field}' = {value.GetRawText()}; expected non-negative integer ids");
            return id;
        }
        return json.Int(field, null, 0, int.MaxValue);
    }

    public TensorNameMap Names(TransformerConfig config) => new()
    {
        Prefixes = ["", "model."],
        WordEmbeddings = "embed_tokens.weight",
        FinalNorm = new NormNames("norm.weight", null),
        BlocksRoot = "layers.",
        SeparateQkv = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
        AttentionOutput = "self_attn.o_proj",
        Norm1 = new NormNames("input_layernorm.weight", null),
        Norm2 = new NormNames("post_attention_layernorm.weight", null),
        QkNorm = config.Layout.Attention.QkNorm ? ("self_attn.q_norm", "self_attn.k_norm") : null,
        Up = "mlp.up_proj",
        Gate = "mlp.gate_proj",
        Down = "mlp.down_proj",
        InOutMatrices = false,
        Fields = new ConfigFields("hidden_size", "num_hidden_layers", "intermediate_size", "max_position_embeddings", "num_attention_heads"),
    };
}
