using NativeMi.Pooling;
namespace NativeMi.Compute;

/// <summary>The shapes of one model and batch, for the perf mode of the op cases (`nativemi bench --ops`).</summary>
/// <param name="Batch">Sentences per batch.</param>
/// <param name="Sequence">Tokens per sentence.</param>
/// <param name="Width">Hidden width d.</param>
/// <param name="Heads">Attention heads.</param>
/// <param name="HeadDim">Width of one head.</param>
/// <param name="Intermediate">Feed-forward width.</param>
/// <param name="Vocabulary">Vocabulary size (rows of the embedding table).</param>
/// <param name="Causal">Decoder (causal) attention.</param>
/// <param name="ProbeHidden">The probe's hidden width (the default probe's).</param>
/// <param name="ProbeClasses">The probe's output classes (the default run's 1,000 + "other").</param>
internal sealed record OpShapes(int Batch, int Sequence, int Width, int Heads, int HeadDim, int Intermediate, int Vocabulary, bool Causal,
    int ProbeHidden = 256, int ProbeClasses = 1001)
{
    /// <summary>Token rows of a batch.</summary>
    public int Tokens => Batch * Sequence;

    /// <summary>Probe targets of a batch (every token but two specials per sentence).</summary>
    public int Targets => Batch * Math.Max(Sequence - 2, 1);
}

/// <summary>
/// The cases <see cref="BackendParity"/> runs: every op of <see cref="IComputeBackend"/>, on shapes chosen to be
/// awkward (primes, widths that are not multiples of a warp or a vector, rows longer than one thread block, a single
/// element, sentences that are left-padded, right-padded or entirely masked). <see cref="Perf"/> builds the same ops
/// at a model's shapes, with the work each one does, for timing (ggml's test-backend-ops perf mode).
/// </summary>
internal static class ParityCases
{
    /// <summary>Random inputs of the cases, drawn in the order the cases are built.</summary>
    private sealed class Inputs(Random random)
    {
        public float[] Uniform(long count, float scale = 1f)
        {
            var values = new float[count];
            for (long i = 0; i < count; i++) values[i] = (float)(random.NextDouble() * 2 - 1) * scale;
            return values;
        }

        public int[] Indices(int count, int bound)
        {
            var values = new int[count];
            for (int i = 0; i < count; i++) values[i] = random.Next(bound);
            return values;
        }

        public int Next(int bound) => random.Next(bound);

        /// <summary>Uniform values as 16-bit storage (round to nearest even).</summary>
        public ushort[] SixteenBit(long count, WeightFormat format, float scale = 1f) =>
            Uniform(count, scale).Select(v => Narrow(v, format)).ToArray();

        /// <summary>Uniform values that the 16-bit format holds exactly, so a GEMM that rounds its activations to it is exact.</summary>
        public float[] Representable(long count, WeightFormat format, float scale = 1f) =>
            SixteenBit(count, format, scale).Select(v => SixteenBitWeights.Widen(v, format)).ToArray();

        private static ushort Narrow(float value, WeightFormat format) =>
            format == WeightFormat.BFloat16 ? SixteenBitWeights.ToBFloat16(value) : BitConverter.HalfToUInt16Bits((Half)value);
    }

    public static IEnumerable<ParityCase> All(Random random)
    {
        var x = new Inputs(random);
        {
            var c = new ParityCase("Allocate", "53 floats are zero");
            int output = c.Float("output", x.Uniform(53));
            c.Body = (backend, b) =>
            {
                using DeviceBuffer<float> fresh = backend.Allocate<float>(53);
                var host = new float[53];
                backend.Download(fresh, host);
                backend.CopyFromHost<float>(host, b.F(output));
            };
            yield return c;
        }
        {
            var c = new ParityCase("CopyFromHost", "29 of 41");
            int output = c.Float("output", x.Uniform(41));
            float[] source = x.Uniform(29);
            c.Body = (backend, b) => backend.CopyFromHost<float>(source, b.F(output));
            yield return c;
        }
        {
            var c = new ParityCase("Zero", "45 of 70");
            int output = c.Float("buffer", x.Uniform(70));
            c.Body = (backend, b) => backend.Zero(b.F(output), 45);
            yield return c;
        }
        yield return AddInPlace(x, 1031);
        foreach (var (m, k, n) in new[] { (1, 1, 1), (37, 29, 53), (130, 67, 97) })
            foreach (Activation activation in Enum.GetValues<Activation>())
                foreach (bool withBias in new[] { true, false })
                    yield return Gemm(x, m, k, n, activation, withBias);
        foreach (var (rows, width) in new[] { (7, 97), (33, 771) })
            foreach (bool withResidual in new[] { true, false })
                yield return LayerNorm(x, rows, width, withResidual);
        foreach (bool withTypes in new[] { true, false }) yield return EmbeddingGather(x, 23, 45, 50, 31, withTypes);
        foreach (var (batch, seq, heads, headDim) in new[] { (3, 13, 3, 24), (2, 70, 2, 40), (2, 300, 2, 16) })
            foreach (bool causal in new[] { false, true })
                yield return Attention(x, batch, seq, heads, headDim, causal, awkwardMask: true);
        foreach (bool transposeA in new[] { false, true })
            foreach (bool transposeB in new[] { false, true })
                foreach (bool accumulate in new[] { false, true })
                    yield return GemmEx(x, 19, 33, 27, transposeA, transposeB, accumulate);
        yield return GatherRows(x, 55, 37, 40);
        yield return ScatterAddRows(x, 61, 29, 17);
        foreach (bool gelu in new[] { true, false }) yield return BiasActivation(x, 21, 83, gelu);
        yield return GeluBackward(x, 999);
        foreach (var (rows, width) in new[] { (301, 45), (1, 70) }) yield return ColumnSums(x, rows, width);
        foreach (var (rows, classes) in new[] { (19, 7), (11, 1500) })
            foreach (bool writeGradient in new[] { true, false })
                yield return SoftmaxCrossEntropy(x, rows, classes, writeGradient);
        foreach (Pooling.PoolingMode mode in Enum.GetValues<Pooling.PoolingMode>()) yield return PoolSentences(x, 5, 11, 301, mode, awkwardMask: true);
        foreach (var (count, classes, positions) in new[] { (1, 1, 1), (5003, 97, 23) }) yield return CountPredictions(x, count, classes, positions);
        foreach (int step in new[] { 1, 9 }) yield return AdamW(x, 777, step);
        foreach (var (rows, width) in new[] { (7, 97), (33, 771) })
            foreach (bool addOne in new[] { false, true })
                yield return RmsNorm(x, rows, width, addOne);
        yield return HeadRmsNorm(x, 13, 3, 1, 24);
        foreach (var (heads, kv, headDim) in new[] { (3, 3, 24), (4, 2, 10), (6, 1, 64) }) yield return Rotary(x, 19, heads, kv, headDim);
        foreach (var (heads, kv) in new[] { (4, 2), (6, 1), (3, 3) }) yield return ExpandKeyValueHeads(x, 17, heads, kv, 12);
        foreach (GateActivation activation in Enum.GetValues<GateActivation>()) yield return GatedActivation(x, 23, 101, activation);
        yield return ScaleInPlace(x, 1031, 19.595918f);
        foreach (WeightFormat format in new[] { WeightFormat.BFloat16, WeightFormat.Float16 })
        {
            foreach (bool transposed in new[] { false, true })
                yield return SixteenBitGemm(x, 37, 29, 53, format, transposed, Activation.GeluExact, representableInput: true);
            yield return SixteenBitGemm(x, 130, 400, 97, format, transposed: true, Activation.None, representableInput: false);
            yield return SixteenBitGatherRows(x, 31, 45, 50, format);
            yield return SixteenBitEmbeddingGather(x, 23, 45, 50, 31, format);
        }
        // The backward ops of fine-tuning, drawn after every forward case so that those keep their inputs.
        foreach (Activation activation in Enum.GetValues<Activation>())
        {
            yield return ApplyActivation(x, 999, activation);
            yield return ActivationBackward(x, 999, activation);
        }
        foreach (GateActivation activation in Enum.GetValues<GateActivation>()) yield return GatedActivationBackward(x, 23, 101, activation);
        foreach (var (rows, width) in new[] { (7, 97), (33, 771) })
            foreach (bool withResidual in new[] { true, false })
                yield return LayerNormBackward(x, rows, width, withResidual, inPlace: false);
        yield return LayerNormBackward(x, 9, 45, withResidual: true, inPlace: true);
        foreach (var (rows, width) in new[] { (7, 97), (33, 771) })
            foreach (bool addOne in new[] { false, true })
                yield return RmsNormBackward(x, rows, width, addOne, inPlace: false);
        yield return RmsNormBackward(x, 9, 45, addOne: true, inPlace: true);
        foreach (var (heads, kv, headDim) in new[] { (3, 1, 24), (4, 2, 10) }) yield return HeadRmsNormBackward(x, 13, heads, kv, headDim);
        foreach (var (heads, kv, headDim) in new[] { (3, 3, 24), (4, 2, 10), (6, 1, 64) }) yield return RotaryBackward(x, 19, heads, kv, headDim);
        foreach (var (heads, kv) in new[] { (4, 2), (6, 1), (3, 3) }) yield return ReduceKeyValueHeads(x, 17, heads, kv, 12);
        foreach (var (batch, seq, heads, headDim) in new[] { (3, 13, 3, 24), (2, 70, 2, 40) })
            foreach (bool causal in new[] { false, true })
                yield return AttentionBackward(x, batch, seq, heads, headDim, causal);
        foreach (Pooling.PoolingMode mode in Enum.GetValues<Pooling.PoolingMode>()) yield return PoolSentencesBackward(x, 5, 11, 301, mode);
        foreach (long count in new[] { 1L, 1031L, 300_007L }) yield return SumOfSquares(x, count);
    }

    private static ParityCase ApplyActivation(Inputs x, long count, Activation activation)
    {
        var c = new ParityCase("ApplyActivation", $"{count} {activation}") { Flops = 20.0 * count, Bytes = 8.0 * count };
        int input = c.Float("input", x.Uniform(count, 5f)), output = c.Float("output", x.Uniform(count));
        c.Body = (backend, b) => backend.ApplyActivation(b.F(input), b.F(output), count, activation);
        return c;
    }

    private static ParityCase ActivationBackward(Inputs x, long count, Activation activation)
    {
        var c = new ParityCase("ActivationBackward", $"{count} {activation}") { Flops = 25.0 * count, Bytes = 12.0 * count };
        int pre = c.Float("preActivation", x.Uniform(count, 5f)), upstream = c.Float("upstream", x.Uniform(count)), gradient = c.Float("gradient", x.Uniform(count));
        c.Body = (backend, b) => backend.ActivationBackward(b.F(pre), b.F(upstream), b.F(gradient), count, activation);
        return c;
    }

    private static ParityCase GatedActivationBackward(Inputs x, int rows, int width, GateActivation activation)
    {
        long cells = (long)rows * width;
        var c = new ParityCase("GatedActivationBackward", $"rows={rows} width={width} {activation}") { Flops = 40.0 * cells, Bytes = 20.0 * cells };
        int gateUp = c.Float("gateUp", x.Uniform(2 * cells, 4f)), upstream = c.Float("upstream", x.Uniform(cells)), gradient = c.Float("gateUpGradient", x.Uniform(2 * cells));
        c.Body = (backend, b) => backend.GatedActivationBackward(b.F(gateUp), b.F(upstream), b.F(gradient), rows, width, activation);
        return c;
    }

    private static ParityCase LayerNormBackward(Inputs x, int rows, int width, bool withResidual, bool inPlace)
    {
        long cells = (long)rows * width;
        var c = new ParityCase("LayerNormBackward", $"rows={rows} width={width}{(withResidual ? " +residual" : "")}{(inPlace ? " in place" : "")}")
        {
            Flops = 20.0 * cells,
            Bytes = 4.0 * (cells * (withResidual ? 5 : 4) + 3 * width),
        };
        int input = c.Float("input", x.Uniform(cells, 3f)), residual = c.Float("residual", x.Uniform(cells)), gamma = c.Float("gamma", x.Uniform(width));
        int upstream = c.Float("outputGradient", x.Uniform(cells)), gradient = c.Float("inputGradient", x.Uniform(cells));
        int gammaGradient = c.Float("gammaGradient", x.Uniform(width)), betaGradient = c.Float("betaGradient", x.Uniform(width));
        c.Body = (backend, b) => backend.LayerNormBackward(b.F(input), withResidual ? b.F(residual) : null, b.F(gamma), b.F(upstream),
            b.F(inPlace ? upstream : gradient), b.F(gammaGradient), b.F(betaGradient), rows, width, 1e-5f);
        return c;
    }

    private static ParityCase RmsNormBackward(Inputs x, int rows, int width, bool addOne, bool inPlace)
    {
        long cells = (long)rows * width;
        var c = new ParityCase("RmsNormBackward", $"rows={rows} width={width}{(addOne ? " (1 + w)" : "")}{(inPlace ? " in place" : "")}")
        {
            Flops = 12.0 * cells,
            Bytes = 4.0 * (4 * cells + 2 * width),
        };
        int input = c.Float("input", x.Uniform(cells, 3f)), gamma = c.Float("gamma", x.Uniform(width));
        int upstream = c.Float("outputGradient", x.Uniform(cells)), gradient = c.Float("inputGradient", x.Uniform(cells)), gammaGradient = c.Float("gammaGradient", x.Uniform(width));
        c.Body = (backend, b) => backend.RmsNormBackward(b.F(input), b.F(gamma), b.F(upstream), b.F(inPlace ? upstream : gradient), b.F(gammaGradient), rows, width, 1e-6f, addOne);
        return c;
    }

    private static ParityCase HeadRmsNormBackward(Inputs x, int rows, int heads, int keyValueHeads, int headDim)
    {
        long cells = (long)rows * (heads + 2 * keyValueHeads) * headDim;
        var c = new ParityCase("HeadRmsNormBackward", $"rows={rows} heads={heads}/{keyValueHeads} dim={headDim}") { Flops = 12.0 * cells, Bytes = 12.0 * cells };
        int qkv = c.Float("qkv", x.Uniform(cells, 3f)), queryGamma = c.Float("queryGamma", x.Uniform(headDim)), keyGamma = c.Float("keyGamma", x.Uniform(headDim));
        int gradient = c.Float("qkvGradient", x.Uniform(cells));
        int queryGammaGradient = c.Float("queryGammaGradient", x.Uniform(headDim)), keyGammaGradient = c.Float("keyGammaGradient", x.Uniform(headDim));
        c.Body = (backend, b) => backend.HeadRmsNormBackward(b.F(qkv), b.F(queryGamma), b.F(keyGamma), b.F(gradient), b.F(queryGammaGradient), b.F(keyGammaGradient),
            rows, heads, keyValueHeads, headDim, 1e-6f);
        return c;
    }

    private static ParityCase RotaryBackward(Inputs x, int rows, int heads, int keyValueHeads, int headDim)
    {
        long cells = (long)rows * (heads + 2 * keyValueHeads) * headDim;
        var c = new ParityCase("RotaryBackward", $"rows={rows} heads={heads}/{keyValueHeads} dim={headDim}") { Flops = 6.0 * cells, Bytes = 8.0 * cells };
        var frequencies = new float[headDim / 2];
        for (int i = 0; i < frequencies.Length; i++) frequencies[i] = (float)Math.Pow(50_000, -2.0 * i / headDim);
        int gradient = c.Float("qkvGradient", x.Uniform(cells)), positions = c.Int("positions", x.Indices(rows, 500)), inverse = c.Float("inverseFrequencies", frequencies);
        c.Body = (backend, b) => backend.RotaryBackward(b.F(gradient), b.I(positions), b.F(inverse), rows, heads, keyValueHeads, headDim);
        return c;
    }

    private static ParityCase ReduceKeyValueHeads(Inputs x, int rows, int heads, int keyValueHeads, int headDim)
    {
        long compact = (long)rows * (heads + 2 * keyValueHeads) * headDim, expanded = (long)rows * 3 * heads * headDim;
        var c = new ParityCase("ReduceKeyValueHeads", $"rows={rows} heads={heads}/{keyValueHeads} dim={headDim}") { Flops = expanded, Bytes = 4.0 * (compact + expanded) };
        int from = c.Float("expanded", x.Uniform(expanded)), to = c.Float("compact", x.Uniform(compact));
        c.Body = (backend, b) => backend.ReduceKeyValueHeads(b.F(from), b.F(to), rows, heads, keyValueHeads, headDim);
        return c;
    }

    private static ParityCase AttentionBackward(Inputs x, int batch, int seq, int heads, int headDim, bool causal, bool awkwardMask = true)
    {
        int width = heads * headDim;
        double pairs = causal ? (double)seq * (seq + 1) / 2 : (double)seq * seq;
        var c = new ParityCase("AttentionBackward", $"batch={batch} seq={seq} heads={heads} dim={headDim}{(causal ? " causal" : "")}")
        {
            Flops = 10.0 * batch * heads * pairs * headDim,
            Bytes = 4.0 * ((long)batch * seq * 6 * width + (long)batch * seq * width + (long)batch * seq),
        };
        int qkv = c.Float("qkv", x.Uniform((long)batch * seq * 3 * width, 2f)), upstream = c.Float("outputGradient", x.Uniform((long)batch * seq * width));
        int gradient = c.Float("qkvGradient", x.Uniform((long)batch * seq * 3 * width));
        var mask = new int[batch * seq];
        // Sentence 0 is full, 1 left-padded by a few tokens, 2 entirely masked (its gradient is all zeros); all real in the perf mode.
        for (int s = 0; s < batch; s++)
            for (int i = 0; i < seq; i++)
                mask[s * seq + i] = !awkwardMask ? 1 : s switch { 0 => 1, 1 => i >= 4 ? 1 : 0, _ => 0 };
        int maskIndex = c.Int("mask", mask);
        c.Body = (backend, b) => backend.AttentionBackward(b.F(qkv), b.I(maskIndex), b.F(upstream), b.F(gradient), batch, seq, heads, headDim, causal);
        return c;
    }

    private static ParityCase PoolSentencesBackward(Inputs x, int batch, int seq, int width, Pooling.PoolingMode mode, bool awkwardMask = true)
    {
        var c = new ParityCase("PoolSentencesBackward", $"batch={batch} seq={seq} width={width} {mode.ToString().ToLowerInvariant()}")
        {
            Flops = (double)batch * seq * width,
            Bytes = 4.0 * (2L * batch * seq * width + (long)batch * width + 2L * batch * seq),
        };
        var mask = new int[batch * seq];
        var isTarget = new int[batch * seq];
        for (int s = 0; s < batch; s++)
            for (int i = 0; i < seq; i++)
            {
                if (!awkwardMask)
                {
                    mask[s * seq + i] = 1;
                    isTarget[s * seq + i] = i > 0 && i < seq - 1 ? 1 : 0;
                    continue;
                }
                // As the forward case: 0 full, 1 right-padded, 2 left-padded, 3 real tokens but no target, 4 entirely masked.
                bool real = s switch { 0 or 3 => true, 1 => i < 7, 2 => i >= 3, _ => false };
                mask[s * seq + i] = real ? 1 : 0;
                int firstReal = s == 2 ? 3 : 0, lastReal = s == 1 ? 6 : seq - 1;
                isTarget[s * seq + i] = real && s != 3 && i != firstReal && i != lastReal && x.Next(5) != 0 ? 1 : 0;
            }
        int layer = c.Float("layer", x.Uniform((long)batch * seq * width, 3f)), upstream = c.Float("pooledGradient", x.Uniform((long)batch * width));
        int gradient = c.Float("layerGradient", x.Uniform((long)batch * seq * width));
        int maskIndex = c.Int("attentionMask", mask), targetIndex = c.Int("isTarget", isTarget);
        c.Body = (backend, b) => backend.PoolSentencesBackward(b.F(layer), b.I(maskIndex), b.I(targetIndex), b.F(upstream), b.F(gradient), batch, seq, width, mode);
        return c;
    }

    private static ParityCase SumOfSquares(Inputs x, long count)
    {
        var c = new ParityCase("SumOfSquares", $"{count} into slot 2 of 5") { Flops = 2.0 * count, Bytes = 4.0 * count };
        int buffer = c.Float("buffer", x.Uniform(count)), sums = c.Float("sums", x.Uniform(5));
        c.Body = (backend, b) => backend.SumOfSquares(b.F(buffer), count, b.F(sums), 2);
        return c;
    }

    private static ParityCase SixteenBitGemm(Inputs x, int m, int k, int n, WeightFormat format, bool transposed, Activation activation, bool representableInput)
    {
        string name = SixteenBitWeights.Name(format);
        var c = new ParityCase("Gemm", $"{name} weight m={m} k={k} n={n} {activation}{(transposed ? " Wᵀ stored" : "")}{(representableInput ? "" : " (input rounded on CUDA)")}")
        {
            Flops = 2.0 * m * k * n,
            Bytes = 4.0 * ((long)m * k + (long)m * n + n) + 2.0 * k * n,
            // Inputs the format holds exactly leave only the summation order; others are rounded (to 8 or 11 bits) on CUDA.
            ToleranceFloor = representableInput ? 0 : format == WeightFormat.BFloat16 ? 1e-2 : 2e-3,
        };
        int input = c.Float("input", representableInput ? x.Representable((long)m * k, format) : x.Uniform((long)m * k));
        ushort[] weight = x.SixteenBit((long)k * n, format, 0.3f);
        int bias = c.Float("bias", x.Uniform(n)), output = c.Float("output", x.Uniform((long)m * n));
        c.Body = (backend, b) =>
        {
            using DeviceBuffer<float> matrix = backend.UploadMatrix(weight, k, n, format, transposed);
            backend.Gemm(b.F(input), matrix, b.F(bias), b.F(output), m, k, n, activation);
        };
        return c;
    }

    private static ParityCase SixteenBitGatherRows(Inputs x, int rows, int width, int sourceRows, WeightFormat format)
    {
        var c = new ParityCase("GatherRows", $"{SixteenBitWeights.Name(format)} table rows={rows} width={width} from {sourceRows}") { Bytes = 6.0 * rows * width + 4.0 * rows };
        ushort[] table = x.SixteenBit((long)sourceRows * width, format);
        int indices = c.Int("indices", x.Indices(rows, sourceRows)), output = c.Float("output", x.Uniform((long)rows * width));
        c.Body = (backend, b) =>
        {
            using DeviceBuffer<float> source = backend.UploadTable(table, sourceRows, width, format);
            backend.GatherRows(source, b.I(indices), b.F(output), rows, width);
        };
        return c;
    }

    private static ParityCase SixteenBitEmbeddingGather(Inputs x, int rows, int width, int words, int positions, WeightFormat format)
    {
        var c = new ParityCase("EmbeddingGather", $"{SixteenBitWeights.Name(format)} word table rows={rows} width={width} +types") { Bytes = 4.0 * rows * width * 3 + 2.0 * rows * width };
        ushort[] wordTable = x.SixteenBit((long)words * width, format);
        int ids = c.Int("ids", x.Indices(rows, words)), positionIds = c.Int("positionIds", x.Indices(rows, positions)), types = c.Int("typeIds", x.Indices(rows, 2));
        int positionTable = c.Float("positions", x.Uniform((long)positions * width)), typeTable = c.Float("types", x.Uniform(2 * width));
        int output = c.Float("output", x.Uniform((long)rows * width));
        c.Body = (backend, b) =>
        {
            using DeviceBuffer<float> table = backend.UploadTable(wordTable, words, width, format);
            backend.EmbeddingGather(b.I(ids), b.I(positionIds), b.I(types), table, b.F(positionTable), b.F(typeTable), b.F(output), rows, width);
        };
        return c;
    }

    /// <summary>Every compute op at the shapes a model's forward pass and probe training use, each with its work.</summary>
    public static IEnumerable<ParityCase> Perf(Random random, OpShapes s)
    {
        ArgumentNullException.ThrowIfNull(s);
        var x = new Inputs(random);
        int t = s.Tokens, d = s.Width, targets = s.Targets, h = s.ProbeHidden, classes = s.ProbeClasses;
        yield return Named(EmbeddingGather(x, t, d, Math.Min(s.Vocabulary, 32768), Math.Max(s.Sequence, 2), withTypes: true), "embeddings");
        yield return Named(Gemm(x, t, d, 3 * d, Activation.None, withBias: true), "QKV projection");
        yield return Named(Attention(x, s.Batch, s.Sequence, s.Heads, s.HeadDim, s.Causal, awkwardMask: false), "attention");
        yield return Named(Gemm(x, t, d, d, Activation.None, withBias: true), "attention output");
        yield return Named(AddInPlace(x, (long)t * d), "residual");
        yield return Named(LayerNorm(x, t, d, withResidual: true), "post-attention norm");
        yield return Named(Gemm(x, t, d, s.Intermediate, Activation.GeluExact, withBias: true), "feed-forward up + GELU");
        yield return Named(Gemm(x, t, s.Intermediate, d, Activation.None, withBias: true), "feed-forward down");
        yield return Named(PoolSentences(x, s.Batch, s.Sequence, d, Pooling.PoolingMode.Mean, awkwardMask: false), "pooling");
        yield return Named(GemmEx(x, s.Batch, d, h, transposeA: false, transposeB: false, accumulate: false), "probe W1 z");
        yield return Named(GatherRows(x, targets, h, s.Batch), "probe rows to targets");
        yield return Named(BiasActivation(x, targets, h, gelu: true), "probe bias + GELU");
        yield return Named(GemmEx(x, targets, h, classes, transposeA: false, transposeB: false, accumulate: false), "probe logits");
        yield return Named(SoftmaxCrossEntropy(x, targets, classes, writeGradient: true), "probe softmax + CE + gradient");
        yield return Named(GemmEx(x, h, targets, classes, transposeA: true, transposeB: false, accumulate: false), "probe dW2");
        yield return Named(ColumnSums(x, targets, classes), "probe db2");
        yield return Named(GemmEx(x, targets, classes, h, transposeA: false, transposeB: true, accumulate: false), "probe dA");
        yield return Named(GeluBackward(x, (long)targets * h), "probe GELU backward");
        yield return Named(ScatterAddRows(x, targets, h, s.Batch), "probe targets to rows");
        yield return Named(AdamW(x, h * classes, 3), "probe AdamW (W2)");
        yield return Named(CountPredictions(x, targets, classes, s.Sequence), "Fano counts");
        // One block of fine-tuning's backward pass (the GEMMs' backward products are GemmEx, timed above at the probe's shapes).
        yield return Named(PoolSentencesBackward(x, s.Batch, s.Sequence, d, Pooling.PoolingMode.Mean, awkwardMask: false), "backward: pooling");
        yield return Named(LayerNormBackward(x, t, d, withResidual: true, inPlace: false), "backward: post-attention norm");
        yield return Named(ActivationBackward(x, (long)t * s.Intermediate, Activation.GeluExact), "backward: feed-forward GELU");
        yield return Named(AttentionBackward(x, s.Batch, s.Sequence, s.Heads, s.HeadDim, s.Causal, awkwardMask: false), "backward: attention");
        yield return Named(SumOfSquares(x, (long)d * s.Intermediate), "backward: gradient norm (one matrix)");
    }

    private static ParityCase RmsNorm(Inputs x, int rows, int width, bool addOne)
    {
        long cells = (long)rows * width;
        var c = new ParityCase("RmsNorm", $"rows={rows} width={width}{(addOne ? " (1 + w)" : "")}") { Flops = 4.0 * cells, Bytes = 4.0 * (2 * cells + width) };
        int input = c.Float("input", x.Uniform(cells, 3f)), gamma = c.Float("gamma", x.Uniform(width)), output = c.Float("output", x.Uniform(cells));
        c.Body = (backend, b) => backend.RmsNorm(b.F(input), b.F(gamma), b.F(output), rows, width, 1e-6f, addOne);
        return c;
    }

    private static ParityCase HeadRmsNorm(Inputs x, int rows, int heads, int keyValueHeads, int headDim)
    {
        long cells = (long)rows * (heads + 2 * keyValueHeads) * headDim;
        var c = new ParityCase("HeadRmsNorm", $"rows={rows} heads={heads}/{keyValueHeads} dim={headDim}") { Flops = 4.0 * cells, Bytes = 8.0 * cells };
        int qkv = c.Float("qkv", x.Uniform(cells, 3f)), queryGamma = c.Float("queryGamma", x.Uniform(headDim)), keyGamma = c.Float("keyGamma", x.Uniform(headDim));
        c.Body = (backend, b) => backend.HeadRmsNorm(b.F(qkv), b.F(queryGamma), b.F(keyGamma), rows, heads, keyValueHeads, headDim, 1e-6f);
        return c;
    }

    private static ParityCase Rotary(Inputs x, int rows, int heads, int keyValueHeads, int headDim)
    {
        long cells = (long)rows * (heads + 2 * keyValueHeads) * headDim;
        var c = new ParityCase("Rotary", $"rows={rows} heads={heads}/{keyValueHeads} dim={headDim}") { Flops = 6.0 * cells, Bytes = 8.0 * cells };
        var frequencies = new float[headDim / 2];
        for (int i = 0; i < frequencies.Length; i++) frequencies[i] = (float)Math.Pow(50_000, -2.0 * i / headDim);
        // Positions up to a few hundred, as long sentences reach, so the angles wrap many times.
        int qkv = c.Float("qkv", x.Uniform(cells)), positions = c.Int("positions", x.Indices(rows, 500)), inverse = c.Float("inverseFrequencies", frequencies);
        c.Body = (backend, b) => backend.Rotary(b.F(qkv), b.I(positions), b.F(inverse), rows, heads, keyValueHeads, headDim);
        return c;
    }

    private static ParityCase ExpandKeyValueHeads(Inputs x, int rows, int heads, int keyValueHeads, int headDim)
    {
        long compact = (long)rows * (heads + 2 * keyValueHeads) * headDim, expanded = (long)rows * 3 * heads * headDim;
        var c = new ParityCase("ExpandKeyValueHeads", $"rows={rows} heads={heads}/{keyValueHeads} dim={headDim}") { Bytes = 4.0 * (compact + expanded) };
        int from = c.Float("compact", x.Uniform(compact)), to = c.Float("expanded", x.Uniform(expanded));
        c.Body = (backend, b) => backend.ExpandKeyValueHeads(b.F(from), b.F(to), rows, heads, keyValueHeads, headDim);
        return c;
    }

    private static ParityCase GatedActivation(Inputs x, int rows, int width, GateActivation activation)
    {
        long cells = (long)rows * width;
        var c = new ParityCase("GatedActivation", $"rows={rows} width={width} {activation}") { Flops = 20.0 * cells, Bytes = 12.0 * cells };
        int gateUp = c.Float("gateUp", x.Uniform(2 * cells, 4f)), output = c.Float("output", x.Uniform(cells));
        c.Body = (backend, b) => backend.GatedActivation(b.F(gateUp), b.F(output), rows, width, activation);
        return c;
    }

    private static ParityCase ScaleInPlace(Inputs x, long count, float factor)
    {
        var c = new ParityCase("ScaleInPlace", $"{count} x {factor.ToString(System.Globalization.CultureInfo.InvariantCulture)}") { Flops = count, Bytes = 8.0 * count };
        int buffer = c.Float("buffer", x.Uniform(count));
        c.Body = (backend, b) => backend.ScaleInPlace(b.F(buffer), factor, count);
        return c;
    }

    private static ParityCase Named(ParityCase c, string role)
    {
        c.Role = role;
        return c;
    }

    private static ParityCase AddInPlace(Inputs x, long count)
    {
        var c = new ParityCase("AddInPlace", count.ToString(System.Globalization.CultureInfo.InvariantCulture)) { Flops = count, Bytes = 12.0 * count };
        int accumulator = c.Float("accumulator", x.Uniform(count)), addend = c.Float("addend", x.Uniform(count));
        c.Body = (backend, b) => backend.AddInPlace(b.F(accumulator), b.F(addend), count);
        return c;
    }

    private static ParityCase Gemm(Inputs x, int m, int k, int n, Activation activation, bool withBias)
    {
        var c = new ParityCase("Gemm", $"m={m} k={k} n={n} {activation}{(withBias ? " +bias" : "")}")
        {
            Flops = 2.0 * m * k * n,
            Bytes = 4.0 * ((long)m * k + (long)k * n + (long)m * n + n),
        };
        int input = c.Float("input", x.Uniform((long)m * k)), weight = c.Float("weight", x.Uniform((long)k * n, 0.3f));
        int bias = c.Float("bias", x.Uniform(n)), output = c.Float("output", x.Uniform((long)m * n));
        c.Body = (backend, b) => backend.Gemm(b.F(input), b.F(weight), withBias ? b.F(bias) : null, b.F(output), m, k, n, activation);
        return c;
    }

    private static ParityCase LayerNorm(Inputs x, int rows, int width, bool withResidual)
    {
        long cells = (long)rows * width;
        var c = new ParityCase("LayerNorm", $"rows={rows} width={width}{(withResidual ? " +residual" : "")}")
        {
            Flops = 8.0 * cells,
            Bytes = 4.0 * (cells * (withResidual ? 3 : 2) + 2 * width),
        };
        int input = c.Float("input", x.Uniform(cells, 3f)), residual = c.Float("residual", x.Uniform(cells));
        int gamma = c.Float("gamma", x.Uniform(width)), beta = c.Float("beta", x.Uniform(width)), output = c.Float("output", x.Uniform(cells));
        c.Body = (backend, b) => backend.LayerNorm(b.F(input), withResidual ? b.F(residual) : null, b.F(gamma), b.F(beta), b.F(output), rows, width, 1e-5f);
        return c;
    }

    private static ParityCase EmbeddingGather(Inputs x, int rows, int width, int words, int positions, bool withTypes)
    {
        var c = new ParityCase("EmbeddingGather", $"rows={rows} width={width}{(withTypes ? " +types" : "")}")
        {
            Flops = (withTypes ? 2.0 : 1.0) * rows * width,
            Bytes = 4.0 * ((long)rows * width * (withTypes ? 4 : 3) + 3L * rows),
        };
        int ids = c.Int("ids", x.Indices(rows, words)), positionIds = c.Int("positionIds", x.Indices(rows, positions)), types = c.Int("typeIds", x.Indices(rows, 2));
        int wordTable = c.Float("words", x.Uniform((long)words * width)), positionTable = c.Float("positions", x.Uniform((long)positions * width));
        int typeTable = c.Float("types", x.Uniform(2 * width)), output = c.Float("output", x.Uniform((long)rows * width));
        c.Body = (backend, b) => backend.EmbeddingGather(b.I(ids), b.I(positionIds), withTypes ? b.I(types) : null, b.F(wordTable), b.F(positionTable),
            withTypes ? b.F(typeTable) : null, b.F(output), rows, width);
        return c;
    }

    private static ParityCase Attention(Inputs x, int batch, int seq, int heads, int headDim, bool causal, bool awkwardMask)
    {
        int width = heads * headDim;
        double pairs = causal ? (double)seq * (seq + 1) / 2 : (double)seq * seq;
        var c = new ParityCase("Attention", $"batch={batch} seq={seq} heads={heads} dim={headDim}{(causal ? " causal" : "")}")
        {
            Flops = 4.0 * batch * heads * pairs * headDim,
            Bytes = 4.0 * ((long)batch * seq * 3 * width + (long)batch * seq * width + (long)batch * seq),
        };
        int qkv = c.Float("qkv", x.Uniform((long)batch * seq * 3 * width, 2f)), output = c.Float("output", x.Uniform((long)batch * seq * width));
        var mask = new int[batch * seq];
        for (int s = 0; s < batch; s++)
            for (int i = 0; i < seq; i++)
                // Sentence 0 is full, 1 left-padded by a few tokens, 2 entirely masked; every sentence is real in the perf mode.
                mask[s * seq + i] = !awkwardMask ? 1 : s switch { 0 => 1, 1 => i >= 4 ? 1 : 0, _ => 0 };
        int maskIndex = c.Int("mask", mask);
        c.Body = (backend, b) => backend.Attention(b.F(qkv), b.I(maskIndex), b.F(output), batch, seq, heads, headDim, causal);
        return c;
    }

    private static ParityCase GemmEx(Inputs x, int m, int k, int n, bool transposeA, bool transposeB, bool accumulate)
    {
        var c = new ParityCase("GemmEx", $"m={m} k={k} n={n}{(transposeA ? " Aᵀ" : "")}{(transposeB ? " Bᵀ" : "")}{(accumulate ? " +=" : "")}")
        {
            Flops = 2.0 * m * k * n,
            Bytes = 4.0 * ((long)m * k + (long)k * n + (long)m * n * (accumulate ? 2 : 1)),
        };
        int a = c.Float("a", x.Uniform((long)m * k)), bb = c.Float("b", x.Uniform((long)k * n)), output = c.Float("c", x.Uniform((long)m * n));
        c.Body = (backend, b) => backend.GemmEx(b.F(a), transposeA, b.F(bb), transposeB, b.F(output), m, k, n, accumulate);
        return c;
    }

    private static ParityCase GatherRows(Inputs x, int rows, int width, int sourceRows)
    {
        var c = new ParityCase("GatherRows", $"rows={rows} width={width} from {sourceRows}") { Bytes = 8.0 * rows * width + 4.0 * rows };
        int source = c.Float("source", x.Uniform((long)sourceRows * width)), indices = c.Int("indices", x.Indices(rows, sourceRows));
        int output = c.Float("output", x.Uniform((long)rows * width));
        c.Body = (backend, b) => backend.GatherRows(b.F(source), b.I(indices), b.F(output), rows, width);
        return c;
    }

    private static ParityCase ScatterAddRows(Inputs x, int rows, int width, int targetRows)
    {
        var c = new ParityCase("ScatterAddRows", $"rows={rows} width={width} into {targetRows} (repeats)")
        {
            Flops = (double)rows * width,
            Bytes = 12.0 * rows * width + 4.0 * rows,
        };
        int source = c.Float("source", x.Uniform((long)rows * width)), indices = c.Int("indices", x.Indices(rows, targetRows));
        int target = c.Float("target", x.Uniform((long)targetRows * width));
        c.Body = (backend, b) => backend.ScatterAddRows(b.F(source), b.I(indices), b.F(target), rows, width);
        return c;
    }

    private static ParityCase BiasActivation(Inputs x, int rows, int width, bool gelu)
    {
        long cells = (long)rows * width;
        var c = new ParityCase("BiasActivation", $"rows={rows} width={width}{(gelu ? " gelu" : "")}")
        {
            Flops = (gelu ? 20.0 : 1.0) * cells,
            Bytes = 4.0 * (cells * (gelu ? 3 : 2) + width),
        };
        int input = c.Float("input", x.Uniform(cells, 4f)), bias = c.Float("bias", x.Uniform(width));
        int pre = c.Float("preActivation", x.Uniform(cells)), output = c.Float("output", x.Uniform(cells));
        c.Body = (backend, b) => backend.BiasActivation(b.F(input), b.F(bias), b.F(pre), b.F(output), rows, width, gelu);
        return c;
    }

    private static ParityCase GeluBackward(Inputs x, long count)
    {
        var c = new ParityCase("GeluBackward", count.ToString(System.Globalization.CultureInfo.InvariantCulture)) { Flops = 25.0 * count, Bytes = 12.0 * count };
        int pre = c.Float("preActivation", x.Uniform(count, 5f)), upstream = c.Float("upstream", x.Uniform(count)), gradient = c.Float("gradient", x.Uniform(count));
        c.Body = (backend, b) => backend.GeluBackward(b.F(pre), b.F(upstream), b.F(gradient), count);
        return c;
    }

    private static ParityCase ColumnSums(Inputs x, int rows, int width)
    {
        var c = new ParityCase("ColumnSums", $"rows={rows} width={width}") { Flops = (double)rows * width, Bytes = 4.0 * ((long)rows * width + width) };
        int matrix = c.Float("matrix", x.Uniform((long)rows * width)), sums = c.Float("columnSums", x.Uniform(width));
        c.Body = (backend, b) => backend.ColumnSums(b.F(matrix), b.F(sums), rows, width);
        return c;
    }

    private static ParityCase SoftmaxCrossEntropy(Inputs x, int rows, int classes, bool writeGradient)
    {
        long cells = (long)rows * classes;
        var c = new ParityCase("SoftmaxCrossEntropy", $"rows={rows} classes={classes}{(writeGradient ? " +gradient" : "")}")
        {
            Flops = (writeGradient ? 20.0 : 10.0) * cells,
            Bytes = 4.0 * cells * (writeGradient ? 3 : 1) + 12.0 * rows,
        };
        int logits = c.Float("logits", x.Uniform(cells, 5f)), loss = c.Float("lossNats", x.Uniform(rows));
        int targets = c.Int("targets", x.Indices(rows, classes)), argmax = c.Int("argmax", x.Indices(rows, classes));
        float scale = 1f / rows;
        c.Body = (backend, b) => backend.SoftmaxCrossEntropy(b.F(logits), b.I(targets), b.F(loss), b.I(argmax), rows, classes, scale, writeGradient);
        return c;
    }

    private static ParityCase PoolSentences(Inputs x, int batch, int seq, int width, Pooling.PoolingMode mode, bool awkwardMask)
    {
        var c = new ParityCase("PoolSentences", $"batch={batch} seq={seq} width={width} {mode.ToString().ToLowerInvariant()}")
        {
            Flops = (double)batch * seq * width,
            Bytes = 4.0 * ((long)batch * seq * width + (long)batch * width + 2L * batch * seq),
        };
        var mask = new int[batch * seq];
        var isTarget = new int[batch * seq];
        for (int s = 0; s < batch; s++)
            for (int i = 0; i < seq; i++)
            {
                if (!awkwardMask)
                {
                    mask[s * seq + i] = 1;
                    isTarget[s * seq + i] = i > 0 && i < seq - 1 ? 1 : 0;
                    continue;
                }
                // 0 full, 1 right-padded, 2 left-padded, 3 real tokens but no target, 4 entirely masked.
                bool real = s switch { 0 or 3 => true, 1 => i < 7, 2 => i >= 3, _ => false };
                mask[s * seq + i] = real ? 1 : 0;
                int firstReal = s == 2 ? 3 : 0, lastReal = s == 1 ? 6 : seq - 1;
                isTarget[s * seq + i] = real && s != 3 && i != firstReal && i != lastReal && x.Next(5) != 0 ? 1 : 0;
            }
        int layer = c.Float("layer", x.Uniform((long)batch * seq * width, 3f)), output = c.Float("output", x.Uniform((long)batch * width));
        int maskIndex = c.Int("attentionMask", mask), targetIndex = c.Int("isTarget", isTarget);
        c.Body = (backend, b) => backend.PoolSentences(b.F(layer), b.I(maskIndex), b.I(targetIndex), b.F(output), batch, seq, width, mode);
        return c;
    }

    private static ParityCase CountPredictions(Inputs x, int count, int classes, int positions)
    {
        var c = new ParityCase("CountPredictions", $"count={count} classes={classes} positions={positions}") { Flops = 3.0 * count, Bytes = 12.0 * count };
        int[] predicted = x.Indices(count, classes), target = x.Indices(count, classes + 2), position = x.Indices(count, positions + 3);
        // About half right; some targets out of range and some positions outside [0, positions) (padding's -1).
        for (int i = 0; i < count; i++)
        {
            if (x.Next(2) == 0) predicted[i] = target[i];
            if (x.Next(17) == 0) position[i] = -1;
        }
        int predictions = c.Int("predictions", predicted), targets = c.Int("targets", target), positionIndex = c.Int("positions", position);
        int counts = c.Int("counts", new int[2 + classes + 2 * positions]);
        c.Body = (backend, b) =>
        {
            PredictionCounts result = backend.CountPredictions(b.I(predictions), b.I(targets), b.I(positionIndex), count, classes, positions);
            int[] flat = [.. new[] { result.Errors, result.TargetsOutOfRange }.Concat(result.TargetHistogram).Concat(result.PositionTrials).Concat(result.PositionErrors)
                .Select(v => checked((int)v))];
            backend.CopyFromHost<int>(flat, b.I(counts));
        };
        return c;
    }

    private static ParityCase AdamW(Inputs x, int count, int step)
    {
        var c = new ParityCase("AdamW", $"count={count} step={step}") { Flops = 12.0 * count, Bytes = 28.0 * count };
        float[] secondMoment = x.Uniform(count, 0.01f);
        for (int i = 0; i < count; i++) secondMoment[i] = MathF.Abs(secondMoment[i]);
        int parameters = c.Float("parameters", x.Uniform(count)), gradients = c.Float("gradients", x.Uniform(count, 0.1f));
        int m = c.Float("firstMoment", x.Uniform(count, 0.01f)), v = c.Float("secondMoment", secondMoment);
        var hyper = new AdamWStep(1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, step);
        c.Body = (backend, b) => backend.AdamW(b.F(parameters), b.F(gradients), b.F(m), b.F(v), count, hyper);
        return c;
    }
}
