namespace NativeMi.Models.Families;

/// <summary>BERT, RoBERTa and XLM-RoBERTa: post-LN encoders with learned positions, token types and an embedding norm.</summary>
internal sealed class BertFamily : IModelFamily
{
    public IReadOnlyList<string> ModelTypes { get; } = ["bert", "roberta", "xlm-roberta"];

    public TransformerConfig Parse(ConfigJson json, string modelType)
    {
        bool roberta = modelType != "bert";
        int pad = json.Int("pad_token_id", roberta ? 1 : 0, 0, int.MaxValue);
        GeluKind gelu = json.Gelu("hidden_act", "gelu");
        string positionType = json.String("position_embedding_type", "absolute");
        if (positionType != "absolute")
            throw new ModelFormatException(json.Path, $"field 'position_embedding_type' is \"{positionType}\"; only \"absolute\" is supported");
        int hidden = json.Int("hidden_size", null, 1, 1 << 16), heads = json.Int("num_attention_heads", null, 1, 1024);
        if (hidden % heads != 0)
            throw new ModelFormatException(json.Path, $"field 'hidden_size' = {hidden} is not divisible by 'num_attention_heads' = {heads}");
        var layout = new BlockLayout(
            NormKind.LayerNorm, NormPlacement.Post, (float)json.Double("layer_norm_eps", 1e-12), PositionEncoding.Learned,
            PositionOffset: roberta ? pad + 1 : 0, Rotary: null, TokenTypes: json.Int("type_vocab_size", 2, 0, 1 << 16), EmbeddingNorm: true, EmbeddingScale: 1,
            new AttentionSpec(heads, heads, hidden / heads, QkvBias: true, OutputBias: true, QkNorm: false, Causal: false),
            new FeedForwardSpec(FeedForwardKind.Gelu, gelu, json.Int("intermediate_size", null, 1, 1 << 18), Bias: true),
            FinalNorm: false);
        return new TransformerConfig
        {
            ModelType = modelType,
            VocabSize = json.Int("vocab_size", null, 1, 10_000_000),
            HiddenSize = hidden,
            NumLayers = json.Int("num_hidden_layers", null, 1, 1024),
            MaxPositions = json.Int("max_position_embeddings", null, 1, 1 << 20),
            PadTokenId = pad,
            BosTokenId = json.OptionalInt("bos_token_id"),
            EosTokenId = json.OptionalInt("eos_token_id"),
            Layout = layout,
        };
    }

    public TensorNameMap Names(TransformerConfig config) => new()
    {
        Prefixes = ["", "bert.", "roberta.", "model."],
        WordEmbeddings = "embeddings.word_embeddings.weight",
        PositionEmbeddings = "embeddings.position_embeddings.weight",
        TypeEmbeddings = config.Layout.TokenTypes > 0 ? "embeddings.token_type_embeddings.weight" : null,
        EmbeddingNorm = new NormNames("embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias"),
        BlocksRoot = "encoder.layer.",
        SeparateQkv = ("attention.self.query", "attention.self.key", "attention.self.value"),
        AttentionOutput = "attention.output.dense",
        Norm1 = new NormNames("attention.output.LayerNorm.weight", "attention.output.LayerNorm.bias"),
        Norm2 = new NormNames("output.LayerNorm.weight", "output.LayerNorm.bias"),
        Up = "intermediate.dense",
        Down = "output.dense",
        InOutMatrices = false,
        Fields = new ConfigFields("hidden_size", "num_hidden_layers", "intermediate_size", "max_position_embeddings", "num_attention_heads"),
    };
}
