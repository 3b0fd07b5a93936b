using NativeMi.Models;

namespace NativeMi.Text;

/// <summary>One sentence as the model sees it.</summary>
/// <param name="Ids">Token ids including the special tokens the model expects.</param>
/// <param name="IsTarget">True at positions that are real text tokens (probe targets); false at special tokens (the unknown token excepted), whether the post-processor put them there or the text spelled them.</param>
/// <param name="Truncated">True when the text was cut to fit the model's context.</param>
internal sealed record EncodedSentence(int[] Ids, bool[] IsTarget, bool Truncated);

/// <summary>
/// Tokenizer of a model folder, run by Hugging Face's own tokenizers library (its Rust core, through
/// Tokenizers.DotNet), so ids are those of transformers' fast tokenizers: tokenizer.json when the folder has one,
/// else WordPiece from vocab.txt or byte-level BPE from vocab.json + merges.txt, built as transformers' converters
/// build them, honouring tokenizer_config.json.
/// </summary>
internal sealed class TextTokenizer
{
    private readonly HuggingFaceTokenizer _library;
    private readonly int[] _prefix;
    private readonly int[] _suffix;
    private readonly HashSet<int> _special;
    private readonly TokenizerDefinition _definition;

    private TextTokenizer(TokenizerDefinition definition, HuggingFaceTokenizer library, int padId)
    {
        _library = library;
        _definition = definition;
        Kind = definition.Kind;
        Source = definition.Source;
        VocabularySize = definition.Count;
        PadId = padId;
        _prefix = definition.Prefix;
        _suffix = definition.Suffix;
        UnknownId = definition.UnknownId;
        _special = definition.SpecialIds.ToHashSet();
        Decode = ids => _library.Decode(ids);
    }

    /// <summary>
    /// "wordpiece" (vocab.txt), "gpt2-bpe" or "roberta-bpe" (vocab.json + merges.txt), or "tokenizer.json" followed by
    /// the model type and its byte handling (e.g. "tokenizer.json BPE, byte-level").
    /// </summary>
    public string Kind { get; }

    /// <summary>The file(s) the vocabulary came from.</summary>
    public string Source { get; }

    /// <summary>Number of distinct ids: the model's vocabulary and the added tokens (Hugging Face's len(tokenizer)).</summary>
    public int VocabularySize { get; }

    /// <summary>Id used for padding (always masked): tokenizer_config.json's pad_token, else config.json's pad_token_id.</summary>
    public int PadId { get; }

    /// <summary>The special ids the post-processor puts before the text of every sentence (e.g. [CLS], &lt;s&gt;).</summary>
    public IReadOnlyList<int> PrefixIds => _prefix;

    /// <summary>The special ids the post-processor puts after the text of every sentence (e.g. [SEP], &lt;/s&gt;).</summary>
    public IReadOnlyList<int> SuffixIds => _suffix;

    /// <summary>Ids of the special added tokens ([CLS], &lt;s&gt;, &lt;|endoftext|&gt;, ...); text that spells one is encoded as it.</summary>
    public IReadOnlySet<int> SpecialIds => _special;

    /// <summary>Id of the model's unknown token, when it has one.</summary>
    public int? UnknownId { get; }

    /// <summary>The id of <paramref name="token"/> (an added token first, then the model's vocabulary, as the library looks it up), or null.</summary>
    public int? IdOf(string token) => _definition.IdOf(token);

    /// <summary>Turns ids back into text (special tokens skipped); null when the library cannot.</summary>
    public Func<IEnumerable<int>, string?> Decode { get; }

    /// <summary>
    /// Whether a text position holding <paramref name="id"/> is a probe target: every id but the special tokens. The
    /// unknown token is a target, since it stands for text the vocabulary cannot spell, not for a control token.
    /// </summary>
    public bool IsTarget(int id) => id == UnknownId || !_special.Contains(id);

    /// <summary>Loads the tokenizer files of <paramref name="directory"/> for a model with <paramref name="config"/>.</summary>
    /// <exception cref="ModelFormatException">No usable tokenizer files, or a vocabulary that does not fit the model.</exception>
    /// <exception cref="EnvironmentException">The tokenizers library (libhf_tokenizers.so) cannot be loaded.</exception>
    public static TextTokenizer Load(string directory, TransformerConfig config) =>
        Load(directory, config.VocabSize, config.PadTokenId, config.Family == ArchitectureFamily.Bert);

    /// <summary>
    /// Loads the tokenizer of <paramref name="directory"/> for a model with <paramref name="vocabSize"/> embedding rows;
    /// <paramref name="configPadId"/> pads when tokenizer_config.json names no pad token, and <paramref name="encoder"/>
    /// picks WordPiece (vocab.txt) and RoBERTa's processing (vocab.json) where the files alone do not say.
    /// </summary>
    internal static TextTokenizer Load(string directory, int vocabSize, int configPadId, bool encoder)
    {
        string tokenizerJson = Path.Combine(directory, "tokenizer.json");
        string vocabTxt = Path.Combine(directory, "vocab.txt");
        string vocabJson = Path.Combine(directory, "vocab.json");
        string merges = Path.Combine(directory, "merges.txt");
        TokenizerSettings settings = TokenizerSettings.Read(directory);
        TokenizerDefinition definition;
        string? padToken;
        if (File.Exists(tokenizerJson))
        {
            definition = TokenizerDefinition.FromTokenizerJson(tokenizerJson, settings);
            padToken = settings.Named("pad", null);
        }
        else if (encoder && File.Exists(vocabTxt))
        {
            definition = TokenizerDefinition.FromVocabTxt(vocabTxt, settings);
            padToken = settings.Named("pad", "[PAD]");
        }
        else if (File.Exists(vocabJson) && File.Exists(merges))
        {
            bool roberta = settings.TokenizerClass switch
            {
                string c when c.StartsWith("Roberta", StringComparison.Ordinal) => true,
                string c when c.StartsWith("GPT2", StringComparison.Ordinal) => false,
                _ => encoder,
            };
            definition = TokenizerDefinition.FromVocabJson(vocabJson, merges, settings, roberta);
            padToken = settings.Named("pad", roberta ? "<pad>" : null);
        }
        else
            throw new ModelFormatException(Path.GetFullPath(directory),
                encoder
                    ? "no tokenizer: expected tokenizer.json or vocab.txt (WordPiece) in the model folder"
                    : "no tokenizer: expected tokenizer.json, or vocab.json and merges.txt (GPT-2 byte-level BPE), in the model folder");

        CheckIds(definition, vocabSize);
        int padId = definition.IdOf(padToken) ?? configPadId;
        if (!definition.AllIds.Any(p => p.Id == padId))
            throw new ModelFormatException(definition.Source,
                $"tokenizer has {definition.Count} entries and no token with id {padId}, which config.json's {(encoder ? "pad_token_id" : "pad_token_id (eos_token_id when absent)")} names (vocab_size {vocabSize}); " +
                "the tokenizer does not belong to this model");
        HuggingFaceTokenizer library = HuggingFaceTokenizer.Load(definition.Json, definition.Source);
        definition.ReleaseJson();
        return new TextTokenizer(definition, library, padId);
    }

    /// <summary>Every id the tokenizer can produce must index the model's embedding table.</summary>
    private static void CheckIds(TokenizerDefinition definition, int vocabSize)
    {
        int count = definition.Count;
        if (count > vocabSize)
            throw new ModelFormatException(definition.Source,
                $"tokenizer has {count} entries but config.json's vocab_size is {vocabSize}; the tokenizer does not belong to this model");
        foreach (var (token, id) in definition.AllIds)
            if (id >= vocabSize)
                throw new ModelFormatException(definition.Source,
                    $"token '{token}' has id {id}, but config.json's vocab_size is {vocabSize} (ids must be below it); the tokenizer does not belong to this model");
    }

    /// <summary>Ids of the text alone, without the special tokens around a sentence (added tokens the text spells are kept).</summary>
    public IReadOnlyList<int> EncodeText(string text) => _library.Encode(text);

    /// <summary>
    /// Encodes one sentence with the special tokens the model expects, truncating the text so the whole
    /// sequence fits <paramref name="maxLength"/> tokens.
    /// </summary>
    public EncodedSentence Encode(string text, int maxLength)
    {
        int room = maxLength - _prefix.Length - _suffix.Length;
        if (room < 1) throw new ArgumentOutOfRangeException(nameof(maxLength), $"{maxLength} leaves no room for text after the special tokens");
        int[] body = _library.Encode(text);
        bool truncated = body.Length > room;
        int count = Math.Min(body.Length, room);
        var ids = new int[_prefix.Length + count + _suffix.Length];
        var isTarget = new bool[ids.Length];
        _prefix.CopyTo(ids, 0);
        for (int i = 0; i < count; i++)
        {
            ids[_prefix.Length + i] = body[i];
            isTarget[_prefix.Length + i] = IsTarget(body[i]);
        }
        _suffix.CopyTo(ids, _prefix.Length + count);
        return new EncodedSentence(ids, isTarget, truncated);
    }
}
