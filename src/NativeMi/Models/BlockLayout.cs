namespace NativeMi.Models;

/// <summary>The normalisation a model uses.</summary>
internal enum NormKind
{
    /// <summary>LayerNorm: (x − mean) / sqrt(var + ε) · γ + β.</summary>
    LayerNorm,
    /// <summary>RMSNorm: x / sqrt(mean(x²) + ε) · γ (Llama, Mistral, Qwen).</summary>
    RmsNorm,
    /// <summary>Gemma's RMSNorm: x / sqrt(mean(x²) + ε) · (1 + γ).</summary>
    RmsNormPlusOne,
}

/// <summary>Where a block's norms sit relative to its residual connections.</summary>
internal enum NormPlacement
{
    /// <summary>Post-LN (BERT): h = Norm(h + Sublayer(h)).</summary>
    Post,
    /// <summary>Pre-LN (GPT-2, Llama): h = h + Sublayer(Norm(h)).</summary>
    Pre,
}

/// <summary>How token positions enter the model.</summary>
internal enum PositionEncoding
{
    /// <summary>A learned table added to the token embeddings (BERT, GPT-2).</summary>
    Learned,
    /// <summary>Rotary embeddings applied to queries and keys in every block (Llama and its descendants).</summary>
    Rotary,
    /// <summary>No position information beyond the causal mask.</summary>
    None,
}

/// <summary>The feed-forward sublayer's form.</summary>
internal enum FeedForwardKind
{
    /// <summary>down(act(up(x))) with a GELU (BERT, GPT-2).</summary>
    Gelu,
    /// <summary>down(silu(gate(x)) · up(x)) (Llama, Mistral, Qwen).</summary>
    SwiGlu,
    /// <summary>down(gelu(gate(x)) · up(x)) (Gemma: tanh GELU).</summary>
    GeGlu,
}

/// <summary>The GELU variant a model uses.</summary>
internal enum GeluKind
{
    /// <summary>0.5 x (1 + erf(x / sqrt 2)), Hugging Face "gelu".</summary>
    Exact,
    /// <summary>0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), Hugging Face "gelu_new" / "gelu_pytorch_tanh".</summary>
    Tanh,
}

/// <summary>Rotary position embeddings: θ, the rotated width, and a frequency rescaling.</summary>
/// <param name="Theta">Base θ of the frequencies θ^(−2i/d).</param>
/// <param name="RotaryDimensions">How many dimensions of each head rotate (the head width unless partial).</param>
/// <param name="Scaling">The rope_scaling of config.json, null for none.</param>
internal sealed record RotarySpec(double Theta, int RotaryDimensions, RopeScaling? Scaling = null);

/// <summary>A rope_scaling entry of config.json (Llama 3's "llama3" type, or "linear").</summary>
/// <param name="Type">"llama3" or "linear".</param>
/// <param name="Factor">The scaling factor.</param>
/// <param name="LowFrequencyFactor">Llama 3: low_freq_factor.</param>
/// <param name="HighFrequencyFactor">Llama 3: high_freq_factor.</param>
/// <param name="OriginalMaxPositions">Llama 3: original_max_position_embeddings.</param>
internal sealed record RopeScaling(string Type, double Factor, double LowFrequencyFactor = 1, double HighFrequencyFactor = 4, int OriginalMaxPositions = 8192);

/// <summary>The attention sublayer's shape.</summary>
/// <param name="Heads">Query heads.</param>
/// <param name="KeyValueHeads">Key/value heads (fewer than query heads: grouped-query attention).</param>
/// <param name="HeadDim">Width of one head (independent of the model width in some families).</param>
/// <param name="QkvBias">Whether the query, key and value projections have biases.</param>
/// <param name="OutputBias">Whether the output projection has a bias.</param>
/// <param name="QkNorm">Whether queries and keys are normalised per head before the rotation (Qwen3).</param>
/// <param name="Causal">Decoder attention: a token sees only the tokens before it.</param>
internal sealed record AttentionSpec(int Heads, int KeyValueHeads, int HeadDim, bool QkvBias, bool OutputBias, bool QkNorm, bool Causal)
{
    /// <summary>Width of the queries (and of the attention output before its projection).</summary>
    public int QueryWidth => Heads * HeadDim;

    /// <summary>Width of the keys (and of the values).</summary>
    public int KeyValueWidth => KeyValueHeads * HeadDim;
}

/// <summary>The feed-forward sublayer's shape.</summary>
/// <param name="Kind">Plain GELU or a gated form.</param>
/// <param name="Gelu">The GELU variant (for <see cref="FeedForwardKind.Gelu"/> and <see cref="FeedForwardKind.GeGlu"/>).</param>
/// <param name="Intermediate">Width of the hidden layer.</param>
/// <param name="Bias">Whether the projections have biases.</param>
internal sealed record FeedForwardSpec(FeedForwardKind Kind, GeluKind Gelu, int Intermediate, bool Bias);

/// <summary>
/// A model as the forward pass sees it: the parts of one block and of the embeddings, and where the norms go
/// (llama.cpp's build_norm / build_attn / build_ffn, as data). A family's config parser produces one; the forward pass
/// and the weight loader are written once against it.
/// </summary>
/// <param name="Norm">The normalisation of every norm in the model.</param>
/// <param name="Placement">Post-LN or pre-LN blocks.</param>
/// <param name="NormEpsilon">ε of every norm.</param>
/// <param name="Positions">How positions enter.</param>
/// <param name="PositionOffset">Added to every position index of a learned table (RoBERTa: padding_idx + 1).</param>
/// <param name="Rotary">The rotary embeddings, when <paramref name="Positions"/> is <see cref="PositionEncoding.Rotary"/>.</param>
/// <param name="TokenTypes">Rows of the token-type table (0: none).</param>
/// <param name="EmbeddingNorm">A norm right after the embeddings (BERT); its output is hidden state 0.</param>
/// <param name="EmbeddingScale">Factor on the token embeddings (Gemma: sqrt of the width; otherwise 1).</param>
/// <param name="Attention">The attention sublayer.</param>
/// <param name="FeedForward">The feed-forward sublayer.</param>
/// <param name="FinalNorm">A norm after the last block (GPT-2's ln_f, Llama's norm); its output is the extra "final" entry.</param>
internal sealed record BlockLayout(NormKind Norm, NormPlacement Placement, float NormEpsilon, PositionEncoding Positions, int PositionOffset, RotarySpec? Rotary,
    int TokenTypes, bool EmbeddingNorm, float EmbeddingScale, AttentionSpec Attention, FeedForwardSpec FeedForward, bool FinalNorm)
{
    /// <summary>One line per part, for `nativemi inspect`.</summary>
    public IEnumerable<(string Part, string Value)> Describe()
    {
        string norm = Norm switch { NormKind.LayerNorm => "LayerNorm", NormKind.RmsNorm => "RMSNorm", _ => "RMSNorm with (1 + w)" };
        yield return ("norm", $"{norm}, eps {NormEpsilon.ToString("G", System.Globalization.CultureInfo.InvariantCulture)}, {(Placement == NormPlacement.Post ? "post-LN (h = norm(h + f(h)))" : "pre-LN (h = h + f(norm(h)))")}");
        yield return ("embeddings", string.Join(", ", new[]
        {
            "token table" + (EmbeddingScale != 1 ? $" x {EmbeddingScale.ToString("G6", System.Globalization.CultureInfo.InvariantCulture)}" : ""),
            Positions == PositionEncoding.Learned ? "learned positions" + (PositionOffset > 0 ? $" (offset {PositionOffset})" : "") : null,
            TokenTypes > 0 ? $"{TokenTypes} token types" : null,
            EmbeddingNorm ? "then a norm" : null,
        }.Where(s => s is not null)));
        yield return ("positions", Positions switch
        {
            PositionEncoding.Learned => "learned table",
            PositionEncoding.Rotary => $"rotary, theta {Rotary!.Theta.ToString("G", System.Globalization.CultureInfo.InvariantCulture)}, {Rotary.RotaryDimensions} of {Attention.HeadDim} dims" +
                (Rotary.Scaling is { } s ? $", rope_scaling {s.Type} x{s.Factor.ToString("G", System.Globalization.CultureInfo.InvariantCulture)}" : ""),
            _ => "none",
        });
        yield return ("attention", $"{Attention.Heads} heads" + (Attention.KeyValueHeads != Attention.Heads ? $" / {Attention.KeyValueHeads} key-value heads" : "") +
            $" x {Attention.HeadDim}, {(Attention.Causal ? "causal" : "bidirectional")}" + (Attention.QkvBias ? ", q/k/v biases" : "") +
            (Attention.OutputBias ? ", output bias" : "") + (Attention.QkNorm ? ", q/k norm" : ""));
        yield return ("feed-forward", FeedForward.Kind switch
        {
            FeedForwardKind.Gelu => $"GELU ({(FeedForward.Gelu == GeluKind.Exact ? "exact" : "tanh")})",
            FeedForwardKind.SwiGlu => "SwiGLU",
            _ => $"GeGLU ({(FeedForward.Gelu == GeluKind.Exact ? "exact" : "tanh")})",
        } + $", width {FeedForward.Intermediate}" + (FeedForward.Bias ? ", biases" : ""));
        yield return ("final norm", FinalNorm ? "yes: hidden state L is taken before it, its output is the entry \"final\"" : "none");
    }
}
