namespace NativeMi.Compute.Cuda.Native;

/// <summary>
/// A failed CUDA driver, cuBLAS or NVRTC call, or a CUDA library that could not be found. Carries the
/// library's own status name (for example CUDA_ERROR_OUT_OF_MEMORY) and the call that returned it.
/// </summary>
internal sealed class CudaException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="statusName">The status name as the library spells it (CUDA_ERROR_*, CUBLAS_STATUS_*, NVRTC_ERROR_*).</param>
    /// <param name="statusCode">The numeric status.</param>
    /// <param name="call">The call that failed, with the arguments that identify it.</param>
    /// <param name="detail">Anything the library said beyond the status (a compiler log, a search report).</param>
    public CudaException(string statusName, int statusCode, string call, string? detail = null)
        : base(FormatMessage(statusName, statusCode, call, detail))
    {
        StatusName = statusName;
        StatusCode = statusCode;
        Call = call;
        Detail = detail;
    }

    /// <summary>The status name as the library spells it.</summary>
    public string StatusName { get; }

    /// <summary>The numeric status.</summary>
    public int StatusCode { get; }

    /// <summary>The call that failed.</summary>
    public string Call { get; }

    /// <summary>Further text from the library (a compile log, the list of places searched), if any.</summary>
    public string? Detail { get; }

    private static string FormatMessage(string statusName, int statusCode, string call, string? detail) =>
        string.IsNullOrWhiteSpace(detail)
            ? $"{call} failed: {statusName} ({statusCode})"
            : $"{call} failed: {statusName} ({statusCode})\n{detail.TrimEnd()}";
}
