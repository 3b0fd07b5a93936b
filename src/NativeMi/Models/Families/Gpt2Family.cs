namespace NativeMi.Models.Families;

/// <summary>GPT-2: a pre-LN decoder with learned positions, fused Conv1D projections and a final norm (ln_f).</summary>
internal sealed class Gpt2Family : IModelFamily
{
    public IReadOnlyList<string> ModelTypes { get; } = ["gpt2"];

    public TransformerConfig Parse(ConfigJson json, string modelType)
    {
        int hidden = json.Int("n_embd", null, 1, 1 << 16), heads = json.Int("n_head", null, 1, 1024);
        if (hidden % heads != 0) throw new ModelFormatException(json.Path, $"field 'n_embd' = {hidden} is not divisible by 'n_head' = {heads}");
        int inner = json.Has("n_inner") ? json.Int("n_inner", null, 1, 1 << 18) : 4 * hidden;
        GeluKind gelu = json.Gelu("activation_function", "gelu_new");
        int eos = json.Int("eos_token_id", 50256, 0, int.MaxValue);
        if (json.Bool("scale_attn_by_inverse_layer_idx", false))
            throw new ModelFormatException(json.Path, "field 'scale_attn_by_inverse_layer_idx' is true; only the standard GPT-2 attention scale is supported");
        if (json.Bool("reorder_and_upcast_attn", false))
            throw new ModelFormatException(json.Path, "field 'reorder_and_upcast_attn' is true; not supported");
        var layout = new BlockLayout(
            NormKind.LayerNorm, NormPlacement.Pre, (float)json.Double("layer_norm_epsilon", 1e-5), PositionEncoding.Learned,
            PositionOffset: 0, Rotary: null, TokenTypes: 0, EmbeddingNorm: false, EmbeddingScale: 1,
            new AttentionSpec(heads, heads, hidden / heads, QkvBias: true, OutputBias: true, QkNorm: false, Causal: true),
            new FeedForwardSpec(FeedForwardKind.Gelu, gelu, inner, Bias: true),
            FinalNorm: true);
        return new TransformerConfig
        {
            ModelType = modelType,
            VocabSize = json.Int("vocab_size", null, 1, 10_000_000),
            HiddenSize = hidden,
            NumLayers = json.Int("n_layer", null, 1, 1024),
            MaxPositions = json.Int("n_positions", null, 1, 1 << 20),
            // GPT-2 has no padding token; batches are padded with end-of-text and masked.
            PadTokenId = json.Has("pad_token_id") ? json.Int("pad_token_id", null, 0, int.MaxValue) : eos,
            BosTokenId = json.OptionalInt("bos_token_id"),
            EosTokenId = eos,
            Layout = layout,
        };
    }

    public TensorNameMap Names(TransformerConfig config) => new()
    {
        Prefixes = ["", "transformer.", "model."],
        WordEmbeddings = "wte.weight",
        PositionEmbeddings = "wpe.weight",
        FinalNorm = new NormNames("ln_f.weight", "ln_f.bias"),
        BlocksRoot = "h.",
        FusedQkv = "attn.c_attn",
        AttentionOutput = "attn.c_proj",
        Norm1 = new NormNames("ln_1.weight", "ln_1.bias"),
        Norm2 = new NormNames("ln_2.weight", "ln_2.bias"),
        Up = "mlp.c_fc",
        Down = "mlp.c_proj",
        InOutMatrices = true,
        Fields = new ConfigFields("n_embd", "n_layer", "n_inner (4 x n_embd when null)", "n_positions", "n_head"),
    };
}
