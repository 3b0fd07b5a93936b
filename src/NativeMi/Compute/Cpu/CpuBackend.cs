using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace NativeMi.Compute.Cpu;

/// <summary>A buffer in managed host memory.</summary>
internal class CpuBuffer<T> : DeviceBuffer<T> where T : unmanaged
{
    /// <summary>Wraps <paramref name="data"/> without copying.</summary>
    public CpuBuffer(T[] data) => Data = data;

    /// <summary>The elements.</summary>
    public T[] Data { get; }

    /// <inheritdoc />
    public override long Length => Data.LongLength;
}

/// <summary>
/// A constant weight matrix, kept only in the packed layout of the GEMM kernel (no row-major copy: the forward
/// pass reads weights through <see cref="CpuBackend.Gemm"/> alone, and keeping both doubled the model's footprint).
/// <see cref="CpuBackend.Download{T}"/> unpacks it.
/// </summary>
internal sealed class CpuWeightMatrix(PackedMatrix packed) : DeviceBuffer<float>
{
    public PackedMatrix Packed { get; } = packed;

    public override long Length => (long)Packed.K * Packed.N;
}

/// <summary>
/// A constant table of 16-bit values (an F16 or BF16 embedding table) kept 16-bit: <see cref="CpuBackend.EmbeddingGather"/>
/// and <see cref="CpuBackend.GatherRows"/> widen the rows they read, <see cref="CpuBackend.Download{T}"/> widens all of it.
/// </summary>
internal sealed class CpuSixteenBitTable(ushort[] data, WeightFormat format) : DeviceBuffer<float>
{
    public ushort[] Data { get; } = data;
    public WeightFormat Format { get; } = format;

    public override long Length => Data.LongLength;

    /// <summary>Row <paramref name="row"/> of <paramref name="width"/> elements, widened into <paramref name="destination"/>.</summary>
    public void WidenRow(long row, int width, Span<float> destination) =>
        SixteenBitWeights.Widen(Data.AsSpan(checked((int)(row * width)), width), destination, Format);
}

/// <summary>
/// A constant fp32 table (an embedding table) read where it lies in the weights file instead of being copied: opening a
/// model then skips allocating, faulting in and filling the table (the word embeddings are ~45 MiB of minilm's 87).
/// Read only by <see cref="CpuBackend.EmbeddingGather"/>, <see cref="CpuBackend.GatherRows"/> and
/// <see cref="CpuBackend.Download{T}"/>; disposing it releases the mapping's lease. A large table's rows are read with
/// positioned reads of the file (through the page cache) rather than through the mapping: the kernel maps 64 KiB around
/// every page a read of the mapping faults in, whatever the madvise, so after a batch or two the whole table counted in
/// the process's resident set.
/// </summary>
internal sealed unsafe class CpuMappedTable : DeviceBuffer<float>
{
    /// <summary>Tables at least this large read their rows from the file.</summary>
    internal const long ReadRowsFromFileBytes = 1 << 20;

    private readonly float* _data;
    private readonly long _length;
    private readonly Microsoft.Win32.SafeHandles.SafeFileHandle? _file;
    private readonly long _fileOffset;
    private IDisposable? _lease;

    /// <param name="data">The table in a mapping that <paramref name="lease"/> keeps valid.</param>
    /// <param name="lease">Released when the table is disposed.</param>
    /// <param name="filePath">The file the mapping is of; a table of at least <see cref="ReadRowsFromFileBytes"/> reads its rows from it.</param>
    /// <param name="fileOffset">Where <paramref name="data"/> starts in that file.</param>
    public CpuMappedTable(ReadOnlySpan<float> data, IDisposable lease, string? filePath = null, long fileOffset = 0)
    {
        _data = (float*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(data));
        _length = data.Length;
        _lease = lease;
        if (filePath is not null && _length * sizeof(float) >= ReadRowsFromFileBytes)
        {
            _file = File.OpenHandle(filePath, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
            _fileOffset = fileOffset;
        }
    }

    public override long Length => _length;

    /// <summary>Whether rows are read from the file rather than through the mapping.</summary>
    internal bool ReadsRowsFromFile => _file is not null;

    /// <summary><paramref name="count"/> elements from <paramref name="start"/>.</summary>
    public ReadOnlySpan<float> Slice(long start, int count)
    {
        ObjectDisposedException.ThrowIf(_lease is null, this);
        CheckRange(start, count);
        return new ReadOnlySpan<float>(_data + start, count);
    }

    /// <summary>Copies <paramref name="destination"/>.Length elements from <paramref name="start"/> into it.</summary>
    public void CopyTo(long start, Span<float> destination)
    {
        ObjectDisposedException.ThrowIf(_lease is null, this);
        CheckRange(start, destination.Length);
        if (_file is null)
        {
            new ReadOnlySpan<float>(_data + start, destination.Length).CopyTo(destination);
            return;
        }
        Span<byte> bytes = MemoryMarshal.AsBytes(destination);
        long offset = _fileOffset + start * sizeof(float);
        while (!bytes.IsEmpty)
        {
            int read = RandomAccess.Read(_file, bytes, offset);
            if (read <= 0) throw new IOException($"the weights file ended {offset} bytes in, inside an embedding table it held when it was opened");
            bytes = bytes[read..];
            offset += read;
        }
    }

    private void CheckRange(long start, int count)
    {
        if (start < 0 || count < 0 || start + count > _length) throw new ArgumentOutOfRangeException(nameof(start), $"elements {start}..{start + count} of a table of {_length}");
    }

    protected override void Dispose(bool disposing)
    {
        if (Interlocked.Exchange(ref _lease, null) is { } lease)
        {
            lease.Dispose();
            _file?.Dispose();
        }
        base.Dispose(disposing);
    }
}

/// <summary>The CPU backend: managed SIMD kernels spread over the thread pool.</summary>
internal sealed partial class CpuBackend : IComputeBackend
{
    /// <summary>Creates the backend.</summary>
    /// <exception cref="InputException">The worker threads' spin time (NATIVEMI_SPIN_MICROSECONDS) is set to something invalid.</exception>
    public CpuBackend() => CpuWorkers.ThrowIfMisconfigured();

    /// <inheritdoc />
    public string Name => "cpu";

    /// <inheritdoc />
    public string Description =>
        $"cpu (GEMM kernel {CpuGemm.ActivePath}, other kernels {(VectorLoop.Widest == VectorWidth.Scalar ? "scalar" : $"{32 * (int)VectorLoop.Widest}-bit vectors")}, {Environment.ProcessorCount} threads)";

    /// <summary>The managed array behind a buffer of this backend.</summary>
    public static T[] Array<T>(DeviceBuffer<T> buffer) where T : unmanaged => buffer switch
    {
        CpuBuffer<T> cpu => cpu.Data,
        CpuWeightMatrix => throw new ArgumentException("a weight matrix from UploadMatrix is kept packed only; Gemm and Download read it", nameof(buffer)),
        CpuSixteenBitTable => throw new ArgumentException("a 16-bit table from UploadTable is read only by EmbeddingGather, GatherRows and Download", nameof(buffer)),
        CpuMappedTable => throw new ArgumentException("a table read in place from the weights file is read only by EmbeddingGather, GatherRows and Download", nameof(buffer)),
        _ => throw new ArgumentException("buffer belongs to another backend", nameof(buffer)),
    };

    private static T[]? ArrayOrNull<T>(DeviceBuffer<T>? buffer) where T : unmanaged => buffer is null ? null : Array(buffer);

    /// <inheritdoc />
    public DeviceBuffer<T> Allocate<T>(long length) where T : unmanaged => new CpuBuffer<T>(new T[length]);

    /// <inheritdoc />
    public DeviceBuffer<T> Upload<T>(ReadOnlySpan<T> data) where T : unmanaged => new CpuBuffer<T>(data.ToArray());

    /// <inheritdoc />
    public DeviceBuffer<float> UploadMatrix(ReadOnlySpan<float> data, int rows, int columns) =>
        new CpuWeightMatrix(CpuGemm.PackB(data, rows, columns));

    /// <inheritdoc />
    public DeviceBuffer<float> UploadMatrix(ReadOnlySpan<ushort> data, int rows, int columns, WeightFormat format, bool transposed) =>
        new CpuWeightMatrix(CpuGemm.PackB(data, rows, columns, format, transposed));

    /// <inheritdoc />
    public DeviceBuffer<float> UploadTable(ReadOnlySpan<ushort> data, int rows, int width, WeightFormat format) =>
        AdoptTable(data.ToArray(), rows, width, format);

    /// <summary><see cref="UploadTable"/> without the copy: the table keeps <paramref name="data"/> (the loader's freshly read array).</summary>
    internal static DeviceBuffer<float> AdoptTable(ushort[] data, int rows, int width, WeightFormat format)
    {
        if (format == WeightFormat.Float32) throw new ArgumentException("a 16-bit table needs Float16 or BFloat16", nameof(format));
        if (data.LongLength != (long)rows * width) throw new ArgumentException($"the table holds {data.LongLength} elements; {rows}×{width} = {(long)rows * width} expected", nameof(data));
        return new CpuSixteenBitTable(data, format);
    }

    /// <summary>accumulator += row <paramref name="row"/> of a table (fp32 or 16-bit).</summary>
    private static void AddRow(Span<float> accumulator, DeviceBuffer<float> table, long row, int width)
    {
        if (table is CpuMappedTable { ReadsRowsFromFile: false } inMapping) TensorPrimitives.Add(accumulator, inMapping.Slice(row * width, width), accumulator);
        else if (table is CpuSixteenBitTable or CpuMappedTable)
        {
            // A 16-bit row is widened, a large table's row read from the file: either way into scratch first.
            float[] read = System.Buffers.ArrayPool<float>.Shared.Rent(width);
            ReadRow(table, row, width, read);
            TensorPrimitives.Add(accumulator, read.AsSpan(0, width), accumulator);
            System.Buffers.ArrayPool<float>.Shared.Return(read);
        }
        else TensorPrimitives.Add(accumulator, Array(table).AsSpan(checked((int)(row * width)), width), accumulator);
    }

    /// <summary>Row <paramref name="row"/> of a table (fp32 or 16-bit) as fp32 in <paramref name="destination"/>.</summary>
    private static void ReadRow(DeviceBuffer<float> table, long row, int width, Span<float> destination)
    {
        if (table is CpuSixteenBitTable sixteen) sixteen.WidenRow(row, width, destination);
        else if (table is CpuMappedTable mapped) mapped.CopyTo(row * width, destination[..width]);
        else Array(table).AsSpan(checked((int)(row * width)), width).CopyTo(destination);
    }

    /// <inheritdoc />
    public void CopyFromHost<T>(ReadOnlySpan<T> source, DeviceBuffer<T> destination) where T : unmanaged =>
        source.CopyTo(Array(destination));

    /// <inheritdoc />
    public void Download<T>(DeviceBuffer<T> source, Span<T> destination) where T : unmanaged
    {
        if (source is CpuWeightMatrix matrix)
        {
            Span<float> floats = System.Runtime.InteropServices.MemoryMarshal.Cast<T, float>(destination);
            if (floats.Length > matrix.Length) throw new ArgumentOutOfRangeException(nameof(destination), $"the matrix holds {matrix.Length} elements; {floats.Length} requested");
            matrix.Packed.Unpack(floats);
            return;
        }
        if (source is CpuSixteenBitTable table)
        {
            Span<float> floats = System.Runtime.InteropServices.MemoryMarshal.Cast<T, float>(destination);
            if (floats.Length > table.Length) throw new ArgumentOutOfRangeException(nameof(destination), $"the table holds {table.Length} elements; {floats.Length} requested");
            SixteenBitWeights.Widen(table.Data.AsSpan(0, floats.Length), floats, table.Format);
            return;
        }
        if (source is CpuMappedTable mappedTable)
        {
            Span<float> floats = System.Runtime.InteropServices.MemoryMarshal.Cast<T, float>(destination);
            if (floats.Length > mappedTable.Length) throw new ArgumentOutOfRangeException(nameof(destination), $"the table holds {mappedTable.Length} elements; {floats.Length} requested");
            mappedTable.Slice(0, floats.Length).CopyTo(floats);
            return;
        }
        Array(source).AsSpan(0, destination.Length).CopyTo(destination);
    }

    /// <inheritdoc />
    public void Gemm(DeviceBuffer<float> input, DeviceBuffer<float> weight, DeviceBuffer<float>? bias, DeviceBuffer<float> output,
        int m, int k, int n, Activation activation)
    {
        if (weight is CpuWeightMatrix { Packed: var packed })
        {
            if (packed.K != k || packed.N != n) throw new ArgumentException($"the weight matrix is {packed.K}×{packed.N}; the GEMM needs {k}×{n}", nameof(weight));
            CpuGemm.Multiply(Array(input), packed, ArrayOrNull(bias), Array(output), m, activation);
        }
        else
            CpuGemm.Multiply(Array(input), Array(weight), ArrayOrNull(bias), Array(output), m, k, n, activation);
    }

    /// <inheritdoc />
    public void LayerNorm(DeviceBuffer<float> input, DeviceBuffer<float>? residual, DeviceBuffer<float> gamma, DeviceBuffer<float> beta,
        DeviceBuffer<float> output, int rows, int width, float epsilon)
    {
        float[] x = Array(input), y = Array(output), g = Array(gamma), b = Array(beta);
        float[]? r = ArrayOrNull(residual);
        if ((long)rows * width > Math.Min(Math.Min(x.LongLength, y.LongLength), r?.LongLength ?? long.MaxValue) || g.Length < width || b.Length < width)
            throw new ArgumentException($"LayerNorm of {rows}×{width} is larger than its buffers");
        RowChunks(rows, width, (start, end) =>
        {
            for (int row = start; row < end; row++)
                LayerNormRow(x.AsSpan(row * width, width), r is null ? default : r.AsSpan(row * width, width), y.AsSpan(row * width, width),
                    g.AsSpan(0, width), b.AsSpan(0, width), epsilon);
        });
    }

    /// <summary>Normalises one row in place (two-pass mean and variance in float, as reference implementations do).</summary>
    public static void LayerNormRow(Span<float> row, ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta, float epsilon) =>
        LayerNormRow(row, default, row, gamma, beta, epsilon);

    /// <summary>
    /// output = LayerNorm(input + residual) for one row, in three vectorised passes: sum (after adding the residual),
    /// sum of squared deviations from the mean, then the affine normalisation. <paramref name="output"/> may be
    /// <paramref name="input"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void LayerNormRow(ReadOnlySpan<float> input, ReadOnlySpan<float> residual, Span<float> output,
        ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta, float epsilon)
    {
        int width = output.Length, j;
        fixed (float* x = input, r = residual, y = output, g = gamma, b = beta)
        {
            Vector256<float> acc = Vector256<float>.Zero;
            float tail = 0;
            if (r != null)
            {
                for (j = 0; j + 8 <= width; j += 8)
                {
                    Vector256<float> v = Vector256.Load(x + j) + Vector256.Load(r + j);
                    v.Store(y + j);
                    acc += v;
                }
                for (; j < width; j++) { y[j] = x[j] + r[j]; tail += y[j]; }
            }
            else
            {
                for (j = 0; j + 8 <= width; j += 8)
                {
                    Vector256<float> v = Vector256.Load(x + j);
                    if (y != x) v.Store(y + j);
                    acc += v;
                }
                for (; j < width; j++) { y[j] = x[j]; tail += y[j]; }
            }
            float mean = (Vector256.Sum(acc) + tail) / width;
            Vector256<float> meanVector = Vector256.Create(mean);
            acc = Vector256<float>.Zero;
            tail = 0;
            for (j = 0; j + 8 <= width; j += 8)
            {
                Vector256<float> d = Vector256.Load(y + j) - meanVector;
                acc = Vector256.FusedMultiplyAdd(d, d, acc);
            }
            for (; j < width; j++) { float d = y[j] - mean; tail += d * d; }
            float scale = 1f / MathF.Sqrt((Vector256.Sum(acc) + tail) / width + epsilon);
            Vector256<float> scaleVector = Vector256.Create(scale);
            for (j = 0; j + 8 <= width; j += 8)
            {
                Vector256<float> normalised = (Vector256.Load(y + j) - meanVector) * scaleVector;
                Vector256.FusedMultiplyAdd(normalised, Vector256.Load(g + j), Vector256.Load(b + j)).Store(y + j);
            }
            for (; j < width; j++) y[j] = MathF.FusedMultiplyAdd((y[j] - mean) * scale, g[j], b[j]);
        }
    }

    /// <inheritdoc />
    public void AddInPlace(DeviceBuffer<float> accumulator, DeviceBuffer<float> addend, long count)
    {
        float[] acc = Array(accumulator), add = Array(addend);
        TensorPrimitives.Add(acc.AsSpan(0, checked((int)count)), add.AsSpan(0, (int)count), acc.AsSpan(0, (int)count));
    }

    /// <inheritdoc />
    public void EmbeddingGather(DeviceBuffer<int> ids, DeviceBuffer<int> positionIds, DeviceBuffer<int>? typeIds,
        DeviceBuffer<float> words, DeviceBuffer<float> positions, DeviceBuffer<float>? types, DeviceBuffer<float> output,
        int rows, int width)
    {
        int[] id = Array(ids), pos = Array(positionIds);
        int[]? type = ArrayOrNull(typeIds);
        float[] o = Array(output);
        long wordRows = words.Length / width, positionRows = positions.Length / width, typeRows = types is null ? 0 : types.Length / width;
        ParallelRows(rows, width, row =>
        {
            int tokenId = id[row], positionId = pos[row];
            if ((uint)tokenId >= wordRows) throw new ArgumentOutOfRangeException(nameof(ids), $"token id {tokenId} at row {row} is outside the embedding table ({wordRows} rows)");
            if ((uint)positionId >= positionRows) throw new ArgumentOutOfRangeException(nameof(positionIds), $"position {positionId} at row {row} is outside the position table ({positionRows} rows)");
            Span<float> dst = o.AsSpan(row * width, width);
            // Same additions in the same order whether a table is fp32 or 16-bit (widening is exact).
            ReadRow(words, tokenId, width, dst);
            AddRow(dst, positions, positionId, width);
            if (types is not null && type is not null)
            {
                int typeId = type[row];
                if ((uint)typeId >= typeRows) throw new ArgumentOutOfRangeException(nameof(typeIds), $"token type {typeId} at row {row} is outside the type table ({typeRows} rows)");
                AddRow(dst, types, typeId, width);
            }
        });
    }

    /// <inheritdoc />
    public void Attention(DeviceBuffer<float> qkv, DeviceBuffer<int> mask, DeviceBuffer<float> output,
        int batch, int seq, int heads, int headDim, bool causal) =>
        CpuAttention.Run(Array(qkv), Array(mask), Array(output), batch, seq, heads, headDim, causal);

    /// <inheritdoc />
    public void GemmEx(DeviceBuffer<float> a, bool transposeA, DeviceBuffer<float> b, bool transposeB, DeviceBuffer<float> c,
        int m, int k, int n, bool accumulate) =>
        CpuGemm.Multiply(Array(a), Array(b), default, Array(c), m, k, n, Activation.None, transposeA, transposeB, accumulate);

    /// <inheritdoc />
    public void GatherRows(DeviceBuffer<float> source, DeviceBuffer<int> indices, DeviceBuffer<float> output, int rows, int width)
    {
        float[] dst = Array(output);
        int[] index = Array(indices);
        long sourceRows = width == 0 ? 0 : source.Length / width;
        if (index.LongLength < rows) throw new ArgumentException($"indices hold {index.LongLength} elements; {rows} rows requested", nameof(indices));
        if (dst.LongLength < (long)rows * width) throw new ArgumentException($"output holds {dst.LongLength} elements; needs {(long)rows * width}", nameof(output));
        for (int r = 0; r < rows; r++)
        {
            if ((ulong)index[r] >= (ulong)sourceRows)
                throw new ArgumentOutOfRangeException(nameof(indices), $"index {index[r]} at row {r} is outside the source ({sourceRows} rows of {width})");
            ReadRow(source, index[r], width, dst.AsSpan(r * width, width));
        }
    }

    /// <inheritdoc />
    public void ScatterAddRows(DeviceBuffer<float> source, DeviceBuffer<int> indices, DeviceBuffer<float> target, int rows, int width)
    {
        float[] src = Array(source), dst = Array(target);
        int[] index = Array(indices);
        long targetRows = width == 0 ? 0 : dst.LongLength / width;
        if (index.LongLength < rows) throw new ArgumentException($"indices hold {index.LongLength} elements; {rows} rows requested", nameof(indices));
        if (src.LongLength < (long)rows * width) throw new ArgumentException($"source holds {src.LongLength} elements; needs {(long)rows * width}", nameof(source));
        for (int r = 0; r < rows; r++)
            if ((ulong)index[r] >= (ulong)targetRows)
                throw new ArgumentOutOfRangeException(nameof(indices), $"index {index[r]} at row {r} is outside the target ({targetRows} rows of {width})");
        for (int r = 0; r < rows; r++)
        {
            Span<float> row = dst.AsSpan(index[r] * width, width);
            TensorPrimitives.Add(row, src.AsSpan(r * width, width), row);
        }
    }

    /// <inheritdoc />
    public void BiasActivation(DeviceBuffer<float> input, DeviceBuffer<float> bias, DeviceBuffer<float> preActivation, DeviceBuffer<float> output,
        int rows, int width, bool gelu)
    {
        float[] x = Array(input), b = Array(bias), pre = Array(preActivation), y = Array(output);
        ParallelRows(rows, width, r =>
        {
            Span<float> u = pre.AsSpan(r * width, width);
            TensorPrimitives.Add(x.AsSpan(r * width, width), b.AsSpan(0, width), u);
            Span<float> a = y.AsSpan(r * width, width);
            if (!gelu) { u.CopyTo(a); return; }
            CpuProbeKernels.Gelu(u, a);
        });
    }

    /// <inheritdoc />
    public void GeluBackward(DeviceBuffer<float> preActivation, DeviceBuffer<float> upstream, DeviceBuffer<float> gradient, long count)
    {
        float[] u = Array(preActivation), g = Array(upstream), d = Array(gradient);
        int n = checked((int)count);
        const int Chunk = 1 << 14;
        if (n < 2 * Chunk) { CpuProbeKernels.GeluBackward(u.AsSpan(0, n), g.AsSpan(0, n), d.AsSpan(0, n)); return; }
        CpuWorkers.For((n + Chunk - 1) / Chunk, c =>
        {
            int begin = c * Chunk, length = Math.Min(Chunk, n - begin);
            CpuProbeKernels.GeluBackward(u.AsSpan(begin, length), g.AsSpan(begin, length), d.AsSpan(begin, length));
        });
    }

    /// <inheritdoc />
    public void ColumnSums(DeviceBuffer<float> matrix, DeviceBuffer<float> columnSums, int rows, int width)
    {
        CpuProbeKernels.ColumnSums(Array(matrix), Array(columnSums).AsSpan(0, width), rows, width);
    }

    /// <inheritdoc />
    public void SoftmaxCrossEntropy(DeviceBuffer<float> logits, DeviceBuffer<int> targets, DeviceBuffer<float> lossNats, DeviceBuffer<int> argmax,
        int rows, int classes, float gradientScale, bool writeGradient)
    {
        float[] x = Array(logits), loss = Array(lossNats);
        int[] target = Array(targets), best = Array(argmax);
        for (int r = 0; r < rows; r++)
            if ((uint)target[r] >= (uint)classes)
                throw new ArgumentOutOfRangeException(nameof(targets), $"SoftmaxCrossEntropy: target class {target[r]} at row {r} is outside [0, {classes})");
        ParallelRows(rows, classes, r =>
        {
            var (lossValue, index) = CpuProbeKernels.SoftmaxCrossEntropyRow(x.AsSpan(r * classes, classes), target[r], gradientScale, writeGradient);
            loss[r] = lossValue;
            best[r] = index;
        });
    }

    /// <inheritdoc />
    public void AdamW(DeviceBuffer<float> parameters, DeviceBuffer<float> gradients, DeviceBuffer<float> firstMoment, DeviceBuffer<float> secondMoment,
        long count, AdamWStep step) =>
        CpuProbeKernels.AdamW(Array(parameters).AsSpan(0, checked((int)count)), Array(gradients), Array(firstMoment), Array(secondMoment), step);

    /// <summary>CPU ops finish before they return.</summary>
    public void Synchronize() { }

    /// <inheritdoc />
    public void Zero(DeviceBuffer<float> buffer, long count) => System.Array.Clear(Array(buffer), 0, checked((int)count));

    /// <summary>
    /// Runs <paramref name="body"/> over [start, end) row ranges: inline below ~256 K elements (where waking the thread
    /// pool costs more than it saves), else four ranges per core for the pool to balance.
    /// </summary>
    private static void RowChunks(int rows, int width, Action<int, int> body)
    {
        int workers = Environment.ProcessorCount;
        if ((long)rows * width < 262_144 || workers == 1 || rows < 2) { body(0, rows); return; }
        int chunks = Math.Min(rows, 4 * workers);
        CpuWorkers.For(chunks,
            i => body((int)((long)rows * i / chunks), (int)((long)rows * (i + 1) / chunks)));
    }

    private static void ParallelRows(int rows, int width, Action<int> body)
    {
        if ((long)rows * width < 65_536) { for (int r = 0; r < rows; r++) body(r); return; }
        CpuWorkers.For(rows, body);
    }

    /// <summary>Nothing to release: buffers are managed arrays.</summary>
    public void Dispose() { }
}
