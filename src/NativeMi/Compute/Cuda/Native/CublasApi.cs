using System.Runtime.InteropServices;

namespace NativeMi.Compute.Cuda.Native;

/// <summary>cuBLAS entry points (the subset NativeMi uses). cuBLAS is column-major; callers swap operands for row-major data.</summary>
internal static unsafe partial class CublasApi
{
    private const string Library = CudaLibraries.CublasImportName;

    internal const int OperationNone = 0;
    internal const int OperationTranspose = 1;
    internal const int DefaultMath = 0;
    internal const int PedanticMath = 2;
    internal const int Tf32TensorOpMath = 3;
    internal const int DataTypeFloat32 = 0;          // CUDA_R_32F
    internal const int DataTypeFloat16 = 2;          // CUDA_R_16F
    internal const int DataTypeBFloat16 = 14;        // CUDA_R_16BF
    internal const int ComputeFloat32 = 68;          // CUBLAS_COMPUTE_32F
    internal const int ComputeFloat32FastTf32 = 77;  // CUBLAS_COMPUTE_32F_FAST_TF32
    internal const int GemmDefaultAlgorithm = -1;    // CUBLAS_GEMM_DEFAULT
    internal const int PropertyMajorVersion = 0, PropertyMinorVersion = 1, PropertyPatchLevel = 2;

    [LibraryImport(Library, EntryPoint = "cublasCreate_v2")] internal static partial int Create(out nint handle);
    [LibraryImport(Library, EntryPoint = "cublasDestroy_v2")] internal static partial int Destroy(nint handle);
    [LibraryImport(Library, EntryPoint = "cublasSetStream_v2")] internal static partial int SetStream(nint handle, nint stream);
    [LibraryImport(Library, EntryPoint = "cublasSetMathMode")] internal static partial int SetMathMode(nint handle, int mode);
    [LibraryImport(Library, EntryPoint = "cublasGetProperty")] internal static partial int GetProperty(int property, out int value);
    [LibraryImport(Library, EntryPoint = "cublasGetStatusName")] internal static partial byte* GetStatusName(int status);

    [LibraryImport(Library, EntryPoint = "cublasSgemm_v2")]
    internal static partial int Sgemm(nint handle, int transposeA, int transposeB, int m, int n, int k,
        float* alpha, ulong a, int leadingA, ulong b, int leadingB, float* beta, ulong c, int leadingC);

    [LibraryImport(Library, EntryPoint = "cublasGemmEx")]
    internal static partial int GemmEx(nint handle, int transposeA, int transposeB, int m, int n, int k,
        void* alpha, ulong a, int typeA, int leadingA, ulong b, int typeB, int leadingB,
        void* beta, ulong c, int typeC, int leadingC, int computeType, int algorithm);

    [LibraryImport(Library, EntryPoint = "cublasSgemmStridedBatched")]
    internal static partial int SgemmStridedBatched(nint handle, int transposeA, int transposeB, int m, int n, int k,
        float* alpha, ulong a, int leadingA, long strideA, ulong b, int leadingB, long strideB,
        float* beta, ulong c, int leadingC, long strideC, int batchCount);

    [LibraryImport(Library, EntryPoint = "cublasGemmStridedBatchedEx")]
    internal static partial int GemmStridedBatchedEx(nint handle, int transposeA, int transposeB, int m, int n, int k,
        void* alpha, ulong a, int typeA, int leadingA, long strideA, ulong b, int typeB, int leadingB, long strideB,
        void* beta, ulong c, int typeC, int leadingC, long strideC, int batchCount, int computeType, int algorithm);

    /// <summary>The status name (CUBLAS_STATUS_EXECUTION_FAILED), or a numeric fallback when the library predates cublasGetStatusName.</summary>
    internal static string StatusName(int status)
    {
        try
        {
            return Marshal.PtrToStringUTF8((nint)GetStatusName(status)) ?? $"CUBLAS_STATUS_{status}";
        }
        catch (EntryPointNotFoundException)
        {
            return $"CUBLAS_STATUS_{status}";
        }
    }

    /// <summary>
    /// Throws a <see cref="CudaException"/> named after the cuBLAS status unless it is CUBLAS_STATUS_SUCCESS;
    /// CUBLAS_STATUS_ALLOC_FAILED becomes a <see cref="DeviceOutOfMemoryException"/>.
    /// </summary>
    internal static void Check(int status, string call)
    {
        if (status == 0) return;
        if (status == DeviceOutOfMemoryException.CublasStatusAllocFailed)
            throw DeviceOutOfMemoryException.WithDeviceMemory(call, StatusName(status), status, requestedBytes: null);
        throw new CudaException(StatusName(status), status, call);
    }
}
