using NativeMi.Pooling;

namespace NativeMi.Compute.Cpu;

// Pooling and the Fano counts: the reductions that turn per-token results into per-sentence vectors and counts.
internal sealed partial class CpuBackend
{
    /// <inheritdoc />
    public void PoolSentences(DeviceBuffer<float> layer, DeviceBuffer<int> attentionMask, DeviceBuffer<int> isTarget, DeviceBuffer<float> output,
        int batch, int seq, int width, PoolingMode mode)
    {
        float[] states = Array(layer), pooled = Array(output);
        int[] mask = Array(attentionMask), targets = Array(isTarget);
        long cells = (long)batch * seq;
        if (states.LongLength < cells * width) throw new ArgumentException($"layer holds {states.LongLength} elements; needs {cells * width}", nameof(layer));
        if (mask.LongLength < cells || targets.LongLength < cells) throw new ArgumentException($"the masks need {cells} elements", nameof(attentionMask));
        if (pooled.LongLength < (long)batch * width) throw new ArgumentException($"output holds {pooled.LongLength} elements; needs {(long)batch * width}", nameof(output));
        for (int s = 0; s < batch; s++)
        {
            Span<float> destination = pooled.AsSpan(s * width, width);
            if (SentencePooling.PoolSentence(states, mask, targets, destination, s, seq, mode) is not null) destination.Fill(float.NaN);
        }
    }

    /// <inheritdoc />
    public PredictionCounts CountPredictions(DeviceBuffer<int> predictions, DeviceBuffer<int> targets, DeviceBuffer<int> positions,
        long count, int classes, int positionCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfNegative(classes);
        ArgumentOutOfRangeException.ThrowIfNegative(positionCount);
        int[] predicted = Array(predictions), target = Array(targets), position = Array(positions);
        if (predicted.LongLength < count || target.LongLength < count || position.LongLength < count)
            throw new ArgumentException($"predictions, targets and positions need {count} elements each", nameof(count));
        long errors = 0, outOfRange = 0;
        var histogram = new long[classes];
        var trials = new long[positionCount];
        var positionErrors = new long[positionCount];
        for (long i = 0; i < count; i++)
        {
            bool wrong = predicted[i] != target[i];
            if (wrong) errors++;
            if ((uint)target[i] < (uint)classes) histogram[target[i]]++;
            else outOfRange++;
            int p = position[i];
            if ((uint)p >= (uint)positionCount) continue;
            trials[p]++;
            if (wrong) positionErrors[p]++;
        }
        return new PredictionCounts(errors, histogram, outOfRange, trials, positionErrors);
    }
}
