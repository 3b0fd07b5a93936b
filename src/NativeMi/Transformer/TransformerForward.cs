using NativeMi.Compute;
using NativeMi.Models;

namespace NativeMi.Transformer;

/// <summary>The forward pass, written once against <see cref="IComputeBackend"/>.</summary>
internal sealed class TransformerForward(TransformerConfig config, TransformerWeights weights, IComputeBackend backend)
{
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
    public float[][] RunPooled(EncodedBatch batch, Measurement.PoolingMode mode)
    {
        Measurement.Pooling.CheckPoolable(batch, mode);
        int b = batch.BatchSize, t = batch.SequenceLength, d = config.HiddenSize;
        using DeviceBuffer<int> mask = backend.Upload<int>(batch.AttentionMask);
        using DeviceBuffer<int> targets = backend.Upload<int>(Measurement.Pooling.TargetFlags(batch));
        using DeviceBuffer<float> pooled = backend.Allocate<float>((long)b * d);
        var (layers, final) = RunCapturing(batch, buffer =>
        {
            backend.PoolSentences(buffer, mask, targets, pooled, b, t, d, mode);
            var host = new float[(long)b * d];
            backend.Download(pooled, host);
            return host;
        });
        return final is null ? [.. layers] : [.. layers, final];
    }

    private (List<float[]> Layers, float[]? Final) RunCapturing(EncodedBatch batch, Func<DeviceBuffer<float>, float[]> Snapshot)
    {
        int b = batch.BatchSize, t = batch.SequenceLength, rows = b * t, d = config.HiddenSize, ff = config.IntermediateSize;
        if (t > config.MaxSequenceLength)
            throw new ArgumentException($"sequence length {t} exceeds the model's {config.MaxSequenceLength} positions", nameof(batch));
        int[] positionIds = PositionIds(batch);

        using DeviceBuffer<int> ids = backend.Upload<int>(batch.InputIds);
        using DeviceBuffer<int> mask = backend.Upload<int>(batch.AttentionMask);
        using DeviceBuffer<int> positions = backend.Upload<int>(positionIds);
        using DeviceBuffer<int>? types = weights.TypeEmbeddings is null ? null : backend.Upload<int>(batch.TokenTypeIds);
        using DeviceBuffer<float> hidden = backend.Allocate<float>((long)rows * d);
        using DeviceBuffer<float> normed = backend.Allocate<float>((long)rows * d);
        using DeviceBuffer<float> qkv = backend.Allocate<float>((long)rows * 3 * d);
        using DeviceBuffer<float> context = backend.Allocate<float>((long)rows * d);
        using DeviceBuffer<float> projected = backend.Allocate<float>((long)rows * d);
        using DeviceBuffer<float> intermediate = backend.Allocate<float>((long)rows * ff);

        var layers = new List<float[]>(config.NumLayers + 1);

        bool bert = config.Family == ArchitectureFamily.Bert;
        backend.EmbeddingGather(ids, positions, types, weights.WordEmbeddings, weights.PositionEmbeddings, weights.TypeEmbeddings,
            bert ? normed : hidden, rows, d);
        if (bert) backend.LayerNorm(normed, null, weights.NormGamma, weights.NormBeta, hidden, rows, d, config.LayerNormEps);
        layers.Add(Snapshot(hidden));

        foreach (BlockWeights block in weights.Blocks)
        {
            if (bert)
            {
                // Post-LN: h1 = LN(h + Attn(h)); h = LN(h1 + FFN(h1)).
                backend.Gemm(hidden, block.QkvWeight, block.QkvBias, qkv, rows, d, 3 * d, Activation.None);
                backend.Attention(qkv, mask, context, b, t, config.NumHeads, config.HeadDim, causal: false);
                backend.Gemm(context, block.AttentionOutWeight, block.AttentionOutBias, projected, rows, d, d, Activation.None);
                backend.LayerNorm(projected, hidden, block.Norm1Gamma, block.Norm1Beta, normed, rows, d, config.LayerNormEps);
                backend.Gemm(normed, block.FeedForwardInWeight, block.FeedForwardInBias, intermediate, rows, d, ff, GeluActivation);
                backend.Gemm(intermediate, block.FeedForwardOutWeight, block.FeedForwardOutBias, projected, rows, ff, d, Activation.None);
                backend.LayerNorm(projected, normed, block.Norm2Gamma, block.Norm2Beta, hidden, rows, d, config.LayerNormEps);
            }
            else
            {
                // Pre-LN: h += Attn(LN1(h)); h += FFN(LN2(h)).
                backend.LayerNorm(hidden, null, block.Norm1Gamma, block.Norm1Beta, normed, rows, d, config.LayerNormEps);
                backend.Gemm(normed, block.QkvWeight, block.QkvBias, qkv, rows, d, 3 * d, Activation.None);
                backend.Attention(qkv, mask, context, b, t, config.NumHeads, config.HeadDim, causal: true);
                backend.Gemm(context, block.AttentionOutWeight, block.AttentionOutBias, projected, rows, d, d, Activation.None);
                backend.AddInPlace(hidden, projected, (long)rows * d);
                backend.LayerNorm(hidden, null, block.Norm2Gamma, block.Norm2Beta, normed, rows, d, config.LayerNormEps);
                backend.Gemm(normed, block.FeedForwardInWeight, block.FeedForwardInBias, intermediate, rows, d, ff, GeluActivation);
                backend.Gemm(intermediate, block.FeedForwardOutWeight, block.FeedForwardOutBias, projected, rows, ff, d, Activation.None);
                backend.AddInPlace(hidden, projected, (long)rows * d);
            }
            layers.Add(Snapshot(hidden));
        }

        float[]? final = null;
        if (!bert)
        {
            backend.LayerNorm(hidden, null, weights.NormGamma, weights.NormBeta, normed, rows, d, config.LayerNormEps);
            final = Snapshot(normed);
        }
        return (layers, final);
    }

    private Activation GeluActivation => config.Activation == GeluKind.Exact ? Activation.GeluExact : Activation.GeluTanh;

    /// <summary>
    /// Position of each real token = offset + number of real tokens before it in its sentence, so left
    /// and right padding give the same positions (Hugging Face's RoBERTa rule; for right padding it equals
    /// BERT's and GPT-2's arange). Padding cells get the offset's padding row (or 0).
    /// </summary>
    private int[] PositionIds(EncodedBatch batch)
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
