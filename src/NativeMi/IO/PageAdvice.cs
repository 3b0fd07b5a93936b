using System.Runtime.InteropServices;

namespace NativeMi.IO;

/// <summary>madvise over the whole pages that hold a range of a memory mapping; advisory, so a failure only costs memory or time.</summary>
internal static partial class PageAdvice
{
    /// <summary>MADV_DONTNEED: unmap the pages; a file-backed read-only mapping stays valid and faults them in again from the page cache.</summary>
    public const int DontNeed = 4;
    /// <summary>MADV_POPULATE_READ (Linux 5.14 and later): map every page now, in one call.</summary>
    public const int PopulateRead = 22;

    private const long Page = 4096;

    /// <summary>Applies <paramref name="advice"/> to the pages of [<paramref name="start"/>, +<paramref name="bytes"/>) on Linux; returns madvise's result (0 on success), or -1 elsewhere.</summary>
    public static unsafe int Apply(void* start, long bytes, int advice)
    {
        if (!OperatingSystem.IsLinux() || bytes <= 0) return -1;
        long begin = (long)start, end = begin + bytes;
        long alignedBegin = begin & ~(Page - 1), alignedEnd = (end + Page - 1) & ~(Page - 1);
        return Madvise((nint)alignedBegin, (nuint)(alignedEnd - alignedBegin), advice);
    }

    [LibraryImport("libc", EntryPoint = "madvise")]
    private static partial int Madvise(nint address, nuint length, int advice);
}
