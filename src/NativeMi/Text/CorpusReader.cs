using System.Text;

namespace NativeMi.Text;

/// <summary>A sentence of a corpus and the line it came from.</summary>
/// <param name="LineNumber">1-based line number in the file.</param>
/// <param name="Text">The sentence, trimmed.</param>
internal sealed record CorpusLine(int LineNumber, string Text);

/// <summary>Reads a UTF-8 text file with one sentence per line (blank lines skipped).</summary>
internal static class CorpusReader
{
    /// <summary>Reads every non-blank line of <paramref name="path"/>.</summary>
    /// <exception cref="InputException">The file is missing or a folder, not valid UTF-8 (the line is named), or has no sentence.</exception>
    public static IReadOnlyList<CorpusLine> Read(string path)
    {
        string full = Path.GetFullPath(path);
        if (Directory.Exists(full)) throw new InputException($"{full}: is a folder, not a corpus file; give a UTF-8 text file with one sentence per line");
        if (!File.Exists(full)) throw new InputException($"{full}: corpus file not found");
        byte[] bytes = File.ReadAllBytes(full);
        var strict = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
        var lines = new List<CorpusLine>();
        int lineNumber = 0, start = 0;
        ReadOnlySpan<byte> data = bytes;
        if (data.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF])) start = 3;
        while (start <= data.Length)
        {
            int end = data[start..].IndexOf((byte)'\n');
            ReadOnlySpan<byte> line = end < 0 ? data[start..] : data.Slice(start, end);
            lineNumber++;
            if (line.Length > 0 && line[^1] == '\r') line = line[..^1];
            string text;
            try { text = strict.GetString(line); }
            catch (DecoderFallbackException)
            {
                throw new InputException($"{full}:{lineNumber}: line is not valid UTF-8; the corpus must be UTF-8 text, one sentence per line");
            }
            text = text.Trim();
            if (text.Length > 0) lines.Add(new CorpusLine(lineNumber, text));
            if (end < 0) break;
            start += end + 1;
        }
        if (lines.Count == 0)
            throw new InputException(bytes.Length == 0
                ? $"{full}: corpus is empty; expected one sentence per line"
                : $"{full}: corpus has only blank lines; expected one sentence per line");
        return lines;
    }
}
