using System.Text.Json;
using NativeMi.IO;

namespace NativeMi.Text;

/// <summary>One token of a tokenizer's added vocabulary, with the matching flags of Hugging Face's AddedToken.</summary>
internal sealed record AddedTokenSpec(string Content, bool Special, bool SingleWord = false, bool LeftStrip = false,
    bool RightStrip = false, bool Normalized = false);

/// <summary>
/// What tokenizer_config.json says about a tokenizer: the fields transformers' fast tokenizers read when they build
/// one from vocab.txt or vocab.json + merges.txt, and the special tokens they add to any tokenizer.
/// </summary>
internal sealed class TokenizerSettings
{
    /// <summary>transformers' SPECIAL_TOKENS_ATTRIBUTES without the additional ones, in its order (the order tokens are added in).</summary>
    public static readonly string[] NamedTokenFields = ["bos", "eos", "unk", "sep", "pad", "cls", "mask"];

    private readonly Dictionary<string, string?> _named = new(StringComparer.Ordinal);
    private readonly Dictionary<string, AddedTokenSpec> _namedSpecs = new(StringComparer.Ordinal);

    private TokenizerSettings(string path) => Path = path;

    /// <summary>Full path of tokenizer_config.json (whether or not it exists), for messages.</summary>
    public string Path { get; }

    public bool? DoLowerCase { get; private set; }
    public bool? StripAccents { get; private set; }
    public bool? TokenizeChineseChars { get; private set; }
    public bool? AddPrefixSpace { get; private set; }
    public bool? AddBosToken { get; private set; }
    public bool? AddEosToken { get; private set; }
    public string? TokenizerClass { get; private set; }

    /// <summary>additional_special_tokens, in order.</summary>
    public List<AddedTokenSpec> AdditionalSpecialTokens { get; } = [];

    /// <summary>added_tokens_decoder, ordered by id (how transformers adds them).</summary>
    public List<AddedTokenSpec> AddedTokensDecoder { get; } = [];

    /// <summary>The content of the <paramref name="field"/>_token field, or <paramref name="fallback"/> when the field is absent (an explicit null stays null).</summary>
    public string? Named(string field, string? fallback) => _named.TryGetValue(field, out string? value) ? value : fallback;

    /// <summary>The flags the field spelled out as an AddedToken object, if it did.</summary>
    public AddedTokenSpec? NamedSpec(string field) => _namedSpecs.GetValueOrDefault(field);

    /// <summary>Reads tokenizer_config.json of <paramref name="directory"/>; every field is absent when the file is.</summary>
    /// <exception cref="ModelFormatException">The file is not a JSON object or a field has the wrong type.</exception>
    public static TokenizerSettings Read(string directory)
    {
        var settings = new TokenizerSettings(System.IO.Path.GetFullPath(System.IO.Path.Combine(directory, "tokenizer_config.json")));
        if (!File.Exists(settings.Path)) return settings;
        using JsonDocument document = JsonInput.ParseFile(settings.Path);
        JsonElement root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object) throw settings.Error("expected a JSON object");
        settings.DoLowerCase = settings.Bool(root, "do_lower_case");
        settings.StripAccents = settings.Bool(root, "strip_accents");
        settings.TokenizeChineseChars = settings.Bool(root, "tokenize_chinese_chars");
        settings.AddPrefixSpace = settings.Bool(root, "add_prefix_space");
        settings.AddBosToken = settings.Bool(root, "add_bos_token");
        settings.AddEosToken = settings.Bool(root, "add_eos_token");
        if (root.TryGetProperty("tokenizer_class", out JsonElement c) && c.ValueKind == JsonValueKind.String) settings.TokenizerClass = c.GetString();
        foreach (string field in NamedTokenFields)
        {
            string key = field + "_token";
            if (!root.TryGetProperty(key, out JsonElement v)) continue;
            AddedTokenSpec? spec = v.ValueKind == JsonValueKind.Null ? null : settings.Token(v, key, special: true);
            settings._named[field] = spec?.Content;
            if (spec is not null && v.ValueKind == JsonValueKind.Object) settings._namedSpecs[field] = spec;
        }
        if (root.TryGetProperty("additional_special_tokens", out JsonElement extra) && extra.ValueKind != JsonValueKind.Null)
        {
            if (extra.ValueKind != JsonValueKind.Array) throw settings.Error("field 'additional_special_tokens' must be a list");
            foreach (JsonElement t in extra.EnumerateArray()) settings.AdditionalSpecialTokens.Add(settings.Token(t, "additional_special_tokens", special: true));
        }
        if (root.TryGetProperty("added_tokens_decoder", out JsonElement decoder) && decoder.ValueKind != JsonValueKind.Null)
        {
            if (decoder.ValueKind != JsonValueKind.Object) throw settings.Error("field 'added_tokens_decoder' must be an object of id -> token");
            var entries = new List<(long Id, AddedTokenSpec Token)>();
            foreach (JsonProperty entry in decoder.EnumerateObject())
            {
                if (!long.TryParse(entry.Name, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long id))
                    throw settings.Error($"added_tokens_decoder key '{entry.Name}' is not a token id");
                if (entry.Value.ValueKind != JsonValueKind.Object) throw settings.Error($"added_tokens_decoder entry {entry.Name} must be an object");
                entries.Add((id, settings.Token(entry.Value, $"added_tokens_decoder.{entry.Name}", special: false)));
            }
            settings.AddedTokensDecoder.AddRange(entries.OrderBy(e => e.Id).Select(e => e.Token));
        }
        return settings;
    }

    private ModelFormatException Error(string problem) => new(Path, problem);

    private bool? Bool(JsonElement root, string field) =>
        root.TryGetProperty(field, out JsonElement v) ? v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            JsonValueKind.Null => null,
            _ => throw Error($"field '{field}' must be true, false or null"),
        } : null;

    /// <summary>
    /// transformers writes a token either as a string or as an AddedToken object ("content" and its flags). A
    /// string named as a special token becomes AddedToken(content, special=True), whose normalized flag is false.
    /// </summary>
    private AddedTokenSpec Token(JsonElement v, string field, bool special)
    {
        if (v.ValueKind == JsonValueKind.String) return new AddedTokenSpec(v.GetString()!, special);
        if (v.ValueKind != JsonValueKind.Object || !v.TryGetProperty("content", out JsonElement c) || c.ValueKind != JsonValueKind.String)
            throw Error($"field '{field}' must be a string or an object with 'content'");
        bool isSpecial = Flag(v, "special", field) ?? special;
        return new AddedTokenSpec(c.GetString()!, isSpecial, Flag(v, "single_word", field) ?? false, Flag(v, "lstrip", field) ?? false,
            Flag(v, "rstrip", field) ?? false, Flag(v, "normalized", field) ?? !isSpecial);
    }

    private bool? Flag(JsonElement token, string name, string field) =>
        token.TryGetProperty(name, out JsonElement v) ? v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            JsonValueKind.Null => null,
            _ => throw Error($"field '{field}': '{name}' must be true or false"),
        } : null;
}
