using NativeMi.Compute;
using NativeMi.Models;
using NativeMi.Pooling;

namespace NativeMi.Transformer;

/// <summary>The forward pass, written once against <see cref="IComputeBackend"/>.</summary>
internal sealed class TransformerForward(TransformerConfig config, TransformerWeights weights, IComputeBackend backend) : IDisposable
{
    // The last pass's scratch buffers, for the next pass to take (see TakeBuffers).
    private Buffers? _spare;

    public HiddenStates Run(EncodedBatch batch)
    {
        int rows = batch.BatchSize * batch.SequenceLength, d = config.HiddenSize;
        var (layers, final) = RunCapturing(batch, buffer =>
        {
            var host = new float[(long)rows * d];
            backend.Download(buffer, host);
            return host;
        });
        return new HiddenStates(batch.BatchSize, batch.SequenceLength, d, layers, final);
    }

    /// <summary>
    /// The forward pass with every layer pooled on the backend, so only [batch, d] per layer crosses to the host
    /// (on a GPU that is the difference between copying every token state and copying one vector per sentence).
    /// Entry l is [batch·d] for l = 0..L, then GPT-2's final (after ln_f) entry.
    /// </summary>
    public float[][] RunPooled(EncodedBatch batch, Pooling.PoolingMode mode)
    {
        SentencePooling.CheckPoolable(batch, mode);
        int b = batch.BatchSize, t = batch.SequenceLength, d = config.HiddenSize;
        using DeviceBuffer<int> mask = backend.Upload<int>(batch.AttentionMask);
        using DeviceBuffer<int> targets = backend.Upload<int>(SentencePooling.TargetFlags(batch));
        // Every layer is pooled into its own buffer and all are copied back after the last layer, so a GPU runs the
        // whole batch without waiting for the host: one synchronisation per batch instead of one per layer.
        var pooled = new List<DeviceBuffer<float>>(config.NumLayers + 2);
        try
        {
            _ = RunCapturing(batch, buffer =>
            {
                DeviceBuffer<float> layer = backend.Allocate<float>((long)b * d);
                pooled.Add(layer);
                backend.PoolSentences(buffer, mask, targets, layer, b, t, d, mode);
                return [];
            });
            var host = new float[pooled.Count][];
            for (int l = 0; l < pooled.Count; l++)
            {
                host[l] = new float[(long)b * d];
                backend.Download(pooled[l], host[l]);
            }
            return host;
        }
        finally
        {
            foreach (DeviceBuffer<float> layer in pooled) layer.Dispose();
        }
    }

    private (List<float[]> Layers, float[]? Final) RunCapturing(EncodedBatch batch, Func<DeviceBuffer<float>, float[]> Snapshot)
    {
        int b = batch.BatchSize, t = batch.SequenceLength, rows = b * t, d = config.HiddenSize, ff = config.IntermediateSize;
        if (t > config.MaxSequenceLength)
            throw new ArgumentException($"sequence length {t} exceeds the model's {config.MaxSequenceLength} positions", nameof(batch));
        BlockLayout layout = config.Layout;
        AttentionSpec attention = layout.Attention;

        CheckIds(config, batch);
        using DeviceBuffer<int> ids = backend.Upload<int>(batch.InputIds);
        using DeviceBuffer<int> mask = backend.Upload<int>(batch.AttentionMask);
        using DeviceBuffer<int> positions = backend.Upload<int>(PositionIds(config, batch));
        using DeviceBuffer<int>? types = weights.TypeEmbeddings is null ? null : backend.Upload<int>(batch.TokenTypeIds);
        Buffers buffers = TakeBuffers(rows);
        try
        {
            var layers = new List<float[]>(config.NumLayers + 1);
            var shape = new Shape(b, t, rows, d, ff, mask, positions);
            BuildEmbeddings(ids, positions, types, buffers, shape);
            layers.Add(Snapshot(buffers.Hidden));
            foreach (BlockWeights block in weights.Blocks)
            {
                if (layout.Placement == NormPlacement.Post)
                {
                    // Post-LN: h1 = norm(h + attn(h)); h = norm(h1 + ffn(h1)).
                    BuildAttention(buffers.Hidden, block, buffers, shape);
                    BuildNorm(buffers.Projected, buffers.Hidden, block.Norm1Gamma, block.Norm1Beta, buffers.Normed, shape);
                    BuildFeedForward(buffers.Normed, block, buffers, shape);
                    BuildNorm(buffers.Projected, buffers.Normed, block.Norm2Gamma, block.Norm2Beta, buffers.Hidden, shape);
                }
                else
                {
                    // Pre-LN: h += attn(norm1(h)); h += ffn(norm2(h)).
                    BuildNorm(buffers.Hidden, null, block.Norm1Gamma, block.Norm1Beta, buffers.Normed, shape);
                    BuildAttention(buffers.Normed, block, buffers, shape);
                    backend.AddInPlace(buffers.Hidden, buffers.Projected, (long)rows * d);
                    BuildNorm(buffers.Hidden, null, block.Norm2Gamma, block.Norm2Beta, buffers.Normed, shape);
                    BuildFeedForward(buffers.Normed, block, buffers, shape);
                    backend.AddInPlace(buffers.Hidden, buffers.Projected, (long)rows * d);
                }
                layers.Add(Snapshot(buffers.Hidden));
            }
            float[]? final = null;
            if (layout.FinalNorm)
            {
                BuildNorm(buffers.Hidden, null, weights.FinalNormGamma!, weights.FinalNormBeta, buffers.Normed, shape);
                final = Snapshot(buffers.Normed);
            }
            return (layers, final);
        }
        finally
        {
            Interlocked.Exchange(ref _spare, buffers)?.Dispose();
        }
    }

    /// <summary>
    /// Scratch buffers for <paramref name="rows"/> token rows: the last pass's when they hold that many rows, else new ones.
    /// A measurement runs hundreds of batches, and new buffers per batch (megabytes each) were large-object garbage that
    /// only full collections reclaimed: it set the run's peak memory. Every op of a pass writes the rows it reads later,
    /// so what an earlier pass left in a buffer is never read. Two passes at once (two threads) each get their own.
    /// </summary>
    private Buffers TakeBuffers(int rows)
    {
        Buffers? spare = Interlocked.Exchange(ref _spare, null);
        if (spare is not null && spare.Rows >= rows) return spare;
        spare?.Dispose();
        AttentionSpec attention = config.Layout.Attention;
        int d = config.HiddenSize, ff = config.IntermediateSize, qkvWidth = attention.QueryWidth + 2 * attention.KeyValueWidth;
        bool gated = config.Layout.FeedForward.Kind != FeedForwardKind.Gelu, grouped = attention.KeyValueHeads != attention.Heads;
        // The projected q, k, v are dead once the attention has run, and the feed-forward layer's inner activations are
        // born after it: one buffer holds both, the larger of the two, instead of one each.
        DeviceBuffer<float> qkvOrIntermediate = backend.Allocate<float>((long)rows * Math.Max(qkvWidth, ff));
        return new Buffers(
            Rows: rows,
            Hidden: backend.Allocate<float>((long)rows * d),
            Normed: backend.Allocate<float>((long)rows * d),
            Qkv: qkvOrIntermediate,
            Context: backend.Allocate<float>((long)rows * attention.QueryWidth),
            Projected: backend.Allocate<float>((long)rows * d),
            Intermediate: qkvOrIntermediate,
            ExpandedQkv: grouped ? backend.Allocate<float>((long)rows * 3 * attention.QueryWidth) : null,
            GateUp: gated ? backend.Allocate<float>((long)rows * 2 * ff) : null);
    }

    /// <summary>
    /// Makes the spare scratch buffers hold at least <paramref name="rows"/> token rows, so that passes of up to that many
    /// rows allocate none: a caller that knows its largest batch avoids growing the buffers batch after batch, each
    /// outgrown set left as garbage until a full collection.
    /// </summary>
    public void Reserve(int rows)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        Interlocked.Exchange(ref _spare, TakeBuffers(rows))?.Dispose();
    }

    /// <summary>Frees the spare scratch buffers (device memory on a GPU).</summary>
    public void Dispose() => Interlocked.Exchange(ref _spare, null)?.Dispose();

    /// <summary>The scratch buffers of one forward pass, sized for <see cref="Rows"/> token rows; <see cref="Qkv"/> and <see cref="Intermediate"/> are one buffer.</summary>
    private sealed record Buffers(int Rows, DeviceBuffer<float> Hidden, DeviceBuffer<float> Normed, DeviceBuffer<float> Qkv, DeviceBuffer<float> Context,
        DeviceBuffer<float> Projected, DeviceBuffer<float> Intermediate, DeviceBuffer<float>? ExpandedQkv, DeviceBuffer<float>? GateUp) : IDisposable
    {
        public void Dispose()
        {
            Hidden.Dispose();
            Normed.Dispose();
            Qkv.Dispose(); // Intermediate's too
            Context.Dispose();
            Projected.Dispose();
            ExpandedQkv?.Dispose();
            GateUp?.Dispose();
        }
    }

    /// <summary>The sizes of one batch, its key mask and its position ids.</summary>
    private sealed record Shape(int Batch, int Sequence, int Rows, int Width, int Intermediate, DeviceBuffer<int> Mask, DeviceBuffer<int> Positions);

    /// <summary>Token (+ position, + type) embeddings into <see cref="Buffers.Hidden"/>, through the embedding norm when there is one.</summary>
    private void BuildEmbeddings(DeviceBuffer<int> ids, DeviceBuffer<int> positions, DeviceBuffer<int>? types, Buffers buffers, Shape s)
    {
        BlockLayout layout = config.Layout;
        if (layout.Positions == PositionEncoding.Learned)
        {
            if (layout.EmbeddingScale != 1) throw new NotSupportedException($"{config.ModelType}: a learned position table with scaled token embeddings has no backend op");
            DeviceBuffer<float> target = layout.EmbeddingNorm ? buffers.Normed : buffers.Hidden;
            backend.EmbeddingGather(ids, positions, types, weights.WordEmbeddings, weights.PositionEmbeddings!, weights.TypeEmbeddings, target, s.Rows, s.Width);
            if (layout.EmbeddingNorm) BuildNorm(buffers.Normed, null, weights.EmbeddingNormGamma!, weights.EmbeddingNormBeta, buffers.Hidden, s);
            return;
        }
        // Rotary models add no position table: the token rows alone (ids were checked against the vocabulary on the host).
        backend.GatherRows(weights.WordEmbeddings, ids, buffers.Hidden, s.Rows, s.Width);
        if (layout.EmbeddingScale != 1) backend.ScaleInPlace(buffers.Hidden, layout.EmbeddingScale, (long)s.Rows * s.Width);
        if (layout.EmbeddingNorm) throw new NotSupportedException($"{config.ModelType}: an embedding norm without a learned position table is not implemented");
    }

    /// <summary>output = norm(input + residual) (residual optional), in the layout's norm.</summary>
    private void BuildNorm(DeviceBuffer<float> input, DeviceBuffer<float>? residual, DeviceBuffer<float> gamma, DeviceBuffer<float>? beta, DeviceBuffer<float> output, Shape s)
    {
        BlockLayout layout = config.Layout;
        if (layout.Norm == NormKind.LayerNorm)
        {
            backend.LayerNorm(input, residual, gamma, beta ?? throw new InvalidOperationException("a LayerNorm needs its bias"), output, s.Rows, s.Width, layout.NormEpsilon);
            return;
        }
        if (residual is not null) throw new NotSupportedException($"{config.ModelType}: RMSNorm after a residual (post-norm) is not implemented");
        backend.RmsNorm(input, gamma, output, s.Rows, s.Width, layout.NormEpsilon, addOneToGamma: layout.Norm == NormKind.RmsNormPlusOne);
    }

    /// <summary>The attention sublayer: <see cref="Buffers.Projected"/> = out(attention(qkv(input))), with q/k norms and rotation as the layout says.</summary>
    private void BuildAttention(DeviceBuffer<float> input, BlockWeights block, Buffers buffers, Shape s)
    {
        AttentionSpec a = config.Layout.Attention;
        backend.Gemm(input, block.QkvWeight, block.QkvBias, buffers.Qkv, s.Rows, s.Width, a.QueryWidth + 2 * a.KeyValueWidth, Activation.None);
        if (a.QkNorm) backend.HeadRmsNorm(buffers.Qkv, block.QueryNorm!, block.KeyNorm!, s.Rows, a.Heads, a.KeyValueHeads, a.HeadDim, config.Layout.NormEpsilon);
        if (config.Layout.Positions == PositionEncoding.Rotary)
            backend.Rotary(buffers.Qkv, s.Positions, weights.InverseFrequencies!, s.Rows, a.Heads, a.KeyValueHeads, a.HeadDim);
        DeviceBuffer<float> qkv = buffers.Qkv;
        if (buffers.ExpandedQkv is { } expanded)
        {
            backend.ExpandKeyValueHeads(buffers.Qkv, expanded, s.Rows, a.Heads, a.KeyValueHeads, a.HeadDim);
            qkv = expanded;
        }
        backend.Attention(qkv, s.Mask, buffers.Context, s.Batch, s.Sequence, a.Heads, a.HeadDim, a.Causal);
        backend.Gemm(buffers.Context, block.AttentionOutWeight, block.AttentionOutBias, buffers.Projected, s.Rows, a.QueryWidth, s.Width, Activation.None);
    }

    /// <summary>The feed-forward sublayer: <see cref="Buffers.Projected"/> = down(act(up(input))), or down(act(gate(input)) · up(input)).</summary>
    private void BuildFeedForward(DeviceBuffer<float> input, BlockWeights block, Buffers buffers, Shape s)
    {
        FeedForwardSpec f = config.Layout.FeedForward;
        if (buffers.GateUp is { } gateUp)
        {
            backend.Gemm(input, block.FeedForwardInWeight, block.FeedForwardInBias, gateUp, s.Rows, s.Width, 2 * s.Intermediate, Activation.None);
            GateActivation activation = f.Kind == FeedForwardKind.SwiGlu ? GateActivation.Silu : f.Gelu == GeluKind.Exact ? GateActivation.GeluExact : GateActivation.GeluTanh;
            backend.GatedActivation(gateUp, buffers.Intermediate, s.Rows, s.Intermediate, activation);
        }
        else
        {
            backend.Gemm(input, block.FeedForwardInWeight, block.FeedForwardInBias, buffers.Intermediate, s.Rows, s.Width, s.Intermediate, GeluActivation);
        }
        backend.Gemm(buffers.Intermediate, block.FeedForwardOutWeight, block.FeedForwardOutBias, buffers.Projected, s.Rows, s.Intermediate, s.Width, Activation.None);
    }

    /// <summary>Ids are checked on the host, so that no backend's gather reads outside the embedding table.</summary>
    internal static void CheckIds(TransformerConfig config, EncodedBatch batch)
    {
        for (int cell = 0; cell < batch.InputIds.Length; cell++)
            if ((uint)batch.InputIds[cell] >= (uint)config.VocabSize)
                throw new ArgumentOutOfRangeException(nameof(batch), $"token id {batch.InputIds[cell]} at row {cell} is outside the embedding table ({config.VocabSize} rows)");
    }

    private Activation GeluActivation => config.Activation == GeluKind.Exact ? Activation.GeluExact : Activation.GeluTanh;

    /// <summary>
    /// Position of each real token = offset + number of real tokens before it in its sentence, so left
    /// and right padding give the same positions (Hugging Face's RoBERTa rule; for right padding it equals
    /// BERT's and GPT-2's arange). Padding cells get the offset's padding row (or 0).
    /// </summary>
    internal static int[] PositionIds(TransformerConfig config, EncodedBatch batch)
    {
        int t = batch.SequenceLength;
        var positions = new int[batch.InputIds.Length];
        int paddingPosition = config.PositionOffset > 0 ? config.PositionOffset - 1 : 0;
        for (int s = 0; s < batch.BatchSize; s++)
        {
            int seen = 0;
            for (int i = 0; i < t; i++)
            {
                int cell = s * t + i;
                positions[cell] = batch.AttentionMask[cell] != 0 ? config.PositionOffset + seen++ : paddingPosition;
            }
        }
        return positions;
    }
}
