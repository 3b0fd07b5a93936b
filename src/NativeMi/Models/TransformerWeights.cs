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
    /// <summary>How the weights are held on the backend: elements per format ("BF16" for matrices and tables kept 16-bit, "F32").</summary>
    public required IReadOnlyDictionary<string, long> ResidentElements;

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
    /// <remarks>
    /// F16 and BF16 GEMM matrices and the word embeddings stay 16-bit on the backend unless <paramref name="widenSixteenBit"/>;
    /// biases, norms and position tables (a small share) are widened to fp32. No fp32 copy of a 16-bit checkpoint is made:
    /// each tensor is copied once from the file's mapping, whose pages are then released.
    /// </remarks>
    public static TransformerWeights Load(WeightStore store, TransformerConfig config, IComputeBackend backend, bool allowNonFinite = false,
        bool widenSixteenBit = false) =>
        new Reader(store, config, config.Names, backend, allowNonFinite, widenSixteenBit).Load();

    /// <summary>A tensor dimension and the config.json field that sets it, so a mismatch can name the field.</summary>
    private readonly record struct Dim(long Size, string Field);

    private sealed class Reader(WeightStore store, TransformerConfig config, TensorNameMap names, IComputeBackend backend, bool allowNonFinite,
        bool widenSixteenBit)
    {
        private string _prefix = "";
        private long _parameters;
        private long _nonFinite;
        private readonly Dictionary<string, string> _dtypes = new(StringComparer.Ordinal);
        private readonly Dictionary<string, long> _resident = new(StringComparer.Ordinal);

        private void Resident(WeightFormat format, long elements) =>
            _resident[SixteenBitWeights.Name(format)] = _resident.GetValueOrDefault(SixteenBitWeights.Name(format)) + elements;

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

        /// <summary>
        /// The 16-bit format all of <paramref name="tensors"/> share (F16 or BF16), so they can stay 16-bit together; null when
        /// any is another dtype (or absent: the fp32 path then names it), or when 16-bit weights are to be widened.
        /// </summary>
        private WeightFormat? SixteenBitFormat(params string[] tensors)
        {
            if (widenSixteenBit) return null;
            WeightFormat? shared = null;
            foreach (string tensor in tensors)
            {
                WeightFormat? format = store.TryGetInfo(_prefix + tensor)?.DType switch
                {
                    SafetensorsDType.F16 => WeightFormat.Float16,
                    SafetensorsDType.BF16 => WeightFormat.BFloat16,
                    _ => null,
                };
                if (format is null || (shared is not null && shared != format)) return null;
                shared = format;
            }
            return shared;
        }

        /// <summary>Reads a 16-bit tensor's raw values (shape checked against config.json, finiteness checked) into a new array.</summary>
        private ushort[] ReadSixteenBit(string name, params Dim[] dims)
        {
            string full = _prefix + name;
            SafetensorsTensorInfo info = CheckedInfo(full, dims);
            if (info.ElementCount > Array.MaxLength) throw new ModelFormatException(store.FileOf(full).FilePath, $"tensor '{full}' {info.ShapeText} has more elements than one array holds");
            ushort[] values = GC.AllocateUninitializedArray<ushort>((int)info.ElementCount);
            WeightFormat format = store.CopySixteenBit(full, values);
            if (!SixteenBitWeights.AllFinite(values, format))
            {
                // Rare and refused by default: widen to locate and count the values with the fp32 check's message.
                float[] widened = new float[values.Length];
                SixteenBitWeights.Widen(values, widened, format);
                CheckFinite(store.FileOf(full).FilePath, full, info, widened);
            }
            _parameters += values.LongLength;
            _dtypes[SixteenBitWeights.Name(format)] = SixteenBitWeights.Name(format);
            return values;
        }

        /// <summary>Several 16-bit tensors read one after another into one array (rows of nn.Linear weights stacked: a fused projection).</summary>
        private ushort[] ReadSixteenBitStacked(params (string Name, Dim[] Dims)[] tensors)
        {
            ushort[][] parts = tensors.Select(t => ReadSixteenBit(t.Name, t.Dims)).ToArray();
            if (parts.Length == 1) return parts[0];
            ushort[] stacked = GC.AllocateUninitializedArray<ushort>(parts.Sum(p => p.Length));
            int at = 0;
            foreach (ushort[] part in parts)
            {
                part.CopyTo(stacked, at);
                at += part.Length;
            }
            return stacked;
        }

        private SafetensorsTensorInfo CheckedInfo(string full, Dim[] dims)
        {
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
            return info;
        }

        private float[] Read(string name, params Dim[] dims)
        {
            string full = _prefix + name;
            SafetensorsTensorInfo info = CheckedInfo(full, dims);
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
        private DeviceBuffer<float> Upload(float[] values)
        {
            Resident(WeightFormat.Float32, values.LongLength);
            return backend is CpuBackend ? new CpuBuffer<float>(values) : backend.Upload<float>(values);
        }

        /// <summary>A GEMM weight [rows, columns] ([in, out]), which the backend may keep in its own layout.</summary>
        private DeviceBuffer<float> Matrix(float[] values, int rows, int columns)
        {
            Resident(WeightFormat.Float32, values.LongLength);
            return backend.UploadMatrix(values, rows, columns);
        }

        /// <summary>
        /// A projection [in, out] made of <paramref name="parts"/> side by side along the outputs (q, k, v; or gate, up), kept 16-bit
        /// when the parts share an F16 or BF16 dtype (no fp32 copy is made), else read as fp32.
        /// </summary>
        private DeviceBuffer<float> Projections(Dim input, params (string Name, Dim Output)[] parts)
        {
            int rows = (int)input.Size, columns = (int)parts.Sum(p => p.Output.Size);
            if (SixteenBitFormat(parts.Select(p => p.Name + ".weight").ToArray()) is { } format)
            {
                ushort[] data;
                bool transposed = !names.InOutMatrices;
                if (transposed)
                    // nn.Linear weights are [out, in]: stacking their rows is side by side along the outputs.
                    data = ReadSixteenBitStacked(parts.Select(p => (p.Name + ".weight", new[] { p.Output, input })).ToArray());
                else
                {
                    ushort[][] read = parts.Select(p => ReadSixteenBit(p.Name + ".weight", input, p.Output)).ToArray();
                    data = read.Length == 1 ? read[0] : SideBySide(read, parts.Select(p => (int)p.Output.Size).ToArray(), rows);
                }
                Resident(format, data.LongLength);
                return backend.UploadMatrix(data, rows, columns, format, transposed);
            }
            float[][] matrices = parts.Select(p => Projection(p.Name, input, p.Output)).ToArray();
            return Matrix(matrices.Length == 1 ? matrices[0] : SideBySide(matrices, parts.Select(p => (int)p.Output.Size).ToArray(), rows), rows, columns);
        }

        /// <summary>Row-major [rows, w_i] matrices joined column-wise into [rows, Σ w_i].</summary>
        private static T[] SideBySide<T>(T[][] parts, int[] widths, int rows)
        {
            int total = widths.Sum();
            var joined = new T[(long)rows * total];
            for (int i = 0; i < rows; i++)
            {
                int at = 0;
                for (int p = 0; p < parts.Length; p++)
                {
                    parts[p].AsSpan(i * widths[p], widths[p]).CopyTo(joined.AsSpan(i * total + at, widths[p]));
                    at += widths[p];
                }
            }
            return joined;
        }

        /// <summary>An embedding table [rows, width]: 16-bit when the checkpoint stores it so, else fp32.</summary>
        private DeviceBuffer<float> Table(string name, Dim rows, Dim width)
        {
            if (SixteenBitFormat(name) is { } format)
            {
                ushort[] data = ReadSixteenBit(name, rows, width);
                Resident(format, data.LongLength);
                return backend is CpuBackend
                    ? CpuBackend.AdoptTable(data, (int)rows.Size, (int)width.Size, format)
                    : backend.UploadTable(data, (int)rows.Size, (int)width.Size, format);
            }
            return Upload(Read(name, rows, width));
        }

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
                DeviceBuffer<float> qkv;
                float[]? qkvBias = null;
                if (names.SeparateQkv is { } separate)
                {
                    qkv = Projections(width, (p + separate.Query, QueryWidth), (p + separate.Key, KeyValueWidth), (p + separate.Value, KeyValueWidth));
                    if (layout.Attention.QkvBias)
                        qkvBias = [.. Read(p + separate.Query + ".bias", QueryWidth), .. Read(p + separate.Key + ".bias", KeyValueWidth), .. Read(p + separate.Value + ".bias", KeyValueWidth)];
                }
                else
                {
                    string fused = names.FusedQkv ?? throw new InvalidOperationException("a name map needs separate or fused q/k/v projections");
                    qkv = Projections(width, (p + fused, FusedQkvWidth));
                    if (layout.Attention.QkvBias) qkvBias = Read(p + fused + ".bias", FusedQkvWidth);
                }
                var block = new BlockWeights
                {
                    QkvWeight = qkv,
                    QkvBias = qkvBias is null ? null : Upload(qkvBias),
                    AttentionOutWeight = Projections(QueryWidth, (p + names.AttentionOutput, width)),
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
                    block.FeedForwardInWeight = Projections(width, (p + gate, inner), (p + names.Up, inner));
                    if (layout.FeedForward.Bias) block.FeedForwardInBias = Upload([.. Read(p + gate + ".bias", inner), .. Read(p + names.Up + ".bias", inner)]);
                }
                else
                {
                    block.FeedForwardInWeight = Projections(width, (p + names.Up, inner));
                    block.FeedForwardInBias = Bias(p + names.Up, inner, layout.FeedForward.Bias);
                }
                block.FeedForwardOutWeight = Projections(inner, (p + names.Down, width));
                block.FeedForwardOutBias = Bias(p + names.Down, width, layout.FeedForward.Bias);
                if (layout.Placement == NormPlacement.Post) (block.Norm2Gamma, block.Norm2Beta) = Norm(p, names.Norm2);
                blocks[l] = block;
            }
            var weights = new TransformerWeights
            {
                WordEmbeddings = Table(names.WordEmbeddings, Vocabulary, width),
                PositionEmbeddings = names.PositionEmbeddings is { } positions ? Upload(Read(positions, Positions, width)) : null,
                TypeEmbeddings = names.TypeEmbeddings is { } types ? Upload(Read(types, TypeVocabulary, width)) : null,
                Blocks = blocks,
                ParameterCount = 0,
                NamePrefix = _prefix,
                DTypes = _dtypes,
                NonFiniteValueCount = 0,
                ResidentElements = _resident,
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
