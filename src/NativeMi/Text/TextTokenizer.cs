using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;
using NativeMi.IO;
using NativeMi.Models;

namespace NativeMi.Text;

/// <summary>One sentence as the model sees it.</summary>
/// <param name="Ids">Token ids including the special tokens the model expects.</param>
/// <param name="IsTarget">True at positions that are real text tokens (probe targets); false at special tokens.</param>
/// <param name="Truncated">True when the text was cut to fit the model's context.</param>
public sealed record EncodedSentence(int[] Ids, bool[] IsTarget, bool Truncated);

/// <summary>
/// Tokenizer of a model folder, an adapter over Microsoft.ML.Tokenizers: WordPiece from vocab.txt
/// (honouring tokenizer_config.json) or GPT-2 byte-level BPE from vocab.json + merges.txt.
/// </summary>
public sealed partial class TextTokenizer
{
    private readonly Func<string, IReadOnlyList<int>> _encodeText;
    private readonly int[] _prefix;
    private readonly int[] _suffix;

    private TextTokenizer(string kind, string source, int vocabularySize, int padId, int[] prefix, int[] suffix,
        Func<string, IReadOnlyList<int>> encodeText, Func<IEnumerable<int>, string?> decode)
    {
        Kind = kind;
        Source = source;
        VocabularySize = vocabularySize;
        PadId = padId;
        _prefix = prefix;
        _suffix = suffix;
        _encodeText = encodeText;
        Decode = decode;
    }

    /// <summary>"wordpiece" or "gpt2-bpe".</summary>
    public string Kind { get; }

    /// <summary>The file(s) the vocabulary came from.</summary>
    public string Source { get; }

    /// <summary>Number of entries in the tokenizer's vocabulary.</summary>
    public int VocabularySize { get; }

    /// <summary>Id used for padding (always masked).</summary>
    public int PadId { get; }

    /// <summary>Turns ids back into text.</summary>
    public Func<IEnumerable<int>, string?> Decode { get; }

    /// <summary>Loads the tokenizer files of <paramref name="directory"/> for a model with <paramref name="config"/>.</summary>
    /// <exception cref="ModelFormatException">No usable tokenizer files, or a vocabulary that does not fit the model.</exception>
    public static TextTokenizer Load(string directory, TransformerConfig config)
    {
        string vocabTxt = Path.Combine(directory, "vocab.txt");
        string vocabJson = Path.Combine(directory, "vocab.json");
        string merges = Path.Combine(directory, "merges.txt");
        TextTokenizer tokenizer;
        if (config.Family == ArchitectureFamily.Bert && File.Exists(vocabTxt))
            tokenizer = LoadWordPiece(directory, vocabTxt, config);
        else if (File.Exists(vocabJson) && File.Exists(merges))
            tokenizer = LoadByteLevelBpe(vocabJson, merges, config);
        else
            throw new ModelFormatException(Path.GetFullPath(directory),
                config.Family == ArchitectureFamily.Bert
                    ? "no tokenizer: expected vocab.txt (WordPiece) in the model folder"
                    : "no tokenizer: expected vocab.json and merges.txt (GPT-2 byte-level BPE) in the model folder");
        if (tokenizer.VocabularySize > config.VocabSize) throw TooLarge(tokenizer.Source, tokenizer.VocabularySize, config);
        return tokenizer;
    }

    private static ModelFormatException TooLarge(string source, int entries, TransformerConfig config) =>
        new(source, $"tokenizer has {entries} entries but config.json's vocab_size is {config.VocabSize}; the tokenizer does not belong to this model");

    /// <summary>
    /// A byte-level BPE vocabulary must fit the embedding table (every id below vocab_size), and a smaller one must
    /// still hold the special ids config.json makes the model read (padding, and for encoders &lt;s&gt; and &lt;/s&gt;).
    /// </summary>
    private static void CheckBpeIds(string vocabPath, List<KeyValuePair<string, int>> vocabulary, TransformerConfig config)
    {
        string file = Path.GetFullPath(vocabPath);
        if (vocabulary.Count > config.VocabSize) throw TooLarge(file, vocabulary.Count, config);
        var ids = new HashSet<int>();
        foreach (var (token, id) in vocabulary)
        {
            if (id >= config.VocabSize)
                throw new ModelFormatException(file,
                    $"token '{token}' has id {id}, but config.json's vocab_size is {config.VocabSize} (ids must be below it); the tokenizer does not belong to this model");
            ids.Add(id);
        }
        var special = new List<(string Field, int Id)>
        {
            (config.Family == ArchitectureFamily.Gpt2 ? "pad_token_id (eos_token_id when absent)" : "pad_token_id", config.PadTokenId),
        };
        if (config.Family == ArchitectureFamily.Bert)
        {
            if (config.BosTokenId is int bos) special.Add(("bos_token_id", bos));
            if (config.EosTokenId is int eos) special.Add(("eos_token_id", eos));
        }
        foreach (var (field, id) in special)
            if (!ids.Contains(id))
                throw new ModelFormatException(file,
                    $"tokenizer has {vocabulary.Count} entries and no token with id {id}, which config.json's {field} names (vocab_size {config.VocabSize}); " +
                    "the tokenizer does not belong to this model");
    }

    private static TextTokenizer LoadWordPiece(string directory, string vocabPath, TransformerConfig config)
    {
        var settings = WordPieceSettings.Read(directory);
        BertTokenizer bert;
        try
        {
            bert = BertTokenizer.Create(vocabPath, new BertOptions
            {
                LowerCaseBeforeTokenization = settings.LowerCase,
                RemoveNonSpacingMarks = settings.StripAccents ?? settings.LowerCase,
                IndividuallyTokenizeCjk = settings.TokenizeChineseChars,
                UnknownToken = settings.UnknownToken,
                ClassificationToken = settings.ClassificationToken,
                SeparatorToken = settings.SeparatorToken,
                PaddingToken = settings.PaddingToken,
                MaskingToken = settings.MaskToken,
            });
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException or IOException)
        {
            throw new ModelFormatException(Path.GetFullPath(vocabPath), $"cannot read WordPiece vocabulary: {e.Message}", e);
        }
        int vocabularySize = File.ReadLines(vocabPath).Count();
        int cls = bert.ClassificationTokenId, sep = bert.SeparatorTokenId;
        return new TextTokenizer("wordpiece", Path.GetFullPath(vocabPath), vocabularySize, bert.PaddingTokenId, [cls], [sep],
            text => bert.EncodeToIds(text, addSpecialTokens: false, considerPreTokenization: true, considerNormalization: true),
            ids => bert.Decode(ids));
    }

    /// <summary>GPT-2's pre-tokenisation pattern (contractions, letter runs, digit runs, other runs, whitespace).</summary>
    [GeneratedRegex(@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+", RegexOptions.CultureInvariant)]
    private static partial Regex Gpt2PreTokenizerPattern();

    private static TextTokenizer LoadByteLevelBpe(string vocabPath, string mergesPath, TransformerConfig config)
    {
        BpeTokenizer bpe;
        int vocabularySize;
        try
        {
            // vocab.json and merges.txt are read here, not by the library: its own file reader uses
            // reflection-based JSON, which a NativeAOT binary does not have.
            var vocabulary = new List<KeyValuePair<string, int>>();
            using (JsonDocument document = JsonInput.ParseFile(vocabPath))
            {
                if (document.RootElement.ValueKind != JsonValueKind.Object)
                    throw new ModelFormatException(Path.GetFullPath(vocabPath), "expected a JSON object of token -> id");
                foreach (JsonProperty entry in document.RootElement.EnumerateObject())
                {
                    if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out int id) || id < 0)
                        throw new ModelFormatException(Path.GetFullPath(vocabPath), $"token '{entry.Name}' has id {entry.Value.GetRawText()}; expected a non-negative integer");
                    vocabulary.Add(new(entry.Name, id));
                }
            }
            vocabularySize = vocabulary.Count;
            CheckBpeIds(vocabPath, vocabulary, config);
            // merges.txt: an optional "#version" header, then one "left right" pair per line.
            var merges = File.ReadLines(mergesPath).Where((line, index) => !(index == 0 && line.StartsWith("#version", StringComparison.Ordinal)) && line.Length > 0).ToList();
            // Plain byte-level BPE with GPT-2's pattern. Text that spells a special token ("<|endoftext|>")
            // is encoded as ordinary text, so a corpus cannot inject control tokens.
            bpe = BpeTokenizer.Create(new BpeOptions(vocabulary)
            {
                Merges = merges,
                ByteLevel = true,
                PreTokenizer = new RegexPreTokenizer(Gpt2PreTokenizerPattern(), null),
            });
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException or IOException)
        {
            throw new ModelFormatException(Path.GetFullPath(mergesPath), $"cannot read GPT-2 BPE vocabulary/merges: {e.Message}", e);
        }
        // RoBERTa-style encoders wrap byte-level BPE text in <s> ... </s>; GPT-2 adds nothing.
        bool encoder = config.Family == ArchitectureFamily.Bert;
        int[] prefix = encoder && config.BosTokenId is int bos ? [bos] : [];
        int[] suffix = encoder && config.EosTokenId is int eos ? [eos] : [];
        return new TextTokenizer("gpt2-bpe", $"{Path.GetFullPath(vocabPath)} + {Path.GetFileName(mergesPath)}", vocabularySize,
            config.PadTokenId, prefix, suffix,
            text => bpe.EncodeToIds(text, considerPreTokenization: true, considerNormalization: true),
            ids => bpe.Decode(ids));
    }

    /// <summary>Ids of the text alone, without special tokens.</summary>
    public IReadOnlyList<int> EncodeText(string text) => _encodeText(text);

    /// <summary>
    /// Encodes one sentence with the special tokens the model expects, truncating the text so the whole
    /// sequence fits <paramref name="maxLength"/> tokens.
    /// </summary>
    public EncodedSentence Encode(string text, int maxLength)
    {
        int room = maxLength - _prefix.Length - _suffix.Length;
        if (room < 1) throw new ArgumentOutOfRangeException(nameof(maxLength), $"{maxLength} leaves no room for text after the special tokens");
        IReadOnlyList<int> body = _encodeText(text);
        bool truncated = body.Count > room;
        int count = Math.Min(body.Count, room);
        var ids = new int[_prefix.Length + count + _suffix.Length];
        var isTarget = new bool[ids.Length];
        _prefix.CopyTo(ids, 0);
        for (int i = 0; i < count; i++)
        {
            ids[_prefix.Length + i] = body[i];
            isTarget[_prefix.Length + i] = true;
        }
        _suffix.CopyTo(ids, _prefix.Length + count);
        return new EncodedSentence(ids, isTarget, truncated);
    }

    private sealed record WordPieceSettings(bool LowerCase, bool? StripAccents, bool TokenizeChineseChars, string UnknownToken,
        string ClassificationToken, string SeparatorToken, string PaddingToken, string MaskToken)
    {
        public static WordPieceSettings Read(string directory)
        {
            string path = Path.Combine(directory, "tokenizer_config.json");
            var settings = new WordPieceSettings(true, null, true, "[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]");
            if (!File.Exists(path)) return settings;
            using JsonDocument document = JsonInput.ParseFile(path);
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new ModelFormatException(Path.GetFullPath(path), "expected a JSON object");
            return settings with
            {
                LowerCase = Bool(root, "do_lower_case") ?? settings.LowerCase,
                StripAccents = Bool(root, "strip_accents"),
                TokenizeChineseChars = Bool(root, "tokenize_chinese_chars") ?? settings.TokenizeChineseChars,
                UnknownToken = Token(root, "unk_token") ?? settings.UnknownToken,
                ClassificationToken = Token(root, "cls_token") ?? settings.ClassificationToken,
                SeparatorToken = Token(root, "sep_token") ?? settings.SeparatorToken,
                PaddingToken = Token(root, "pad_token") ?? settings.PaddingToken,
                MaskToken = Token(root, "mask_token") ?? settings.MaskToken,
            };

            bool? Bool(JsonElement root, string field) =>
                root.TryGetProperty(field, out JsonElement v) ? v.ValueKind switch
                {
                    JsonValueKind.True => true,
                    JsonValueKind.False => false,
                    JsonValueKind.Null => null,
                    _ => throw new ModelFormatException(Path.GetFullPath(path), $"field '{field}' must be true, false or null"),
                } : null;

            // HF writes special tokens either as strings or as AddedToken objects with a "content" field.
            string? Token(JsonElement root, string field)
            {
                if (!root.TryGetProperty(field, out JsonElement v) || v.ValueKind == JsonValueKind.Null) return null;
                if (v.ValueKind == JsonValueKind.String) return v.GetString();
                if (v.ValueKind == JsonValueKind.Object && v.TryGetProperty("content", out JsonElement c) && c.ValueKind == JsonValueKind.String) return c.GetString();
                throw new ModelFormatException(Path.GetFullPath(path), $"field '{field}' must be a string or an object with 'content'");
            }
        }
    }
}
