using System.Globalization;
using NativeMi.Compute.Cuda.Native;

namespace NativeMi.Compute.Cuda;

/// <summary>
/// The GPU ran out of memory: cuMemAlloc returned CUDA_ERROR_OUT_OF_MEMORY, or cuBLAS could not allocate its
/// workspace (CUBLAS_STATUS_ALLOC_FAILED). An environment error, not a bug: the message states what was asked
/// for, what the device had, and that a smaller batch needs less. The library's own status is kept in the
/// inner <see cref="CudaException"/>.
/// </summary>
internal sealed class DeviceOutOfMemoryException : EnvironmentException
{
    /// <summary>The driver's status for a failed allocation.</summary>
    public const int CudaErrorOutOfMemory = 2;

    /// <summary>cuBLAS's status for a failed workspace allocation.</summary>
    public const int CublasStatusAllocFailed = 3;

    /// <summary>Creates the exception.</summary>
    /// <param name="call">The call that failed ("cuMemAlloc(8589934592 bytes)", "cublasSgemm").</param>
    /// <param name="statusName">The library's status name (CUDA_ERROR_OUT_OF_MEMORY, CUBLAS_STATUS_ALLOC_FAILED).</param>
    /// <param name="statusCode">The numeric status.</param>
    /// <param name="requestedBytes">Bytes asked for, when the call says (cuBLAS does not).</param>
    /// <param name="freeBytes">Free device memory at the time of the failure, when the driver could tell.</param>
    /// <param name="totalBytes">Total device memory, when the driver could tell.</param>
    public DeviceOutOfMemoryException(string call, string statusName, int statusCode, long? requestedBytes, long? freeBytes, long? totalBytes)
        : base(FormatMessage(call, statusName, requestedBytes, freeBytes, totalBytes), new CudaException(statusName, statusCode, call))
    {
        Call = call;
        StatusName = statusName;
        RequestedBytes = requestedBytes;
        FreeBytes = freeBytes;
        TotalBytes = totalBytes;
    }

    /// <summary>The call that failed.</summary>
    public string Call { get; }

    /// <summary>The library's status name.</summary>
    public string StatusName { get; }

    /// <summary>Bytes asked for, or null when unknown.</summary>
    public long? RequestedBytes { get; }

    /// <summary>Free device memory at the failure, or null when unknown.</summary>
    public long? FreeBytes { get; }

    /// <summary>Total device memory, or null when unknown.</summary>
    public long? TotalBytes { get; }

    /// <summary>The exception for a failed call, with the current context's free and total memory when the driver can tell.</summary>
    internal static DeviceOutOfMemoryException WithDeviceMemory(string call, string statusName, int statusCode, long? requestedBytes)
    {
        (long? free, long? total) = CudaDriverApi.TryMemoryInfo();
        return new DeviceOutOfMemoryException(call, statusName, statusCode, requestedBytes, free, total);
    }

    private static string FormatMessage(string call, string statusName, long? requestedBytes, long? freeBytes, long? totalBytes)
    {
        string requested = requestedBytes is long r ? $"{Size(r)} requested" : "cuBLAS could not allocate its workspace";
        string device = freeBytes is long f && totalBytes is long t ? $"; the device has {Size(f)} free of {Size(t)}"
            : totalBytes is long total ? $"; the device has {Size(total)} in all" : "";
        return $"GPU out of memory: {call} failed with {statusName}: {requested}{device}; " +
               "try a smaller --batch-size (or --probe-batch-size), or --backend cpu";
    }

    /// <summary>"8.00 GiB (8589934592 bytes)": a readable size with the exact count.</summary>
    private static string Size(long bytes)
    {
        string[] units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
        double value = bytes;
        int unit = 0;
        while (value >= 1024 && unit < units.Length - 1) { value /= 1024; unit++; }
        return unit == 0
            ? string.Create(CultureInfo.InvariantCulture, $"{bytes} bytes")
            : string.Create(CultureInfo.InvariantCulture, $"{value:F2} {units[unit]} ({bytes} bytes)");
    }
}
