using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;
using NativeMi.IO;

namespace NativeMi.Text;

/// <summary>
/// Hugging Face's own tokenizers library (its Rust core, through Tokenizers.DotNet) running one tokenizer.json.
/// The library is handed a copy of the definition without post-processor, truncation and padding, so it returns
/// the ids of the text alone; the special tokens around a sentence are placed by <see cref="TextTokenizer"/>.
/// </summary>
internal sealed class HuggingFaceTokenizer
{
    /// <summary>The library's name in Tokenizers.DotNet's imports, and its file.</summary>
    private const string ImportName = "hf_tokenizers", FileName = "libhf_tokenizers.so";

    private static readonly bool ResolverRegistered = RegisterResolver();

    private readonly Tokenizers.DotNet.Tokenizer _tokenizer;
    private readonly string _source;

    private HuggingFaceTokenizer(Tokenizers.DotNet.Tokenizer tokenizer, string source)
    {
        _tokenizer = tokenizer;
        _source = source;
    }

    /// <summary>
    /// Lets the library be found beside the engine's files (<see cref="AppContext.BaseDirectory"/>) before the runtime's
    /// default search. A NativeAOT program finds it there anyway, but a NativeAOT shared library (libnativemi.so) searches
    /// the folder of the executable that loaded it, which is the caller's, not ours.
    /// </summary>
    private static bool RegisterResolver()
    {
        try
        {
            NativeLibrary.SetDllImportResolver(typeof(Tokenizers.DotNet.Tokenizer).Assembly, Resolve);
            return true;
        }
        catch (InvalidOperationException)
        {
            // The host registered its own resolver for Tokenizers.DotNet: its search stands.
            return false;
        }
    }

    private static nint Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath) =>
        libraryName == ImportName && NativeLibrary.TryLoad(Path.Combine(AppContext.BaseDirectory, FileName), out nint handle) ? handle : 0;

    /// <summary>Loads the tokenizer.json text <paramref name="json"/>; <paramref name="source"/> names it in errors.</summary>
    /// <exception cref="ModelFormatException">The library refuses the definition.</exception>
    /// <exception cref="EnvironmentException">The native library is missing or the temporary file cannot be written.</exception>
    public static HuggingFaceTokenizer Load(byte[] json, string source)
    {
        // The library reads only from a file path, so the definition goes through a private temporary file that
        // lives only while the library parses it.
        _ = ResolverRegistered;
        string path = Path.Combine(Path.GetTempPath(), $"nativemi-tokenizer-{Environment.ProcessId}-{Guid.NewGuid():N}.json");
        try
        {
            File.WriteAllBytes(path, json);
            return new HuggingFaceTokenizer(new Tokenizers.DotNet.Tokenizer(path), source);
        }
        catch (Tokenizers.DotNet.TokenizerException e)
        {
            throw new ModelFormatException(source, $"the tokenizers library refuses the tokenizer: {e.Message}", e);
        }
        catch (DllNotFoundException e)
        {
            throw new EnvironmentException(
                $"the tokenizers library libhf_tokenizers.so (package Tokenizers.DotNet.runtime.linux-x64) could not be loaded; it must lie beside the program: {e.Message}", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new EnvironmentException($"cannot write the temporary tokenizer file {path}: {e.Message}", e);
        }
        finally
        {
            try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    /// <summary>Ids of <paramref name="text"/> without the post-processor's special tokens.</summary>
    /// <exception cref="ModelFormatException">The library fails on the text (it names the tokenizer).</exception>
    public int[] Encode(string text)
    {
        uint[] ids;
        try
        {
            ids = _tokenizer.Encode(ReplaceLoneSurrogates(text));
        }
        catch (Tokenizers.DotNet.TokenizerException e)
        {
            throw new ModelFormatException(_source, $"the tokenizers library failed to encode a sentence: {e.Message}", e);
        }
        var result = new int[ids.Length];
        for (int i = 0; i < ids.Length; i++) result[i] = checked((int)ids[i]);
        return result;
    }

    /// <summary>Text of <paramref name="ids"/> (special tokens skipped, as the library decodes); null when it cannot.</summary>
    public string? Decode(IEnumerable<int> ids)
    {
        uint[] values = ids.Select(id => id < 0 ? uint.MaxValue : (uint)id).ToArray();
        try
        {
            return _tokenizer.Decode(values);
        }
        catch (Tokenizers.DotNet.TokenizerException)
        {
            return null;
        }
    }

    /// <summary>
    /// A .NET string may hold a surrogate without its pair, which UTF-8 (and so Rust's String) cannot carry: the
    /// library would refuse the whole sentence. Such a code unit becomes U+FFFD, as a UTF-8 encoder writes it.
    /// </summary>
    internal static string ReplaceLoneSurrogates(string text)
    {
        int i = 0;
        for (; i < text.Length; i++)
        {
            char c = text[i];
            if (!char.IsSurrogate(c)) continue;
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) { i++; continue; }
            break;
        }
        if (i == text.Length) return text;
        var builder = new StringBuilder(text.Length);
        for (int j = 0; j < text.Length; j++)
        {
            char c = text[j];
            if (char.IsHighSurrogate(c) && j + 1 < text.Length && char.IsLowSurrogate(text[j + 1]))
            {
                builder.Append(c).Append(text[++j]);
            }
            else builder.Append(char.IsSurrogate(c) ? '\uFFFD' : c);
        }
        return builder.ToString();
    }
}
