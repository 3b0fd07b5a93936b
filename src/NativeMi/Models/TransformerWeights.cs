using System.Numerics.Tensors;
using NativeMi.Compute;
using NativeMi.Compute.Cpu;
using NativeMi.IO;

namespace NativeMi.Models;

/// <summary>Weights of one transformer block, already on a backend, Linear weights stored [in, out].</summary>
internal sealed class BlockWeights : IDisposable
{
    public required DeviceBuffer<float> QkvWeight, QkvBias, AttentionOutWeight, AttentionOutBias;
    public required DeviceBuffer<float> FeedForwardInWeight, FeedForwardInBias, FeedForwardOutWeight, FeedForwardOutBias;
    /// <summary>BERT: after attention (post-LN). GPT-2: ln_1, before attention (pre-LN).</summary>
    public required DeviceBuffer<float> Norm1Gamma, Norm1Beta;
    /// <summary>BERT: after the feed-forward layer. GPT-2: ln_2, before it.</summary>
    public required DeviceBuffer<float> Norm2Gamma, Norm2Beta;

    public void Dispose()
    {
        foreach (var b in new[] { QkvWeight, QkvBias, AttentionOutWeight, AttentionOutBias, FeedForwardInWeight, FeedForwardInBias,
                     FeedForwardOutWeight, FeedForwardOutBias, Norm1Gamma, Norm1Beta, Norm2Gamma, Norm2Beta })
            b.Dispose();
    }
}

/// <summary>All weights of a model on one backend.</summary>
internal sealed class TransformerWeights : IDisposable
{
    public required DeviceBuffer<float> WordEmbeddings, PositionEmbeddings;
    public DeviceBuffer<float>? TypeEmbeddings;
    /// <summary>BERT: embedding LayerNorm. GPT-2: ln_f.</summary>
    public required DeviceBuffer<float> NormGamma, NormBeta;
    public required BlockWeights[] Blocks;
    public required long ParameterCount;
    public required string NamePrefix;
    public required IReadOnlyDictionary<string, string> DTypes;
    /// <summary>NaN and infinite values found in the weights (non-zero only when they were allowed).</summary>
    public required long NonFiniteValueCount;

    public void Dispose()
    {
        WordEmbeddings.Dispose();
        PositionEmbeddings.Dispose();
        TypeEmbeddings?.Dispose();
        NormGamma.Dispose();
        NormBeta.Dispose();
        foreach (BlockWeights block in Blocks) block.Dispose();
    }

    /// <summary>
    /// Reads the weights for <paramref name="config"/>, checking every name and shape against config.json, the
    /// number of blocks against its layer count, and (unless <paramref name="allowNonFinite"/>) that every value is finite.
    /// </summary>
    public static TransformerWeights Load(WeightStore store, TransformerConfig config, IComputeBackend backend, bool allowNonFinite = false)
    {
        var reader = new Reader(store, config, backend, allowNonFinite);
        return config.Family == ArchitectureFamily.Bert ? reader.LoadBert() : reader.LoadGpt2();
    }

    /// <summary>A tensor dimension and the config.json field that sets it, so a mismatch can name the field.</summary>
    private readonly record struct Dim(long Size, string Field);

    private sealed class Reader(WeightStore store, TransformerConfig config, IComputeBackend backend, bool allowNonFinite)
    {
        private string _prefix = "";
        private long _parameters;
        private long _nonFinite;
        private readonly Dictionary<string, string> _dtypes = new(StringComparer.Ordinal);
        private readonly bool _bert = config.Family == ArchitectureFamily.Bert;

        private Dim Vocabulary => new(config.VocabSize, "vocab_size");
        private Dim Width => new(config.HiddenSize, _bert ? "hidden_size" : "n_embd");
        private Dim Inner => new(config.IntermediateSize, _bert ? "intermediate_size" : "n_inner (4 x n_embd when null)");
        private Dim Positions => new(config.MaxPositions, _bert ? "max_position_embeddings" : "n_positions");
        private Dim TypeVocabulary => new(config.TypeVocabSize, "type_vocab_size");
        private Dim ThreeWidths => new(3L * config.HiddenSize, "3 x n_embd");
        private string LayersField => _bert ? "num_hidden_layers" : "n_layer";

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

        private void ChoosePrefix(string probe, params string[] prefixes)
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

        public TransformerWeights LoadBert()
        {
            ChoosePrefix("embeddings.word_embeddings.weight", "", "bert.", "roberta.", "model.");
            CheckBlockCount("encoder.layer.");
            int d = config.HiddenSize, ff = config.IntermediateSize;
            Dim width = Width, inner = Inner;
            var blocks = new BlockWeights[config.NumLayers];
            for (int l = 0; l < config.NumLayers; l++)
            {
                string p = $"encoder.layer.{l}.";
                float[] q = LinearTransposed(p + "attention.self.query.weight", width, width);
                float[] k = LinearTransposed(p + "attention.self.key.weight", width, width);
                float[] v = LinearTransposed(p + "attention.self.value.weight", width, width);
                var qkv = new float[d * 3 * d];
                for (int i = 0; i < d; i++)
                {
                    q.AsSpan(i * d, d).CopyTo(qkv.AsSpan(i * 3 * d, d));
                    k.AsSpan(i * d, d).CopyTo(qkv.AsSpan(i * 3 * d + d, d));
                    v.AsSpan(i * d, d).CopyTo(qkv.AsSpan(i * 3 * d + 2 * d, d));
                }
                float[] qkvBias = [.. Read(p + "attention.self.query.bias", width), .. Read(p + "attention.self.key.bias", width), .. Read(p + "attention.self.value.bias", width)];
                blocks[l] = new BlockWeights
                {
                    QkvWeight = Matrix(qkv, d, 3 * d),
                    QkvBias = Upload(qkvBias),
                    AttentionOutWeight = Matrix(LinearTransposed(p + "attention.output.dense.weight", width, width), d, d),
                    AttentionOutBias = Vector(p + "attention.output.dense.bias", width),
                    Norm1Gamma = Vector(p + "attention.output.LayerNorm.weight", width),
                    Norm1Beta = Vector(p + "attention.output.LayerNorm.bias", width),
                    FeedForwardInWeight = Matrix(LinearTransposed(p + "intermediate.dense.weight", inner, width), d, ff),
                    FeedForwardInBias = Vector(p + "intermediate.dense.bias", inner),
                    FeedForwardOutWeight = Matrix(LinearTransposed(p + "output.dense.weight", width, inner), ff, d),
                    FeedForwardOutBias = Vector(p + "output.dense.bias", width),
                    Norm2Gamma = Vector(p + "output.LayerNorm.weight", width),
                    Norm2Beta = Vector(p + "output.LayerNorm.bias", width),
                };
            }
            return new TransformerWeights
            {
                WordEmbeddings = Upload(Read("embeddings.word_embeddings.weight", Vocabulary, width)),
                PositionEmbeddings = Upload(Read("embeddings.position_embeddings.weight", Positions, width)),
                TypeEmbeddings = config.TypeVocabSize > 0 ? Upload(Read("embeddings.token_type_embeddings.weight", TypeVocabulary, width)) : null,
                NormGamma = Vector("embeddings.LayerNorm.weight", width),
                NormBeta = Vector("embeddings.LayerNorm.bias", width),
                Blocks = blocks,
                ParameterCount = _parameters,
                NamePrefix = _prefix,
                DTypes = _dtypes,
                NonFiniteValueCount = _nonFinite,
            };
        }

        public TransformerWeights LoadGpt2()
        {
            ChoosePrefix("wte.weight", "", "transformer.", "model.");
            CheckBlockCount("h.");
            int d = config.HiddenSize, ff = config.IntermediateSize;
            Dim width = Width, inner = Inner;
            var blocks = new BlockWeights[config.NumLayers];
            for (int l = 0; l < config.NumLayers; l++)
            {
                string p = $"h.{l}.";
                // GPT-2's Conv1D already stores [in, out].
                blocks[l] = new BlockWeights
                {
                    Norm1Gamma = Vector(p + "ln_1.weight", width),
                    Norm1Beta = Vector(p + "ln_1.bias", width),
                    QkvWeight = Matrix(Read(p + "attn.c_attn.weight", width, ThreeWidths), d, 3 * d),
                    QkvBias = Vector(p + "attn.c_attn.bias", ThreeWidths),
                    AttentionOutWeight = Matrix(Read(p + "attn.c_proj.weight", width, width), d, d),
                    AttentionOutBias = Vector(p + "attn.c_proj.bias", width),
                    Norm2Gamma = Vector(p + "ln_2.weight", width),
                    Norm2Beta = Vector(p + "ln_2.bias", width),
                    FeedForwardInWeight = Matrix(Read(p + "mlp.c_fc.weight", width, inner), d, ff),
                    FeedForwardInBias = Vector(p + "mlp.c_fc.bias", inner),
                    FeedForwardOutWeight = Matrix(Read(p + "mlp.c_proj.weight", inner, width), ff, d),
                    FeedForwardOutBias = Vector(p + "mlp.c_proj.bias", width),
                };
            }
            return new TransformerWeights
            {
                WordEmbeddings = Upload(Read("wte.weight", Vocabulary, width)),
                PositionEmbeddings = Upload(Read("wpe.weight", Positions, width)),
                TypeEmbeddings = null,
                NormGamma = Vector("ln_f.weight", width),
                NormBeta = Vector("ln_f.bias", width),
                Blocks = blocks,
                ParameterCount = _parameters,
                NamePrefix = _prefix,
                DTypes = _dtypes,
                NonFiniteValueCount = _nonFinite,
            };
        }
    }
}
