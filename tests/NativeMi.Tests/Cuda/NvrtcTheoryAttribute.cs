using NativeMi.Compute.Cuda.Native;
using Xunit;

namespace NativeMi.Tests.Cuda;

/// <summary>
/// Whether NVRTC-dependent tests run. CI installs NVRTC (see .ci/run), so with CI=true a missing NVRTC
/// must fail the tests rather than hide them; elsewhere they are skipped with the search report.
/// </summary>
internal static class NvrtcAvailability
{
    public static bool RunningInCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    public static string? SkipReason()
    {
        if (RunningInCi) return null;
        LibraryProbe probe = CudaLibraries.Get(CudaLibrary.Nvrtc);
        return probe.Found ? null : "NVRTC is not installed (CI is not 'true', so skipping): " + probe.Describe();
    }
}

/// <summary>A theory that needs NVRTC: skipped outside CI when NVRTC is missing, failing inside CI.</summary>
public sealed class NvrtcTheoryAttribute : TheoryAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when NVRTC is missing and CI is not set.</summary>
    public NvrtcTheoryAttribute()
    {
        if (NvrtcAvailability.SkipReason() is { } reason) Skip = reason;
    }
}

/// <summary>A fact that needs NVRTC: skipped outside CI when NVRTC is missing, failing inside CI.</summary>
public sealed class NvrtcFactAttribute : FactAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when NVRTC is missing and CI is not set.</summary>
    public NvrtcFactAttribute()
    {
        if (NvrtcAvailability.SkipReason() is { } reason) Skip = reason;
    }
}
