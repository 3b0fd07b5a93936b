using System.Collections.Concurrent;

namespace NativeMi.Native;

/// <summary>
/// The open models behind nativemi_model* handles. A handle is a number from this table, never a pointer to a .NET
/// object, so a closed or made-up handle is refused with a message instead of crashing; numbers are never reused.
/// </summary>
internal static class ModelHandles
{
    private static readonly ConcurrentDictionary<nint, LanguageModel> Open = new();
    private static long s_last;

    public static nint Add(LanguageModel model)
    {
        nint handle = (nint)Interlocked.Increment(ref s_last);
        Open[handle] = model;
        return handle;
    }

    /// <exception cref="UsageException">The handle is NULL or not open.</exception>
    public static LanguageModel Get(nint handle) =>
        handle == 0 ? throw new UsageException("model is NULL")
        : Open.TryGetValue(handle, out LanguageModel? model) ? model
        : throw new UsageException($"model {handle} is not an open handle (closed already, or not from nativemi_open)");

    /// <summary>Takes the handle out of the table; null when it was not open.</summary>
    public static LanguageModel? Remove(nint handle) => Open.TryRemove(handle, out LanguageModel? model) ? model : null;
}
