using System.Text;
using System.Text.Json;

namespace NativeMi.IO;

/// <summary>
/// Parses JSON files from model folders. System.Text.Json checks the encoding of a string only
/// when it is read, so a file with invalid UTF-8 inside a string would fail later with an
/// unhelpful <see cref="InvalidOperationException"/>; here the whole file is checked first and
/// every problem becomes a <see cref="ModelFormatException"/> naming the file and line.
/// </summary>
internal static class JsonInput
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Reads and parses <paramref name="path"/>.</summary>
    /// <exception cref="ModelFormatException">The file is not valid UTF-8 or not well-formed JSON.</exception>
    public static JsonDocument ParseFile(string path, int maxDepth = 64) =>
        Parse(Path.GetFullPath(path), File.ReadAllBytes(path), maxDepth);

    /// <summary>Parses <paramref name="bytes"/>, naming <paramref name="pathForMessages"/> in errors.</summary>
    /// <exception cref="ModelFormatException">The bytes are not valid UTF-8 or not well-formed JSON.</exception>
    public static JsonDocument Parse(string pathForMessages, ReadOnlyMemory<byte> bytes, int maxDepth = 64)
    {
        ReadOnlySpan<byte> span = bytes.Span;
        if (span.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF])) bytes = bytes[3..];
        int invalidAt = FirstInvalidUtf8Offset(bytes.Span);
        if (invalidAt >= 0)
            throw new ModelFormatException(pathForMessages, $"line {LineOf(bytes.Span, invalidAt)}: invalid UTF-8 at byte offset {invalidAt}; expected a UTF-8 JSON file");
        try
        {
            return JsonDocument.Parse(bytes, new JsonDocumentOptions { MaxDepth = maxDepth });
        }
        catch (JsonException e)
        {
            string where = e.LineNumber is long line ? $"line {line + 1}: " : "";
            throw new ModelFormatException(pathForMessages, $"{where}not well-formed JSON: {e.Message}", e);
        }
    }

    /// <summary>Offset of the first byte that is not part of valid UTF-8, or -1.</summary>
    public static int FirstInvalidUtf8Offset(ReadOnlySpan<byte> bytes)
    {
        if (System.Text.Unicode.Utf8.IsValid(bytes)) return -1;
        try
        {
            StrictUtf8.GetCharCount(bytes);
            return -1;
        }
        catch (DecoderFallbackException e)
        {
            return Math.Max(0, e.Index);
        }
    }

    private static int LineOf(ReadOnlySpan<byte> bytes, int offset) => bytes[..Math.Min(offset, bytes.Length)].Count((byte)'\n') + 1;
}
