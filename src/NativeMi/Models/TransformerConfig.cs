using System.Text.Json;

namespace NativeMi.Models;

/// <summary>The two families of transformer the engine runs.</summary>
public enum ArchitectureFamily
{
    /// <summary>Encoder-only, post-LN, exact GELU (BERT, RoBERTa, MiniLM).</summary>
    Bert,
    /// <summary>Decoder-only, pre-LN, tanh GELU, causal (GPT-2).</summary>
    Gpt2,
}

/// <summary>The GELU variant a model uses.</summary>
public enum GeluKind
{
    /// <summary>0.5 x (1 + erf(x / sqrt 2)), Hugging Face "gelu".</summary>
    Exact,
    /// <summary>0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), Hugging Face "gelu_new" / "gelu_pytorch_tanh".</summary>
    Tanh,
}

/// <summary>
/// The architecture described by a Hugging Face <c>config.json</c>. One description drives the
/// forward pass on every backend.
/// </summary>
public sealed record TransformerConfig
{
    /// <summary>Family of the architecture.</summary>
    public required ArchitectureFamily Family { get; init; }
    /// <summary>The config's model_type ("bert", "roberta", "gpt2").</summary>
    public required string ModelType { get; init; }
    /// <summary>Rows of the token embedding table.</summary>
    public required int VocabSize { get; init; }
    /// <summary>Width d of every hidden state.</summary>
    public required int HiddenSize { get; init; }
    /// <summary>Number of transformer blocks L.</summary>
    public required int NumLayers { get; init; }
    /// <summary>Attention heads per block.</summary>
    public required int NumHeads { get; init; }
    /// <summary>Width of the feed-forward layer.</summary>
    public required int IntermediateSize { get; init; }
    /// <summary>Rows of the position embedding table.</summary>
    public required int MaxPositions { get; init; }
    /// <summary>Rows of the token-type table (0 when the model has none).</summary>
    public required int TypeVocabSize { get; init; }
    /// <summary>LayerNorm epsilon.</summary>
    public required float LayerNormEps { get; init; }
    /// <summary>Padding token id (GPT-2 has none; we pad with end-of-text and mask it).</summary>
    public required int PadTokenId { get; init; }
    /// <summary>Added to every position index (RoBERTa: padding_idx + 1; otherwise 0).</summary>
    public required int PositionOffset { get; init; }
    /// <summary>Activation of the feed-forward layer.</summary>
    public required GeluKind Activation { get; init; }
    /// <summary>Beginning-of-sequence id from config.json, when it names one.</summary>
    public int? BosTokenId { get; init; }
    /// <summary>End-of-sequence id from config.json, when it names one.</summary>
    public int? EosTokenId { get; init; }

    /// <summary>Head width d / heads.</summary>
    public int HeadDim => HiddenSize / NumHeads;

    /// <summary>Longest input the position table allows.</summary>
    public int MaxSequenceLength => MaxPositions - PositionOffset;

    /// <summary>Reads and validates <paramref name="path"/> (a config.json).</summary>
    /// <exception cref="ModelFormatException">A field is missing, of the wrong type, out of range, or the model_type is unsupported.</exception>
    public static TransformerConfig Load(string path)
    {
        string fullPath = Path.GetFullPath(path);
        if (!File.Exists(fullPath)) throw new ModelFormatException(fullPath, "config.json not found");
        using (JsonDocument document = IO.JsonInput.ParseFile(fullPath, maxDepth: 32))
        {
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new ModelFormatException(fullPath, "expected a JSON object");
            string modelType = GetString(fullPath, root, "model_type");
            return modelType switch
            {
                "bert" or "roberta" or "xlm-roberta" => ParseBert(fullPath, root, modelType),
                "gpt2" => ParseGpt2(fullPath, root),
                _ => throw new ModelFormatException(fullPath, $"field 'model_type' is \"{modelType}\"; supported: bert, roberta, xlm-roberta, gpt2"),
            };
        }
    }

    private static TransformerConfig ParseBert(string path, JsonElement root, string modelType)
    {
        bool roberta = modelType != "bert";
        int pad = GetInt(path, root, "pad_token_id", roberta ? 1 : 0, 0, int.MaxValue);
        string act = GetString(path, root, "hidden_act", "gelu");
        GeluKind gelu = act switch
        {
            "gelu" => GeluKind.Exact,
            "gelu_new" or "gelu_pytorch_tanh" => GeluKind.Tanh,
            _ => throw new ModelFormatException(path, $"field 'hidden_act' is \"{act}\"; supported: gelu, gelu_new, gelu_pytorch_tanh"),
        };
        string positionType = GetString(path, root, "position_embedding_type", "absolute");
        if (positionType != "absolute")
            throw new ModelFormatException(path, $"field 'position_embedding_type' is \"{positionType}\"; only \"absolute\" is supported");
        var config = new TransformerConfig
        {
            Family = ArchitectureFamily.Bert,
            ModelType = modelType,
            VocabSize = GetInt(path, root, "vocab_size", null, 1, 10_000_000),
            HiddenSize = GetInt(path, root, "hidden_size", null, 1, 1 << 16),
            NumLayers = GetInt(path, root, "num_hidden_layers", null, 1, 1024),
            NumHeads = GetInt(path, root, "num_attention_heads", null, 1, 1024),
            IntermediateSize = GetInt(path, root, "intermediate_size", null, 1, 1 << 18),
            MaxPositions = GetInt(path, root, "max_position_embeddings", null, 1, 1 << 20),
            TypeVocabSize = GetInt(path, root, "type_vocab_size", 2, 0, 1 << 16),
            LayerNormEps = (float)GetDouble(path, root, "layer_norm_eps", 1e-12),
            PadTokenId = pad,
            PositionOffset = roberta ? pad + 1 : 0,
            Activation = gelu,
            BosTokenId = GetOptionalInt(path, root, "bos_token_id"),
            EosTokenId = GetOptionalInt(path, root, "eos_token_id"),
        };
        config.Validate(path, "hidden_size", "num_attention_heads");
        return config;
    }

    private static TransformerConfig ParseGpt2(string path, JsonElement root)
    {
        int hidden = GetInt(path, root, "n_embd", null, 1, 1 << 16);
        int inner = root.TryGetProperty("n_inner", out JsonElement innerElement) && innerElement.ValueKind != JsonValueKind.Null
            ? GetInt(path, root, "n_inner", null, 1, 1 << 18)
            : 4 * hidden;
        string act = GetString(path, root, "activation_function", "gelu_new");
        GeluKind gelu = act switch
        {
            "gelu_new" or "gelu_pytorch_tanh" => GeluKind.Tanh,
            "gelu" => GeluKind.Exact,
            _ => throw new ModelFormatException(path, $"field 'activation_function' is \"{act}\"; supported: gelu_new, gelu_pytorch_tanh, gelu"),
        };
        int eos = GetInt(path, root, "eos_token_id", 50256, 0, int.MaxValue);
        var config = new TransformerConfig
        {
            Family = ArchitectureFamily.Gpt2,
            ModelType = "gpt2",
            VocabSize = GetInt(path, root, "vocab_size", null, 1, 10_000_000),
            HiddenSize = hidden,
            NumLayers = GetInt(path, root, "n_layer", null, 1, 1024),
            NumHeads = GetInt(path, root, "n_head", null, 1, 1024),
            IntermediateSize = inner,
            MaxPositions = GetInt(path, root, "n_positions", null, 1, 1 << 20),
            TypeVocabSize = 0,
            LayerNormEps = (float)GetDouble(path, root, "layer_norm_epsilon", 1e-5),
            PadTokenId = root.TryGetProperty("pad_token_id", out JsonElement p) && p.ValueKind == JsonValueKind.Number ? GetInt(path, root, "pad_token_id", null, 0, int.MaxValue) : eos,
            PositionOffset = 0,
            Activation = gelu,
            BosTokenId = GetOptionalInt(path, root, "bos_token_id"),
            EosTokenId = eos,
        };
        if (GetBool(path, root, "scale_attn_by_inverse_layer_idx", false))
            throw new ModelFormatException(path, "field 'scale_attn_by_inverse_layer_idx' is true; only the standard GPT-2 attention scale is supported");
        if (GetBool(path, root, "reorder_and_upcast_attn", false))
            throw new ModelFormatException(path, "field 'reorder_and_upcast_attn' is true; not supported");
        config.Validate(path, "n_embd", "n_head");
        return config;
    }

    private void Validate(string path, string widthField, string headsField)
    {
        if (HiddenSize % NumHeads != 0)
            throw new ModelFormatException(path, $"field '{widthField}' = {HiddenSize} is not divisible by '{headsField}' = {NumHeads}");
        if (PadTokenId >= VocabSize)
            throw new ModelFormatException(path, $"field 'pad_token_id' = {PadTokenId} is outside the vocabulary (vocab_size = {VocabSize})");
        if (PositionOffset >= MaxPositions)
            throw new ModelFormatException(path, $"position offset {PositionOffset} leaves no room in max_position_embeddings = {MaxPositions}");
        if (!(LayerNormEps > 0 && LayerNormEps < 1))
            throw new ModelFormatException(path, $"layer norm epsilon {LayerNormEps} must be in (0, 1)");
    }

    private static JsonElement? Find(JsonElement root, string field) =>
        root.TryGetProperty(field, out JsonElement value) && value.ValueKind != JsonValueKind.Null ? value : null;

    private static string GetString(string path, JsonElement root, string field, string? fallback = null)
    {
        JsonElement? value = Find(root, field);
        if (value is null)
            return fallback ?? throw new ModelFormatException(path, $"missing field '{field}' (a string)");
        if (value.Value.ValueKind != JsonValueKind.String)
            throw new ModelFormatException(path, $"field '{field}' must be a string, found {value.Value.ValueKind}");
        return value.Value.GetString()!;
    }

    private static int GetInt(string path, JsonElement root, string field, int? fallback, int min, int max)
    {
        JsonElement? value = Find(root, field);
        if (value is null)
            return fallback ?? throw new ModelFormatException(path, $"missing field '{field}' (an integer in [{min}, {max}])");
        if (value.Value.ValueKind != JsonValueKind.Number || !value.Value.TryGetInt64(out long number) || number < min || number > max)
            throw new ModelFormatException(path, $"field '{field}' = {value.Value.GetRawText()}; expected an integer in [{min}, {max}]");
        return (int)number;
    }

    private static int? GetOptionalInt(string path, JsonElement root, string field) =>
        Find(root, field) is null ? null : GetInt(path, root, field, null, 0, int.MaxValue);

    private static double GetDouble(string path, JsonElement root, string field, double fallback)
    {
        JsonElement? value = Find(root, field);
        if (value is null) return fallback;
        if (value.Value.ValueKind != JsonValueKind.Number || !value.Value.TryGetDouble(out double number) || !double.IsFinite(number))
            throw new ModelFormatException(path, $"field '{field}' = {value.Value.GetRawText()}; expected a finite number");
        return number;
    }

    private static bool GetBool(string path, JsonElement root, string field, bool fallback)
    {
        JsonElement? value = Find(root, field);
        if (value is null) return fallback;
        return value.Value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new ModelFormatException(path, $"field '{field}' must be true or false, found {value.Value.GetRawText()}"),
        };
    }
}
