using NativeMi.Pooling;

namespace NativeMi.Compute.Cpu;

// The backward ops of fine-tuning: the references the CUDA kernels in kernels/backward.cu are checked against. They are
// written for clarity over speed, reduce rows and columns in double and in a fixed order (so a result does not depend on the
// thread split), and run in three passes where a norm needs them (row statistics, column sums of the parameter gradients,
// then the input gradient), so that the input gradient may overwrite the output gradient it is computed from.
internal sealed partial class CpuBackend
{
    /// <inheritdoc />
    public void ApplyActivation(DeviceBuffer<float> input, DeviceBuffer<float> output, long count, Activation activation)
    {
        float[] x = Array(input), y = Array(output);
        CheckLength(count, nameof(ApplyActivation), x, y);
        Elementwise(count, i => y[i] = Activate(x[i], activation));
    }

    /// <inheritdoc />
    public void ActivationBackward(DeviceBuffer<float> preActivation, DeviceBuffer<float> upstream, DeviceBuffer<float> gradient, long count, Activation activation)
    {
        float[] u = Array(preActivation), g = Array(upstream), d = Array(gradient);
        CheckLength(count, nameof(ActivationBackward), u, g, d);
        Elementwise(count, i => d[i] = g[i] * ActivationDerivative(u[i], activation));
    }

    /// <inheritdoc />
    public void GatedActivationBackward(DeviceBuffer<float> gateUp, DeviceBuffer<float> upstream, DeviceBuffer<float> gateUpGradient, int rows, int width, GateActivation activation)
    {
        float[] x = Array(gateUp), g = Array(upstream), d = Array(gateUpGradient);
        long cells = (long)rows * width;
        CheckLength(2 * cells, nameof(GatedActivationBackward), x, d);
        CheckLength(cells, nameof(GatedActivationBackward), g);
        Elementwise(cells, e =>
        {
            long row = e / width, j = e % width;
            float gate = x[row * 2 * width + j], up = x[row * 2 * width + width + j], upstreamValue = g[e];
            d[row * 2 * width + j] = upstreamValue * up * GateDerivative(gate, activation);
            d[row * 2 * width + width + j] = upstreamValue * Gate(gate, activation);
        });
    }

    /// <inheritdoc />
    public void LayerNormBackward(DeviceBuffer<float> input, DeviceBuffer<float>? residual, DeviceBuffer<float> gamma, DeviceBuffer<float> outputGradient,
        DeviceBuffer<float> inputGradient, DeviceBuffer<float> gammaGradient, DeviceBuffer<float> betaGradient, int rows, int width, float epsilon)
    {
        float[] x = Array(input), g = Array(gamma), dy = Array(outputGradient), dx = Array(inputGradient), dg = Array(gammaGradient), db = Array(betaGradient);
        float[]? r = ArrayOrNull(residual);
        long cells = (long)rows * width;
        CheckLength(cells, nameof(LayerNormBackward), x, dy, dx);
        if (r is not null) CheckLength(cells, nameof(LayerNormBackward), r);
        CheckLength(width, nameof(LayerNormBackward), g, dg, db);
        float Value(long e) => r is null ? x[e] : x[e] + r[e];
        // Per row: the mean, 1/σ, and the means of g = dy·γ and of g·x̂, which the input gradient needs.
        var mean = new double[rows];
        var inverse = new double[rows];
        var meanG = new double[rows];
        var meanGx = new double[rows];
        RowChunks(rows, width, (start, end) =>
        {
            for (int row = start; row < end; row++)
            {
                long at = (long)row * width;
                double sum = 0;
                for (int j = 0; j < width; j++) sum += Value(at + j);
                double mu = sum / width, squares = 0;
                for (int j = 0; j < width; j++) { double c = Value(at + j) - mu; squares += c * c; }
                double rs = 1 / Math.Sqrt(squares / width + epsilon), sg = 0, sgx = 0;
                for (int j = 0; j < width; j++)
                {
                    double gj = (double)dy[at + j] * g[j];
                    sg += gj;
                    sgx += gj * (Value(at + j) - mu) * rs;
                }
                mean[row] = mu;
                inverse[row] = rs;
                meanG[row] = sg / width;
                meanGx[row] = sgx / width;
            }
        });
        ColumnPass(width, j =>
        {
            double sumG = 0, sumB = 0;
            for (int row = 0; row < rows; row++)
            {
                long e = (long)row * width + j;
                sumB += dy[e];
                sumG += dy[e] * (Value(e) - mean[row]) * inverse[row];
            }
            dg[j] = (float)sumG;
            db[j] = (float)sumB;
        });
        RowChunks(rows, width, (start, end) =>
        {
            for (int row = start; row < end; row++)
            {
                long at = (long)row * width;
                for (int j = 0; j < width; j++)
                {
                    double xhat = (Value(at + j) - mean[row]) * inverse[row];
                    dx[at + j] = (float)(inverse[row] * ((double)dy[at + j] * g[j] - meanG[row] - xhat * meanGx[row]));
                }
            }
        });
    }

    /// <inheritdoc />
    public void RmsNormBackward(DeviceBuffer<float> input, DeviceBuffer<float> gamma, DeviceBuffer<float> outputGradient, DeviceBuffer<float> inputGradient,
        DeviceBuffer<float> gammaGradient, int rows, int width, float epsilon, bool addOneToGamma)
    {
        float[] x = Array(input), g = Array(gamma), dy = Array(outputGradient), dx = Array(inputGradient), dg = Array(gammaGradient);
        long cells = (long)rows * width;
        CheckLength(cells, nameof(RmsNormBackward), x, dy, dx);
        CheckLength(width, nameof(RmsNormBackward), g, dg);
        var inverse = new double[rows];
        var meanGx = new double[rows];
        RowChunks(rows, width, (start, end) =>
        {
            for (int row = start; row < end; row++)
                (inverse[row], meanGx[row]) = RmsRowStatistics(x.AsSpan(row * width, width), dy.AsSpan(row * width, width), g, epsilon, addOneToGamma);
        });
        ColumnPass(width, j =>
        {
            double sum = 0;
            for (int row = 0; row < rows; row++) sum += (double)dy[(long)row * width + j] * x[(long)row * width + j] * inverse[row];
            dg[j] = (float)sum;
        });
        RowChunks(rows, width, (start, end) =>
        {
            for (int row = start; row < end; row++)
                RmsRowGradient(x.AsSpan(row * width, width), dy.AsSpan(row * width, width), dx.AsSpan(row * width, width), g, inverse[row], meanGx[row], addOneToGamma);
        });
    }

    /// <summary>1/rms of a row and the mean of g·x, g = dy·w (w = γ or 1 + γ): what the row's input gradient needs.</summary>
    private static (double Inverse, double MeanGx) RmsRowStatistics(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, ReadOnlySpan<float> gamma, float epsilon, bool addOne)
    {
        double squares = 0, gx = 0;
        for (int j = 0; j < x.Length; j++)
        {
            squares += (double)x[j] * x[j];
            gx += (double)dy[j] * (addOne ? 1.0 + gamma[j] : gamma[j]) * x[j];
        }
        return (1 / Math.Sqrt(squares / x.Length + epsilon), gx / x.Length);
    }

    /// <summary>dx = r·(g − x·r²·mean(g·x)) for one row; <paramref name="dx"/> may be <paramref name="dy"/>.</summary>
    private static void RmsRowGradient(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx, ReadOnlySpan<float> gamma, double inverse, double meanGx, bool addOne)
    {
        for (int j = 0; j < x.Length; j++)
        {
            double gj = (double)dy[j] * (addOne ? 1.0 + gamma[j] : gamma[j]);
            dx[j] = (float)(inverse * (gj - x[j] * inverse * inverse * meanGx));
        }
    }

    /// <inheritdoc />
    public void HeadRmsNormBackward(DeviceBuffer<float> qkv, DeviceBuffer<float> queryGamma, DeviceBuffer<float> keyGamma, DeviceBuffer<float> qkvGradient,
        DeviceBuffer<float> queryGammaGradient, DeviceBuffer<float> keyGammaGradient, int rows, int heads, int keyValueHeads, int headDim, float epsilon)
    {
        float[] x = Array(qkv), gq = Array(queryGamma), gk = Array(keyGamma), d = Array(qkvGradient), dgq = Array(queryGammaGradient), dgk = Array(keyGammaGradient);
        int stride = (heads + 2 * keyValueHeads) * headDim, normed = heads + keyValueHeads;
        CheckLength((long)rows * stride, nameof(HeadRmsNormBackward), x, d);
        CheckLength(headDim, nameof(HeadRmsNormBackward), gq, gk, dgq, dgk);
        var inverse = new double[(long)rows * normed];
        var meanGx = new double[(long)rows * normed];
        RowChunks(rows, stride, (start, end) =>
        {
            for (int row = start; row < end; row++)
                for (int h = 0; h < normed; h++)
                {
                    int at = row * stride + h * headDim;
                    (inverse[row * normed + h], meanGx[row * normed + h]) = RmsRowStatistics(x.AsSpan(at, headDim), d.AsSpan(at, headDim), h < heads ? gq : gk, epsilon, addOne: false);
                }
        });
        // Gamma gradients: rows in order, and within a row the heads in order.
        for (int part = 0; part < 2; part++)
        {
            float[] target = part == 0 ? dgq : dgk;
            int first = part == 0 ? 0 : heads, last = part == 0 ? heads : normed;
            for (int j = 0; j < headDim; j++)
            {
                double sum = 0;
                for (int row = 0; row < rows; row++)
                    for (int h = first; h < last; h++)
                    {
                        long e = (long)row * stride + h * headDim + j;
                        sum += (double)d[e] * x[e] * inverse[row * normed + h];
                    }
                target[j] = (float)sum;
            }
        }
        RowChunks(rows, stride, (start, end) =>
        {
            for (int row = start; row < end; row++)
                for (int h = 0; h < normed; h++)
                {
                    int at = row * stride + h * headDim;
                    RmsRowGradient(x.AsSpan(at, headDim), d.AsSpan(at, headDim), d.AsSpan(at, headDim), h < heads ? gq : gk,
                        inverse[row * normed + h], meanGx[row * normed + h], addOne: false);
                }
        });
    }

    /// <inheritdoc />
    public void RotaryBackward(DeviceBuffer<float> qkvGradient, DeviceBuffer<int> positions, DeviceBuffer<float> inverseFrequencies, int rows, int heads, int keyValueHeads, int headDim)
    {
        float[] x = Array(qkvGradient), frequencies = Array(inverseFrequencies);
        int[] position = Array(positions);
        int half = headDim / 2, stride = (heads + 2 * keyValueHeads) * headDim;
        if (headDim % 2 != 0) throw new ArgumentException($"rotary embeddings need an even head width, got {headDim}");
        CheckLength((long)rows * stride, nameof(RotaryBackward), x);
        if (position.Length < rows || frequencies.Length < half) throw new ArgumentException($"RotaryBackward over {rows} rows is larger than its positions or frequencies");
        RowChunks(rows, stride, (start, end) =>
        {
            Span<float> cos = stackalloc float[half], sin = stackalloc float[half];
            for (int row = start; row < end; row++)
            {
                // The forward's angles, computed as it computes them, so the rotation undone is the one applied.
                for (int i = 0; i < half; i++)
                {
                    double angle = (double)position[row] * frequencies[i];
                    cos[i] = (float)Math.Cos(angle);
                    sin[i] = (float)Math.Sin(angle);
                }
                for (int h = 0; h < heads + keyValueHeads; h++)
                {
                    Span<float> head = x.AsSpan(row * stride + h * headDim, headDim);
                    for (int i = 0; i < half; i++)
                    {
                        float first = head[i], second = head[i + half];
                        head[i] = first * cos[i] + second * sin[i];
                        head[i + half] = second * cos[i] - first * sin[i];
                    }
                }
            }
        });
    }

    /// <inheritdoc />
    public void ReduceKeyValueHeads(DeviceBuffer<float> expanded, DeviceBuffer<float> compact, int rows, int heads, int keyValueHeads, int headDim)
    {
        if (keyValueHeads < 1 || heads % keyValueHeads != 0) throw new ArgumentException($"{heads} query heads cannot share {keyValueHeads} key-value heads evenly");
        float[] from = Array(expanded), to = Array(compact);
        int q = heads * headDim, kv = keyValueHeads * headDim, compactStride = q + 2 * kv, expandedStride = 3 * q, group = heads / keyValueHeads;
        CheckLength((long)rows * expandedStride, nameof(ReduceKeyValueHeads), from);
        CheckLength((long)rows * compactStride, nameof(ReduceKeyValueHeads), to);
        RowChunks(rows, expandedStride, (start, end) =>
        {
            for (int row = start; row < end; row++)
            {
                ReadOnlySpan<float> source = from.AsSpan(row * expandedStride, expandedStride);
                Span<float> target = to.AsSpan(row * compactStride, compactStride);
                source[..q].CopyTo(target);
                for (int part = 0; part < 2; part++)
                    for (int g = 0; g < keyValueHeads; g++)
                        for (int e = 0; e < headDim; e++)
                        {
                            float sum = 0;
                            for (int member = 0; member < group; member++) sum += source[(part + 1) * q + (g * group + member) * headDim + e];
                            target[q + part * kv + g * headDim + e] = sum;
                        }
            }
        });
    }

    /// <inheritdoc />
    public void AttentionBackward(DeviceBuffer<float> qkv, DeviceBuffer<int> mask, DeviceBuffer<float> outputGradient, DeviceBuffer<float> qkvGradient,
        int batch, int seq, int heads, int headDim, bool causal)
    {
        float[] x = Array(qkv), dOut = Array(outputGradient), dx = Array(qkvGradient);
        int[] m = Array(mask);
        int width = heads * headDim, stride = 3 * width;
        long rows = (long)batch * seq;
        CheckLength(rows * stride, nameof(AttentionBackward), x, dx);
        CheckLength(rows * width, nameof(AttentionBackward), dOut);
        if (m.LongLength < rows) throw new ArgumentException("mask too small", nameof(mask));
        double scale = 1 / Math.Sqrt(headDim);
        // One (sentence, head) pair per item: each writes only its own head's columns of its sentence's rows.
        CpuWorkers.For(batch * heads, item =>
        {
            int b = item / heads, h = item % heads;
            long rowBase = (long)b * seq;
            var p = new double[seq];
            var dp = new double[seq];
            var dk = new double[(long)seq * headDim];
            var dv = new double[(long)seq * headDim];
            long Q(long row) => (rowBase + row) * stride + h * headDim;
            for (int i = 0; i < seq; i++)
            {
                int keyEnd = causal ? i + 1 : seq;
                double max = double.NegativeInfinity;
                for (int j = 0; j < keyEnd; j++)
                {
                    if (m[rowBase + j] == 0) { p[j] = double.NegativeInfinity; continue; }
                    double s = 0;
                    for (int e = 0; e < headDim; e++) s += (double)x[Q(i) + e] * x[Q(j) + width + e];
                    p[j] = s * scale;
                    max = Math.Max(max, p[j]);
                }
                long dq = Q(i);
                if (double.IsNegativeInfinity(max))
                {
                    // A query with no visible key output zeros: nothing flows back from it.
                    for (int e = 0; e < headDim; e++) dx[dq + e] = 0;
                    continue;
                }
                double sum = 0;
                for (int j = 0; j < keyEnd; j++) { p[j] = double.IsNegativeInfinity(p[j]) ? 0 : Math.Exp(p[j] - max); sum += p[j]; }
                double rowDot = 0;
                for (int j = 0; j < keyEnd; j++)
                {
                    p[j] /= sum;
                    double d = 0;
                    for (int e = 0; e < headDim; e++) d += (double)dOut[(rowBase + i) * width + h * headDim + e] * x[Q(j) + 2 * width + e];
                    dp[j] = d;
                    rowDot += p[j] * d;
                }
                var dqRow = new double[headDim];
                for (int j = 0; j < keyEnd; j++)
                {
                    if (p[j] == 0) continue;
                    double ds = p[j] * (dp[j] - rowDot) * scale;
                    for (int e = 0; e < headDim; e++)
                    {
                        dqRow[e] += ds * x[Q(j) + width + e];
                        dk[(long)j * headDim + e] += ds * x[Q(i) + e];
                        dv[(long)j * headDim + e] += p[j] * dOut[(rowBase + i) * width + h * headDim + e];
                    }
                }
                for (int e = 0; e < headDim; e++) dx[dq + e] = (float)dqRow[e];
            }
            for (int j = 0; j < seq; j++)
                for (int e = 0; e < headDim; e++)
                {
                    dx[Q(j) + width + e] = (float)dk[(long)j * headDim + e];
                    dx[Q(j) + 2 * width + e] = (float)dv[(long)j * headDim + e];
                }
        });
    }

    /// <inheritdoc />
    public void PoolSentencesBackward(DeviceBuffer<float> layer, DeviceBuffer<int> attentionMask, DeviceBuffer<int> isTarget, DeviceBuffer<float> pooledGradient,
        DeviceBuffer<float> layerGradient, int batch, int seq, int width, PoolingMode mode)
    {
        float[] states = Array(layer), g = Array(pooledGradient), d = Array(layerGradient);
        int[] mask = Array(attentionMask), targets = Array(isTarget);
        long cells = (long)batch * seq;
        CheckLength(cells * width, nameof(PoolSentencesBackward), states, d);
        CheckLength((long)batch * width, nameof(PoolSentencesBackward), g);
        if (mask.LongLength < cells || targets.LongLength < cells) throw new ArgumentException($"the masks need {cells} elements", nameof(attentionMask));
        for (int s = 0; s < batch; s++)
        {
            Span<float> sentence = d.AsSpan((int)((long)s * seq * width), seq * width);
            sentence.Clear();
            int first = -1, last = -1, count = 0;
            for (int i = 0; i < seq; i++)
            {
                if (mask[s * seq + i] == 0) continue;
                if (first < 0) first = i;
                last = i;
                if (targets[s * seq + i] != 0) count++;
            }
            ReadOnlySpan<float> upstream = g.AsSpan(s * width, width);
            if (first < 0 || (count == 0 && mode is PoolingMode.Mean or PoolingMode.Max))
            {
                sentence.Fill(float.NaN);
                continue;
            }
            bool Target(int i) => mask[s * seq + i] != 0 && targets[s * seq + i] != 0;
            switch (mode)
            {
                case PoolingMode.Cls:
                case PoolingMode.Last:
                    upstream.CopyTo(sentence.Slice((mode == PoolingMode.Cls ? first : last) * width, width));
                    break;
                case PoolingMode.Mean:
                    for (int i = 0; i < seq; i++)
                        if (Target(i))
                            for (int j = 0; j < width; j++) sentence[i * width + j] = upstream[j] / count;
                    break;
                case PoolingMode.Max:
                    for (int j = 0; j < width; j++)
                    {
                        float max = float.NegativeInfinity;
                        for (int i = 0; i < seq; i++) if (Target(i)) max = Math.Max(max, states[((long)s * seq + i) * width + j]);
                        for (int i = 0; i < seq; i++)
                            if (Target(i) && states[((long)s * seq + i) * width + j] == max) { sentence[i * width + j] = upstream[j]; break; }
                    }
                    break;
            }
        }
    }

    /// <inheritdoc />
    public void SumOfSquares(DeviceBuffer<float> buffer, long count, DeviceBuffer<float> sums, int index)
    {
        float[] x = Array(buffer), s = Array(sums);
        CheckLength(count, nameof(SumOfSquares), x);
        if ((uint)index >= (uint)s.Length) throw new ArgumentOutOfRangeException(nameof(index), $"slot {index} is outside the {s.Length} sums");
        double total = 0;
        for (long i = 0; i < count; i++) total += (double)x[i] * x[i];
        s[index] = (float)total;
    }

    /// <summary>The activation as the training forward applies it (the GEMM epilogue's scalar definitions).</summary>
    internal static float Activate(float x, Activation activation) => activation switch
    {
        Activation.GeluExact => CpuMath.GeluExact(x),
        Activation.GeluTanh => CpuMath.GeluTanh(x),
        _ => x,
    };

    /// <summary>d/dx of <see cref="Activate"/>.</summary>
    internal static float ActivationDerivative(float x, Activation activation) => activation switch
    {
        Activation.GeluExact => CpuMath.GeluExactDerivative(x),
        Activation.GeluTanh => GeluTanhDerivative(x),
        _ => 1f,
    };

    /// <summary>The gate's activation, one element: the same operators GatedActivation runs over whole rows.</summary>
    internal static float Gate(float x, GateActivation activation) => activation switch
    {
        GateActivation.Silu => SiluOperator.Invoke(x),
        GateActivation.GeluExact => GeluExactOperator.Invoke(x),
        _ => GeluTanhOperator.Invoke(x),
    };

    /// <summary>d/dx of <see cref="Gate"/>.</summary>
    internal static float GateDerivative(float x, GateActivation activation)
    {
        switch (activation)
        {
            case GateActivation.Silu:
                float sigmoid = 1f / (1f + MathF.Exp(-x));
                return sigmoid * (1f + x * (1f - sigmoid));
            case GateActivation.GeluExact:
                return CpuMath.GeluExactDerivative(x);
            default:
                return GeluTanhDerivative(x);
        }
    }

    /// <summary>d/dx of 0.5·x·(1 + tanh(c·(x + a·x³))) = 0.5·(1 + t) + 0.5·x·(1 − t²)·c·(1 + 3a·x²).</summary>
    internal static float GeluTanhDerivative(float x)
    {
        const float C = 0.7978845608028654f, A = 0.044715f;
        float t = MathF.Tanh(C * (x + A * x * x * x));
        return 0.5f * (1f + t) + 0.5f * x * (1f - t * t) * C * (1f + 3f * A * x * x);
    }

    private static void CheckLength(long needed, string op, params float[][] buffers)
    {
        foreach (float[] buffer in buffers)
            if (buffer.LongLength < needed) throw new ArgumentException($"{op}: a buffer holds {buffer.LongLength} elements; {needed} needed");
    }

    private static void Elementwise(long count, Action<long> body)
    {
        const int Chunk = 1 << 14;
        if (count < 2 * Chunk) { for (long i = 0; i < count; i++) body(i); return; }
        CpuWorkers.For(checked((int)((count + Chunk - 1) / Chunk)), c =>
        {
            long end = Math.Min(count, (c + 1L) * Chunk);
            for (long i = (long)c * Chunk; i < end; i++) body(i);
        });
    }

    /// <summary>Runs <paramref name="column"/> for every column; each column's sum runs over the rows in order on one thread.</summary>
    private static void ColumnPass(int width, Action<int> column)
    {
        if (width < 64) { for (int j = 0; j < width; j++) column(j); return; }
        CpuWorkers.For(width, column);
    }
}
