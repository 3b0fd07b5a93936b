using System.Text;
using System.Text.Json;
using NativeMi.IO;

namespace NativeMi.Text;

/// <summary>
/// A tokenizer as Hugging Face's tokenizers library runs it: the tokenizer.json text handed to the library (without
/// post-processor, truncation and padding), the ids the library will give every token, and the special tokens the
/// post-processor puts around a sentence.
/// </summary>
/// <remarks>
/// For folders with only vocab.txt or vocab.json + merges.txt this writes the tokenizer.json that transformers'
/// converters (BertConverter, GPT2Converter, RobertaConverter) build in memory. The post-processor is read here rather
/// than run by the library because its binding can only encode with special tokens or without, never say which ids
/// it added, and transformers replaces it from tokenizer_config.json for some classes anyway.
/// </remarks>
internal sealed class TokenizerDefinition
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>transformers classes whose fast tokenizer rebuilds its post-processor from add_bos_token (default true) and add_eos_token (default false).</summary>
    private static readonly HashSet<string> BosEosTemplateClasses = new(StringComparer.Ordinal)
    {
        "LlamaTokenizer", "LlamaTokenizerFast", "CodeLlamaTokenizer", "CodeLlamaTokenizerFast", "GemmaTokenizer", "GemmaTokenizerFast",
    };

    private readonly Dictionary<string, int> _vocabulary;
    private readonly List<(AddedTokenSpec Token, int Id)> _added = [];
    private readonly Dictionary<string, int> _addedIds = new(StringComparer.Ordinal);

    private TokenizerDefinition(string kind, string source, Dictionary<string, int> vocabulary)
    {
        Kind = kind;
        Source = source;
        _vocabulary = vocabulary;
    }

    public string Kind { get; }
    public string Source { get; }

    /// <summary>The tokenizer.json text for the library.</summary>
    public byte[] Json { get; private set; } = [];

    /// <summary>Drops <see cref="Json"/> once the library holds the tokenizer (a large vocabulary's text is megabytes).</summary>
    public void ReleaseJson() => Json = [];

    public int[] Prefix { get; private set; } = [];
    public int[] Suffix { get; private set; } = [];
    public int? UnknownId { get; private set; }

    /// <summary>Every id with its token: the model's vocabulary and the added tokens.</summary>
    public IEnumerable<(string Token, int Id)> AllIds =>
        _vocabulary.Select(p => (p.Key, p.Value)).Concat(_added.Where(a => !_vocabulary.ContainsKey(a.Token.Content)).Select(a => (a.Token.Content, a.Id)));

    /// <summary>Number of distinct ids (Hugging Face's len(tokenizer)).</summary>
    public int Count => AllIds.Select(p => p.Id).Distinct().Count();

    /// <summary>Ids of the added tokens marked special.</summary>
    public IEnumerable<int> SpecialIds => _added.Where(a => a.Token.Special).Select(a => a.Id);

    /// <summary>The id of <paramref name="token"/>: an added token first, then the model's vocabulary (the library's order).</summary>
    public int? IdOf(string? token) =>
        token is null ? null : _addedIds.TryGetValue(token, out int a) ? a : _vocabulary.TryGetValue(token, out int v) ? v : null;

    /// <summary>
    /// Adds tokens the way the library's AddedVocabulary.add_tokens numbers them: a token already known keeps its id,
    /// a new one takes the next id after the model's vocabulary and the added tokens so far. Empty tokens are ignored.
    /// </summary>
    private void Add(AddedTokenSpec token)
    {
        if (token.Content.Length == 0) return;
        int id;
        if (IdOf(token.Content) is int known) id = known;
        else
        {
            id = _vocabulary.Count;
            foreach (var (_, addedId) in _added)
                if (addedId >= _vocabulary.Count) id = Math.Max(id, addedId + 1);
        }
        int existing = _added.FindIndex(a => a.Token.Content == token.Content);
        if (existing >= 0) _added[existing] = (token, id);
        else _added.Add((token, id));
        _addedIds[token.Content] = id;
    }

    /// <summary>
    /// The special tokens transformers adds to every fast tokenizer (PreTrainedTokenizerFast.__init__): added_tokens_decoder
    /// by id, then each named special token (bos, eos, unk, sep, pad, cls, mask, additional) the tokenizer does not have yet.
    /// </summary>
    private void AddFolderTokens(TokenizerSettings settings, IReadOnlyDictionary<string, string?> defaults, IReadOnlyDictionary<string, AddedTokenSpec>? defaultSpecs = null)
    {
        var named = new List<(string Field, string Content)>();
        foreach (string field in TokenizerSettings.NamedTokenFields)
            if (settings.Named(field, defaults.GetValueOrDefault(field)) is string content) named.Add((field, content));
        var special = new HashSet<string>(named.Select(n => n.Content).Concat(settings.AdditionalSpecialTokens.Select(t => t.Content)), StringComparer.Ordinal);
        var present = new HashSet<string>(_added.Select(a => a.Token.Content), StringComparer.Ordinal);
        foreach (AddedTokenSpec token in settings.AddedTokensDecoder)
        {
            if (!present.Add(token.Content)) continue;
            Add(token with { Special = token.Special || special.Contains(token.Content) });
        }
        foreach (var (field, content) in named)
        {
            if (!present.Add(content)) continue;
            AddedTokenSpec spec = settings.NamedSpec(field) ?? defaultSpecs?.GetValueOrDefault(field) ?? new AddedTokenSpec(content, true);
            Add(spec with { Content = content, Special = true });
        }
        foreach (AddedTokenSpec token in settings.AdditionalSpecialTokens)
        {
            if (!present.Add(token.Content)) continue;
            Add(token with { Special = true });
        }
    }

    private int Require(string? token, string what, string path) =>
        IdOf(token) ?? throw new ModelFormatException(path, token is null
            ? $"the tokenizer needs a {what} token but none is named"
            : $"the {what} token '{token}' is not in the vocabulary");

    // ---- vocab.txt (transformers' BertConverter) ----

    /// <summary>WordPiece from vocab.txt as BertTokenizerFast builds it.</summary>
    public static TokenizerDefinition FromVocabTxt(string vocabPath, TokenizerSettings settings)
    {
        string file = Path.GetFullPath(vocabPath);
        string text;
        try { text = StrictUtf8.GetString(File.ReadAllBytes(file)); }
        catch (DecoderFallbackException) { throw new ModelFormatException(file, "not valid UTF-8; expected one WordPiece token per line"); }
        // transformers' load_vocab: readlines() with universal newlines, rstrip("\n"), id = line index, a repeated token keeps its last line.
        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        int index = 0;
        foreach (string token in SplitUniversalLines(text)) vocabulary[token] = index++;
        var definition = new TokenizerDefinition("wordpiece", file, vocabulary);
        var defaults = new Dictionary<string, string?> { ["unk"] = "[UNK]", ["sep"] = "[SEP]", ["pad"] = "[PAD]", ["cls"] = "[CLS]", ["mask"] = "[MASK]" };
        definition.AddFolderTokens(settings, defaults);
        string unk = settings.Named("unk", "[UNK]") ?? throw new ModelFormatException(settings.Path, "unk_token is null; WordPiece needs an unknown token");
        // WordPiece looks its unknown token up in the model's vocabulary, not among added tokens, and fails on the
        // first unknown word without it: refused here rather than in the middle of a corpus.
        if (!vocabulary.TryGetValue(unk, out int unkId))
            throw new ModelFormatException(file, $"the unknown (unk_token) token '{unk}' is not in the vocabulary");
        definition.UnknownId = unkId;
        definition.Prefix = [definition.Require(settings.Named("cls", "[CLS]"), "classification (cls_token)", file)];
        definition.Suffix = [definition.Require(settings.Named("sep", "[SEP]"), "separator (sep_token)", file)];
        bool lowercase = settings.DoLowerCase ?? true;
        definition.Json = JsonSerializer.SerializeToUtf8Bytes(new WordPieceTokenizerJson
        {
            AddedTokens = AddedTokens(definition._added),
            Normalizer = new BertNormalizerJson { HandleChineseChars = settings.TokenizeChineseChars ?? true, StripAccents = settings.StripAccents, Lowercase = lowercase },
            Model = new WordPieceModelJson { UnkToken = unk, Vocab = vocabulary },
        }, TokenizerJsonContext.Default.WordPieceTokenizerJson);
        return definition;
    }

    /// <summary>Lines as Python's text mode reads them: \n, \r\n and \r end a line; a last line without an ending still counts.</summary>
    private static IEnumerable<string> SplitUniversalLines(string text)
    {
        int start = 0;
        for (int i = 0; i < text.Length; i++)
        {
            if (text[i] != '\n' && text[i] != '\r') continue;
            yield return text[start..i];
            if (text[i] == '\r' && i + 1 < text.Length && text[i + 1] == '\n') i++;
            start = i + 1;
        }
        if (start < text.Length) yield return text[start..];
    }

    // ---- vocab.json + merges.txt (transformers' GPT2Converter / RobertaConverter) ----

    /// <summary>Byte-level BPE from vocab.json + merges.txt as GPT2TokenizerFast or RobertaTokenizerFast builds it.</summary>
    public static TokenizerDefinition FromVocabJson(string vocabPath, string mergesPath, TokenizerSettings settings, bool roberta)
    {
        string vocabFile = Path.GetFullPath(vocabPath), mergesFile = Path.GetFullPath(mergesPath);
        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        using (JsonDocument document = JsonInput.ParseFile(vocabFile))
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new ModelFormatException(vocabFile, "expected a JSON object of token -> id");
            foreach (JsonProperty entry in document.RootElement.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out int id) || id < 0)
                    throw new ModelFormatException(vocabFile, $"token '{entry.Name}' has id {entry.Value.GetRawText()}; expected a non-negative integer");
                vocabulary[entry.Name] = id;
            }
        }
        var merges = ReadMerges(mergesFile);
        var definition = new TokenizerDefinition(roberta ? "roberta-bpe" : "gpt2-bpe", $"{vocabFile} + {Path.GetFileName(mergesFile)}", vocabulary);
        bool addPrefixSpace = settings.AddPrefixSpace ?? false;
        if (roberta)
        {
            var defaults = new Dictionary<string, string?>
            {
                ["bos"] = "<s>", ["eos"] = "</s>", ["sep"] = "</s>", ["cls"] = "<s>", ["unk"] = "<unk>", ["pad"] = "<pad>", ["mask"] = "<mask>",
            };
            // RobertaTokenizer makes a plain-string mask token strip the space before it.
            var specs = new Dictionary<string, AddedTokenSpec> { ["mask"] = new AddedTokenSpec("<mask>", true, LeftStrip: true) };
            definition.AddFolderTokens(settings, defaults, specs);
            definition.Prefix = [definition.Require(settings.Named("cls", "<s>"), "classification (cls_token)", vocabFile)];
            definition.Suffix = [definition.Require(settings.Named("sep", "</s>"), "separator (sep_token)", vocabFile)];
        }
        else
        {
            var defaults = new Dictionary<string, string?> { ["bos"] = "<|endoftext|>", ["eos"] = "<|endoftext|>", ["unk"] = "<|endoftext|>" };
            definition.AddFolderTokens(settings, defaults);
            if (settings.AddBosToken == true) definition.Prefix = [definition.Require(settings.Named("bos", "<|endoftext|>"), "beginning-of-sequence (bos_token)", vocabFile)];
        }
        definition.Json = JsonSerializer.SerializeToUtf8Bytes(new ByteLevelBpeTokenizerJson
        {
            AddedTokens = AddedTokens(definition._added),
            PreTokenizer = new ByteLevelJson { AddPrefixSpace = addPrefixSpace },
            Decoder = new ByteLevelJson { AddPrefixSpace = true },
            Model = new BpeModelJson { Vocab = vocabulary, Merges = merges },
        }, TokenizerJsonContext.Default.ByteLevelBpeTokenizerJson);
        return definition;
    }

    /// <summary>
    /// merges.txt as the tokenizers library's BPE file reader takes it: lines starting with "#version" are skipped,
    /// every other line is two tokens separated by one space. (transformers' slow GPT2Tokenizer instead drops the first
    /// and the last line whatever they hold; the two agree on every file that has the usual header and final newline.)
    /// </summary>
    private static List<(string Left, string Right)> ReadMerges(string file)
    {
        string text;
        try { text = StrictUtf8.GetString(File.ReadAllBytes(file)); }
        catch (DecoderFallbackException) { throw new ModelFormatException(file, "not valid UTF-8; expected one 'left right' merge per line"); }
        var merges = new List<(string, string)>();
        int lineNumber = 0, start = 0;
        while (start < text.Length)
        {
            int end = text.IndexOf('\n', start);
            string line = end < 0 ? text[start..] : text[start..end];
            start = end < 0 ? text.Length : end + 1;
            lineNumber++;
            if (line.EndsWith('\r')) line = line[..^1];
            if (line.StartsWith("#version", StringComparison.Ordinal)) continue;
            string[] parts = line.Split(' ');
            if (parts.Length != 2)
                throw new ModelFormatException(file, $"line {lineNumber}: expected two tokens separated by one space, got '{Shorten(line)}'");
            merges.Add((parts[0], parts[1]));
        }
        return merges;
    }

    private static string Shorten(string s) => s.Length <= 60 ? s : s[..60] + "...";

    private static AddedTokenJson[] AddedTokens(List<(AddedTokenSpec Token, int Id)> added) =>
        [.. added.Select(a => new AddedTokenJson(a.Id, a.Token.Content, a.Token.SingleWord, a.Token.LeftStrip, a.Token.RightStrip, a.Token.Normalized, a.Token.Special))];

    // ---- tokenizer.json ----

    /// <summary>A tokenizer.json as PreTrainedTokenizerFast loads it, with tokenizer_config.json's special tokens and BOS/EOS flags.</summary>
    public static TokenizerDefinition FromTokenizerJson(string tokenizerPath, TokenizerSettings settings)
    {
        string file = Path.GetFullPath(tokenizerPath);
        using JsonDocument document = JsonInput.ParseFile(file);
        JsonElement root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object) throw new ModelFormatException(file, "expected a JSON object");
        if (!root.TryGetProperty("model", out JsonElement model) || model.ValueKind != JsonValueKind.Object)
            throw new ModelFormatException(file, "no 'model' object");
        string type = model.TryGetProperty("type", out JsonElement t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : InferModelType(model);
        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        string? unknown = null;
        int? unknownIndex = null;
        if (!model.TryGetProperty("vocab", out JsonElement vocab)) throw new ModelFormatException(file, "model has no 'vocab'");
        if (type == "Unigram")
        {
            if (vocab.ValueKind != JsonValueKind.Array) throw new ModelFormatException(file, "Unigram model: 'vocab' must be a list of [piece, score]");
            int index = 0;
            foreach (JsonElement piece in vocab.EnumerateArray())
            {
                if (piece.ValueKind != JsonValueKind.Array || piece.GetArrayLength() < 1 || piece[0].ValueKind != JsonValueKind.String)
                    throw new ModelFormatException(file, $"Unigram model: vocab entry {index} must be [piece, score]");
                vocabulary.TryAdd(piece[0].GetString()!, index++);
            }
            if (model.TryGetProperty("unk_id", out JsonElement u) && u.ValueKind == JsonValueKind.Number && u.TryGetInt32(out int unkId)) unknownIndex = unkId;
        }
        else if (type is "BPE" or "WordPiece" or "WordLevel")
        {
            if (vocab.ValueKind != JsonValueKind.Object) throw new ModelFormatException(file, $"{type} model: 'vocab' must be an object of token -> id");
            foreach (JsonProperty entry in vocab.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out int id) || id < 0)
                    throw new ModelFormatException(file, $"token '{entry.Name}' has id {entry.Value.GetRawText()}; expected a non-negative integer");
                vocabulary[entry.Name] = id;
            }
            if (model.TryGetProperty("unk_token", out JsonElement u) && u.ValueKind == JsonValueKind.String) unknown = u.GetString();
        }
        else throw new ModelFormatException(file, $"model type '{type}' is not supported (expected BPE, WordPiece, WordLevel or Unigram)");

        var definition = new TokenizerDefinition($"tokenizer.json {Describe(type, model, root)}", file, vocabulary);
        if (root.TryGetProperty("added_tokens", out JsonElement added) && added.ValueKind != JsonValueKind.Null)
        {
            if (added.ValueKind != JsonValueKind.Array) throw new ModelFormatException(file, "'added_tokens' must be a list");
            foreach (JsonElement token in added.EnumerateArray())
            {
                if (token.ValueKind != JsonValueKind.Object || !token.TryGetProperty("content", out JsonElement c) || c.ValueKind != JsonValueKind.String)
                    throw new ModelFormatException(file, "every entry of 'added_tokens' must be an object with 'content'");
                bool special = TokenFlag(token, "special", file) ?? false;
                definition.Add(new AddedTokenSpec(c.GetString()!, special, TokenFlag(token, "single_word", file) ?? false,
                    TokenFlag(token, "lstrip", file) ?? false, TokenFlag(token, "rstrip", file) ?? false, TokenFlag(token, "normalized", file) ?? !special));
            }
        }
        definition.AddFolderTokens(settings, new Dictionary<string, string?>());
        definition.UnknownId = unknownIndex ?? definition.IdOf(unknown);

        (definition.Prefix, definition.Suffix) = root.TryGetProperty("post_processor", out JsonElement post)
            ? ReadPostProcessor(post, file)
            : ([], []);
        bool templateClass = settings.TokenizerClass is string cls && BosEosTemplateClasses.Contains(cls);
        if (templateClass || settings.AddBosToken is not null || settings.AddEosToken is not null)
        {
            // LlamaTokenizerFast.update_post_processor: "<bos> $A <eos>" with each part as the flags say.
            bool addBos = settings.AddBosToken ?? templateClass, addEos = settings.AddEosToken ?? false;
            definition.Prefix = addBos ? [definition.Require(settings.Named("bos", null), "beginning-of-sequence (bos_token)", settings.Path)] : [];
            definition.Suffix = addEos ? [definition.Require(settings.Named("eos", null), "end-of-sequence (eos_token)", settings.Path)] : [];
        }

        definition.Json = CopyWithout(root, definition._added);
        return definition;
    }

    private static string InferModelType(JsonElement model) =>
        model.TryGetProperty("merges", out _) ? "BPE"
        : model.TryGetProperty("continuing_subword_prefix", out _) || model.TryGetProperty("max_input_chars_per_word", out _) ? "WordPiece"
        : model.TryGetProperty("vocab", out JsonElement v) && v.ValueKind == JsonValueKind.Array ? "Unigram" : "WordLevel";

    private static string Describe(string type, JsonElement model, JsonElement root)
    {
        var parts = new List<string>();
        if (type == "BPE" && model.TryGetProperty("byte_fallback", out JsonElement b) && b.ValueKind == JsonValueKind.True) parts.Add("byte fallback");
        if (root.TryGetProperty("pre_tokenizer", out JsonElement pre) && pre.GetRawText().Contains("\"ByteLevel\"", StringComparison.Ordinal)) parts.Add("byte-level");
        return parts.Count == 0 ? type : $"{type}, {string.Join(", ", parts)}";
    }

    private static bool? TokenFlag(JsonElement token, string name, string file) =>
        token.TryGetProperty(name, out JsonElement v) ? v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            JsonValueKind.Null => null,
            _ => throw new ModelFormatException(file, $"added token flag '{name}' must be true or false"),
        } : null;

    /// <summary>Marks the sentence's own ids inside a segment of <see cref="ApplyPostProcessor"/>.</summary>
    private const int TextMarker = -1;

    /// <summary>The ids a post-processor puts before and after one sentence.</summary>
    private static (int[] Prefix, int[] Suffix) ReadPostProcessor(JsonElement post, string file)
    {
        List<List<int>> segments = ApplyPostProcessor(post, [[TextMarker]], file);
        List<int> all = segments.SelectMany(s => s).ToList();
        int at = all.IndexOf(TextMarker);
        if (at < 0 || all.LastIndexOf(TextMarker) != at)
            throw new ModelFormatException(file, "the post-processor must keep the sentence exactly once");
        return (all.Take(at).ToArray(), all.Skip(at + 1).ToArray());
    }

    /// <summary>
    /// Runs a post-processor on segments, as the library does: its processors pass a list of encodings along (one
    /// per template piece after a TemplateProcessing), which is joined only at the end, and a TemplateProcessing
    /// reads one encoding as a single sentence and two as a pair. So a Sequence of two templates applies the second
    /// one's pair template; more than two encodings would abort the library, so such a definition is refused here.
    /// </summary>
    private static List<List<int>> ApplyPostProcessor(JsonElement post, List<List<int>> segments, string file)
    {
        if (post.ValueKind == JsonValueKind.Null) return segments;
        if (post.ValueKind != JsonValueKind.Object || !post.TryGetProperty("type", out JsonElement t) || t.ValueKind != JsonValueKind.String)
            throw new ModelFormatException(file, "'post_processor' must be an object with a 'type'");
        string type = t.GetString()!;
        switch (type)
        {
            case "ByteLevel":
                return segments;
            case "BertProcessing":
            case "RobertaProcessing":
            {
                int cls = PairId(post, "cls", file), sep = PairId(post, "sep", file);
                // The first encoding becomes cls A sep; later ones "B sep" (BERT) or "sep B sep" (RoBERTa).
                return segments.Select((segment, i) => i == 0 ? (List<int>)[cls, .. segment, sep]
                    : type == "BertProcessing" ? [.. segment, sep] : [sep, .. segment, sep]).ToList();
            }
            case "TemplateProcessing":
                return ApplyTemplate(post, segments, file);
            case "Sequence":
            {
                if (!post.TryGetProperty("processors", out JsonElement list) || list.ValueKind != JsonValueKind.Array)
                    throw new ModelFormatException(file, "Sequence post-processor without a 'processors' list");
                foreach (JsonElement inner in list.EnumerateArray()) segments = ApplyPostProcessor(inner, segments, file);
                return segments;
            }
            default:
                throw new ModelFormatException(file, $"post-processor type '{type}' is not supported (expected TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel or Sequence)");
        }
    }

    private static int PairId(JsonElement post, string field, string file)
    {
        if (post.TryGetProperty(field, out JsonElement pair) && pair.ValueKind == JsonValueKind.Array && pair.GetArrayLength() == 2
            && pair[1].ValueKind == JsonValueKind.Number && pair[1].TryGetInt32(out int id) && id >= 0)
            return id;
        throw new ModelFormatException(file, $"post-processor field '{field}' must be [token, id]");
    }

    private static List<List<int>> ApplyTemplate(JsonElement post, List<List<int>> segments, string file)
    {
        string which = segments.Count switch
        {
            1 => "single",
            2 => "pair",
            _ => throw new ModelFormatException(file, $"a TemplateProcessing there receives {segments.Count} parts, which the tokenizers library cannot process"),
        };
        if (!post.TryGetProperty(which, out JsonElement template) || template.ValueKind != JsonValueKind.Array)
            throw new ModelFormatException(file, $"TemplateProcessing without a '{which}' template");
        var specials = new Dictionary<string, int[]>(StringComparer.Ordinal);
        if (post.TryGetProperty("special_tokens", out JsonElement map) && map.ValueKind == JsonValueKind.Object)
            foreach (JsonProperty entry in map.EnumerateObject())
            {
                if (!entry.Value.TryGetProperty("ids", out JsonElement ids) || ids.ValueKind != JsonValueKind.Array)
                    throw new ModelFormatException(file, $"TemplateProcessing special token '{entry.Name}' has no 'ids' list");
                specials[entry.Name] = ids.EnumerateArray().Select(i => i.ValueKind == JsonValueKind.Number && i.TryGetInt32(out int v) && v >= 0 ? v
                    : throw new ModelFormatException(file, $"TemplateProcessing special token '{entry.Name}': ids must be non-negative integers")).ToArray();
            }
        var result = new List<List<int>>();
        foreach (JsonElement piece in template.EnumerateArray())
        {
            if (piece.ValueKind == JsonValueKind.Object && piece.TryGetProperty("Sequence", out JsonElement sequence)
                && sequence.TryGetProperty("id", out JsonElement s) && s.GetString() is "A" or "B")
            {
                int index = s.GetString() == "A" ? 0 : 1;
                if (index >= segments.Count) throw new ModelFormatException(file, $"TemplateProcessing '{which}' template uses $B, which a single sentence does not have");
                result.Add([.. segments[index]]);
            }
            else if (piece.ValueKind == JsonValueKind.Object && piece.TryGetProperty("SpecialToken", out JsonElement special)
                && special.TryGetProperty("id", out JsonElement name) && name.ValueKind == JsonValueKind.String)
            {
                if (!specials.TryGetValue(name.GetString()!, out int[]? ids))
                    throw new ModelFormatException(file, $"TemplateProcessing uses special token '{name.GetString()}' that its 'special_tokens' does not define");
                result.Add([.. ids]);
            }
            else throw new ModelFormatException(file, "TemplateProcessing pieces must be {\"Sequence\": {\"id\": \"A\" or \"B\"}} or {\"SpecialToken\": ...}");
        }
        return result;
    }

    /// <summary>The tokenizer.json with our added tokens and without post-processor, truncation and padding.</summary>
    /// <remarks>
    /// Utf8JsonWriter rather than a serialised model: everything but those four fields is the input's own JSON, of whatever
    /// structure its normalizer, pre-tokenizer, model and decoder have, copied through element by element.
    /// </remarks>
    private static byte[] CopyWithout(JsonElement root, List<(AddedTokenSpec Token, int Id)> added)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartObject();
            foreach (JsonProperty property in root.EnumerateObject())
            {
                switch (property.Name)
                {
                    case "post_processor":
                    case "truncation":
                    case "padding":
                        w.WriteNull(property.Name);
                        break;
                    case "added_tokens":
                        WriteAddedTokens(w, added);
                        break;
                    default:
                        property.WriteTo(w);
                        break;
                }
            }
            if (!root.TryGetProperty("added_tokens", out _)) WriteAddedTokens(w, added);
            w.WriteEndObject();
        }
        return stream.ToArray();
    }

    private static void WriteAddedTokens(Utf8JsonWriter w, List<(AddedTokenSpec Token, int Id)> added)
    {
        w.WritePropertyName("added_tokens");
        JsonSerializer.Serialize(w, AddedTokens(added), TokenizerJsonContext.Default.AddedTokenJsonArray);
    }
}
