using NativeMi.Compute;
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

    public void Dispose()
    {
        WordEmbeddings.Dispose();
        PositionEmbeddings.Dispose();
        TypeEmbeddings?.Dispose();
        NormGamma.Dispose();
        NormBeta.Dispose();
        foreach (BlockWeights block in Blocks) block.Dispose();
    }

    /// <summary>Reads the weights for <paramref name="config"/>, checking every name and shape.</summary>
    public static TransformerWeights Load(WeightStore store, TransformerConfig config, IComputeBackend backend)
    {
        var reader = new Reader(store, config, backend);
        return config.Family == ArchitectureFamily.Bert ? reader.LoadBert() : reader.LoadGpt2();
    }

    private sealed class Reader(WeightStore store, TransformerConfig config, IComputeBackend backend)
    {
        private string _prefix = "";
        private long _parameters;
        private readonly Dictionary<string, string> _dtypes = new(StringComparer.Ordinal);

        private void ChoosePrefix(string probe, params string[] prefixes)
        {
            foreach (string prefix in prefixes)
                if (store.Contains(prefix + probe)) { _prefix = prefix; return; }
            throw new ModelFormatException(store.Description,
                $"missing tensor '{probe}' (also looked for it with the prefixes {string.Join(", ", prefixes.Where(p => p.Length > 0).Select(p => $"'{p}'"))}); is this a {config.ModelType} checkpoint?");
        }

        private float[] Read(string name, params long[] shape)
        {
            string full = _prefix + name;
            SafetensorsTensorInfo info = store.TryGetInfo(full)
                ?? throw new ModelFormatException(store.Description, $"missing tensor '{full}' (expected shape [{string.Join(", ", shape)}])");
            if (!info.Shape.SequenceEqual(shape))
                throw new ModelFormatException(store.FileOf(full).FilePath,
                    $"tensor '{full}' has shape {info.ShapeText}; config.json implies [{string.Join(", ", shape)}]");
            float[] values = store.ReadFloat32(full);
            _parameters += values.LongLength;
            _dtypes[SafetensorsDTypes.ToName(info.DType)] = SafetensorsDTypes.ToName(info.DType);
            return values;
        }

        private DeviceBuffer<float> Upload(float[] values) => backend.Upload<float>(values);

        /// <summary>A GEMM weight [rows, columns] ([in, out]), which the backend may keep in its own layout.</summary>
        private DeviceBuffer<float> Matrix(float[] values, int rows, int columns) => backend.UploadMatrix(values, rows, columns);

        private DeviceBuffer<float> Vector(string name, int length) => Upload(Read(name, length));

        /// <summary>A Hugging Face nn.Linear weight ([out, in]) transposed to the backend's [in, out] layout.</summary>
        private float[] LinearTransposed(string name, int outputs, int inputs)
        {
            float[] w = Read(name, outputs, inputs);
            var t = new float[w.Length];
            for (int o = 0; o < outputs; o++)
                for (int i = 0; i < inputs; i++)
                    t[i * outputs + o] = w[o * inputs + i];
            return t;
        }

        public TransformerWeights LoadBert()
        {
            ChoosePrefix("embeddings.word_embeddings.weight", "", "bert.", "roberta.", "model.");
            int d = config.HiddenSize, ff = config.IntermediateSize;
            var blocks = new BlockWeights[config.NumLayers];
            for (int l = 0; l < config.NumLayers; l++)
            {
                string p = $"encoder.layer.{l}.";
                float[] q = LinearTransposed(p + "attention.self.query.weight", d, d);
                float[] k = LinearTransposed(p + "attention.self.key.weight", d, d);
                float[] v = LinearTransposed(p + "attention.self.value.weight", d, d);
                var qkv = new float[d * 3 * d];
                for (int i = 0; i < d; i++)
                {
                    q.AsSpan(i * d, d).CopyTo(qkv.AsSpan(i * 3 * d, d));
                    k.AsSpan(i * d, d).CopyTo(qkv.AsSpan(i * 3 * d + d, d));
                    v.AsSpan(i * d, d).CopyTo(qkv.AsSpan(i * 3 * d + 2 * d, d));
                }
                float[] qkvBias = [.. Read(p + "attention.self.query.bias", d), .. Read(p + "attention.self.key.bias", d), .. Read(p + "attention.self.value.bias", d)];
                blocks[l] = new BlockWeights
                {
                    QkvWeight = Matrix(qkv, d, 3 * d),
                    QkvBias = Upload(qkvBias),
                    AttentionOutWeight = Matrix(LinearTransposed(p + "attention.output.dense.weight", d, d), d, d),
                    AttentionOutBias = Vector(p + "attention.output.dense.bias", d),
                    Norm1Gamma = Vector(p + "attention.output.LayerNorm.weight", d),
                    Norm1Beta = Vector(p + "attention.output.LayerNorm.bias", d),
                    FeedForwardInWeight = Matrix(LinearTransposed(p + "intermediate.dense.weight", ff, d), d, ff),
                    FeedForwardInBias = Vector(p + "intermediate.dense.bias", ff),
                    FeedForwardOutWeight = Matrix(LinearTransposed(p + "output.dense.weight", d, ff), ff, d),
                    FeedForwardOutBias = Vector(p + "output.dense.bias", d),
                    Norm2Gamma = Vector(p + "output.LayerNorm.weight", d),
                    Norm2Beta = Vector(p + "output.LayerNorm.bias", d),
                };
            }
            return new TransformerWeights
            {
                WordEmbeddings = Upload(Read("embeddings.word_embeddings.weight", config.VocabSize, d)),
                PositionEmbeddings = Upload(Read("embeddings.position_embeddings.weight", config.MaxPositions, d)),
                TypeEmbeddings = config.TypeVocabSize > 0 ? Upload(Read("embeddings.token_type_embeddings.weight", config.TypeVocabSize, d)) : null,
                NormGamma = Vector("embeddings.LayerNorm.weight", d),
                NormBeta = Vector("embeddings.LayerNorm.bias", d),
                Blocks = blocks,
                ParameterCount = _parameters,
                NamePrefix = _prefix,
                DTypes = _dtypes,
            };
        }

        public TransformerWeights LoadGpt2()
        {
            ChoosePrefix("wte.weight", "", "transformer.", "model.");
            int d = config.HiddenSize, ff = config.IntermediateSize;
            var blocks = new BlockWeights[config.NumLayers];
            for (int l = 0; l < config.NumLayers; l++)
            {
                string p = $"h.{l}.";
                // GPT-2's Conv1D already stores [in, out].
                blocks[l] = new BlockWeights
                {
                    Norm1Gamma = Vector(p + "ln_1.weight", d),
                    Norm1Beta = Vector(p + "ln_1.bias", d),
                    QkvWeight = Matrix(Read(p + "attn.c_attn.weight", d, 3 * d), d, 3 * d),
                    QkvBias = Vector(p + "attn.c_attn.bias", 3 * d),
                    AttentionOutWeight = Matrix(Read(p + "attn.c_proj.weight", d, d), d, d),
                    AttentionOutBias = Vector(p + "attn.c_proj.bias", d),
                    Norm2Gamma = Vector(p + "ln_2.weight", d),
                    Norm2Beta = Vector(p + "ln_2.bias", d),
                    FeedForwardInWeight = Matrix(Read(p + "mlp.c_fc.weight", d, ff), d, ff),
                    FeedForwardInBias = Vector(p + "mlp.c_fc.bias", ff),
                    FeedForwardOutWeight = Matrix(Read(p + "mlp.c_proj.weight", ff, d), ff, d),
                    FeedForwardOutBias = Vector(p + "mlp.c_proj.bias", d),
                };
            }
            return new TransformerWeights
            {
                WordEmbeddings = Upload(Read("wte.weight", config.VocabSize, d)),
                PositionEmbeddings = Upload(Read("wpe.weight", config.MaxPositions, d)),
                TypeEmbeddings = null,
                NormGamma = Vector("ln_f.weight", d),
                NormBeta = Vector("ln_f.bias", d),
                Blocks = blocks,
                ParameterCount = _parameters,
                NamePrefix = _prefix,
                DTypes = _dtypes,
            };
        }
    }
}
