using System.Runtime.InteropServices;
using System.Text;

namespace NativeMi.Native;

/// <summary>UTF-8 strings across the boundary: NUL-terminated text read from C, and engine-owned copies handed to C.</summary>
internal static unsafe class NativeText
{
    /// <summary>The NUL-terminated UTF-8 text at <paramref name="text"/>; <paramref name="what"/> names the argument in errors.</summary>
    /// <exception cref="UsageException">The pointer is NULL or the bytes are not valid UTF-8.</exception>
    public static string Read(byte* text, string what)
    {
        if (text is null) throw new UsageException($"{what} is NULL");
        ReadOnlySpan<byte> bytes = MemoryMarshal.CreateReadOnlySpanFromNullTerminated(text);
        if (!System.Text.Unicode.Utf8.IsValid(bytes))
            throw new UsageException($"{what} is not valid UTF-8 (invalid at byte {IO.JsonInput.FirstInvalidUtf8Offset(bytes)})");
        return Encoding.UTF8.GetString(bytes);
    }

    /// <summary>The <paramref name="count"/> strings of a C array (const char *const *).</summary>
    /// <exception cref="UsageException">The array or one of its strings is NULL, a string is not UTF-8, or the count is too large.</exception>
    public static string[] ReadArray(byte** texts, nuint count, string what)
    {
        if (count > int.MaxValue) throw new UsageException($"{what}: {count} strings are too many for one call");
        if (texts is null && count > 0) throw new UsageException($"{what} is NULL but its count is {count}");
        var result = new string[(int)count];
        for (int i = 0; i < result.Length; i++) result[i] = Read(texts[i], $"{what}[{i}]");
        return result;
    }

    /// <summary>A NUL-terminated UTF-8 copy of <paramref name="text"/> in native memory; released with <see cref="Free"/>.</summary>
    public static byte* Allocate(string text)
    {
        int length = Encoding.UTF8.GetByteCount(text);
        byte* copy = (byte*)NativeMemory.Alloc((nuint)length + 1);
        Encoding.UTF8.GetBytes(text, new Span<byte>(copy, length));
        copy[length] = 0;
        return copy;
    }

    /// <summary>
    /// A NUL-terminated UTF-8 copy of <paramref name="text"/> in an array on the pinned object heap, which never moves, so
    /// a pointer to its first element may be handed to C for as long as the array is referenced.
    /// </summary>
    public static byte[] AllocatePinned(string text)
    {
        int length = Encoding.UTF8.GetByteCount(text);
        byte[] copy = GC.AllocateArray<byte>(length + 1, pinned: true);
        Encoding.UTF8.GetBytes(text, copy.AsSpan(0, length));
        return copy;
    }

    /// <summary>Releases a string from <see cref="Allocate"/>; NULL is a no-op.</summary>
    public static void Free(byte* text)
    {
        if (text is not null) NativeMemory.Free(text);
    }

    /// <summary>Writes <paramref name="text"/> into a fixed char array of <paramref name="capacity"/> bytes, cut at a character boundary, NUL-terminated.</summary>
    public static void CopyTo(string text, byte* destination, int capacity)
    {
        var target = new Span<byte>(destination, capacity);
        target.Clear();
        int length = Encoding.UTF8.GetByteCount(text);
        while (length > capacity - 1)
        {
            text = text[..^1];
            length = Encoding.UTF8.GetByteCount(text);
        }
        Encoding.UTF8.GetBytes(text, target);
    }
}
