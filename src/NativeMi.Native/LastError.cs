using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace NativeMi.Native;

/// <summary>
/// The last failure of each thread (nativemi_last_error, nativemi_last_status). Its message is a NUL-terminated UTF-8
/// array on the pinned object heap, held by a thread-static field: the pointer handed to C stays valid until that
/// thread's next failure replaces the array, and the array is collected when the thread exits, where a native copy
/// would leak with every thread that ever failed.
/// </summary>
internal static unsafe class LastError
{
    [ThreadStatic] private static byte[]? t_message;
    [ThreadStatic] private static int t_status;

    /// <summary>The message of the last failure on this thread, or "" (static data, never freed).</summary>
    public static byte* Message => t_message is { } message
        ? (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(message))
        : (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetReference("\0"u8));

    /// <summary>The status of the last failure on this thread, or 0.</summary>
    public static int Status => t_status;

    /// <summary>Records <paramref name="exception"/> as this thread's last failure and returns its status.</summary>
    public static int Record(Exception exception)
    {
        ExitStatus status = ErrorClassification.Classify(exception);
        string message = status switch
        {
            ExitStatus.Internal => $"internal error: {exception.GetType().FullName}: {exception.Message}",
            ExitStatus.Cancelled => "cancelled",
            _ => exception.Message,
        };
        return Record(status, message);
    }

    /// <summary>Records a failure of class <paramref name="status"/> with <paramref name="message"/> (made one line) and returns the status.</summary>
    public static int Record(ExitStatus status, string message)
    {
        byte[]? replacement = null;
        try
        {
            replacement = NativeText.AllocatePinned(ErrorClassification.OneLine(message));
        }
#pragma warning disable CA1031 // out of memory for the message itself: the status still tells the class, with the old message dropped
        catch (Exception)
#pragma warning restore CA1031
        {
        }
        t_message = replacement;
        t_status = (int)status;
        return (int)status;
    }
}
