namespace NativeMi.Compute;

/// <summary>
/// The cases <see cref="BackendParity"/> runs: every op of <see cref="IComputeBackend"/>, on shapes chosen to be
/// awkward (primes, widths that are not multiples of a warp or a vector, rows longer than one thread block, a single
/// element, sentences that are left-padded, right-padded or entirely masked).
/// </summary>
internal static class ParityCases
{
    public static IEnumerable<ParityCase> All(Random random)
    {
        float[] Uniform(long count, float scale = 1f)
        {
            var values = new float[count];
            for (long i = 0; i < count; i++) values[i] = (float)(random.NextDouble() * 2 - 1) * scale;
            return values;
        }
        int[] Indices(int count, int bound)
        {
            var values = new int[count];
            for (int i = 0; i < count; i++) values[i] = random.Next(bound);
            return values;
        }

        {
            var c = new ParityCase("Allocate", "53 floats are zero");
            int output = c.Float("output", Uniform(53));
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
            int output = c.Float("output", Uniform(41));
            float[] source = Uniform(29);
            c.Body = (backend, b) => backend.CopyFromHost<float>(source, b.F(output));
            yield return c;
        }
        {
            var c = new ParityCase("Zero", "45 of 70");
            int output = c.Float("buffer", Uniform(70));
            c.Body = (backend, b) => backend.Zero(b.F(output), 45);
            yield return c;
        }
        {
            var c = new ParityCase("AddInPlace", "1031");
            int accumulator = c.Float("accumulator", Uniform(1031)), addend = c.Float("addend", Uniform(1031));
            c.Body = (backend, b) => backend.AddInPlace(b.F(accumulator), b.F(addend), 1031);
            yield return c;
        }
        foreach (var (m, k, n) in new[] { (1, 1, 1), (37, 29, 53), (130, 67, 97) })
            foreach (Activation activation in Enum.GetValues<Activation>())
                foreach (bool withBias in new[] { true, false })
                {
                    var c = new ParityCase("Gemm", $"m={m} k={k} n={n} {activation}{(withBias ? " +bias" : "")}");
                    int input = c.Float("input", Uniform((long)m * k)), weight = c.Float("weight", Uniform((long)k * n, 0.3f));
                    int bias = c.Float("bias", Uniform(n)), output = c.Float("output", Uniform((long)m * n));
                    c.Body = (backend, b) => backend.Gemm(b.F(input), b.F(weight), withBias ? b.F(bias) : null, b.F(output), m, k, n, activation);
                    yield return c;
                }
        foreach (var (rows, width) in new[] { (7, 97), (33, 771) })
            foreach (bool withResidual in new[] { true, false })
            {
                var c = new ParityCase("LayerNorm", $"rows={rows} width={width}{(withResidual ? " +residual" : "")}");
                int input = c.Float("input", Uniform((long)rows * width, 3f)), residual = c.Float("residual", Uniform((long)rows * width));
                int gamma = c.Float("gamma", Uniform(width)), beta = c.Float("beta", Uniform(width)), output = c.Float("output", Uniform((long)rows * width));
                c.Body = (backend, b) => backend.LayerNorm(b.F(input), withResidual ? b.F(residual) : null, b.F(gamma), b.F(beta), b.F(output), rows, width, 1e-5f);
                yield return c;
            }
        foreach (bool withTypes in new[] { true, false })
        {
            const int Rows = 23, Width = 45;
            var c = new ParityCase("EmbeddingGather", $"rows={Rows} width={Width}{(withTypes ? " +types" : "")}");
            int ids = c.Int("ids", Indices(Rows, 50)), positions = c.Int("positionIds", Indices(Rows, 31)), types = c.Int("typeIds", Indices(Rows, 2));
            int words = c.Float("words", Uniform(50 * Width)), positionTable = c.Float("positions", Uniform(31 * Width));
            int typeTable = c.Float("types", Uniform(2 * Width)), output = c.Float("output", Uniform(Rows * Width));
            c.Body = (backend, b) => backend.EmbeddingGather(b.I(ids), b.I(positions), withTypes ? b.I(types) : null, b.F(words), b.F(positionTable),
                withTypes ? b.F(typeTable) : null, b.F(output), Rows, Width);
            yield return c;
        }
        foreach (var (batch, seq, heads, headDim) in new[] { (3, 13, 3, 24), (2, 70, 2, 40), (2, 300, 2, 16) })
            foreach (bool causal in new[] { false, true })
            {
                var c = new ParityCase("Attention", $"batch={batch} seq={seq} heads={heads} dim={headDim}{(causal ? " causal" : "")}");
                int width = heads * headDim;
                int qkv = c.Float("qkv", Uniform((long)batch * seq * 3 * width, 2f)), output = c.Float("output", Uniform((long)batch * seq * width));
                var mask = new int[batch * seq];
                for (int s = 0; s < batch; s++)
                    for (int i = 0; i < seq; i++)
                        // Sentence 0 is full, 1 left-padded by a few tokens, 2 entirely masked.
                        mask[s * seq + i] = s switch { 0 => 1, 1 => i >= 4 ? 1 : 0, _ => 0 };
                int maskIndex = c.Int("mask", mask);
                c.Body = (backend, b) => backend.Attention(b.F(qkv), b.I(maskIndex), b.F(output), batch, seq, heads, headDim, causal);
                yield return c;
            }
        foreach (bool transposeA in new[] { false, true })
            foreach (bool transposeB in new[] { false, true })
                foreach (bool accumulate in new[] { false, true })
                {
                    const int M = 19, K = 33, N = 27;
                    var c = new ParityCase("GemmEx", $"m={M} k={K} n={N}{(transposeA ? " Aᵀ" : "")}{(transposeB ? " Bᵀ" : "")}{(accumulate ? " +=" : "")}");
                    int a = c.Float("a", Uniform(M * K)), bb = c.Float("b", Uniform(K * N)), output = c.Float("c", Uniform(M * N));
                    c.Body = (backend, b) => backend.GemmEx(b.F(a), transposeA, b.F(bb), transposeB, b.F(output), M, K, N, accumulate);
                    yield return c;
                }
        {
            const int Rows = 55, Width = 37, SourceRows = 40;
            var c = new ParityCase("GatherRows", $"rows={Rows} width={Width} from {SourceRows}");
            int source = c.Float("source", Uniform(SourceRows * Width)), indices = c.Int("indices", Indices(Rows, SourceRows)), output = c.Float("output", Uniform(Rows * Width));
            c.Body = (backend, b) => backend.GatherRows(b.F(source), b.I(indices), b.F(output), Rows, Width);
            yield return c;
        }
        {
            const int Rows = 61, Width = 29, TargetRows = 17;
            var c = new ParityCase("ScatterAddRows", $"rows={Rows} width={Width} into {TargetRows} (repeats)");
            int source = c.Float("source", Uniform(Rows * Width)), indices = c.Int("indices", Indices(Rows, TargetRows)), target = c.Float("target", Uniform(TargetRows * Width));
            c.Body = (backend, b) => backend.ScatterAddRows(b.F(source), b.I(indices), b.F(target), Rows, Width);
            yield return c;
        }
        foreach (bool gelu in new[] { true, false })
        {
            const int Rows = 21, Width = 83;
            var c = new ParityCase("BiasActivation", $"rows={Rows} width={Width}{(gelu ? " gelu" : "")}");
            int input = c.Float("input", Uniform(Rows * Width, 4f)), bias = c.Float("bias", Uniform(Width));
            int pre = c.Float("preActivation", Uniform(Rows * Width)), output = c.Float("output", Uniform(Rows * Width));
            c.Body = (backend, b) => backend.BiasActivation(b.F(input), b.F(bias), b.F(pre), b.F(output), Rows, Width, gelu);
            yield return c;
        }
        {
            var c = new ParityCase("GeluBackward", "999");
            int pre = c.Float("preActivation", Uniform(999, 5f)), upstream = c.Float("upstream", Uniform(999)), gradient = c.Float("gradient", Uniform(999));
            c.Body = (backend, b) => backend.GeluBackward(b.F(pre), b.F(upstream), b.F(gradient), 999);
            yield return c;
        }
        foreach (var (rows, width) in new[] { (301, 45), (1, 70) })
        {
            var c = new ParityCase("ColumnSums", $"rows={rows} width={width}");
            int matrix = c.Float("matrix", Uniform((long)rows * width)), sums = c.Float("columnSums", Uniform(width));
            c.Body = (backend, b) => backend.ColumnSums(b.F(matrix), b.F(sums), rows, width);
            yield return c;
        }
        foreach (var (rows, classes) in new[] { (19, 7), (11, 1500) })
            foreach (bool writeGradient in new[] { true, false })
            {
                var c = new ParityCase("SoftmaxCrossEntropy", $"rows={rows} classes={classes}{(writeGradient ? " +gradient" : "")}");
                int logits = c.Float("logits", Uniform((long)rows * classes, 5f)), loss = c.Float("lossNats", Uniform(rows));
                int targets = c.Int("targets", Indices(rows, classes)), argmax = c.Int("argmax", Indices(rows, classes));
                float scale = 1f / rows;
                c.Body = (backend, b) => backend.SoftmaxCrossEntropy(b.F(logits), b.I(targets), b.F(loss), b.I(argmax), rows, classes, scale, writeGradient);
                yield return c;
            }
        foreach (Measurement.PoolingMode mode in Enum.GetValues<Measurement.PoolingMode>())
        {
            const int Batch = 5, Seq = 11, Width = 301;
            var c = new ParityCase("PoolSentences", $"batch={Batch} seq={Seq} width={Width} {mode.ToString().ToLowerInvariant()}");
            var mask = new int[Batch * Seq];
            var isTarget = new int[Batch * Seq];
            for (int s = 0; s < Batch; s++)
                for (int i = 0; i < Seq; i++)
                {
                    // 0 full, 1 right-padded, 2 left-padded, 3 real tokens but no target, 4 entirely masked.
                    bool real = s switch { 0 or 3 => true, 1 => i < 7, 2 => i >= 3, _ => false };
                    mask[s * Seq + i] = real ? 1 : 0;
                    int firstReal = s == 2 ? 3 : 0, lastReal = s == 1 ? 6 : Seq - 1;
                    isTarget[s * Seq + i] = real && s != 3 && i != firstReal && i != lastReal && random.Next(5) != 0 ? 1 : 0;
                }
            int layer = c.Float("layer", Uniform((long)Batch * Seq * Width, 3f)), output = c.Float("output", Uniform((long)Batch * Width));
            int maskIndex = c.Int("attentionMask", mask), targetIndex = c.Int("isTarget", isTarget);
            c.Body = (backend, b) => backend.PoolSentences(b.F(layer), b.I(maskIndex), b.I(targetIndex), b.F(output), Batch, Seq, Width, mode);
            yield return c;
        }
        foreach (var (count, classes, positions) in new[] { (1, 1, 1), (5003, 97, 23) })
        {
            var c = new ParityCase("CountPredictions", $"count={count} classes={classes} positions={positions}");
            int[] predicted = Indices(count, classes), target = Indices(count, classes + 2), position = Indices(count, positions + 3);
            // About half right; some targets out of range and some positions outside [0, positions) (padding's -1).
            for (int i = 0; i < count; i++)
            {
                if (random.Next(2) == 0) predicted[i] = target[i];
                if (random.Next(17) == 0) position[i] = -1;
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
            yield return c;
        }
        foreach (int step in new[] { 1, 9 })
        {
            const int Count = 777;
            var c = new ParityCase("AdamW", $"count={Count} step={step}");
            float[] secondMoment = Uniform(Count, 0.01f);
            for (int i = 0; i < Count; i++) secondMoment[i] = MathF.Abs(secondMoment[i]);
            int parameters = c.Float("parameters", Uniform(Count)), gradients = c.Float("gradients", Uniform(Count, 0.1f));
            int m = c.Float("firstMoment", Uniform(Count, 0.01f)), v = c.Float("secondMoment", secondMoment);
            var hyper = new AdamWStep(1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, step);
            c.Body = (backend, b) => backend.AdamW(b.F(parameters), b.F(gradients), b.F(m), b.F(v), Count, hyper);
            yield return c;
        }
    }
}
