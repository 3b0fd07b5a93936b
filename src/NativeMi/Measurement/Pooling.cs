using NativeMi.Transformer;

namespace NativeMi.Measurement;

/// <summary>Mask-aware pooling of token states into sentence vectors.</summary>
public static class Pooling
{
    /// <summary>
    /// Pools one layer [batch·T·d] into [batch, d]. Positions come from the attention mask and the target
    /// mask, never from the padding side, so left and right padding give identical vectors.
    /// </summary>
    public static float[] Pool(ReadOnlySpan<float> layer, EncodedBatch batch, int width, PoolingMode mode)
    {
        int t = batch.SequenceLength;
        var result = new float[batch.BatchSize * width];
        for (int s = 0; s < batch.BatchSize; s++)
        {
            Span<float> dst = result.AsSpan(s * width, width);
            int first = -1, last = -1, targets = 0;
            for (int i = 0; i < t; i++)
            {
                int cell = s * t + i;
                if (batch.AttentionMask[cell] == 0) continue;
                if (first < 0) first = i;
                last = i;
                if (!batch.IsTarget[cell]) continue;
                ReadOnlySpan<float> row = layer.Slice(cell * width, width);
                if (mode == PoolingMode.Mean)
                {
                    System.Numerics.Tensors.TensorPrimitives.Add(dst, row, dst);
                }
                else if (mode == PoolingMode.Max)
                {
                    if (targets == 0) row.CopyTo(dst);
                    else System.Numerics.Tensors.TensorPrimitives.Max(dst, row, dst);
                }
                targets++;
            }
            if (first < 0) throw new ArgumentException($"sentence {s} of the batch has no real token", nameof(batch));
            switch (mode)
            {
                case PoolingMode.Mean:
                    if (targets == 0) throw new ArgumentException($"sentence {s} of the batch has no target token to average", nameof(batch));
                    System.Numerics.Tensors.TensorPrimitives.Multiply(dst, 1f / targets, dst);
                    break;
                case PoolingMode.Max:
                    if (targets == 0) throw new ArgumentException($"sentence {s} of the batch has no target token", nameof(batch));
                    break;
                case PoolingMode.Cls:
                    layer.Slice((s * t + first) * width, width).CopyTo(dst);
                    break;
                case PoolingMode.Last:
                    layer.Slice((s * t + last) * width, width).CopyTo(dst);
                    break;
            }
        }
        return result;
    }
}
