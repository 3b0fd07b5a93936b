using NativeMi.Compute.Cuda.Native;

namespace NativeMi.Compute.Cuda;

/// <summary>
/// A constant 16-bit weight on the device (an F16 or BF16 GEMM matrix or embedding table): half the memory of fp32. Only
/// <see cref="CudaBackend.Gemm"/> (matrices), <see cref="CudaBackend.GatherRows"/> and <see cref="CudaBackend.EmbeddingGather"/>
/// (tables) read it; <see cref="CudaBackend.Download{T}"/> widens it.
/// </summary>
internal sealed class CudaSixteenBitWeight : DeviceBuffer<float>
{
    internal CudaSixteenBitWeight(CudaBackend owner, CudaDeviceMemory memory, int rows, int columns, WeightFormat format, bool transposed)
    {
        Owner = owner;
        Memory = memory;
        Rows = rows;
        Columns = columns;
        Format = format;
        Transposed = transposed;
    }

    internal CudaBackend Owner { get; }
    internal CudaDeviceMemory Memory { get; }
    /// <summary>Rows of the matrix (K of a GEMM weight) or of the table.</summary>
    public int Rows { get; }
    /// <summary>Columns of the matrix (N) or the table's width.</summary>
    public int Columns { get; }
    /// <summary>F16 or BF16.</summary>
    public WeightFormat Format { get; }
    /// <summary>The values are stored as the transpose, [Columns, Rows] (a Hugging Face nn.Linear weight).</summary>
    public bool Transposed { get; }

    /// <inheritdoc />
    public override long Length => (long)Rows * Columns;

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing) Memory.Dispose();
        base.Dispose(disposing);
    }
}

// 16-bit weights (kernels/sixteen_bit.cu): GEMMs on them run cuBLAS's GemmEx with both inputs 16-bit (the activations
// rounded to the weight's format, as a 16-bit Hugging Face model computes) and fp32 accumulation and output.
internal sealed unsafe partial class CudaBackend
{
    private nint _narrowTo16Bit, _widenFrom16Bit, _gatherRows16Bit, _embeddingGather16Bit;
    private CudaDeviceMemory? _narrowedInput;

    private void InitialiseSixteenBitKernels(Dictionary<string, nint> functions)
    {
        _narrowTo16Bit = functions["narrow_to_16bit"];
        _widenFrom16Bit = functions["widen_from_16bit"];
        _gatherRows16Bit = functions["gather_rows_16bit"];
        _embeddingGather16Bit = functions["embedding_gather_16bit"];
    }

    private static int CudaDataType(WeightFormat format) => format switch
    {
        WeightFormat.Float16 => CublasApi.DataTypeFloat16,
        WeightFormat.BFloat16 => CublasApi.DataTypeBFloat16,
        _ => throw new ArgumentException($"{format} is not a 16-bit format", nameof(format)),
    };

    /// <inheritdoc />
    public DeviceBuffer<float> UploadMatrix(ReadOnlySpan<ushort> data, int rows, int columns, WeightFormat format, bool transposed) =>
        UploadSixteenBit(data, rows, columns, format, transposed);

    /// <inheritdoc />
    public DeviceBuffer<float> UploadTable(ReadOnlySpan<ushort> data, int rows, int width, WeightFormat format) =>
        UploadSixteenBit(data, rows, width, format, transposed: false);

    private CudaSixteenBitWeight UploadSixteenBit(ReadOnlySpan<ushort> data, int rows, int columns, WeightFormat format, bool transposed)
    {
        Enter();
        CudaDataType(format);
        if (data.Length != (long)rows * columns)
            throw new ArgumentException($"the data holds {data.Length} elements; {rows}×{columns} = {(long)rows * columns} expected", nameof(data));
        CudaDeviceMemory memory = CudaDeviceMemory.Allocate(_context, (long)data.Length * sizeof(ushort));
        try
        {
            fixed (ushort* pointer = data)
                if (!data.IsEmpty)
                    CudaDriverApi.Check(CudaDriverApi.CopyHostToDeviceAsync(memory.Pointer, pointer, (nuint)((long)data.Length * sizeof(ushort)), Stream), "cuMemcpyHtoDAsync");
        }
        catch
        {
            memory.Dispose();
            throw;
        }
        return new CudaSixteenBitWeight(this, memory, rows, columns, format, transposed);
    }

    private CudaSixteenBitWeight OwnSixteenBit(CudaSixteenBitWeight weight, string name) =>
        ReferenceEquals(weight.Owner, this) ? weight : throw new ArgumentException($"{name} belongs to another backend", name);

    /// <summary>output[m, n] = input[m, k] · W with W 16-bit: the input is narrowed to W's format, then one GemmEx.</summary>
    private void GemmSixteenBit(DeviceBuffer<float> input, CudaSixteenBitWeight weight, ulong c, int m, int k, int n)
    {
        OwnSixteenBit(weight, "weight");
        if (weight.Rows != k || weight.Columns != n) throw new ArgumentException($"the weight matrix is {weight.Rows}×{weight.Columns}; the GEMM needs {k}×{n}", nameof(weight));
        ulong a = Own(input, (long)m * k, nameof(input)).Pointer;
        long count = (long)m * k;
        long bytes = count * sizeof(ushort);
        if (_narrowedInput is null || _narrowedInput.Bytes < bytes)
        {
            // Queued work may still read the old scratch: wait before freeing it.
            _stream.Synchronize();
            _narrowedInput?.Dispose();
            _narrowedInput = null;
            _narrowedInput = CudaDeviceMemory.Allocate(_context, bytes);
        }
        ulong narrowed = _narrowedInput.Pointer;
        int format = (int)weight.Format;
        void** arguments = stackalloc void*[] { &a, &narrowed, &count, &format };
        CheckLaunch(CudaDriverApi.LaunchKernel(_narrowTo16Bit, GridFor(count), 1, 1, ElementwiseBlock, 1, 1, 0, Stream, arguments, null), "narrow_to_16bit");

        // Column-major view: Cᵀ[n, m] = op(W)ᵀ · Aᵀ. W stored [k, n] row-major is [n, k] column-major with ld n (no
        // transpose); stored [n, k] (an nn.Linear weight) it is [k, n] column-major with ld k, transposed.
        float alpha = 1f, beta = 0f;
        int operationB = weight.Transposed ? CublasApi.OperationTranspose : CublasApi.OperationNone;
        int leadingB = weight.Transposed ? k : n;
        int type = CudaDataType(weight.Format);
        CublasApi.Check(CublasApi.GemmEx(_cublas.DangerousGetHandle(), operationB, CublasApi.OperationNone, n, m, k, &alpha,
            weight.Memory.Pointer, type, leadingB, narrowed, type, k, &beta, c, CublasApi.DataTypeFloat32, n,
            CublasApi.ComputeFloat32, CublasApi.GemmDefaultAlgorithm), "cublasGemmEx(16-bit)");
    }

    private void WidenSixteenBit(CudaSixteenBitWeight weight, Span<float> destination)
    {
        OwnSixteenBit(weight, "source");
        if (destination.Length > weight.Length) throw new ArgumentOutOfRangeException(nameof(destination), $"the weight holds {weight.Length} elements; {destination.Length} requested");
        if (destination.IsEmpty) return;
        long count = destination.Length;
        using CudaDeviceMemory widened = CudaDeviceMemory.Allocate(_context, count * sizeof(float));
        ulong source = weight.Memory.Pointer, target = widened.Pointer;
        int format = (int)weight.Format;
        void** arguments = stackalloc void*[] { &source, &target, &count, &format };
        CheckLaunch(CudaDriverApi.LaunchKernel(_widenFrom16Bit, GridFor(count), 1, 1, ElementwiseBlock, 1, 1, 0, Stream, arguments, null), "widen_from_16bit");
        // The wait stays inside the pin, as in Download: the driver finishes a copy into pageable memory before it returns,
        // but the emulator's deferred mode writes it at the synchronisation, when a moved array would no longer be there.
        fixed (float* pointer = destination)
        {
            CudaDriverApi.Check(CudaDriverApi.CopyDeviceToHostAsync(pointer, target, (nuint)(count * sizeof(float)), Stream), "cuMemcpyDtoHAsync");
            _stream.Synchronize();
        }
    }

    private void GatherRowsSixteenBit(CudaSixteenBitWeight table, DeviceBuffer<int> indices, DeviceBuffer<float> output, int rows, int width)
    {
        OwnSixteenBit(table, "source");
        if (table.Columns != width) throw new ArgumentException($"the table is {table.Rows}×{table.Columns}; rows of {width} requested", nameof(table));
        ulong src = table.Memory.Pointer, index = Own(indices, rows, nameof(indices)).Pointer, dst = Own(output, (long)rows * width, nameof(output)).Pointer;
        if (rows == 0 || width == 0) return;
        long sourceRows = table.Rows;
        int format = (int)table.Format;
        ulong error = IndexErrorPointer;
        void** arguments = stackalloc void*[] { &src, &index, &dst, &rows, &width, &sourceRows, &format, &error };
        CheckLaunch(CudaDriverApi.LaunchKernel(_gatherRows16Bit, (uint)rows, 1, 1, BlockFor(width), 1, 1, 0, Stream, arguments, null), "gather_rows_16bit");
    }

    private void EmbeddingGatherSixteenBit(DeviceBuffer<int> ids, DeviceBuffer<int> positionIds, DeviceBuffer<int>? typeIds, CudaSixteenBitWeight words,
        DeviceBuffer<float> positions, DeviceBuffer<float>? types, DeviceBuffer<float> output, int rows, int width)
    {
        OwnSixteenBit(words, nameof(words));
        if (words.Columns != width) throw new ArgumentException($"the word table is {words.Rows}×{words.Columns}; rows of {width} requested", nameof(words));
        ulong id = Own(ids, rows, nameof(ids)).Pointer, position = Own(positionIds, rows, nameof(positionIds)).Pointer;
        bool withTypes = typeIds is not null && types is not null;
        ulong type = withTypes ? PointerOrZero(typeIds, rows, nameof(typeIds)) : 0;
        ulong w = words.Memory.Pointer, p = Own(positions, 0, nameof(positions)).Pointer;
        ulong t = withTypes ? PointerOrZero(types, 0, nameof(types)) : 0;
        ulong o = Own(output, (long)rows * width, nameof(output)).Pointer, error = IndexErrorPointer;
        if (rows == 0 || width == 0) return;
        long wordRows = words.Rows, positionRows = positions.Length / width, typeRows = withTypes ? types!.Length / width : 0;
        int format = (int)words.Format;
        void** arguments = stackalloc void*[] { &id, &position, &type, &w, &p, &t, &o, &rows, &width, &wordRows, &positionRows, &typeRows, &format, &error };
        CheckLaunch(CudaDriverApi.LaunchKernel(_embeddingGather16Bit, (uint)rows, 1, 1, BlockFor(width), 1, 1, 0, Stream, arguments, null), "embedding_gather_16bit");
    }
}
