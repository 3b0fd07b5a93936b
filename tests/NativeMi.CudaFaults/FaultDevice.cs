using System.Runtime.InteropServices;
using NativeMi.Compute.Cuda;
using NativeMi.Compute.Cuda.Native;

namespace NativeMi.CudaFaults;

/// <summary>
/// Device 0 as the engine opens it (its library loader, primary context, stream, cuBLAS handle, NVRTC compiler and
/// module loader), without <see cref="CudaBackend"/>'s fixed launch shapes, so a case can launch an engine kernel or
/// call cuBLAS exactly as the backend does except for the one argument it gets wrong.
/// </summary>
internal sealed unsafe class FaultDevice : IDisposable
{
    private readonly CudaContextHandle _context;
    private readonly List<SafeHandle> _owned = [];

    public FaultDevice()
    {
        Info = CudaDevices.List() is { Count: > 0 } devices ? devices[0] : throw new CudaException("CUDA_ERROR_NO_DEVICE", 100, "cuDeviceGetCount");
        _context = CudaContextHandle.RetainPrimary(Info.Ordinal);
        Stream = Own(CudaStreamHandle.Create(_context));
        Cublas = Own(CublasHandle.Create(_context, Stream, allowTf32: false));
    }

    public CudaDeviceInfo Info { get; }

    public CudaStreamHandle Stream { get; }

    public CublasHandle Cublas { get; }

    /// <summary>Compiles one embedded kernel file with NVRTC (uncached, so each run gives the driver fresh PTX) and returns one of its kernels.</summary>
    public nint Kernel(string file, string name)
    {
        KernelSource source = KernelSource.Embedded(file);
        CompiledKernel ptx = new KernelCompiler(useCache: false).Compile(source, Info.ComputeCapabilityMajor, Info.ComputeCapabilityMinor);
        return Own(CudaModuleHandle.LoadPtx(_context, file, ptx.Ptx)).Function(name);
    }

    /// <summary>Device memory left as cuMemAlloc gives it (the emulator fills it with NaN), unlike the backend's Allocate, which zeroes.</summary>
    public ulong Allocate<T>(long count) where T : unmanaged => Own(CudaDeviceMemory.Allocate(_context, count * sizeof(T))).Pointer;

    public ulong Zeroed<T>(long count) where T : unmanaged
    {
        ulong pointer = Allocate<T>(count);
        CudaDriverApi.Check(CudaDriverApi.MemsetBytesAsync(pointer, 0, (nuint)(count * sizeof(T)), Stream.DangerousGetHandle()), "cuMemsetD8Async");
        return pointer;
    }

    /// <summary>Copies from pageable memory, which the driver stages at the call, as <see cref="CudaBackend.Upload{T}"/> does.</summary>
    public ulong Upload<T>(ReadOnlySpan<T> data) where T : unmanaged
    {
        ulong pointer = Allocate<T>(data.Length);
        fixed (T* source = data)
            CudaDriverApi.Check(CudaDriverApi.CopyHostToDeviceAsync(pointer, source, (nuint)(data.Length * sizeof(T)), Stream.DangerousGetHandle()), "cuMemcpyHtoDAsync");
        return pointer;
    }

    /// <summary>Queues the copy and waits for the stream, as <see cref="CudaBackend.Download{T}"/> does.</summary>
    public T[] Download<T>(ulong pointer, int count) where T : unmanaged
    {
        var result = new T[count];
        fixed (T* destination = result)
            CudaDriverApi.Check(CudaDriverApi.CopyDeviceToHostAsync(destination, pointer, (nuint)(count * sizeof(T)), Stream.DangerousGetHandle()), "cuMemcpyDtoHAsync");
        Stream.Synchronize();
        return result;
    }

    public PinnedHostMemory Pinned<T>(int count) where T : unmanaged => Own(PinnedHostMemory.Allocate(_context, (long)count * sizeof(T)));

    public void Launch(nint kernel, string name, uint grid, uint block, void** arguments) =>
        CudaDriverApi.Check(CudaDriverApi.LaunchKernel(kernel, grid, 1, 1, block, 1, 1, 0, Stream.DangerousGetHandle(), arguments, null), $"cuLaunchKernel({name})");

    private T Own<T>(T handle) where T : SafeHandle
    {
        _owned.Add(handle);
        return handle;
    }

    // Newest first, the context last: the same order CudaBackend.Dispose releases in. After a sticky fault the
    // releases fail, which must not hide the fault the case reports.
    public void Dispose()
    {
        try
        {
            _context.MakeCurrent();
            Stream.Synchronize();
        }
        catch (CudaException)
        {
        }
        for (int i = _owned.Count - 1; i >= 0; i--) _owned[i].Dispose();
        _context.Dispose();
    }
}
