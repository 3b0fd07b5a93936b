using NativeMi.Compute.Cuda.Native;

namespace NativeMi.Compute.Cuda;

/// <summary>One CUDA device as the driver describes it.</summary>
/// <param name="Ordinal">Index for cuDeviceGet.</param>
/// <param name="Name">Marketing name ("NVIDIA H200").</param>
/// <param name="ComputeCapabilityMajor">Compute capability, major part (9 for Hopper).</param>
/// <param name="ComputeCapabilityMinor">Compute capability, minor part.</param>
/// <param name="Multiprocessors">Streaming multiprocessor count.</param>
/// <param name="TotalMemoryBytes">Device memory.</param>
internal sealed record CudaDeviceInfo(int Ordinal, string Name, int ComputeCapabilityMajor, int ComputeCapabilityMinor, int Multiprocessors, long TotalMemoryBytes)
{
    /// <inheritdoc />
    public override string ToString() =>
        $"{Name} (compute capability {ComputeCapabilityMajor}.{ComputeCapabilityMinor}, {Multiprocessors} SMs, {(TotalMemoryBytes >= 1L << 30 ? $"{TotalMemoryBytes / (1L << 30)} GiB" : $"{TotalMemoryBytes / (1L << 20)} MiB")})";
}

/// <summary>Enumerates CUDA devices through the driver API.</summary>
internal static class CudaDevices
{
    private static readonly Lock InitLock = new();
    private static bool _initialised;

    /// <summary>Loads the driver and calls cuInit once per process.</summary>
    /// <exception cref="CudaException">libcuda is missing (the detail lists where it was looked for) or cuInit failed
    /// (CUDA_ERROR_NO_DEVICE on a machine without a GPU).</exception>
    public static void Initialise()
    {
        lock (InitLock)
        {
            if (_initialised) return;
            CudaLibraries.Require(CudaLibrary.Driver);
            CudaDriverApi.Check(CudaDriverApi.Init(0), "cuInit");
            _initialised = true;
        }
    }

    /// <summary>The driver's CUDA version as (major, minor), e.g. (13, 0).</summary>
    public static (int Major, int Minor) DriverVersion()
    {
        CudaLibraries.Require(CudaLibrary.Driver);
        CudaDriverApi.Check(CudaDriverApi.DriverGetVersion(out int version), "cuDriverGetVersion");
        return (version / 1000, version % 1000 / 10);
    }

    /// <summary>Every device the driver reports.</summary>
    public static unsafe IReadOnlyList<CudaDeviceInfo> List()
    {
        Initialise();
        CudaDriverApi.Check(CudaDriverApi.DeviceGetCount(out int count), "cuDeviceGetCount");
        var devices = new List<CudaDeviceInfo>(count);
        byte* name = stackalloc byte[256];
        for (int ordinal = 0; ordinal < count; ordinal++)
        {
            CudaDriverApi.Check(CudaDriverApi.DeviceGet(out int device, ordinal), $"cuDeviceGet({ordinal})");
            CudaDriverApi.Check(CudaDriverApi.DeviceGetName(name, 256, device), "cuDeviceGetName");
            int Attribute(int attribute)
            {
                CudaDriverApi.Check(CudaDriverApi.DeviceGetAttribute(out int value, attribute, device), $"cuDeviceGetAttribute({attribute})");
                return value;
            }
            CudaDriverApi.Check(CudaDriverApi.DeviceTotalMemory(out nuint bytes, device), "cuDeviceTotalMem");
            devices.Add(new CudaDeviceInfo(ordinal, new string((sbyte*)name),
                Attribute(CudaDriverApi.AttributeComputeCapabilityMajor), Attribute(CudaDriverApi.AttributeComputeCapabilityMinor),
                Attribute(CudaDriverApi.AttributeMultiprocessorCount), (long)bytes));
        }
        return devices;
    }
}
