using System.Runtime.InteropServices;

namespace NativeMi.Compute.Cuda.Native;

/// <summary>
/// CUDA driver API entry points (the subset NativeMi uses). Versioned names (_v2) are the ones the
/// CUDA 11-13 headers map the plain names to; device pointers are 64-bit integers (CUdeviceptr).
/// </summary>
internal static unsafe partial class CudaDriverApi
{
    private const string Library = CudaLibraries.DriverImportName;

    internal const int AttributeMultiprocessorCount = 16;
    internal const int AttributeComputeCapabilityMajor = 75;
    internal const int AttributeComputeCapabilityMinor = 76;
    internal const int AttributeMaxSharedMemoryPerBlockOptin = 97;
    internal const int FunctionAttributeMaxDynamicSharedSizeBytes = 8;
    internal const uint StreamNonBlocking = 1;
    internal const uint EventDefault = 0;
    internal const uint HostAllocPortable = 1;

    [LibraryImport(Library, EntryPoint = "cuInit")] internal static partial int Init(uint flags);
    [LibraryImport(Library, EntryPoint = "cuDriverGetVersion")] internal static partial int DriverGetVersion(out int version);
    [LibraryImport(Library, EntryPoint = "cuGetErrorName")] internal static partial int GetErrorName(int status, out byte* name);
    [LibraryImport(Library, EntryPoint = "cuGetErrorString")] internal static partial int GetErrorString(int status, out byte* text);

    [LibraryImport(Library, EntryPoint = "cuDeviceGetCount")] internal static partial int DeviceGetCount(out int count);
    [LibraryImport(Library, EntryPoint = "cuDeviceGet")] internal static partial int DeviceGet(out int device, int ordinal);
    [LibraryImport(Library, EntryPoint = "cuDeviceGetName")] internal static partial int DeviceGetName(byte* name, int length, int device);
    [LibraryImport(Library, EntryPoint = "cuDeviceGetAttribute")] internal static partial int DeviceGetAttribute(out int value, int attribute, int device);
    [LibraryImport(Library, EntryPoint = "cuDeviceTotalMem_v2")] internal static partial int DeviceTotalMemory(out nuint bytes, int device);

    [LibraryImport(Library, EntryPoint = "cuDevicePrimaryCtxRetain")] internal static partial int PrimaryContextRetain(out nint context, int device);
    [LibraryImport(Library, EntryPoint = "cuDevicePrimaryCtxRelease_v2")] internal static partial int PrimaryContextRelease(int device);
    [LibraryImport(Library, EntryPoint = "cuCtxSetCurrent")] internal static partial int ContextSetCurrent(nint context);
    [LibraryImport(Library, EntryPoint = "cuCtxGetCurrent")] internal static partial int ContextGetCurrent(out nint context);
    [LibraryImport(Library, EntryPoint = "cuCtxSynchronize")] internal static partial int ContextSynchronize();

    [LibraryImport(Library, EntryPoint = "cuMemAlloc_v2")] internal static partial int MemoryAllocate(out ulong devicePointer, nuint bytes);
    [LibraryImport(Library, EntryPoint = "cuMemFree_v2")] internal static partial int MemoryFree(ulong devicePointer);
    [LibraryImport(Library, EntryPoint = "cuMemGetInfo_v2")] internal static partial int MemoryGetInfo(out nuint freeBytes, out nuint totalBytes);
    [LibraryImport(Library, EntryPoint = "cuMemHostAlloc")] internal static partial int HostAllocate(out void* hostPointer, nuint bytes, uint flags);
    [LibraryImport(Library, EntryPoint = "cuMemFreeHost")] internal static partial int HostFree(void* hostPointer);
    [LibraryImport(Library, EntryPoint = "cuMemcpyHtoD_v2")] internal static partial int CopyHostToDevice(ulong destination, void* source, nuint bytes);
    [LibraryImport(Library, EntryPoint = "cuMemcpyDtoH_v2")] internal static partial int CopyDeviceToHost(void* destination, ulong source, nuint bytes);
    [LibraryImport(Library, EntryPoint = "cuMemcpyHtoDAsync_v2")] internal static partial int CopyHostToDeviceAsync(ulong destination, void* source, nuint bytes, nint stream);
    [LibraryImport(Library, EntryPoint = "cuMemcpyDtoHAsync_v2")] internal static partial int CopyDeviceToHostAsync(void* destination, ulong source, nuint bytes, nint stream);
    [LibraryImport(Library, EntryPoint = "cuMemcpyDtoDAsync_v2")] internal static partial int CopyDeviceToDeviceAsync(ulong destination, ulong source, nuint bytes, nint stream);
    [LibraryImport(Library, EntryPoint = "cuMemsetD8Async")] internal static partial int MemsetBytesAsync(ulong destination, byte value, nuint count, nint stream);
    [LibraryImport(Library, EntryPoint = "cuMemsetD32Async")] internal static partial int Memset32Async(ulong destination, uint value, nuint count, nint stream);

    [LibraryImport(Library, EntryPoint = "cuStreamCreate")] internal static partial int StreamCreate(out nint stream, uint flags);
    [LibraryImport(Library, EntryPoint = "cuStreamDestroy_v2")] internal static partial int StreamDestroy(nint stream);
    [LibraryImport(Library, EntryPoint = "cuStreamSynchronize")] internal static partial int StreamSynchronize(nint stream);

    [LibraryImport(Library, EntryPoint = "cuEventCreate")] internal static partial int EventCreate(out nint cudaEvent, uint flags);
    [LibraryImport(Library, EntryPoint = "cuEventDestroy_v2")] internal static partial int EventDestroy(nint cudaEvent);
    [LibraryImport(Library, EntryPoint = "cuEventRecord")] internal static partial int EventRecord(nint cudaEvent, nint stream);
    [LibraryImport(Library, EntryPoint = "cuEventSynchronize")] internal static partial int EventSynchronize(nint cudaEvent);
    [LibraryImport(Library, EntryPoint = "cuEventElapsedTime")] internal static partial int EventElapsedTime(out float milliseconds, nint start, nint end);

    [LibraryImport(Library, EntryPoint = "cuModuleLoadData")] internal static partial int ModuleLoadData(out nint module, void* image);
    [LibraryImport(Library, EntryPoint = "cuModuleUnload")] internal static partial int ModuleUnload(nint module);
    [LibraryImport(Library, EntryPoint = "cuModuleGetFunction")] internal static partial int ModuleGetFunction(out nint function, nint module, byte* name);
    [LibraryImport(Library, EntryPoint = "cuFuncSetAttribute")] internal static partial int FunctionSetAttribute(nint function, int attribute, int value);

    [LibraryImport(Library, EntryPoint = "cuLaunchKernel")]
    internal static partial int LaunchKernel(nint function, uint gridX, uint gridY, uint gridZ, uint blockX, uint blockY, uint blockZ,
        uint sharedMemoryBytes, nint stream, void** kernelParameters, void** extra);

    /// <summary>The driver's name for a status (CUDA_ERROR_OUT_OF_MEMORY), or a numeric fallback.</summary>
    internal static string StatusName(int status) =>
        GetErrorName(status, out byte* name) == 0 && name != null ? Marshal.PtrToStringUTF8((nint)name) ?? $"CUDA_ERROR_{status}" : $"CUDA_ERROR_{status}";

    /// <summary>Free and total memory of the current context's device, or nulls when the driver cannot say (for error messages).</summary>
    internal static (long? Free, long? Total) TryMemoryInfo()
    {
        try
        {
            return MemoryGetInfo(out nuint free, out nuint total) == 0 ? ((long)free, (long)total) : (null, null);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return (null, null);
        }
    }

    /// <summary>Throws a <see cref="CudaException"/> named after the driver status unless it is CUDA_SUCCESS.</summary>
    internal static void Check(int status, string call)
    {
        if (status == 0) return;
        string? description = GetErrorString(status, out byte* text) == 0 && text != null ? Marshal.PtrToStringUTF8((nint)text) : null;
        throw new CudaException(StatusName(status), status, call, description);
    }
}
