namespace NativeMi.Models;

/// <summary>The weight and (optional) bias of one norm, by name.</summary>
/// <param name="Weight">γ.</param>
/// <param name="Bias">β (LayerNorm), or null (RMSNorm).</param>
internal sealed record NormNames(string Weight, string? Bias);

/// <summary>The config.json fields behind the dimensions a loader checks, so that a mismatch names the field.</summary>
/// <param name="Width">The model width.</param>
/// <param name="Layers">The number of blocks.</param>
/// <param name="Intermediate">The feed-forward width.</param>
/// <param name="Positions">The rows of a learned position table.</param>
/// <param name="Heads">The attention heads.</param>
internal sealed record ConfigFields(string Width, string Layers, string Intermediate, string Positions, string Heads);

/// <summary>
/// How a family's checkpoints name and store the tensors of <see cref="BlockLayout"/>'s parts. Block names are relative
/// to <c>{prefix}{BlocksRoot}{l}.</c>; projections are named without their <c>.weight</c> / <c>.bias</c> suffix.
/// </summary>
internal sealed record TensorNameMap
{
    /// <summary>Prefixes a checkpoint may put before every name, tried in order on <see cref="WordEmbeddings"/>.</summary>
    public required IReadOnlyList<string> Prefixes { get; init; }
    /// <summary>The token embedding table.</summary>
    public required string WordEmbeddings { get; init; }
    /// <summary>The learned position table, when the layout has one.</summary>
    public string? PositionEmbeddings { get; init; }
    /// <summary>The token-type table, when the layout has one.</summary>
    public string? TypeEmbeddings { get; init; }
    /// <summary>The norm after the embeddings, when the layout has one.</summary>
    public NormNames? EmbeddingNorm { get; init; }
    /// <summary>The norm after the last block, when the layout has one.</summary>
    public NormNames? FinalNorm { get; init; }
    /// <summary>The blocks' common prefix ("encoder.layer.", "h.", "layers.").</summary>
    public required string BlocksRoot { get; init; }
    /// <summary>Separate query, key and value projections (null when fused).</summary>
    public (string Query, string Key, string Value)? SeparateQkv { get; init; }
    /// <summary>One fused query-key-value projection (GPT-2's c_attn), null when separate.</summary>
    public string? FusedQkv { get; init; }
    /// <summary>The attention output projection.</summary>
    public required string AttentionOutput { get; init; }
    /// <summary>Post-LN: the norm after attention; pre-LN: the one before it.</summary>
    public required NormNames Norm1 { get; init; }
    /// <summary>Post-LN: the norm after the feed-forward layer; pre-LN: the one before it.</summary>
    public required NormNames Norm2 { get; init; }
    /// <summary>Per-head query and key norms (Qwen3), null when absent.</summary>
    public (string Query, string Key)? QkNorm { get; init; }
    /// <summary>The feed-forward up projection.</summary>
    public required string Up { get; init; }
    /// <summary>The gate projection of a gated feed-forward layer.</summary>
    public string? Gate { get; init; }
    /// <summary>The feed-forward down projection.</summary>
    public required string Down { get; init; }
    /// <summary>True when projections are stored [in, out] (GPT-2's Conv1D); false for nn.Linear's [out, in].</summary>
    public required bool InOutMatrices { get; init; }
    /// <summary>config.json field names, for messages.</summary>
    public required ConfigFields Fields { get; init; }

    /// <summary>The prefix of block <paramref name="layer"/> (without the checkpoint's own prefix).</summary>
    public string Block(int layer) => $"{BlocksRoot}{layer}.";

    /// <summary>Every norm weight (γ) of a model with <paramref name="layers"/> blocks: a random-init copy sets them to one.</summary>
    public IEnumerable<string> NormWeights(int layers)
    {
        if (EmbeddingNorm is not null) yield return EmbeddingNorm.Weight;
        if (FinalNorm is not null) yield return FinalNorm.Weight;
        for (int l = 0; l < layers; l++)
        {
            yield return Block(l) + Norm1.Weight;
            yield return Block(l) + Norm2.Weight;
            if (QkNorm is { } qk)
            {
                yield return Block(l) + qk.Query + ".weight";
                yield return Block(l) + qk.Key + ".weight";
            }
        }
    }
}
