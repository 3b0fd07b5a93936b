using System.Text.Json;

namespace NativeMi.Models;

/// <summary>Encoder-only or decoder-only: what decides the tokenizer's defaults and the pooling default.</summary>
internal enum ArchitectureFamily
{
    /// <summary>Encoder-only, bidirectional attention (BERT, RoBERTa, MiniLM).</summary>
    Bert,
    /// <summary>Decoder-only, causal attention (GPT-2, Llama, ...).</summary>
    Gpt2,
}

/// <summary>
/// The architecture described by a Hugging Face <c>config.json</c>: the sizes, the special ids and the
/// <see cref="BlockLayout"/> that one forward pass, on every backend, is built from. Each family (Models/Families) is a
/// config parser and a tensor-name map.
/// </summary>
internal sealed record TransformerConfig
{
    /// <summary>The config's model_type ("bert", "roberta", "gpt2", ...).</summary>
    public required string ModelType { get; init; }
    /// <summary>Rows of the token embedding table.</summary>
    public required int VocabSize { get; init; }
    /// <summary>Width d of every hidden state.</summary>
    public required int HiddenSize { get; init; }
    /// <summary>Number of transformer blocks L.</summary>
    public required int NumLayers { get; init; }
    /// <summary>Rows of the position embedding table (for rotary models, the longest context).</summary>
    public required int MaxPositions { get; init; }
    /// <summary>Padding token id (decoders without one pad with end-of-text and mask it).</summary>
    public required int PadTokenId { get; init; }
    /// <summary>Beginning-of-sequence id from config.json, when it names one.</summary>
    public int? BosTokenId { get; init; }
    /// <summary>End-of-sequence id from config.json, when it names one.</summary>
    public int? EosTokenId { get; init; }
    /// <summary>The parts of the model the forward pass is built from.</summary>
    public required BlockLayout Layout { get; init; }

    /// <summary>Encoder-only or decoder-only (from the attention's causality).</summary>
    public ArchitectureFamily Family => Layout.Attention.Causal ? ArchitectureFamily.Gpt2 : ArchitectureFamily.Bert;
    /// <summary>Attention heads per block.</summary>
    public int NumHeads => Layout.Attention.Heads;
    /// <summary>Width of one attention head.</summary>
    public int HeadDim => Layout.Attention.HeadDim;
    /// <summary>Width of the feed-forward layer.</summary>
    public int IntermediateSize => Layout.FeedForward.Intermediate;
    /// <summary>Rows of the token-type table (0 when the model has none).</summary>
    public int TypeVocabSize => Layout.TokenTypes;
    /// <summary>Epsilon of every norm.</summary>
    public float LayerNormEps => Layout.NormEpsilon;
    /// <summary>Added to every position index (RoBERTa: padding_idx + 1; otherwise 0).</summary>
    public int PositionOffset => Layout.PositionOffset;
    /// <summary>The GELU of the feed-forward layer.</summary>
    public GeluKind Activation => Layout.FeedForward.Gelu;
    /// <summary>True when the final norm's output is an extra hidden-state entry "final" after layers 0..L.</summary>
    public bool HasFinalEntry => Layout.FinalNorm;
    /// <summary>Hidden-state entries of a forward pass: L + 1, plus "final" when there is a final norm.</summary>
    public int HiddenStateEntries => NumLayers + 1 + (HasFinalEntry ? 1 : 0);

    /// <summary>Longest input the position table allows.</summary>
    public int MaxSequenceLength => MaxPositions - PositionOffset;

    /// <summary>The tensor names of this model's family.</summary>
    internal TensorNameMap Names => (Families.ModelFamilies.For(ModelType) ?? throw new InvalidOperationException($"no family reads '{ModelType}'")).Names(this);

    /// <summary>Reads and validates <paramref name="path"/> (a config.json).</summary>
    /// <exception cref="ModelFormatException">A field is missing, of the wrong type, out of range, or the model_type is unsupported.</exception>
    public static TransformerConfig Load(string path)
    {
        string fullPath = Path.GetFullPath(path);
        if (!File.Exists(fullPath)) throw new ModelFormatException(fullPath, "config.json not found");
        using JsonDocument document = IO.JsonInput.ParseFile(fullPath, maxDepth: 32);
        JsonElement root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object) throw new ModelFormatException(fullPath, "expected a JSON object");
        var json = new ConfigJson(fullPath, root);
        string modelType = json.String("model_type");
        Families.IModelFamily family = Families.ModelFamilies.For(modelType)
            ?? throw new ModelFormatException(fullPath, $"field 'model_type' is \"{modelType}\"; supported: {string.Join(", ", Families.ModelFamilies.ModelTypes)}");
        TransformerConfig config = family.Parse(json, modelType);
        config.Validate(fullPath);
        return config;
    }

    private void Validate(string path)
    {
        if (PadTokenId >= VocabSize)
            throw new ModelFormatException(path, $"field 'pad_token_id' = {PadTokenId} is outside the vocabulary (vocab_size = {VocabSize})");
        if (PositionOffset >= MaxPositions)
            throw new ModelFormatException(path, $"position offset {PositionOffset} leaves no room in max_position_embeddings = {MaxPositions}");
        if (!(LayerNormEps > 0 && LayerNormEps < 1))
            throw new ModelFormatException(path, $"layer norm epsilon {LayerNormEps} must be in (0, 1)");
    }
}
