using NativeMi.Compute.Cuda.Native;

namespace NativeMi.Compute.Cuda;

// Host-device copies of batch-sized data go through page-locked staging memory. An upload from pageable memory makes
// the driver stage it itself, and the call can wait for its staging buffer; from pinned memory cuMemcpyHtoDAsync
// returns at once and the copy queues behind the kernels like any other work, so the host goes on issuing the batch.
// Each upload slot carries an event recorded after its copy: a slot is refilled only once the GPU has read it, which
// the emulator's deferred mode checks (it reads pinned memory only when the copy runs). Copies larger than a slot
// (weights, all hidden states of a large batch) keep the pageable path: pinning that much host memory costs more than
// it saves.
internal sealed unsafe partial class CudaBackend
{
    private const int UploadSlotCount = 4;
    private const long StagingLimitBytes = 16L << 20;

    private readonly UploadSlot[] _uploadSlots = new UploadSlot[UploadSlotCount];
    private int _nextUploadSlot;
    private PinnedHostMemory? _downloadStaging;

    /// <summary>One page-locked upload buffer and the event that says when the GPU has finished reading it.</summary>
    private sealed class UploadSlot
    {
        public PinnedHostMemory? Memory;
        public CudaEventHandle? Copied;
        public bool Pending;
    }

    /// <summary>Queues a host-to-device copy of <paramref name="bytes"/> from <paramref name="source"/>; true when it went through staging.</summary>
    private bool TryStagedUpload(ulong destination, void* source, long bytes)
    {
        if (bytes > StagingLimitBytes) return false;
        UploadSlot slot = _uploadSlots[_nextUploadSlot] ??= new UploadSlot();
        _nextUploadSlot = (_nextUploadSlot + 1) % UploadSlotCount;
        if (slot.Pending)
            CudaDriverApi.Check(CudaDriverApi.EventSynchronize(slot.Copied!.DangerousGetHandle()), "cuEventSynchronize (upload staging)");
        slot.Pending = false;
        EnsureCapacity(ref slot.Memory, bytes);
        slot.Copied ??= CudaEventHandle.Create(_context);
        void* staging = (void*)slot.Memory.DangerousGetHandle();
        Buffer.MemoryCopy(source, staging, slot.Memory.Bytes, bytes);
        CudaDriverApi.Check(CudaDriverApi.CopyHostToDeviceAsync(destination, staging, (nuint)bytes, Stream), "cuMemcpyHtoDAsync (staged)");
        slot.Copied.Record(_stream);
        slot.Pending = true;
        return true;
    }

    /// <summary>Copies <paramref name="bytes"/> from the device to <paramref name="destination"/> and waits; true when it went through staging.</summary>
    private bool TryStagedDownload(void* destination, ulong source, long bytes)
    {
        if (bytes > StagingLimitBytes) return false;
        EnsureCapacity(ref _downloadStaging, bytes);
        void* staging = (void*)_downloadStaging.DangerousGetHandle();
        CudaDriverApi.Check(CudaDriverApi.CopyDeviceToHostAsync(staging, source, (nuint)bytes, Stream), "cuMemcpyDtoHAsync (staged)");
        SynchronizeChecked();
        Buffer.MemoryCopy(staging, destination, bytes, bytes);
        return true;
    }

    /// <summary>Replaces <paramref name="memory"/> by a larger pinned buffer when it holds fewer than <paramref name="bytes"/>.</summary>
    private void EnsureCapacity([System.Diagnostics.CodeAnalysis.NotNull] ref PinnedHostMemory? memory, long bytes)
    {
        if (memory is not null && memory.Bytes >= bytes) return;
        memory?.Dispose();
        memory = null;
        // Grown in powers of two from 64 KiB, so a run settles on a few sizes instead of reallocating per batch.
        memory = PinnedHostMemory.Allocate(_context, Math.Max(64L << 10, (long)System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)bytes)));
    }

    private void DisposeStaging()
    {
        foreach (UploadSlot? slot in _uploadSlots)
        {
            slot?.Memory?.Dispose();
            slot?.Copied?.Dispose();
        }
        _downloadStaging?.Dispose();
    }
}
