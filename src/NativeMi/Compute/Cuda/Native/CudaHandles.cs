using System.Runtime.InteropServices;

namespace NativeMi.Compute.Cuda.Native;

/// <summary>
/// A retained primary context of one device. Everything created in the context holds a reference to
/// this handle, so the context is released only after the last stream, module and allocation is gone,
/// whatever order the finalizers run in.
/// </summary>
internal sealed class CudaContextHandle : SafeHandle
{
    /// <summary>An empty handle, as the interop marshaller creates them (CA1419); <see cref="RetainPrimary"/> is the way to get a live one.</summary>
    public CudaContextHandle() : base(0, ownsHandle: true) { }

    /// <summary>The device ordinal the context belongs to.</summary>
    public int Device { get; private set; }

    /// <inheritdoc />
    public override bool IsInvalid => handle == 0;

    /// <summary>Retains the primary context of <paramref name="device"/> and makes it current on this thread.</summary>
    internal static CudaContextHandle RetainPrimary(int device)
    {
        CudaDriverApi.Check(CudaDriverApi.PrimaryContextRetain(out nint context, device), $"cuDevicePrimaryCtxRetain(device {device})");
        var result = new CudaContextHandle { Device = device };
        result.SetHandle(context);
        try
        {
            CudaDriverApi.Check(CudaDriverApi.ContextSetCurrent(context), "cuCtxSetCurrent");
        }
        catch
        {
            // The retain must be matched by a release, or the primary context outlives the failed backend.
            result.Dispose();
            throw;
        }
        return result;
    }

    /// <summary>Makes the context current on the calling thread (a cheap thread-local switch in the driver).</summary>
    internal void MakeCurrent() => CudaDriverApi.Check(CudaDriverApi.ContextSetCurrent(handle), "cuCtxSetCurrent");

    /// <summary>Makes the context current on a finalizer or other foreign thread before a release call; failures are ignored.</summary>
    internal void MakeCurrentForRelease() => _ = CudaDriverApi.ContextSetCurrent(handle);

    /// <inheritdoc />
    protected override bool ReleaseHandle() => CudaDriverApi.PrimaryContextRelease(Device) == 0;
}

/// <summary>Base for handles created inside a context: keeps the context alive and current while releasing.</summary>
internal abstract class CudaContextBoundHandle : SafeHandle
{
    private CudaContextHandle? _context;

    /// <summary>An empty handle.</summary>
    protected CudaContextBoundHandle() : base(0, ownsHandle: true) { }

    /// <inheritdoc />
    public override bool IsInvalid => handle == 0;

    /// <summary>Takes ownership of <paramref name="value"/>, created in <paramref name="context"/>.</summary>
    internal void Attach(CudaContextHandle context, nint value)
    {
        bool added = false;
        context.DangerousAddRef(ref added);
        _context = context;
        SetHandle(value);
    }

    /// <summary>Frees the native object; the context is current when this runs.</summary>
    protected abstract bool ReleaseInContext(nint value);

    /// <inheritdoc />
    protected sealed override bool ReleaseHandle()
    {
        CudaContextHandle? context = _context;
        if (context is null) return true;
        context.MakeCurrentForRelease();
        bool released = ReleaseInContext(handle);
        context.DangerousRelease();
        return released;
    }
}

/// <summary>Device memory from cuMemAlloc.</summary>
internal sealed class CudaDeviceMemory : CudaContextBoundHandle
{
    /// <summary>Size in bytes.</summary>
    public long Bytes { get; private set; }

    /// <summary>The device address.</summary>
    public ulong Pointer => (ulong)handle;

    /// <summary>Allocates <paramref name="bytes"/> (at least one 4-byte word, because cuMemAlloc rejects zero).</summary>
    /// <exception cref="DeviceOutOfMemoryException">The device has not that much free memory.</exception>
    internal static CudaDeviceMemory Allocate(CudaContextHandle context, long bytes)
    {
        long size = Math.Max(4, bytes);
        int status = CudaDriverApi.MemoryAllocate(out ulong pointer, (nuint)size);
        if (status == DeviceOutOfMemoryException.CudaErrorOutOfMemory)
            throw DeviceOutOfMemoryException.WithDeviceMemory($"cuMemAlloc({size} bytes)", CudaDriverApi.StatusName(status), status, size);
        CudaDriverApi.Check(status, $"cuMemAlloc({size} bytes)");
        var memory = new CudaDeviceMemory { Bytes = bytes };
        memory.Attach(context, (nint)pointer);
        return memory;
    }

    /// <inheritdoc />
    protected override bool ReleaseInContext(nint value) => CudaDriverApi.MemoryFree((ulong)value) == 0;
}

/// <summary>Page-locked host memory from cuMemHostAlloc, for asynchronous copies that overlap with kernels.</summary>
internal sealed unsafe class PinnedHostMemory : CudaContextBoundHandle
{
    /// <summary>Size in bytes.</summary>
    public long Bytes { get; private set; }

    /// <summary>The memory as a span of <typeparamref name="T"/>.</summary>
    public Span<T> AsSpan<T>() where T : unmanaged => new((void*)handle, checked((int)(Bytes / sizeof(T))));

    /// <summary>Allocates <paramref name="bytes"/> of pinned memory usable from every context.</summary>
    internal static PinnedHostMemory Allocate(CudaContextHandle context, long bytes)
    {
        CudaDriverApi.Check(CudaDriverApi.HostAllocate(out void* pointer, (nuint)Math.Max(4, bytes), CudaDriverApi.HostAllocPortable), $"cuMemHostAlloc({bytes} bytes)");
        var memory = new PinnedHostMemory { Bytes = bytes };
        memory.Attach(context, (nint)pointer);
        return memory;
    }

    /// <inheritdoc />
    protected override bool ReleaseInContext(nint value) => CudaDriverApi.HostFree((void*)value) == 0;
}

/// <summary>A CUDA stream.</summary>
internal sealed class CudaStreamHandle : CudaContextBoundHandle
{
    /// <summary>Creates a stream that does not synchronise with the legacy default stream.</summary>
    internal static CudaStreamHandle Create(CudaContextHandle context)
    {
        CudaDriverApi.Check(CudaDriverApi.StreamCreate(out nint stream, CudaDriverApi.StreamNonBlocking), "cuStreamCreate");
        var result = new CudaStreamHandle();
        result.Attach(context, stream);
        return result;
    }

    /// <summary>Blocks until all work queued on the stream has finished; kernel faults surface here.</summary>
    internal void Synchronize() => CudaDriverApi.Check(CudaDriverApi.StreamSynchronize(handle), "cuStreamSynchronize");

    /// <inheritdoc />
    protected override bool ReleaseInContext(nint value) => CudaDriverApi.StreamDestroy(value) == 0;
}

/// <summary>A CUDA event (for timing kernels on the stream).</summary>
internal sealed class CudaEventHandle : CudaContextBoundHandle
{
    /// <summary>Creates an event.</summary>
    internal static CudaEventHandle Create(CudaContextHandle context)
    {
        CudaDriverApi.Check(CudaDriverApi.EventCreate(out nint cudaEvent, CudaDriverApi.EventDefault), "cuEventCreate");
        var result = new CudaEventHandle();
        result.Attach(context, cudaEvent);
        return result;
    }

    /// <summary>Records the event on <paramref name="stream"/>.</summary>
    internal void Record(CudaStreamHandle stream) =>
        CudaDriverApi.Check(CudaDriverApi.EventRecord(handle, stream.DangerousGetHandle()), "cuEventRecord");

    /// <summary>Milliseconds between two recorded events (waits for the later one).</summary>
    internal static float ElapsedMilliseconds(CudaEventHandle start, CudaEventHandle end)
    {
        CudaDriverApi.Check(CudaDriverApi.EventSynchronize(end.DangerousGetHandle()), "cuEventSynchronize");
        CudaDriverApi.Check(CudaDriverApi.EventElapsedTime(out float milliseconds, start.DangerousGetHandle(), end.DangerousGetHandle()), "cuEventElapsedTime");
        return milliseconds;
    }

    /// <inheritdoc />
    protected override bool ReleaseInContext(nint value) => CudaDriverApi.EventDestroy(value) == 0;
}

/// <summary>A loaded module (compiled kernels).</summary>
internal sealed unsafe class CudaModuleHandle : CudaContextBoundHandle
{
    /// <summary>The file the module was compiled from, for messages.</summary>
    public string SourceName { get; private set; } = "";

    /// <summary>Loads PTX text (the driver compiles it for the current device).</summary>
    internal static CudaModuleHandle LoadPtx(CudaContextHandle context, string sourceName, string ptx) =>
        LoadImage(context, sourceName, System.Text.Encoding.UTF8.GetBytes(ptx + "\0"));

    /// <summary>Loads a module image: NUL-terminated PTX or a cubin (cuModuleLoadData takes either).</summary>
    internal static CudaModuleHandle LoadImage(CudaContextHandle context, string sourceName, byte[] image)
    {
        nint module;
        fixed (byte* pointer = image)
            CudaDriverApi.Check(CudaDriverApi.ModuleLoadData(out module, pointer), $"cuModuleLoadData({sourceName})");
        var result = new CudaModuleHandle { SourceName = sourceName };
        result.Attach(context, module);
        return result;
    }

    /// <summary>The kernel named <paramref name="kernelName"/> (valid while this module is loaded).</summary>
    internal nint Function(string kernelName)
    {
        byte[] name = System.Text.Encoding.UTF8.GetBytes(kernelName + "\0");
        nint function;
        fixed (byte* pointer = name)
            CudaDriverApi.Check(CudaDriverApi.ModuleGetFunction(out function, handle, pointer), $"cuModuleGetFunction({SourceName}: {kernelName})");
        return function;
    }

    /// <inheritdoc />
    protected override bool ReleaseInContext(nint value) => CudaDriverApi.ModuleUnload(value) == 0;
}

/// <summary>A cuBLAS handle bound to one stream.</summary>
internal sealed class CublasHandle : CudaContextBoundHandle
{
    /// <summary>Creates a handle that queues its work on <paramref name="stream"/>; TF32 tensor cores only when asked for.</summary>
    internal static CublasHandle Create(CudaContextHandle context, CudaStreamHandle stream, bool allowTf32)
    {
        CudaLibraries.Require(CudaLibrary.Cublas);
        CublasApi.Check(CublasApi.Create(out nint cublas), "cublasCreate");
        var result = new CublasHandle();
        result.Attach(context, cublas);
        CublasApi.Check(CublasApi.SetStream(cublas, stream.DangerousGetHandle()), "cublasSetStream");
        // Pedantic keeps fp32 GEMMs in full fp32 even when NVIDIA_TF32_OVERRIDE or a library default would allow TF32.
        CublasApi.Check(CublasApi.SetMathMode(cublas, allowTf32 ? CublasApi.Tf32TensorOpMath : CublasApi.PedanticMath), "cublasSetMathMode");
        return result;
    }

    /// <inheritdoc />
    protected override bool ReleaseInContext(nint value) => CublasApi.Destroy(value) == 0;
}
