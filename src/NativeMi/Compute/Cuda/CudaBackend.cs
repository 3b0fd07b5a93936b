using NativeMi.Compute.Cuda.Native;
using NativeMi.Pooling;

namespace NativeMi.Compute.Cuda;

/// <summary>Choices for <see cref="CudaBackend"/>.</summary>
/// <param name="DeviceOrdinal">Which device to use.</param>
/// <param name="AllowTf32">Let cuBLAS use TF32 tensor cores for fp32 GEMMs (about 10 mantissa bits per product;
/// off by default so results stay comparable with the CPU backend).</param>
/// <param name="FusedAttentionMaxSequence">Sequences up to this length use the fused attention kernel; longer ones
/// use cuBLAS strided-batched GEMMs around a masked softmax. 0 by default (cuBLAS for all): the fused kernel re-reads
/// K and V for every query with uncoalesced loads, and stays opt-in until a GPU measures it faster.</param>
/// <param name="KernelCacheFolder">Where compiled PTX is cached (default: the NativeMi cache root's kernels folder).</param>
internal sealed record CudaBackendOptions(int DeviceOrdinal = 0, bool AllowTf32 = false, int FusedAttentionMaxSequence = 0, string? KernelCacheFolder = null)
{
    /// <summary>The longest sequence the fused kernel is offered when it is asked for (<c>FusedAttentionMaxSequence</c>).</summary>
    public const int FusedAttentionLimit = 512;

    /// <summary>
    /// Wait for every kernel as it is launched and report a fault with the kernel's name (slow; for debugging). On by
    /// default when the environment variable NATIVEMI_CUDA_LAUNCH_BLOCKING is 1, like CUDA_LAUNCH_BLOCKING.
    /// </summary>
    public bool SynchronizeAfterEachLaunch { get; init; } = Environment.GetEnvironmentVariable("NATIVEMI_CUDA_LAUNCH_BLOCKING") == "1";
}

/// <summary>A buffer in device memory.</summary>
internal sealed class CudaBuffer<T> : DeviceBuffer<T> where T : unmanaged
{
    internal CudaBuffer(CudaBackend owner, CudaDeviceMemory memory, long length)
    {
        Owner = owner;
        Memory = memory;
        Length = length;
    }

    internal CudaBackend Owner { get; }
    internal CudaDeviceMemory Memory { get; }

    /// <inheritdoc />
    public override long Length { get; }

    /// <summary>The device address of the first element.</summary>
    public ulong Pointer => Memory.Pointer;

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing) Memory.Dispose();
        base.Dispose(disposing);
    }
}

/// <summary>
/// The CUDA backend: NativeMi's kernels compiled at run time with NVRTC (or nvcc's PTX from CMakeLists.txt when
/// <see cref="PrebuiltKernels"/> proves it matches the embedded sources), and cuBLAS for the GEMMs. All work
/// is queued on one stream; <see cref="Download{T}"/> (and the id check of <see cref="EmbeddingGather"/>)
/// synchronise with it, so a kernel fault surfaces there as a <see cref="CudaException"/>.
/// </summary>
internal sealed unsafe partial class CudaBackend : IComputeBackend
{
    private const int ElementwiseBlock = 256;
    private const int RowBlock = 256;
    private static readonly string[] KernelFiles = ["activation.cu", "adamw.cu", "attention.cu", "backward.cu", "decoder.cu", "embedding.cu", "fano.cu", "layernorm.cu", "pooling.cu", "probe.cu", "sixteen_bit.cu"];

    private readonly CudaContextHandle _context;
    private readonly CudaStreamHandle _stream;
    private readonly CublasHandle _cublas;
    private readonly List<CudaModuleHandle> _modules = [];
    private readonly CudaDeviceMemory _adamHyperParameters;
    private CudaDeviceMemory? _attentionScores, _counters, _columnPartials;
    private readonly CudaBackendOptions _options;
    private readonly uint _gridLimit;
    private readonly int _fusedAttentionSharedLimit;
    private bool _disposed;
    private int _prebuiltKernelFiles, _nvrtcKernelFiles;
    private string? _prebuiltFallbackReason;

    private readonly nint _embeddingGather, _layerNorm, _biasActivationInPlace, _biasGeluKeepPreactivation, _geluBackward, _addInPlace;
    private readonly nint _attentionFused, _attentionMaskedSoftmax, _softmaxCrossEntropy, _gatherRows, _scatterAddRows, _columnSums, _adamW;
    private readonly nint _poolSentences, _countErrors, _targetHistogram, _perPositionCounts, _columnSumsFinish;

    private CudaBackend(CudaBackendOptions options)
    {
        _options = options;
        IReadOnlyList<CudaDeviceInfo> devices = CudaDevices.List();
        if (devices.Count == 0) throw new CudaException("CUDA_ERROR_NO_DEVICE", 100, "cuDeviceGetCount", "the driver reports no CUDA device");
        if ((uint)options.DeviceOrdinal >= devices.Count)
            throw new ArgumentOutOfRangeException(nameof(options), $"device {options.DeviceOrdinal} requested; the driver reports {devices.Count}");
        Device = devices[options.DeviceOrdinal];
        _context = CudaContextHandle.RetainPrimary(Device.Ordinal);
        try
        {
            _stream = CudaStreamHandle.Create(_context);
            _cublas = CublasHandle.Create(_context, _stream, options.AllowTf32);
            InitialiseIndexErrors();
            _adamHyperParameters = CudaDeviceMemory.Allocate(_context, 6 * sizeof(float));
            _gridLimit = (uint)Math.Max(1, Device.Multiprocessors * 32);

            var functions = new Dictionary<string, nint>(StringComparer.Ordinal);
            var compiler = new KernelCompiler(options.KernelCacheFolder);
            var prebuilt = PrebuiltKernels.Locate();
            foreach (string file in KernelFiles)
            {
                KernelSource source = KernelSource.Embedded(file);
                CudaModuleHandle module = LoadKernelModule(prebuilt, compiler, source);
                _modules.Add(module);
                foreach (string kernel in source.KernelNames()) functions[kernel] = module.Function(kernel);
            }
            _embeddingGather = functions["embedding_gather"];
            _layerNorm = functions["layernorm_residual"];
            _biasActivationInPlace = functions["bias_activation_inplace"];
            _biasGeluKeepPreactivation = functions["bias_gelu_keep_preactivation"];
            _geluBackward = functions["gelu_backward"];
            _addInPlace = functions["add_inplace"];
            _attentionFused = functions["attention_fused"];
            _attentionMaskedSoftmax = functions["attention_masked_softmax"];
            _softmaxCrossEntropy = functions["softmax_cross_entropy"];
            _gatherRows = functions["gather_rows"];
            _scatterAddRows = functions["scatter_add_rows"];
            _columnSums = functions["column_sums"];
            _columnSumsFinish = functions["column_sums_finish"];
            _adamW = functions["adamw_step"];
            _poolSentences = functions["pool_sentences"];
            _countErrors = functions["count_errors"];
            _targetHistogram = functions["target_histogram"];
            _perPositionCounts = functions["per_position_counts"];
            InitialiseDecoderKernels(functions);
            InitialiseSixteenBitKernels(functions);
            InitialiseBackwardKernels(functions);

            // Beyond 48 KiB of dynamic shared memory a kernel must opt in; the static part (32 floats of
            // reduction scratch) and a margin come off the device's per-block limit.
            CudaDriverApi.Check(CudaDriverApi.DeviceGetAttribute(out int sharedOptIn, CudaDriverApi.AttributeMaxSharedMemoryPerBlockOptin, Device.Ordinal), "cuDeviceGetAttribute(shared memory opt-in)");
            _fusedAttentionSharedLimit = Math.Max(48 * 1024, sharedOptIn - 1024);
            if (_fusedAttentionSharedLimit > 48 * 1024)
                CudaDriverApi.Check(CudaDriverApi.FunctionSetAttribute(_attentionFused, CudaDriverApi.FunctionAttributeMaxDynamicSharedSizeBytes, _fusedAttentionSharedLimit), "cuFuncSetAttribute(attention_fused)");

            CublasApi.GetProperty(CublasApi.PropertyMajorVersion, out int cublasMajor);
            CublasApi.GetProperty(CublasApi.PropertyMinorVersion, out int cublasMinor);
            (int driverMajor, int driverMinor) = CudaDevices.DriverVersion();
            Description = $"cuda ({Device}; driver CUDA {driverMajor}.{driverMinor}; {KernelOrigin(prebuilt)}; " +
                          $"cuBLAS {cublasMajor}.{cublasMinor}; {(options.AllowTf32 ? "TF32 GEMMs" : "fp32 GEMMs")})";
        }
        catch
        {
            DisposeNative();
            throw;
        }
    }

    /// <summary>Opens the device and compiles the kernels.</summary>
    /// <exception cref="CudaException">A library is missing, there is no device, or a kernel does not compile; the message says which.</exception>
    public static CudaBackend Create(CudaBackendOptions? options = null) => new(options ?? new CudaBackendOptions());

    /// <summary>Like <see cref="Create"/>, but returns null with the reason instead of throwing when CUDA is unusable.</summary>
    public static CudaBackend? TryCreate(out string reason, CudaBackendOptions? options = null)
    {
        try
        {
            CudaBackend backend = Create(options);
            reason = "";
            return backend;
        }
        catch (Exception e) when (e is CudaException or DeviceOutOfMemoryException)
        {
            reason = e.Message;
            return null;
        }
    }

    /// <summary>The device this backend runs on.</summary>
    public CudaDeviceInfo Device { get; }

    /// <summary>The virtual architecture the kernels were compiled for.</summary>
    public string CompiledArchitecture { get; private set; } = "";

    /// <inheritdoc />
    public string Name => "cuda";

    /// <inheritdoc />
    public string Description { get; } = "";

    // Prebuilt PTX (CMakeLists.txt's nvcc build) is used only when its manifest proves it comes from exactly the embedded
    // sources; otherwise, or when the driver rejects it (PTX newer than the driver, say), NVRTC compiles the file. The
    // first reason for falling back is kept for Description.
    private CudaModuleHandle LoadKernelModule(PrebuiltKernels prebuilt, KernelCompiler compiler, KernelSource source)
    {
        if (prebuilt.TryFind(source, Device.ComputeCapabilityMajor, Device.ComputeCapabilityMinor, out PrebuiltKernel? kernel, out string reason))
        {
            try
            {
                CudaModuleHandle module = CudaModuleHandle.LoadPtx(_context, source.FileName, kernel.Ptx);
                CompiledArchitecture = kernel.Architecture;
                _prebuiltKernelFiles++;
                return module;
            }
            catch (CudaException e)
            {
                reason = $"the driver rejected {Path.GetFileName(kernel.PtxPath)} ({e.StatusName})";
            }
        }
        _prebuiltFallbackReason ??= reason;
        _nvrtcKernelFiles++;
        CompiledKernel compiled = CompileForDevice(compiler, source);
        CompiledArchitecture = compiled.Architecture;
        try
        {
            return CudaModuleHandle.LoadPtx(_context, source.FileName, compiled.Ptx);
        }
        catch (CudaException e) when (e.StatusName == "CUDA_ERROR_UNSUPPORTED_PTX_VERSION")
        {
            return LoadCubinInstead(source, e);
        }
    }

    // An NVRTC newer than the driver writes PTX of an ISA version the driver's JIT does not know. A cubin for the device's
    // own architecture needs no JIT, so it is tried next; failing that, the message says which versions disagree.
    private CudaModuleHandle LoadCubinInstead(KernelSource source, CudaException rejected)
    {
        (int driverMajor, int driverMinor) = CudaDevices.DriverVersion();
        (int nvrtcMajor, int nvrtcMinor) = KernelCompiler.NvrtcVersion();
        try
        {
            CompiledCubin cubin = KernelCompiler.CompileCubin(source, Device.ComputeCapabilityMajor, Device.ComputeCapabilityMinor);
            CudaModuleHandle module = CudaModuleHandle.LoadImage(_context, source.FileName, cubin.Image);
            CompiledArchitecture = cubin.Architecture;
            _prebuiltFallbackReason ??= $"NVRTC {nvrtcMajor}.{nvrtcMinor} PTX is newer than the driver's CUDA {driverMajor}.{driverMinor}: cubins instead";
            return module;
        }
        catch (CudaException cubinFailure)
        {
            throw new CudaException(rejected.StatusName, rejected.StatusCode, rejected.Call,
                $"NVRTC {nvrtcMajor}.{nvrtcMinor} writes PTX newer than this driver (CUDA {driverMajor}.{driverMinor}) can load, and a cubin for " +
                $"sm_{Device.ComputeCapabilityMajor}{Device.ComputeCapabilityMinor} failed too ({cubinFailure.StatusName}). Use an NVRTC no newer than " +
                $"CUDA {driverMajor}.{driverMinor} (put its libnvrtc in the folder NATIVEMI_CUDA_PATH names) or update the driver.");
        }
    }

    // Where the kernels came from, for Description; NVRTC is asked for its version only when it compiled something,
    // so an install with prebuilt PTX for every file needs no NVRTC.
    private string KernelOrigin(PrebuiltKernels prebuilt)
    {
        string nvrtc = "";
        if (_nvrtcKernelFiles > 0)
        {
            (int nvrtcMajor, int nvrtcMinor) = KernelCompiler.NvrtcVersion();
            nvrtc = $"NVRTC {nvrtcMajor}.{nvrtcMinor}";
        }
        string target = $" → {CompiledArchitecture}";
        if (_nvrtcKernelFiles == 0) return $"prebuilt PTX{target} ({_prebuiltKernelFiles} files from {prebuilt.Folder})";
        if (_prebuiltKernelFiles == 0) return $"{nvrtc}{target} (prebuilt PTX unused: {_prebuiltFallbackReason})";
        return $"prebuilt PTX for {_prebuiltKernelFiles} files from {prebuilt.Folder}, {nvrtc} for {_nvrtcKernelFiles}{target} ({_prebuiltFallbackReason})";
    }

    // NVRTC older than the device (NVRTC 11.8 and a Blackwell GPU, say) cannot target its architecture; PTX for
    // an older one still runs, JIT-compiled by the driver.
    private CompiledKernel CompileForDevice(KernelCompiler compiler, KernelSource source)
    {
        (int major, int minor)[] candidates = [(Device.ComputeCapabilityMajor, Device.ComputeCapabilityMinor), (9, 0), (8, 0)];
        CudaException? last = null;
        foreach (var (major, minor) in candidates.Distinct())
        {
            if (major > Device.ComputeCapabilityMajor || (major == Device.ComputeCapabilityMajor && minor > Device.ComputeCapabilityMinor)) continue;
            try
            {
                return compiler.Compile(source, major, minor, driverVersion: DriverVersionNumber());
            }
            catch (CudaException e) when (e.StatusName == "NVRTC_ERROR_INVALID_OPTION")
            {
                last = e;
            }
        }
        throw last ?? new CudaException("NVRTC_ERROR_INVALID_OPTION", 5, $"compiling {source.FileName}", $"no supported architecture for compute capability {Device.ComputeCapabilityMajor}.{Device.ComputeCapabilityMinor}");
    }

    private static int DriverVersionNumber()
    {
        (int major, int minor) = CudaDevices.DriverVersion();
        return major * 1000 + minor * 10;
    }

    private nint Stream => _stream.DangerousGetHandle();

    // The calling thread may have no current context (a thread-pool thread) or another one; the driver's switch is
    // a thread-local store, cheap enough to do on every call.
    private void Enter()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _context.MakeCurrent();
    }

    private CudaBuffer<T> Own<T>(DeviceBuffer<T> buffer, long needed, string name) where T : unmanaged
    {
        if (buffer is not CudaBuffer<T> cuda || !ReferenceEquals(cuda.Owner, this))
            throw new ArgumentException($"{name} belongs to another backend", name);
        if (cuda.Length < needed) throw new ArgumentException($"{name} holds {cuda.Length} elements; needs {needed}", name);
        return cuda;
    }

    private ulong PointerOrZero<T>(DeviceBuffer<T>? buffer, long needed, string name) where T : unmanaged =>
        buffer is null ? 0 : Own(buffer, needed, name).Pointer;

    private void CheckLaunch(int status, string kernel)
    {
        if (status != 0) throw new CudaException(CudaDriverApi.StatusName(status), status, "cuLaunchKernel(" + kernel + ")");
        if (!_options.SynchronizeAfterEachLaunch) return;
        // Debugging aid: a fault inside this kernel surfaces here, named, instead of at some later call.
        try
        {
            SynchronizeChecked();
        }
        catch (CudaException e)
        {
            throw new CudaException(e.StatusName, e.StatusCode, $"{kernel} (synchronised after the launch: NATIVEMI_CUDA_LAUNCH_BLOCKING)", e.Detail ?? e.Call);
        }
    }

    private uint GridFor(long count) => (uint)Math.Clamp((count + ElementwiseBlock - 1) / ElementwiseBlock, 1, _gridLimit);

    internal static uint BlockFor(int width) => (uint)Math.Clamp((width + 31) / 32 * 32, 32, RowBlock);

    /// <inheritdoc />
    public DeviceBuffer<T> Allocate<T>(long length) where T : unmanaged
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        Enter();
        long bytes = checked(length * sizeof(T));
        CudaDeviceMemory memory = CudaDeviceMemory.Allocate(_context, bytes);
        CudaDriverApi.Check(CudaDriverApi.MemsetBytesAsync(memory.Pointer, 0, (nuint)bytes, Stream), "cuMemsetD8Async");
        return new CudaBuffer<T>(this, memory, length);
    }

    /// <inheritdoc />
    /// <remarks>cuBLAS reads weights in their plain row-major layout, so this is an ordinary upload.</remarks>
    public DeviceBuffer<float> UploadMatrix(ReadOnlySpan<float> data, int rows, int columns) => Upload(data);

    /// <inheritdoc />
    public DeviceBuffer<T> Upload<T>(ReadOnlySpan<T> data) where T : unmanaged
    {
        Enter();
        long bytes = (long)data.Length * sizeof(T);
        CudaDeviceMemory memory = CudaDeviceMemory.Allocate(_context, bytes);
        var buffer = new CudaBuffer<T>(this, memory, data.Length);
        CopyFromHost(data, buffer);
        return buffer;
    }

    /// <inheritdoc />
    public void CopyFromHost<T>(ReadOnlySpan<T> source, DeviceBuffer<T> destination) where T : unmanaged
    {
        Enter();
        CudaBuffer<T> target = Own(destination, source.Length, nameof(destination));
        if (source.IsEmpty) return;
        long bytes = (long)source.Length * sizeof(T);
        // Either way the span may be reused at once: staging copies it into pinned memory, and from pageable memory
        // the driver returns once it has staged the data itself.
        fixed (T* pointer = source)
            if (!TryStagedUpload(target.Pointer, pointer, bytes))
                CudaDriverApi.Check(CudaDriverApi.CopyHostToDeviceAsync(target.Pointer, pointer, (nuint)bytes, Stream), "cuMemcpyHtoDAsync");
    }

    /// <inheritdoc />
    public void Download<T>(DeviceBuffer<T> source, Span<T> destination) where T : unmanaged
    {
        Enter();
        if (source is CudaSixteenBitWeight sixteen)
        {
            WidenSixteenBit(sixteen, System.Runtime.InteropServices.MemoryMarshal.Cast<T, float>(destination));
            return;
        }
        CudaBuffer<T> from = Own(source, destination.Length, nameof(source));
        long bytes = (long)destination.Length * sizeof(T);
        fixed (T* pointer = destination)
        {
            if (bytes > 0 && TryStagedDownload(pointer, from.Pointer, bytes)) return;
            if (bytes > 0)
                CudaDriverApi.Check(CudaDriverApi.CopyDeviceToHostAsync(pointer, from.Pointer, (nuint)bytes, Stream), "cuMemcpyDtoHAsync");
            SynchronizeChecked();
        }
    }

    /// <summary>Waits for all queued work (kernel faults and bad indices surface here).</summary>
    public void Synchronize()
    {
        Enter();
        SynchronizeChecked();
    }

    // Row-major C[m,n] = op(A)[m,k] · op(B)[k,n] (+ beta C) as the column-major product Cᵀ = op(B)ᵀ · op(A)ᵀ.
    private void RowMajorGemm(ulong a, bool transposeA, ulong b, bool transposeB, ulong c, int m, int k, int n, float beta)
    {
        float alpha = 1f;
        int operationA = transposeA ? CublasApi.OperationTranspose : CublasApi.OperationNone;
        int operationB = transposeB ? CublasApi.OperationTranspose : CublasApi.OperationNone;
        int leadingA = transposeA ? m : k, leadingB = transposeB ? k : n;
        nint handle = _cublas.DangerousGetHandle();
        if (_options.AllowTf32)
            CublasApi.Check(CublasApi.GemmEx(handle, operationB, operationA, n, m, k, &alpha, b, CublasApi.DataTypeFloat32, leadingB,
                a, CublasApi.DataTypeFloat32, leadingA, &beta, c, CublasApi.DataTypeFloat32, n, CublasApi.ComputeFloat32FastTf32, CublasApi.GemmDefaultAlgorithm), "cublasGemmEx");
        else
            CublasApi.Check(CublasApi.Sgemm(handle, operationB, operationA, n, m, k, &alpha, b, leadingB, a, leadingA, &beta, c, n), "cublasSgemm");
    }

    /// <inheritdoc />
    public void Gemm(DeviceBuffer<float> input, DeviceBuffer<float> weight, DeviceBuffer<float>? bias, DeviceBuffer<float> output,
        int m, int k, int n, Activation activation)
    {
        Enter();
        ulong c = Own(output, (long)m * n, nameof(output)).Pointer, biasPointer = PointerOrZero(bias, n, nameof(bias));
        if (weight is CudaSixteenBitWeight sixteen)
        {
            if (m == 0 || n == 0) return;
            if (k == 0) CudaDriverApi.Check(CudaDriverApi.Memset32Async(c, 0, (nuint)((long)m * n), Stream), "cuMemsetD32Async");
            else GemmSixteenBit(input, sixteen, c, m, k, n);
        }
        else
        {
            ulong a = Own(input, (long)m * k, nameof(input)).Pointer, b = Own(weight, (long)k * n, nameof(weight)).Pointer;
            if (m == 0 || n == 0) return;
            if (k == 0) CudaDriverApi.Check(CudaDriverApi.Memset32Async(c, 0, (nuint)((long)m * n), Stream), "cuMemsetD32Async");
            else RowMajorGemm(a, false, b, false, c, m, k, n, 0f);
        }
        if (bias is null && activation == Activation.None) return;
        int code = (int)activation;
        void** arguments = stackalloc void*[] { &c, &biasPointer, &m, &n, &code };
        CheckLaunch(CudaDriverApi.LaunchKernel(_biasActivationInPlace, GridFor((long)m * n), 1, 1, ElementwiseBlock, 1, 1, 0, Stream, arguments, null), "bias_activation_inplace");
    }

    /// <inheritdoc />
    public void LayerNorm(DeviceBuffer<float> input, DeviceBuffer<float>? residual, DeviceBuffer<float> gamma, DeviceBuffer<float> beta,
        DeviceBuffer<float> output, int rows, int width, float epsilon)
    {
        Enter();
        long cells = (long)rows * width;
        ulong x = Own(input, cells, nameof(input)).Pointer, r = PointerOrZero(residual, cells, nameof(residual));
        ulong g = Own(gamma, width, nameof(gamma)).Pointer, bt = Own(beta, width, nameof(beta)).Pointer, y = Own(output, cells, nameof(output)).Pointer;
        if (rows == 0) return;
        void** arguments = stackalloc void*[] { &x, &r, &g, &bt, &y, &rows, &width, &epsilon };
        CheckLaunch(CudaDriverApi.LaunchKernel(_layerNorm, (uint)rows, 1, 1, BlockFor(width), 1, 1, 0, Stream, arguments, null), "layernorm_residual");
    }

    /// <inheritdoc />
    public void AddInPlace(DeviceBuffer<float> accumulator, DeviceBuffer<float> addend, long count)
    {
        Enter();
        ulong acc = Own(accumulator, count, nameof(accumulator)).Pointer, add = Own(addend, count, nameof(addend)).Pointer;
        if (count == 0) return;
        void** arguments = stackalloc void*[] { &acc, &add, &count };
        CheckLaunch(CudaDriverApi.LaunchKernel(_addInPlace, GridFor(count), 1, 1, ElementwiseBlock, 1, 1, 0, Stream, arguments, null), "add_inplace");
    }

    /// <inheritdoc />
    public void EmbeddingGather(DeviceBuffer<int> ids, DeviceBuffer<int> positionIds, DeviceBuffer<int>? typeIds,
        DeviceBuffer<float> words, DeviceBuffer<float> positions, DeviceBuffer<float>? types, DeviceBuffer<float> output,
        int rows, int width)
    {
        Enter();
        if (words is CudaSixteenBitWeight sixteen)
        {
            EmbeddingGatherSixteenBit(ids, positionIds, typeIds, sixteen, positions, types, output, rows, width);
            return;
        }
        ulong id = Own(ids, rows, nameof(ids)).Pointer, position = Own(positionIds, rows, nameof(positionIds)).Pointer;
        // Type embeddings are added only when both the ids and the table are given, as on the CPU.
        bool withTypes = typeIds is not null && types is not null;
        ulong type = withTypes ? PointerOrZero(typeIds, rows, nameof(typeIds)) : 0;
        ulong w = Own(words, 0, nameof(words)).Pointer, p = Own(positions, 0, nameof(positions)).Pointer;
        ulong t = withTypes ? PointerOrZero(types, 0, nameof(types)) : 0;
        ulong o = Own(output, (long)rows * width, nameof(output)).Pointer, error = IndexErrorPointer;
        if (rows == 0 || width == 0) return;
        long wordRows = words.Length / width, positionRows = positions.Length / width, typeRows = withTypes ? types!.Length / width : 0;
        void** arguments = stackalloc void*[] { &id, &position, &type, &w, &p, &t, &o, &rows, &width, &wordRows, &positionRows, &typeRows, &error };
        CheckLaunch(CudaDriverApi.LaunchKernel(_embeddingGather, (uint)rows, 1, 1, BlockFor(width), 1, 1, 0, Stream, arguments, null), "embedding_gather");
    }

    /// <inheritdoc />
    public void Attention(DeviceBuffer<float> qkv, DeviceBuffer<int> mask, DeviceBuffer<float> output,
        int batch, int seq, int heads, int headDim, bool causal)
    {
        Enter();
        long rows = (long)batch * seq;
        int width = heads * headDim;
        ulong x = Own(qkv, rows * 3 * width, nameof(qkv)).Pointer, m = Own(mask, rows, nameof(mask)).Pointer, o = Own(output, rows * width, nameof(output)).Pointer;
        if (rows == 0 || width == 0) return;
        float scale = 1f / MathF.Sqrt(headDim);
        int causalFlag = causal ? 1 : 0;
        long sharedBytes = (long)(headDim + seq) * sizeof(float);
        if (seq <= _options.FusedAttentionMaxSequence && sharedBytes <= _fusedAttentionSharedLimit && heads <= 65535 && batch <= 65535)
        {
            void** arguments = stackalloc void*[] { &x, &m, &o, &seq, &heads, &headDim, &causalFlag, &scale };
            CheckLaunch(CudaDriverApi.LaunchKernel(_attentionFused, (uint)seq, (uint)heads, (uint)batch, 128, 1, 1, (uint)sharedBytes, Stream, arguments, null), "attention_fused");
            return;
        }
        AttentionWithCublas(x, m, o, batch, seq, heads, headDim, causalFlag, scale);
    }

    // Scores of at most this many bytes at once: sentences go through cuBLAS in chunks that fit (all of a batch, usually).
    private const long AttentionScoreBudget = 256L << 20;

    // Per head, one strided-batched GEMM over all the chunk's sentences for the scores and one for P·V (a sentence's rows are
    // seq·3·width floats apart in qkv), and one softmax launch over (query, head, sentence): 2·heads + 1 calls per chunk,
    // independent of the number of sentences.
    private void AttentionWithCublas(ulong qkv, ulong mask, ulong output, int batch, int seq, int heads, int headDim, int causal, float scale)
    {
        int width = heads * headDim, stride = 3 * width;
        long perSentenceScores = checked((long)heads * seq * seq * sizeof(float));
        int chunk = (int)Math.Clamp(AttentionScoreBudget / Math.Max(1, perSentenceScores), 1, Math.Min(batch, 65535));
        long scoreBytes = checked(perSentenceScores * chunk);
        if (_attentionScores is null || _attentionScores.Bytes < scoreBytes)
        {
            // The old scratch may still be in use by queued kernels; freeing waits for them.
            _stream.Synchronize();
            _attentionScores?.Dispose();
            _attentionScores = null;
            _attentionScores = CudaDeviceMemory.Allocate(_context, scoreBytes);
        }
        ulong scores = _attentionScores.Pointer;
        nint handle = _cublas.DangerousGetHandle();
        float zero = 0f, one = 1f;
        long qkvSentence = (long)seq * stride, outputSentence = (long)seq * width, scoreHead = (long)seq * seq, scoreSentence = (long)heads * seq * seq;
        ulong chunkMask = 0;
        void** arguments = stackalloc void*[] { &scores, &chunkMask, &seq, &causal };
        for (int first = 0; first < batch; first += chunk)
        {
            int sentences = Math.Min(chunk, batch - first);
            ulong chunkQkv = qkv + (ulong)(first * qkvSentence * sizeof(float)), chunkOutput = output + (ulong)(first * outputSentence * sizeof(float));
            for (int h = 0; h < heads; h++)
            {
                ulong queries = chunkQkv + (ulong)((long)h * headDim * sizeof(float));
                ulong keys = queries + (ulong)(width * sizeof(float)), values = keys + (ulong)(width * sizeof(float));
                ulong headScores = scores + (ulong)(h * scoreHead * sizeof(float));
                // Scores, column-major [keys, queries] per sentence = row-major [queries, keys]: S = scale · Kᵀ(as stored) · Q.
                StridedBatchedGemm(handle, CublasApi.OperationTranspose, CublasApi.OperationNone, seq, seq, headDim,
                    &scale, keys, stride, qkvSentence, queries, stride, qkvSentence, &zero, headScores, seq, scoreSentence, sentences, "scores");
            }
            chunkMask = mask + (ulong)((long)first * seq * sizeof(int));
            CheckLaunch(CudaDriverApi.LaunchKernel(_attentionMaskedSoftmax, (uint)seq, (uint)heads, (uint)sentences, 128, 1, 1, 0, Stream, arguments, null), "attention_masked_softmax");
            for (int h = 0; h < heads; h++)
            {
                ulong values = chunkQkv + (ulong)((2L * width + (long)h * headDim) * sizeof(float));
                ulong headScores = scores + (ulong)(h * scoreHead * sizeof(float));
                ulong headOutput = chunkOutput + (ulong)((long)h * headDim * sizeof(float));
                StridedBatchedGemm(handle, CublasApi.OperationNone, CublasApi.OperationNone, headDim, seq, seq,
                    &one, values, stride, qkvSentence, headScores, seq, scoreSentence, &zero, headOutput, width, outputSentence, sentences, "values");
            }
        }
    }

    // fp32 storage either way; with TF32 allowed the Ex variant lets cuBLAS round the products to TF32, as RowMajorGemm does.
    private void StridedBatchedGemm(nint handle, int operationA, int operationB, int m, int n, int k, float* alpha,
        ulong a, int leadingA, long strideA, ulong b, int leadingB, long strideB, float* beta, ulong c, int leadingC, long strideC, int batches, string what)
    {
        if (_options.AllowTf32)
            CublasApi.Check(CublasApi.GemmStridedBatchedEx(handle, operationA, operationB, m, n, k, alpha, a, CublasApi.DataTypeFloat32, leadingA, strideA,
                b, CublasApi.DataTypeFloat32, leadingB, strideB, beta, c, CublasApi.DataTypeFloat32, leadingC, strideC, batches,
                CublasApi.ComputeFloat32FastTf32, CublasApi.GemmDefaultAlgorithm), $"cublasGemmStridedBatchedEx({what})");
        else
            CublasApi.Check(CublasApi.SgemmStridedBatched(handle, operationA, operationB, m, n, k, alpha, a, leadingA, strideA, b, leadingB, strideB,
                beta, c, leadingC, strideC, batches), $"cublasSgemmStridedBatched({what})");
    }

    /// <inheritdoc />
    public void GemmEx(DeviceBuffer<float> a, bool transposeA, DeviceBuffer<float> b, bool transposeB, DeviceBuffer<float> c,
        int m, int k, int n, bool accumulate)
    {
        Enter();
        ulong left = Own(a, (long)m * k, nameof(a)).Pointer, right = Own(b, (long)k * n, nameof(b)).Pointer, product = Own(c, (long)m * n, nameof(c)).Pointer;
        if (m == 0 || n == 0) return;
        if (k == 0)
        {
            if (!accumulate) CudaDriverApi.Check(CudaDriverApi.Memset32Async(product, 0, (nuint)((long)m * n), Stream), "cuMemsetD32Async");
            return;
        }
        RowMajorGemm(left, transposeA, right, transposeB, product, m, k, n, accumulate ? 1f : 0f);
    }

    /// <inheritdoc />
    public void GatherRows(DeviceBuffer<float> source, DeviceBuffer<int> indices, DeviceBuffer<float> output, int rows, int width)
    {
        Enter();
        if (source is CudaSixteenBitWeight sixteen)
        {
            GatherRowsSixteenBit(sixteen, indices, output, rows, width);
            return;
        }
        ulong src = Own(source, 0, nameof(source)).Pointer, index = Own(indices, rows, nameof(indices)).Pointer, dst = Own(output, (long)rows * width, nameof(output)).Pointer;
        if (rows == 0 || width == 0) return;
        long sourceRows = source.Length / width;
        ulong error = IndexErrorPointer;
        void** arguments = stackalloc void*[] { &src, &index, &dst, &rows, &width, &sourceRows, &error };
        CheckLaunch(CudaDriverApi.LaunchKernel(_gatherRows, (uint)rows, 1, 1, BlockFor(width), 1, 1, 0, Stream, arguments, null), "gather_rows");
    }

    /// <inheritdoc />
    public void ScatterAddRows(DeviceBuffer<float> source, DeviceBuffer<int> indices, DeviceBuffer<float> target, int rows, int width)
    {
        Enter();
        ulong src = Own(source, (long)rows * width, nameof(source)).Pointer, index = Own(indices, rows, nameof(indices)).Pointer, dst = Own(target, 0, nameof(target)).Pointer;
        if (rows == 0 || width == 0) return;
        long targetRows = target.Length / width;
        ulong error = IndexErrorPointer;
        void** arguments = stackalloc void*[] { &src, &index, &dst, &rows, &width, &targetRows, &error };
        CheckLaunch(CudaDriverApi.LaunchKernel(_scatterAddRows, (uint)rows, 1, 1, BlockFor(width), 1, 1, 0, Stream, arguments, null), "scatter_add_rows");
    }

    /// <inheritdoc />
    public void BiasActivation(DeviceBuffer<float> input, DeviceBuffer<float> bias, DeviceBuffer<float> preActivation, DeviceBuffer<float> output,
        int rows, int width, bool gelu)
    {
        Enter();
        long cells = (long)rows * width;
        ulong x = Own(input, cells, nameof(input)).Pointer, bs = Own(bias, width, nameof(bias)).Pointer;
        ulong pre = Own(preActivation, cells, nameof(preActivation)).Pointer, y = Own(output, cells, nameof(output)).Pointer;
        if (cells == 0) return;
        int applyGelu = gelu ? 1 : 0;
        void** arguments = stackalloc void*[] { &x, &bs, &pre, &y, &rows, &width, &applyGelu };
        CheckLaunch(CudaDriverApi.LaunchKernel(_biasGeluKeepPreactivation, GridFor(cells), 1, 1, ElementwiseBlock, 1, 1, 0, Stream, arguments, null), "bias_gelu_keep_preactivation");
    }

    /// <inheritdoc />
    public void GeluBackward(DeviceBuffer<float> preActivation, DeviceBuffer<float> upstream, DeviceBuffer<float> gradient, long count)
    {
        Enter();
        ulong pre = Own(preActivation, count, nameof(preActivation)).Pointer, up = Own(upstream, count, nameof(upstream)).Pointer, grad = Own(gradient, count, nameof(gradient)).Pointer;
        if (count == 0) return;
        void** arguments = stackalloc void*[] { &pre, &up, &grad, &count };
        CheckLaunch(CudaDriverApi.LaunchKernel(_geluBackward, GridFor(count), 1, 1, ElementwiseBlock, 1, 1, 0, Stream, arguments, null), "gelu_backward");
    }

    /// <inheritdoc />
    public void ColumnSums(DeviceBuffer<float> matrix, DeviceBuffer<float> columnSums, int rows, int width)
    {
        Enter();
        ulong x = Own(matrix, (long)rows * width, nameof(matrix)).Pointer, sums = Own(columnSums, width, nameof(columnSums)).Pointer;
        if (width == 0) return;
        // About four blocks per SM: a probe's [targets, classes] gradient has ~32 column blocks, so its rows are sliced.
        int columnBlocks = (width + 31) / 32;
        int slices = (int)Math.Clamp(Math.Min((rows + 63L) / 64, (4L * Device.Multiprocessors + columnBlocks - 1) / columnBlocks), 1, 65535);
        int rowsPerSlice = (int)((rows + (long)slices - 1) / slices);
        ulong target = sums;
        if (slices > 1)
        {
            long bytes = (long)slices * width * sizeof(float);
            if (_columnPartials is null || _columnPartials.Bytes < bytes)
            {
                _stream.Synchronize(); // queued work may still read the old scratch
                _columnPartials?.Dispose();
                _columnPartials = null;
                _columnPartials = CudaDeviceMemory.Allocate(_context, bytes);
            }
            target = _columnPartials.Pointer;
        }
        void** arguments = stackalloc void*[] { &x, &target, &rows, &width, &rowsPerSlice };
        CheckLaunch(CudaDriverApi.LaunchKernel(_columnSums, (uint)columnBlocks, (uint)slices, 1, 32, 8, 1, 0, Stream, arguments, null), "column_sums");
        if (slices == 1) return;
        void** finish = stackalloc void*[] { &target, &sums, &slices, &width };
        CheckLaunch(CudaDriverApi.LaunchKernel(_columnSumsFinish, GridFor(width), 1, 1, ElementwiseBlock, 1, 1, 0, Stream, finish, null), "column_sums_finish");
    }

    /// <inheritdoc />
    public void SoftmaxCrossEntropy(DeviceBuffer<float> logits, DeviceBuffer<int> targets, DeviceBuffer<float> lossNats, DeviceBuffer<int> argmax,
        int rows, int classes, float gradientScale, bool writeGradient)
    {
        Enter();
        ulong x = Own(logits, (long)rows * classes, nameof(logits)).Pointer, target = Own(targets, rows, nameof(targets)).Pointer;
        ulong loss = Own(lossNats, rows, nameof(lossNats)).Pointer, best = Own(argmax, rows, nameof(argmax)).Pointer;
        if (rows == 0 || classes == 0) return;
        int write = writeGradient ? 1 : 0;
        ulong error = IndexErrorPointer;
        void** arguments = stackalloc void*[] { &x, &target, &loss, &best, &rows, &classes, &gradientScale, &write, &error };
        CheckLaunch(CudaDriverApi.LaunchKernel(_softmaxCrossEntropy, (uint)rows, 1, 1, BlockFor(classes), 1, 1, 0, Stream, arguments, null), "softmax_cross_entropy");
    }

    /// <inheritdoc />
    public void AdamW(DeviceBuffer<float> parameters, DeviceBuffer<float> gradients, DeviceBuffer<float> firstMoment, DeviceBuffer<float> secondMoment,
        long count, AdamWStep step)
    {
        Enter();
        ulong p = Own(parameters, count, nameof(parameters)).Pointer, g = Own(gradients, count, nameof(gradients)).Pointer;
        ulong m = Own(firstMoment, count, nameof(firstMoment)).Pointer, v = Own(secondMoment, count, nameof(secondMoment)).Pointer;
        if (count == 0) return;
        float* hyper = stackalloc float[] { step.LearningRate, step.Beta1, step.Beta2, step.Epsilon, step.WeightDecay, step.Step };
        ulong hyperPointer = _adamHyperParameters.Pointer;
        CudaDriverApi.Check(CudaDriverApi.CopyHostToDeviceAsync(hyperPointer, hyper, 6 * sizeof(float), Stream), "cuMemcpyHtoDAsync");
        void** arguments = stackalloc void*[] { &p, &g, &m, &v, &count, &hyperPointer };
        CheckLaunch(CudaDriverApi.LaunchKernel(_adamW, GridFor(count), 1, 1, ElementwiseBlock, 1, 1, 0, Stream, arguments, null), "adamw_step");
    }

    /// <inheritdoc />
    public void Zero(DeviceBuffer<float> buffer, long count)
    {
        Enter();
        ulong pointer = Own(buffer, count, nameof(buffer)).Pointer;
        if (count == 0) return;
        CudaDriverApi.Check(CudaDriverApi.Memset32Async(pointer, 0, (nuint)count, Stream), "cuMemsetD32Async");
    }

    /// <inheritdoc />
    public void PoolSentences(DeviceBuffer<float> layer, DeviceBuffer<int> attentionMask, DeviceBuffer<int> isTarget, DeviceBuffer<float> output,
        int batch, int seq, int width, Pooling.PoolingMode mode)
    {
        Enter();
        long cells = (long)batch * seq;
        ulong states = Own(layer, cells * width, nameof(layer)).Pointer, mask = Own(attentionMask, cells, nameof(attentionMask)).Pointer;
        ulong targets = Own(isTarget, cells, nameof(isTarget)).Pointer, pooled = Own(output, (long)batch * width, nameof(output)).Pointer;
        if (batch == 0 || width == 0) return;
        int modeCode = (int)mode;
        void** arguments = stackalloc void*[] { &states, &mask, &targets, &pooled, &batch, &seq, &width, &modeCode };
        CheckLaunch(CudaDriverApi.LaunchKernel(_poolSentences, (uint)batch, 1, 1, BlockFor(width), 1, 1, 0, Stream, arguments, null), "pool_sentences");
    }

    /// <inheritdoc />
    public PredictionCounts CountPredictions(DeviceBuffer<int> predictions, DeviceBuffer<int> targets, DeviceBuffer<int> positions,
        long count, int classes, int positionCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfNegative(classes);
        ArgumentOutOfRangeException.ThrowIfNegative(positionCount);
        Enter();
        ulong predicted = Own(predictions, count, nameof(predictions)).Pointer, target = Own(targets, count, nameof(targets)).Pointer;
        ulong position = Own(positions, count, nameof(positions)).Pointer;
        // One zeroed block of 64-bit counters: [errors, out of range, histogram[classes], trials[positions], errors[positions]].
        long counters = 2L + classes + 2L * positionCount;
        if (_counters is null || _counters.Bytes < counters * sizeof(ulong))
        {
            _stream.Synchronize(); // queued work may still use the old scratch
            _counters?.Dispose();
            _counters = null;
            _counters = CudaDeviceMemory.Allocate(_context, counters * sizeof(ulong));
        }
        CudaDeviceMemory memory = _counters;
        CudaDriverApi.Check(CudaDriverApi.MemsetBytesAsync(memory.Pointer, 0, (nuint)(counters * sizeof(ulong)), Stream), "cuMemsetD8Async");
        ulong errors = memory.Pointer, outOfRange = errors + sizeof(ulong), histogram = outOfRange + sizeof(ulong);
        ulong trials = histogram + (ulong)classes * sizeof(ulong), positionErrors = trials + (ulong)positionCount * sizeof(ulong);
        if (count > 0)
        {
            uint grid = GridFor(count);
            void** errorArguments = stackalloc void*[] { &predicted, &target, &count, &errors };
            CheckLaunch(CudaDriverApi.LaunchKernel(_countErrors, grid, 1, 1, ElementwiseBlock, 1, 1, 0, Stream, errorArguments, null), "count_errors");
            void** histogramArguments = stackalloc void*[] { &target, &count, &classes, &histogram, &outOfRange };
            CheckLaunch(CudaDriverApi.LaunchKernel(_targetHistogram, grid, 1, 1, ElementwiseBlock, 1, 1, 0, Stream, histogramArguments, null), "target_histogram");
            if (positionCount > 0)
            {
                void** positionArguments = stackalloc void*[] { &predicted, &target, &position, &count, &positionCount, &trials, &positionErrors };
                CheckLaunch(CudaDriverApi.LaunchKernel(_perPositionCounts, grid, 1, 1, ElementwiseBlock, 1, 1, 0, Stream, positionArguments, null), "per_position_counts");
            }
        }
        var host = new long[counters];
        // The wait stays inside the fixed block: an emulated device in deferred mode writes the array only then.
        fixed (long* pointer = host)
            if (!TryStagedDownload(pointer, memory.Pointer, counters * sizeof(ulong)))
            {
                CudaDriverApi.Check(CudaDriverApi.CopyDeviceToHostAsync(pointer, memory.Pointer, (nuint)(counters * sizeof(ulong)), Stream), "cuMemcpyDtoHAsync");
                SynchronizeChecked();
            }
        return new PredictionCounts(host[0], host[2..(2 + classes)], host[1], host[(2 + classes)..(2 + classes + positionCount)], host[(2 + classes + positionCount)..]);
    }

    /// <summary>Waits for queued work, then frees the scratch, the kernels, cuBLAS, the stream and the context (in that order).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        try
        {
            _context.MakeCurrent();
            _stream.Synchronize();
        }
        catch (CudaException)
        {
            // A sticky kernel fault must not keep the handles from being released.
        }
        DisposeNative();
    }

    private void DisposeNative()
    {
        _attentionScores?.Dispose();
        DisposeBackwardScratch();
        _counters?.Dispose();
        _columnPartials?.Dispose();
        _narrowedInput?.Dispose();
        _adamHyperParameters?.Dispose();
        _indexError?.Dispose();
        DisposeStaging();
        foreach (CudaModuleHandle module in _modules) module.Dispose();
        _cublas?.Dispose();
        _stream?.Dispose();
        _context?.Dispose();
    }
}
