using System.Numerics.Tensors;
using NativeMi.Compute;
using NativeMi.Compute.Cpu;
using NativeMi.IO;

namespace NativeMi.Models;

/// <summary>Weights of one transformer block, already on a backend, projection matrices stored [in, out].</summary>
internal sealed class BlockWeights : IDisposable
{
    /// <summary>Query, key and value projections side by side: [d, q + 2·kv].</summary>
    public required DeviceBuffer<float> QkvWeight;
    public DeviceBuffer<float>? QkvBias;
    public required DeviceBuffer<float> AttentionOutWeight;
    public DeviceBuffer<float>? AttentionOutBias;
    /// <summary>Qwen3's per-head query and key norm weights [headDim], when the layout has them.</summary>
    public DeviceBuffer<float>? QueryNorm, KeyNorm;
    /// <summary>The feed-forward up projection [d, ff]; for a gated layer the gate and up projections side by side [d, 2·ff].</summary>
    public required DeviceBuffer<float> FeedForwardInWeight;
    public DeviceBuffer<float>? FeedForwardInBias;
    public required DeviceBuffer<float> FeedForwardOutWeight;
    public DeviceBuffer<float>? FeedForwardOutBias;
    /// <summary>Post-LN: the norm after attention. Pre-LN: the one before it.</summary>
    public required DeviceBuffer<float> Norm1Gamma;
    public DeviceBuffer<float>? Norm1Beta;
    /// <summary>Post-LN: the norm after the feed-forward layer. Pre-LN: the one before it.</summary>
    public required DeviceBuffer<float> Norm2Gamma;
    public DeviceBuffer<float>? Norm2Beta;

    public void Dispose()
    {
        foreach (var b in new[] { QkvWeight, QkvBias, AttentionOutWeight, AttentionOutBias, FeedForwardInWeight, FeedForwardInBias,
                     FeedForwardOutWeight, FeedForwardOutBias, Norm1Gamma, Norm1Beta, Norm2Gamma, Norm2Beta, QueryNorm, KeyNorm })
            b?.Dispose();
    }
}

/// <summary>All weights of a model on one backend.</summary>
internal sealed class TransformerWeights : IDisposable
{
    public required DeviceBuffer<float> WordEmbeddings;
    public DeviceBuffer<float>? PositionEmbeddings, TypeEmbeddings;
    /// <summary>The norm after the embeddings (BERT), when the layout has one.</summary>
    public DeviceBuffer<float>? EmbeddingNormGamma, EmbeddingNormBeta;
    /// <summary>The norm after the last block (GPT-2's ln_f), when the layout has one.</summary>
    public DeviceBuffer<float>? FinalNormGamma, FinalNormBeta;
    /// <summary>Rotary embeddings' inverse frequencies [headDim / 2] (rope_scaling applied), when the layout rotates.</summary>
    public DeviceBuffer<float>? InverseFrequencies;
    public required BlockWeights[] Blocks;
    public required long ParameterCount;
    public required string NamePrefix;
    public required IReadOnlyDictionary<string, string> DTypes;
    /// <summary>NaN and infinite values found in the weights (non-zero only when they were allowed).</summary>
    public required long NonFiniteValueCount;

    public void Dispose()
    {
        foreach (var b in new[] { WordEmbeddings, PositionEmbeddings, TypeEmbeddings, EmbeddingNormGamma, EmbeddingNormBeta, FinalNormGamma, FinalNormBeta, InverseFrequencies })
            b?.Dispose();
        foreach (BlockWeights block in Blocks) block.Dispose();
    }

    /// <summary>
    /// Reads the weights for <paramref name="config"/> through its family's tensor-name map, checking every name and shape
    /// against config.json, the number of blocks against its layer count, and (unless <paramref name="allowNonFinite"/>)
    /// that every value is finite.
    /// </summary>
    public static TransformerWeights Load(WeightStore store, TransformerConfig config, IComputeBackend backend, bool allowNonFinite = false) =>
        new Reader(store, config, config.Names, backend, allowNonFinite).Load();

    /// <summary>A tensor dimension and the config.json field that sets it, so a mismatch can name the field.</summary>
    private readonly record struct Dim(long Size, string Field);

    private sealed class Reader(WeightStore store, TransformerConfig config, TensorNameMap names, IComputeBackend backend, bool allowNonFinite)
    {
        private string _prefix = "";
        private long _parameters;
        private long _nonFinite;
        private readonly Dictionary<string, string> _dtypes = new(StringComparer.Ordinal);

        private Dim Vocabulary => new(config.VocabSize, "vocab_size");
        private Dim Width => new(config.HiddenSize, names.Fields.Width);
        private Dim Inner => new(config.IntermediateSize, names.Fields.Intermediate);
        private Dim Positions => new(config.MaxPositions, names.Fields.Positions);
        private Dim TypeVocabulary => new(config.TypeVocabSize, "type_vocab_size");
        private Dim QueryWidth => new(config.Layout.Attention.QueryWidth, $"{names.Fields.Heads} x head width");
        private Dim KeyValueWidth => new(config.Layout.Attention.KeyValueWidth, $"key-value heads x head width");
        private Dim FusedQkvWidth => new(config.Layout.Attention.QueryWidth + 2L * config.Layout.Attention.KeyValueWidth, $"3 x {names.Fields.Width}");
        private string LayersField => names.Fields.Layers;

        /// <summary>Fails unless the checkpoint holds exactly config.json's number of blocks (<c>{prefix}{blocks}{l}.*</c>).</summary>
        private void CheckBlockCount(string blocks)
        {
            string start = _prefix + blocks;
            int count = 0;
            foreach (string name in store.Names)
            {
                if (!name.StartsWith(start, StringComparison.Ordinal)) continue;
                ReadOnlySpan<char> rest = name.AsSpan(start.Length);
                int dot = rest.IndexOf('.');
                if (dot > 0 && int.TryParse(rest[..dot], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int block))
                    count = Math.Max(count, block + 1);
            }
            if (count != config.NumLayers)
                throw new ModelFormatException(store.Description,
                    $"config.json field '{LayersField}' = {config.NumLayers}, but the weights hold {count} blocks " +
                    (count == 0 ? $"(no tensor named '{start}<n>.*')" : $"(tensors '{start}0.*' .. '{start}{count - 1}.*')") +
                    (count < config.NumLayers ? $"; '{start}{count}.*' is missing" : ""));
        }

        private void ChoosePrefix(string probe, IReadOnlyList<string> prefixes)
        {
            foreach (string prefix in prefixes)
                if (store.Contains(prefix + probe)) { _prefix = prefix; return; }
            throw new ModelFormatException(store.Description,
                $"missing tensor '{probe}' (also looked for it with the prefixes {string.Join(", ", prefixes.Where(p => p.Length > 0).Select(p => $"'{p}'"))}); is this a {config.ModelType} checkpoint?");
        }

        private float[] Read(string name, params Dim[] dims)
        {
            string full = _prefix + name;
            long[] shape = dims.Select(d => d.Size).ToArray();
            string expected = $"[{string.Join(", ", shape)}]";
            SafetensorsTensorInfo info = store.TryGetInfo(full)
                ?? throw new ModelFormatException(store.Description, $"missing tensor '{full}' (expected shape {expected})");
            if (!info.Shape.SequenceEqual(shape))
            {
                string fields = info.Shape.Length != shape.Length
                    ? $"{shape.Length} dimensions expected, {info.Shape.Length} found"
                    : string.Join("; ", dims.Select((d, i) => (Dim: d, Actual: info.Shape[i])).Where(p => p.Dim.Size != p.Actual).Distinct()
                        .Select(p => $"config.json field '{p.Dim.Field}' = {p.Dim.Size}, the tensor has {p.Actual}"));
                throw new ModelFormatException(store.FileOf(full).FilePath,
                    $"tensor '{full}' has shape {info.ShapeText}; config.json implies {expected} ({fields})");
            }
            float[] values = store.ReadFloat32(full);
            CheckFinite(store.FileOf(full).FilePath, full, info, values);
            _parameters += values.LongLength;
            _dtypes[SafetensorsDTypes.ToName(info.DType)] = SafetensorsDTypes.ToName(info.DType);
            return values;
        }

        /// <summary>
        /// One vectorised pass over the values; only a tensor that fails it is scanned again to count and locate
        /// its NaN and infinite values. Refused unless allowed: they would make every hidden state after them NaN.
        /// </summary>
        private void CheckFinite(string file, string tensor, SafetensorsTensorInfo info, float[] values)
        {
            if (TensorPrimitives.IsFiniteAll<float>(values)) return;
            long nan = 0, infinite = 0, first = -1;
            for (long i = 0; i < values.LongLength; i++)
            {
                float v = values[i];
                if (float.IsFinite(v)) continue;
                if (float.IsNaN(v)) nan++; else infinite++;
                if (first < 0) first = i;
            }
            _nonFinite += nan + infinite;
            if (allowNonFinite) return;
            var index = new long[info.Shape.Length];
            long rest = first;
            for (int d = index.Length - 1; d >= 0; d--)
            {
                index[d] = info.Shape[d] == 0 ? 0 : rest % info.Shape[d];
                rest = info.Shape[d] == 0 ? 0 : rest / info.Shape[d];
            }
            throw new ModelFormatException(file,
                $"tensor '{tensor}' {info.ShapeText} holds {nan + infinite} non-finite values ({nan} NaN, {infinite} infinite) out of {values.LongLength}; " +
                $"the first is {values[first].ToString(System.Globalization.CultureInfo.InvariantCulture)} at [{string.Join(", ", index)}]. " +
                "Refusing to load weights that make every later hidden state NaN; pass --allow-nonfinite-weights " +
                "(ModelLoadOptions.AllowNonFiniteWeights in the library) to load them anyway");
        }

        /// <summary>The CPU backend adopts the freshly read array instead of copying it (the word embeddings alone are ~45 MiB for minilm).</summary>
        private DeviceBuffer<float> Upload(float[] values) => backend is CpuBackend ? new CpuBuffer<float>(values) : backend.Upload<float>(values);

        /// <summary>A GEMM weight [rows, columns] ([in, out]), which the backend may keep in its own layout.</summary>
        private DeviceBuffer<float> Matrix(float[] values, int rows, int columns) => backend.UploadMatrix(values, rows, columns);

        private DeviceBuffer<float> Vector(string name, Dim length) => Upload(Read(name, length));

        /// <summary>A Hugging Face nn.Linear weight ([out, in]) transposed to the backend's [in, out] layout.</summary>
        private float[] LinearTransposed(string name, Dim outputDim, Dim inputDim)
        {
            int outputs = (int)outputDim.Size, inputs = (int)inputDim.Size;
            float[] w = Read(name, outputDim, inputDim);
            var t = new float[w.Length];
            for (int o = 0; o < outputs; o++)
                for (int i = 0; i < inputs; i++)
                    t[i * outputs + o] = w[o * inputs + i];
            return t;
        }

        /// <summary>A projection's weight as [in, out], whichever way the family stores it.</summary>
        private float[] Projection(string name, Dim input, Dim output) =>
            names.InOutMatrices ? Read(name + ".weight", input, output) : LinearTransposed(name + ".weight", output, input);

        private DeviceBuffer<float>? Bias(string name, Dim output, bool present) => present ? Vector(name + ".bias", output) : null;

        private (DeviceBuffer<float> Gamma, DeviceBuffer<float>? Beta) Norm(string prefix, NormNames norm) =>
            (Vector(prefix + norm.Weight, Width), norm.Bias is null ? null : Vector(prefix + norm.Bias, Width));

        public TransformerWeights Load()
        {
            ChoosePrefix(names.WordEmbeddings, names.Prefixes);
            CheckBlockCount(names.BlocksRoot);
            BlockLayout layout = config.Layout;
            int d = config.HiddenSize, ff = config.IntermediateSize;
            int q = layout.Attention.QueryWidth, kv = layout.Attention.KeyValueWidth, qkvWidth = q + 2 * kv;
            Dim width = Width, inner = Inner;
            var blocks = new BlockWeights[config.NumLayers];
            for (int l = 0; l < config.NumLayers; l++)
            {
                string p = names.Block(l);
                // Read in the order the forward pass runs the block (so a broken checkpoint's first error is its first use).
                var first = layout.Placement == NormPlacement.Pre ? Norm(p, names.Norm1) : default;
                float[] qkv;
                float[]? qkvBias = null;
                if (names.SeparateQkv is { } separate)
                {
                    float[] wq = Projection(p + separate.Query, width, QueryWidth);
                    float[] wk = Projection(p + separate.Key, width, KeyValueWidth);
                    float[] wv = Projection(p + separate.Value, width, KeyValueWidth);
                    qkv = new float[(long)d * qkvWidth];
                    for (int i = 0; i < d; i++)
                    {
                        wq.AsSpan(i * q, q).CopyTo(qkv.AsSpan(i * qkvWidth, q));
                        wk.AsSpan(i * kv, kv).CopyTo(qkv.AsSpan(i * qkvWidth + q, kv));
                        wv.AsSpan(i * kv, kv).CopyTo(qkv.AsSpan(i * qkvWidth + q + kv, kv));
                    }
                    if (layout.Attention.QkvBias)
                        qkvBias = [.. Read(p + separate.Query + ".bias", QueryWidth), .. Read(p + separate.Key + ".bias", KeyValueWidth), .. Read(p + separate.Value + ".bias", KeyValueWidth)];
                }
                else
                {
                    string fused = names.FusedQkv ?? throw new InvalidOperationException("a name map needs separate or fused q/k/v projections");
                    qkv = Projection(p + fused, width, FusedQkvWidth);
                    if (layout.Attention.QkvBias) qkvBias = Read(p + fused + ".bias", FusedQkvWidth);
                }
                var block = new BlockWeights
                {
                    QkvWeight = Matrix(qkv, d, qkvWidth),
                    QkvBias = qkvBias is null ? null : Upload(qkvBias),
                    AttentionOutWeight = Matrix(Projection(p + names.AttentionOutput, QueryWidth, width), q, d),
                    AttentionOutBias = Bias(p + names.AttentionOutput, width, layout.Attention.OutputBias),
                    Norm1Gamma = first.Gamma,
                    Norm1Beta = first.Beta,
                    FeedForwardInWeight = null!,
                    FeedForwardOutWeight = null!,
                    Norm2Gamma = null!,
                };
                if (names.QkNorm is { } qkNorm)
                {
                    Dim head = new(layout.Attention.HeadDim, "head_dim");
                    block.QueryNorm = Upload(Read(p + qkNorm.Query + ".weight", head));
                    block.KeyNorm = Upload(Read(p + qkNorm.Key + ".weight", head));
                }
                if (layout.Placement == NormPlacement.Post) (block.Norm1Gamma, block.Norm1Beta) = Norm(p, names.Norm1);
                else (block.Norm2Gamma, block.Norm2Beta) = Norm(p, names.Norm2);
                if (names.Gate is { } gate)
                {
                    // Gate and up projections side by side, so one GEMM feeds the gated activation.
                    float[] wGate = Projection(p + gate, width, inner), wUp = Projection(p + names.Up, width, inner);
                    var fused = new float[(long)d * 2 * ff];
                    for (int i = 0; i < d; i++)
                    {
                        wGate.AsSpan(i * ff, ff).CopyTo(fused.AsSpan(i * 2 * ff, ff));
                        wUp.AsSpan(i * ff, ff).CopyTo(fused.AsSpan(i * 2 * ff + ff, ff));
                    }
                    block.FeedForwardInWeight = Matrix(fused, d, 2 * ff);
                    if (layout.FeedForward.Bias) block.FeedForwardInBias = Upload([.. Read(p + gate + ".bias", inner), .. Read(p + names.Up + ".bias", inner)]);
                }
                else
                {
                    block.FeedForwardInWeight = Matrix(Projection(p + names.Up, width, inner), d, ff);
                    block.FeedForwardInBias = Bias(p + names.Up, inner, layout.FeedForward.Bias);
                }
                block.FeedForwardOutWeight = Matrix(Projection(p + names.Down, inner, width), ff, d);
                block.FeedForwardOutBias = Bias(p + names.Down, width, layout.FeedForward.Bias);
                if (layout.Placement == NormPlacement.Post) (block.Norm2Gamma, block.Norm2Beta) = Norm(p, names.Norm2);
                blocks[l] = block;
            }
            var weights = new TransformerWeights
            {
                WordEmbeddings = Upload(Read(names.WordEmbeddings, Vocabulary, width)),
                PositionEmbeddings = names.PositionEmbeddings is { } positions ? Upload(Read(positions, Positions, width)) : null,
                TypeEmbeddings = names.TypeEmbeddings is { } types ? Upload(Read(types, TypeVocabulary, width)) : null,
                Blocks = blocks,
                ParameterCount = 0,
                NamePrefix = _prefix,
                DTypes = _dtypes,
                NonFiniteValueCount = 0,
            };
            if (names.EmbeddingNorm is { } embeddingNorm) (weights.EmbeddingNormGamma, weights.EmbeddingNormBeta) = Norm("", embeddingNorm);
            if (names.FinalNorm is { } finalNorm) (weights.FinalNormGamma, weights.FinalNormBeta) = Norm("", finalNorm);
            if (layout.Rotary is { } rotary) weights.InverseFrequencies = backend.Upload<float>(RotaryFrequencies.Inverse(rotary));
            weights.ParameterCount = _parameters;
            weights.NonFiniteValueCount = _nonFinite;
            return weights;
        }
    }
}
