using System.Numerics.Tensors;
using NativeMi.Transformer;

namespace NativeMi.Pooling;

/// <summary>
/// Mask-aware pooling of token states into sentence vectors: the step between the transformer and the probes. It sits
/// below Measurement so that the compute backends (whose PoolSentences op shares this code) depend on it, not on Measurement.
/// </summary>
internal static class SentencePooling
{
    /// <summary>
    /// Pools one layer [batch·T·d] into [batch, d]. Positions come from the attention mask and the target
    /// mask, never from the padding side, so left and right padding give identical vectors.
    /// </summary>
    /// <exception cref="ArgumentException">A sentence has no real token, or (mean, max) no target token.</exception>
    public static float[] Pool(ReadOnlySpan<float> layer, EncodedBatch batch, int width, PoolingMode mode)
    {
        ArgumentNullException.ThrowIfNull(batch);
        int[] isTarget = TargetFlags(batch);
        var result = new float[batch.BatchSize * width];
        for (int s = 0; s < batch.BatchSize; s++)
        {
            string? problem = PoolSentence(layer, batch.AttentionMask, isTarget, result.AsSpan(s * width, width), s, batch.SequenceLength, mode);
            if (problem is not null) throw new ArgumentException($"sentence {s} of the batch has {problem}", nameof(batch));
        }
        return result;
    }

    /// <summary>Throws the error <see cref="Pool"/> would for a sentence with nothing to pool; otherwise does nothing.</summary>
    /// <exception cref="ArgumentException">A sentence has no real token, or (mean, max) no target token.</exception>
    public static void CheckPoolable(EncodedBatch batch, PoolingMode mode)
    {
        ArgumentNullException.ThrowIfNull(batch);
        int t = batch.SequenceLength;
        for (int s = 0; s < batch.BatchSize; s++)
        {
            bool real = false, target = false;
            for (int i = 0; i < t; i++)
            {
                int cell = s * t + i;
                if (batch.AttentionMask[cell] == 0) continue;
                real = true;
                target |= batch.IsTarget[cell];
            }
            string? problem = !real ? "no real token" : !target && mode is PoolingMode.Mean or PoolingMode.Max ? NoTargetProblem(mode) : null;
            if (problem is not null) throw new ArgumentException($"sentence {s} of the batch has {problem}", nameof(batch));
        }
    }

    /// <summary>The target mask as the 0/1 integers the backends' pooling op reads.</summary>
    public static int[] TargetFlags(EncodedBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var flags = new int[batch.IsTarget.Length];
        for (int i = 0; i < flags.Length; i++) flags[i] = batch.IsTarget[i] ? 1 : 0;
        return flags;
    }

    private static string NoTargetProblem(PoolingMode mode) => mode == PoolingMode.Mean ? "no target token to average" : "no target token";

    /// <summary>
    /// Pools sentence <paramref name="sentence"/> into <paramref name="destination"/>; returns what is missing when
    /// there is nothing to pool (the destination is then left as it was). The CPU backend's pooling op and
    /// <see cref="Pool"/> share this, so both give the same bits.
    /// </summary>
    internal static string? PoolSentence(ReadOnlySpan<float> layer, ReadOnlySpan<int> attentionMask, ReadOnlySpan<int> isTarget,
        Span<float> destination, int sentence, int seq, PoolingMode mode)
    {
        int width = destination.Length;
        int first = -1, last = -1, targets = 0;
        destination.Clear();
        for (int i = 0; i < seq; i++)
        {
            int cell = sentence * seq + i;
            if (attentionMask[cell] == 0) continue;
            if (first < 0) first = i;
            last = i;
            if (isTarget[cell] == 0) continue;
            ReadOnlySpan<float> row = layer.Slice(cell * width, width);
            if (mode == PoolingMode.Mean)
            {
                TensorPrimitives.Add(destination, row, destination);
            }
            else if (mode == PoolingMode.Max)
            {
                if (targets == 0) row.CopyTo(destination);
                else TensorPrimitives.Max(destination, row, destination);
            }
            targets++;
        }
        if (first < 0) return "no real token";
        switch (mode)
        {
            case PoolingMode.Mean:
                if (targets == 0) return NoTargetProblem(mode);
                TensorPrimitives.Multiply(destination, 1f / targets, destination);
                break;
            case PoolingMode.Max:
                if (targets == 0) return NoTargetProblem(mode);
                break;
            case PoolingMode.Cls:
                layer.Slice((sentence * seq + first) * width, width).CopyTo(destination);
                break;
            case PoolingMode.Last:
                layer.Slice((sentence * seq + last) * width, width).CopyTo(destination);
                break;
        }
        return null;
    }
}
