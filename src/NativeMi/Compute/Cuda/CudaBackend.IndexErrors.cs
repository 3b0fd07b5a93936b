using System.Runtime.InteropServices;
using NativeMi.Compute.Cuda.Native;

namespace NativeMi.Compute.Cuda;

// Bad indices found on the device (nativemi::IndexError in kernels/common.cuh): the gathers, the scatter and the softmax
// target skip an out-of-range access and record the first one; every synchronisation point reads the record with the
// work it waits for and throws naming the op, so a bad index costs no extra synchronisation when there is none.
internal sealed unsafe partial class CudaBackend
{
    [StructLayout(LayoutKind.Sequential)]
    private struct IndexErrorRecord
    {
        public int Flag, Op, Row, Value;
        public long Limit;
    }

    private CudaDeviceMemory _indexError = null!;

    private void InitialiseIndexErrors()
    {
        _indexError = CudaDeviceMemory.Allocate(_context, sizeof(IndexErrorRecord));
        ClearIndexError();
    }

    private ulong IndexErrorPointer => _indexError.Pointer;

    private void ClearIndexError() =>
        CudaDriverApi.Check(CudaDriverApi.Memset32Async(_indexError.Pointer, 0, (nuint)(sizeof(IndexErrorRecord) / sizeof(int)), Stream), "cuMemsetD32Async");

    /// <summary>Waits for the stream, then throws if a kernel since the last check met a bad index.</summary>
    private void SynchronizeChecked()
    {
        IndexErrorRecord record;
        CudaDriverApi.Check(CudaDriverApi.CopyDeviceToHostAsync(&record, _indexError.Pointer, (nuint)sizeof(IndexErrorRecord), Stream), "cuMemcpyDtoHAsync");
        _stream.Synchronize();
        if (record.Flag == 0) return;
        ClearIndexError();
        _stream.Synchronize();
        (string op, string parameter, string what) = record.Op switch
        {
            1 => ("GatherRows", "indices", "index"),
            2 => ("ScatterAddRows", "indices", "index"),
            3 => ("SoftmaxCrossEntropy", "targets", "target class"),
            4 => ("EmbeddingGather", "ids", "token id"),
            5 => ("EmbeddingGather", "positionIds", "position"),
            6 => ("EmbeddingGather", "typeIds", "token type"),
            _ => ("a kernel", "indices", "index"),
        };
        throw new ArgumentOutOfRangeException(parameter,
            $"{op}: {what} {record.Value} at row {record.Row} is outside [0, {record.Limit}); the kernel skipped it " +
            "(found at the next synchronisation, so later ops in the same queue may have run on the NaN it left)");
    }
}
