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

/// <summary>
/// Where one checkpoint tensor lives in the engine's buffers: the buffer <see cref="Select"/> picks is [Rows, Columns] row-major
/// and the tensor is its columns [ColumnOffset, ColumnOffset + Width) (q, k and v side by side, or gate and up). The checkpoint
/// stores it [Width, Rows] when <see cref="Transposed"/> (nn.Linear's [out, in]), else [Rows, Width] (a vector when Rows is 1).
/// </summary>
/// <param name="Name">The checkpoint's name, prefix included.</param>
/// <param name="Shape">The checkpoint's shape.</param>
/// <param name="Select">The buffer in a <see cref="TransformerWeights"/>; the same selector finds the tensor's gradient in a gradient set.</param>
/// <param name="Rows">Rows of the engine's buffer.</param>
/// <param name="Columns">Columns of the engine's buffer.</param>
/// <param name="ColumnOffset">First column of this tensor.</param>
/// <param name="Width">Columns of this tensor.</param>
/// <param name="Transposed">The checkpoint holds the transpose of the engine's block.</param>
internal sealed record TensorSlot(string Name, long[] Shape, Func<TransformerWeights, DeviceBuffer<float>?> Select, int Rows, int Columns, int ColumnOffset,
    int Width, bool Transposed)
{
    /// <summary>The tensor in the checkpoint's layout, from the engine buffer's host copy.</summary>
    public float[] Extract(ReadOnlySpan<float> buffer)
    {
        var tensor = new float[(long)Rows * Width];
        for (int r = 0; r < Rows; r++)
            for (int c = 0; c < Width; c++)
                tensor[Transposed ? (long)c * Rows + r : (long)r * Width + c] = buffer[r * Columns + ColumnOffset + c];
        return tensor;
    }

    /// <summary>Writes <paramref name="tensor"/> (the checkpoint's layout) into the engine buffer's host copy.</summary>
    public void Insert(ReadOnlySpan<float> tensor, Span<float> buffer)
    {
        if (tensor.Length != (long)Rows * Width) throw new ArgumentException($"'{Name}' holds {(long)Rows * Width} values; {tensor.Length} given", nameof(tensor));
        for (int r = 0; r < Rows; r++)
            for (int c = 0; c < Width; c++)
                buffer[r * Columns + ColumnOffset + c] = tensor[Transposed ? c * Rows + r : r * Width + c];
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
    /// <summary>Every checkpoint tensor the forward pass reads and where it lives, in the order they were read.</summary>
    public required IReadOnlyList<TensorSlot> Tensors;

    /// <summary>
    /// Every buffer a training step updates, in a fixed order, with whether it is a matrix or a table (decayed by AdamW) rather than a
    /// bias or a norm weight. Two instances of one layout (weights and their gradients) list matching buffers at matching places.
    /// </summary>
    public IEnumerable<(DeviceBuffer<float> Buffer, bool IsMatrix)> Parameters()
    {
        static IEnumerable<(DeviceBuffer<float>?, bool)> All(TransformerWeights w)
        {
            yield return (w.WordEmbeddings, true);
            yield return (w.PositionEmbeddings, true);
            yield return (w.TypeEmbeddings, true);
            yield return (w.EmbeddingNormGamma, false);
            yield return (w.EmbeddingNormBeta, false);
            foreach (BlockWeights b in w.Blocks)
            {
                yield return (b.QkvWeight, true);
                yield return (b.QkvBias, false);
                yield return (b.AttentionOutWeight, true);
                yield return (b.AttentionOutBias, false);
                yield return (b.QueryNorm, false);
                yield return (b.KeyNorm, false);
                yield return (b.FeedForwardInWeight, true);
                yield return (b.FeedForwardInBias, false);
                yield return (b.FeedForwardOutWeight, true);
                yield return (b.FeedForwardOutBias, false);
                yield return (b.Norm1Gamma, false);
                yield return (b.Norm1Beta, false);
                yield return (b.Norm2Gamma, false);
                yield return (b.Norm2Beta, false);
            }
            yield return (w.FinalNormGamma, false);
            yield return (w.FinalNormBeta, false);
        }
        foreach (var (buffer, isMatrix) in All(this))
            if (buffer is not null) yield return (buffer, isMatrix);
    }

    /// <summary>Zero-filled buffers of the same shapes on <paramref name="backend"/> (a gradient or a moment for every parameter); no rotary table.</summary>
    public TransformerWeights AllocateLike(IComputeBackend backend)
    {
        DeviceBuffer<float>? Like(DeviceBuffer<float>? buffer) => buffer is null ? null : backend.Allocate<float>(buffer.Length);
        DeviceBuffer<float> Required(DeviceBuffer<float> buffer) => backend.Allocate<float>(buffer.Length);
        return new TransformerWeights
        {
            WordEmbeddings = Required(WordEmbeddings),
            PositionEmbeddings = Like(PositionEmbeddings),
            TypeEmbeddings = Like(TypeEmbeddings),
            EmbeddingNormGamma = Like(EmbeddingNormGamma),
            EmbeddingNormBeta = Like(EmbeddingNormBeta),
            FinalNormGamma = Like(FinalNormGamma),
            FinalNormBeta = Like(FinalNormBeta),
            Blocks = Blocks.Select(b => new BlockWeights
            {
                QkvWeight = Required(b.QkvWeight),
                QkvBias = Like(b.QkvBias),
                AttentionOutWeight = Required(b.AttentionOutWeight),
                AttentionOutBias = Like(b.AttentionOutBias),
                QueryNorm = Like(b.QueryNorm),
                KeyNorm = Like(b.KeyNorm),
                FeedForwardInWeight = Required(b.FeedForwardInWeight),
                FeedForwardInBias = Like(b.FeedForwardInBias),
                FeedForwardOutWeight = Required(b.FeedForwardOutWeight),
                FeedForwardOutBias = Like(b.FeedForwardOutBias),
                Norm1Gamma = Required(b.Norm1Gamma),
                Norm1Beta = Like(b.Norm1Beta),
                Norm2Gamma = Required(b.Norm2Gamma),
                Norm2Beta = Like(b.Norm2Beta),
            }).ToArray(),
            ParameterCount = ParameterCount,
            NamePrefix = NamePrefix,
            DTypes = DTypes,
            NonFiniteValueCount = 0,
            ResidentElements = new Dictionary<string, long> { ["F32"] = Parameters().Sum(p => p.Buffer.Length) },
            Tensors = Tensors,
        };
    }

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
    /// <param name="store">The checkpoint.</param>
    /// <param name="config">Its config.json.</param>
    /// <param name="backend">Where the weights go.</param>
    /// <param name="allowNonFinite">Load NaN and infinite values instead of refusing them.</param>
    /// <param name="widenSixteenBit">Widen F16 and BF16 tensors to fp32.</param>
    /// <param name="trainable">Keep every tensor a plain fp32 buffer that AdamW can update and GemmEx can read (no packed or
    /// 16-bit GEMM weights); a tensor stored 16-bit is refused unless <paramref name="widenSixteenBit"/>.</param>
    public static TransformerWeights Load(WeightStore store, TransformerConfig config, IComputeBackend backend, bool allowNonFinite = false,
        bool widenSixteenBit = false, bool trainable = false) =>
        new Reader(store, config, config.Names, backend, allowNonFinite, widenSixteenBit, trainable).Load();

    /// <summary>A tensor dimension and the config.json field that sets it, so a mismatch can name the field.</summary>
    private readonly record struct Dim(long Size, string Field);

    private sealed class Reader(WeightStore store, TransformerConfig config, TensorNameMap names, IComputeBackend backend, bool allowNonFinite,
        bool widenSixteenBit, bool trainable)
    {
        private readonly List<TensorSlot> _slots = [];
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
                if (trainable)
                    throw new NotSupportedException($"training keeps every weight fp32, and tensor '{_prefix + tensor}' is stored {SixteenBitWeights.Name(format.Value)}; " +
                        "load the model with its 16-bit weights widened to fp32 (ModelLoadOptions.WidenSixteenBitWeights, --widen-16bit-weights) to train an fp32 copy");
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
            Count(info, values.LongLength);
            return values;
        }

        /// <summary>
        /// The F32 tensor <paramref name="full"/> where it lies in the mapped file, checked and counted as <see cref="Read"/>
        /// does; false (nothing checked or counted) when it is not F32 or not 4-byte aligned in the file.
        /// </summary>
        private bool TryMapped(string full, SafetensorsTensorInfo info, out SafetensorsFile file, out ReadOnlySpan<float> values)
        {
            file = store.FileOf(full);
            values = default;
            if (!Mappable(full, info)) return false;
            values = file.GetFloat32Span(full);
            CheckFinite(file.FilePath, full, info, values);
            Count(info, values.Length);
            return true;
        }

        /// <summary>Whether <see cref="TryMapped"/> can use the tensor where it lies: F32 and 4-byte aligned in the mapping.</summary>
        private bool Mappable(string full, SafetensorsTensorInfo info) =>
            info.DType == SafetensorsDType.F32 && store.FileOf(full).IsFloat32Aligned(full);

        private void Count(SafetensorsTensorInfo info, long elements)
        {
            _parameters += elements;
            _dtypes[SafetensorsDTypes.ToName(info.DType)] = SafetensorsDTypes.ToName(info.DType);
        }

        /// <summary>
        /// One vectorised pass over the values; only a tensor that fails it is scanned again to count and locate
        /// its NaN and infinite values. Refused unless allowed: they would make every hidden state after them NaN.
        /// </summary>
        private void CheckFinite(string file, string tensor, SafetensorsTensorInfo info, ReadOnlySpan<float> values)
        {
            if (TensorPrimitives.IsFiniteAll(values)) return;
            long nan = 0, infinite = 0, first = -1;
            for (int i = 0; i < values.Length; i++)
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
                $"tensor '{tensor}' {info.ShapeText} holds {nan + infinite} non-finite values ({nan} NaN, {infinite} infinite) out of {values.Length}; " +
                $"the first is {values[(int)first].ToString(System.Globalization.CultureInfo.InvariantCulture)} at [{string.Join(", ", index)}]. " +
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
            // A trainable matrix stays plain: AdamW writes it and the backward's GemmEx reads it, neither of which a packed matrix allows.
            if (trainable) return Upload(values);
            Resident(WeightFormat.Float32, values.LongLength);
            return backend.UploadMatrix(values, rows, columns);
        }

        /// <summary>Records where the projections <paramref name="parts"/> (side by side in one [in, Σ out] matrix) live.</summary>
        private void MatrixSlots(Func<TransformerWeights, DeviceBuffer<float>?> select, Dim input, params (string Name, Dim Output)[] parts)
        {
            int rows = (int)input.Size, columns = (int)parts.Sum(p => p.Output.Size), offset = 0;
            foreach (var (name, output) in parts)
            {
                long[] shape = names.InOutMatrices ? [input.Size, output.Size] : [output.Size, input.Size];
                _slots.Add(new TensorSlot(_prefix + name + ".weight", shape, select, rows, columns, offset, (int)output.Size, Transposed: !names.InOutMatrices));
                offset += (int)output.Size;
            }
        }

        /// <summary>Records where the vectors <paramref name="parts"/> (one after another in one buffer) live.</summary>
        private void VectorSlots(Func<TransformerWeights, DeviceBuffer<float>?> select, params (string Name, Dim Length)[] parts)
        {
            int columns = (int)parts.Sum(p => p.Length.Size), offset = 0;
            foreach (var (name, length) in parts)
            {
                _slots.Add(new TensorSlot(_prefix + name, [length.Size], select, 1, columns, offset, (int)length.Size, Transposed: false));
                offset += (int)length.Size;
            }
        }

        private void TableSlot(Func<TransformerWeights, DeviceBuffer<float>?> select, string name, Dim rows, Dim width) =>
            _slots.Add(new TensorSlot(_prefix + name, [rows.Size, width.Size], select, (int)rows.Size, (int)width.Size, 0, (int)width.Size, Transposed: false));

        private void NormSlots(Func<TransformerWeights, DeviceBuffer<float>?> gamma, Func<TransformerWeights, DeviceBuffer<float>?> beta, string prefix, NormNames norm)
        {
            VectorSlots(gamma, (prefix + norm.Weight, Width));
            if (norm.Bias is not null) VectorSlots(beta, (prefix + norm.Bias, Width));
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
            if (backend is CpuBackend && !trainable && !names.InOutMatrices && PackedInPlace(input, parts) is { } packed) return packed;
            float[][] matrices = parts.Select(p => Projection(p.Name, input, p.Output)).ToArray();
            return Matrix(matrices.Length == 1 ? matrices[0] : SideBySide(matrices, parts.Select(p => (int)p.Output.Size).ToArray(), rows), rows, columns);
        }

        /// <summary>
        /// nn.Linear weights ([out, in], F32) packed for the CPU GEMM straight from the mapped file, stacked along the outputs
        /// first when there are several: the same panels as packing their transposed copy, without the copies. Null when a
        /// part is not F32 or not 4-byte aligned in the file.
        /// </summary>
        private CpuWeightMatrix? PackedInPlace(Dim input, (string Name, Dim Output)[] parts)
        {
            int rows = (int)input.Size, columns = (int)parts.Sum(p => p.Output.Size);
            var tensors = new List<(string Full, SafetensorsTensorInfo Info)>();
            foreach (var (name, output) in parts)
            {
                string full = _prefix + name + ".weight";
                SafetensorsTensorInfo info = CheckedInfo(full, [output, input]);
                if (!Mappable(full, info)) return null;
                tensors.Add((full, info));
            }
            // Every part was checked to map above, so nothing is counted for a projection that then falls back to copying.
            CpuWeightMatrix matrix;
            if (tensors.Count == 1)
            {
                var (full, info) = tensors[0];
                _ = TryMapped(full, info, out SafetensorsFile file, out ReadOnlySpan<float> values);
                matrix = new CpuWeightMatrix(CpuGemm.PackB(values, rows, columns, transposed: true));
                file.DropPages(full);
            }
            else
            {
                float[] stacked = GC.AllocateUninitializedArray<float>(rows * columns);
                int at = 0;
                foreach (var (full, info) in tensors)
                {
                    _ = TryMapped(full, info, out SafetensorsFile file, out ReadOnlySpan<float> values);
                    values.CopyTo(stacked.AsSpan(at));
                    at += values.Length;
                    file.DropPages(full);
                }
                matrix = new CpuWeightMatrix(CpuGemm.PackB(stacked, rows, columns, transposed: true));
            }
            Resident(WeightFormat.Float32, (long)rows * columns);
            return matrix;
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
            if (backend is CpuBackend && !trainable && InPlace(name, rows, width) is { } mapped) return mapped;
            return Upload(Read(name, rows, width));
        }

        /// <summary>
        /// An fp32 table used where it lies in the mapped file (checked for non-finite values like a read one), or null
        /// when the tensor is not F32 or not 4-byte aligned in the file.
        /// </summary>
        private CpuMappedTable? InPlace(string name, params Dim[] dims)
        {
            string full = _prefix + name;
            if (!TryMapped(full, CheckedInfo(full, dims), out SafetensorsFile file, out ReadOnlySpan<float> values)) return null;
            file.DropPages(full); // the check read every page; the rows a batch gathers are read from the file
            Resident(WeightFormat.Float32, values.Length);
            return new CpuMappedTable(values, file.Lease(), file.FilePath, file.FileOffset(full));
        }

        private DeviceBuffer<float> Vector(string name, Dim length) => Upload(Read(name, length));

        /// <summary>A Hugging Face nn.Linear weight ([out, in]) transposed to the backend's [in, out] layout.</summary>
        private float[] LinearTransposed(string name, Dim outputDim, Dim inputDim)
        {
            int outputs = (int)outputDim.Size, inputs = (int)inputDim.Size;
            string full = _prefix + name;
            if (TryMapped(full, CheckedInfo(full, [outputDim, inputDim]), out SafetensorsFile file, out ReadOnlySpan<float> mapped))
            {
                // Transposed straight from the mapping: a copy first would allocate and fill the weight once more.
                float[] transposed = Transpose(mapped, outputs, inputs);
                file.DropPages(full);
                return transposed;
            }
            return Transpose(Read(name, outputDim, inputDim), outputs, inputs);
        }

        private static float[] Transpose(ReadOnlySpan<float> w, int outputs, int inputs)
        {
            float[] t = GC.AllocateUninitializedArray<float>(w.Length); // every element is written below
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
                int layer = l;
                // Read in the order the forward pass runs the block (so a broken checkpoint's first error is its first use).
                var first = layout.Placement == NormPlacement.Pre ? Norm(p, names.Norm1) : default;
                if (layout.Placement == NormPlacement.Pre) NormSlots(w => w.Blocks[layer].Norm1Gamma, w => w.Blocks[layer].Norm1Beta, p, names.Norm1);
                DeviceBuffer<float> qkv;
                float[]? qkvBias = null;
                if (names.SeparateQkv is { } separate)
                {
                    (string, Dim)[] parts = [(p + separate.Query, QueryWidth), (p + separate.Key, KeyValueWidth), (p + separate.Value, KeyValueWidth)];
                    qkv = Projections(width, parts);
                    MatrixSlots(w => w.Blocks[layer].QkvWeight, width, parts);
                    if (layout.Attention.QkvBias)
                    {
                        qkvBias = [.. Read(p + separate.Query + ".bias", QueryWidth), .. Read(p + separate.Key + ".bias", KeyValueWidth), .. Read(p + separate.Value + ".bias", KeyValueWidth)];
                        VectorSlots(w => w.Blocks[layer].QkvBias, (p + separate.Query + ".bias", QueryWidth), (p + separate.Key + ".bias", KeyValueWidth), (p + separate.Value + ".bias", KeyValueWidth));
                    }
                }
                else
                {
                    string fused = names.FusedQkv ?? throw new InvalidOperationException("a name map needs separate or fused q/k/v projections");
                    qkv = Projections(width, (p + fused, FusedQkvWidth));
                    MatrixSlots(w => w.Blocks[layer].QkvWeight, width, (p + fused, FusedQkvWidth));
                    if (layout.Attention.QkvBias)
                    {
                        qkvBias = Read(p + fused + ".bias", FusedQkvWidth);
                        VectorSlots(w => w.Blocks[layer].QkvBias, (p + fused + ".bias", FusedQkvWidth));
                    }
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
                MatrixSlots(w => w.Blocks[layer].AttentionOutWeight, QueryWidth, (p + names.AttentionOutput, width));
                if (layout.Attention.OutputBias) VectorSlots(w => w.Blocks[layer].AttentionOutBias, (p + names.AttentionOutput + ".bias", width));
                if (names.QkNorm is { } qkNorm)
                {
                    Dim head = new(layout.Attention.HeadDim, "head_dim");
                    block.QueryNorm = Upload(Read(p + qkNorm.Query + ".weight", head));
                    block.KeyNorm = Upload(Read(p + qkNorm.Key + ".weight", head));
                    VectorSlots(w => w.Blocks[layer].QueryNorm, (p + qkNorm.Query + ".weight", head));
                    VectorSlots(w => w.Blocks[layer].KeyNorm, (p + qkNorm.Key + ".weight", head));
                }
                if (layout.Placement == NormPlacement.Post)
                {
                    (block.Norm1Gamma, block.Norm1Beta) = Norm(p, names.Norm1);
                    NormSlots(w => w.Blocks[layer].Norm1Gamma, w => w.Blocks[layer].Norm1Beta, p, names.Norm1);
                }
                else
                {
                    (block.Norm2Gamma, block.Norm2Beta) = Norm(p, names.Norm2);
                    NormSlots(w => w.Blocks[layer].Norm2Gamma, w => w.Blocks[layer].Norm2Beta, p, names.Norm2);
                }
                if (names.Gate is { } gate)
                {
                    // Gate and up projections side by side, so one GEMM feeds the gated activation.
                    block.FeedForwardInWeight = Projections(width, (p + gate, inner), (p + names.Up, inner));
                    MatrixSlots(w => w.Blocks[layer].FeedForwardInWeight, width, (p + gate, inner), (p + names.Up, inner));
                    if (layout.FeedForward.Bias)
                    {
                        block.FeedForwardInBias = Upload([.. Read(p + gate + ".bias", inner), .. Read(p + names.Up + ".bias", inner)]);
                        VectorSlots(w => w.Blocks[layer].FeedForwardInBias, (p + gate + ".bias", inner), (p + names.Up + ".bias", inner));
                    }
                }
                else
                {
                    block.FeedForwardInWeight = Projections(width, (p + names.Up, inner));
                    MatrixSlots(w => w.Blocks[layer].FeedForwardInWeight, width, (p + names.Up, inner));
                    block.FeedForwardInBias = Bias(p + names.Up, inner, layout.FeedForward.Bias);
                    if (layout.FeedForward.Bias) VectorSlots(w => w.Blocks[layer].FeedForwardInBias, (p + names.Up + ".bias", inner));
                }
                block.FeedForwardOutWeight = Projections(inner, (p + names.Down, width));
                MatrixSlots(w => w.Blocks[layer].FeedForwardOutWeight, inner, (p + names.Down, width));
                block.FeedForwardOutBias = Bias(p + names.Down, width, layout.FeedForward.Bias);
                if (layout.FeedForward.Bias) VectorSlots(w => w.Blocks[layer].FeedForwardOutBias, (p + names.Down + ".bias", width));
                if (layout.Placement == NormPlacement.Post)
                {
                    (block.Norm2Gamma, block.Norm2Beta) = Norm(p, names.Norm2);
                    NormSlots(w => w.Blocks[layer].Norm2Gamma, w => w.Blocks[layer].Norm2Beta, p, names.Norm2);
                }
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
                Tensors = _slots,
            };
            TableSlot(w => w.WordEmbeddings, names.WordEmbeddings, Vocabulary, width);
            if (names.PositionEmbeddings is { } positionTable) TableSlot(w => w.PositionEmbeddings, positionTable, Positions, width);
            if (names.TypeEmbeddings is { } typeTable) TableSlot(w => w.TypeEmbeddings, typeTable, TypeVocabulary, width);
            if (names.EmbeddingNorm is { } embeddingNorm)
            {
                (weights.EmbeddingNormGamma, weights.EmbeddingNormBeta) = Norm("", embeddingNorm);
                NormSlots(w => w.EmbeddingNormGamma, w => w.EmbeddingNormBeta, "", embeddingNorm);
            }
            if (names.FinalNorm is { } finalNorm)
            {
                (weights.FinalNormGamma, weights.FinalNormBeta) = Norm("", finalNorm);
                NormSlots(w => w.FinalNormGamma, w => w.FinalNormBeta, "", finalNorm);
            }
            if (layout.Rotary is { } rotary) weights.InverseFrequencies = backend.Upload<float>(RotaryFrequencies.Inverse(rotary));
            weights.ParameterCount = _parameters;
            weights.NonFiniteValueCount = _nonFinite;
            return weights;
        }
    }
}
