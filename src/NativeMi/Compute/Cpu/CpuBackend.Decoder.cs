namespace NativeMi.Compute.Cpu;

// The ops the decoder families need (Llama, Mistral, Qwen, Gemma): RMSNorm, rotary embeddings, grouped-query key-value
// sharing, gated feed-forward activations. These are the references the CUDA kernels in kernels/decoder.cu are checked
// against; they accumulate in double where a row is reduced, so that they sit well inside the float64 goldens' tolerance.
internal sealed partial class CpuBackend
{
    /// <inheritdoc />
    public void RmsNorm(DeviceBuffer<float> input, DeviceBuffer<float> gamma, DeviceBuffer<float> output, int rows, int width, float epsilon, bool addOneToGamma)
    {
        float[] x = Array(input), y = Array(output), g = Array(gamma);
        if ((long)rows * width > Math.Min(x.LongLength, y.LongLength) || g.Length < width)
            throw new ArgumentException($"RmsNorm of {rows}×{width} is larger than its buffers");
        RowChunks(rows, width, (start, end) =>
        {
            for (int row = start; row < end; row++) RmsNormRow(x.AsSpan(row * width, width), y.AsSpan(row * width, width), g.AsSpan(0, width), epsilon, addOneToGamma);
        });
    }

    private static void RmsNormRow(ReadOnlySpan<float> x, Span<float> y, ReadOnlySpan<float> gamma, float epsilon, bool addOne)
    {
        double squares = 0;
        foreach (float v in x) squares += (double)v * v;
        float scale = (float)(1 / Math.Sqrt(squares / x.Length + epsilon));
        for (int j = 0; j < x.Length; j++) y[j] = x[j] * scale * (addOne ? 1f + gamma[j] : gamma[j]);
    }

    /// <inheritdoc />
    public void HeadRmsNorm(DeviceBuffer<float> qkv, DeviceBuffer<float> queryGamma, DeviceBuffer<float> keyGamma, int rows, int heads, int keyValueHeads,
        int headDim, float epsilon)
    {
        float[] x = Array(qkv), gq = Array(queryGamma), gk = Array(keyGamma);
        int stride = (heads + 2 * keyValueHeads) * headDim;
        if ((long)rows * stride > x.LongLength || gq.Length < headDim || gk.Length < headDim)
            throw new ArgumentException($"HeadRmsNorm of {rows} rows × {heads}+{keyValueHeads} heads × {headDim} is larger than its buffers");
        RowChunks(rows, stride, (start, end) =>
        {
            for (int row = start; row < end; row++)
                for (int h = 0; h < heads + keyValueHeads; h++)
                {
                    Span<float> head = x.AsSpan(row * stride + h * headDim, headDim);
                    RmsNormRow(head, head, h < heads ? gq.AsSpan(0, headDim) : gk.AsSpan(0, headDim), epsilon, addOne: false);
                }
        });
    }

    /// <inheritdoc />
    public void Rotary(DeviceBuffer<float> qkv, DeviceBuffer<int> positions, DeviceBuffer<float> inverseFrequencies, int rows, int heads, int keyValueHeads, int headDim)
    {
        float[] x = Array(qkv), frequencies = Array(inverseFrequencies);
        int[] position = Array(positions);
        int half = headDim / 2, stride = (heads + 2 * keyValueHeads) * headDim;
        if (headDim % 2 != 0) throw new ArgumentException($"rotary embeddings need an even head width, got {headDim}");
        if ((long)rows * stride > x.LongLength || position.Length < rows || frequencies.Length < half)
            throw new ArgumentException($"Rotary over {rows} rows × {heads}+{keyValueHeads} heads × {headDim} is larger than its buffers");
        RowChunks(rows, stride, (start, end) =>
        {
            Span<float> cos = stackalloc float[half], sin = stackalloc float[half];
            for (int row = start; row < end; row++)
            {
                for (int i = 0; i < half; i++)
                {
                    double angle = (double)position[row] * frequencies[i];
                    cos[i] = (float)Math.Cos(angle);
                    sin[i] = (float)Math.Sin(angle);
                }
                // Queries and keys rotate; the values (the last keyValueHeads heads) do not.
                for (int h = 0; h < heads + keyValueHeads; h++)
                {
                    Span<float> head = x.AsSpan(row * stride + h * headDim, headDim);
                    for (int i = 0; i < half; i++)
                    {
                        float first = head[i], second = head[i + half];
                        head[i] = first * cos[i] - second * sin[i];
                        head[i + half] = second * cos[i] + first * sin[i];
                    }
                }
            }
        });
    }

    /// <inheritdoc />
    public void ExpandKeyValueHeads(DeviceBuffer<float> compact, DeviceBuffer<float> expanded, int rows, int heads, int keyValueHeads, int headDim)
    {
        if (keyValueHeads < 1 || heads % keyValueHeads != 0) throw new ArgumentException($"{heads} query heads cannot share {keyValueHeads} key-value heads evenly");
        float[] from = Array(compact), to = Array(expanded);
        int q = heads * headDim, kv = keyValueHeads * headDim, compactStride = q + 2 * kv, expandedStride = 3 * q, group = heads / keyValueHeads;
        if ((long)rows * compactStride > from.LongLength || (long)rows * expandedStride > to.LongLength)
            throw new ArgumentException($"ExpandKeyValueHeads of {rows} rows is larger than its buffers");
        RowChunks(rows, expandedStride, (start, end) =>
        {
            for (int row = start; row < end; row++)
            {
                ReadOnlySpan<float> source = from.AsSpan(row * compactStride, compactStride);
                Span<float> target = to.AsSpan(row * expandedStride, expandedStride);
                source[..q].CopyTo(target);
                for (int h = 0; h < heads; h++)
                {
                    int g = h / group;
                    source.Slice(q + g * headDim, headDim).CopyTo(target.Slice(q + h * headDim, headDim));
                    source.Slice(q + kv + g * headDim, headDim).CopyTo(target.Slice(2 * q + h * headDim, headDim));
                }
            }
        });
    }

    /// <inheritdoc />
    public void GatedActivation(DeviceBuffer<float> gateUp, DeviceBuffer<float> output, int rows, int width, GateActivation activation)
    {
        float[] x = Array(gateUp), y = Array(output);
        if ((long)rows * 2 * width > x.LongLength || (long)rows * width > y.LongLength)
            throw new ArgumentException($"GatedActivation of {rows}×{width} is larger than its buffers");
        RowChunks(rows, 2 * width, (start, end) =>
        {
            for (int row = start; row < end; row++)
            {
                ReadOnlySpan<float> gate = x.AsSpan(row * 2 * width, width), up = x.AsSpan(row * 2 * width + width, width);
                Span<float> target = y.AsSpan(row * width, width);
                switch (activation)
                {
                    case GateActivation.Silu: VectorLoop.Apply<GatedOperator<SiluOperator>>(gate, up, target); break;
                    case GateActivation.GeluExact: VectorLoop.Apply<GatedOperator<GeluExactOperator>>(gate, up, target); break;
                    default: VectorLoop.Apply<GatedOperator<GeluTanhOperator>>(gate, up, target); break;
                }
            }
        });
    }

    /// <inheritdoc />
    public void ScaleInPlace(DeviceBuffer<float> buffer, float factor, long count)
    {
        float[] x = Array(buffer);
        if (count > x.LongLength) throw new ArgumentException($"ScaleInPlace of {count} elements is larger than its buffer");
        System.Numerics.Tensors.TensorPrimitives.Multiply(x.AsSpan(0, checked((int)count)), factor, x.AsSpan(0, checked((int)count)));
    }
}
