using System.Text.Json;
using System.Text.Json.Serialization;

namespace NativeMi.Text;

// The tokenizer.json TokenizerDefinition writes for folders without one: what transformers' BertConverter, GPT2Converter and
// RobertaConverter build, in the key order the tokenizers library serialises. Truncation, padding and the post-processor
// are always null: the library is handed none of them (TokenizerDefinition adds the special tokens itself). The fixed
// fields are get-only properties with their value, so the classes read like the JSON.

/// <summary>One entry of "added_tokens".</summary>
internal sealed record AddedTokenJson(int Id, string Content, bool SingleWord, [property: JsonPropertyName("lstrip")] bool LeftStrip,
    [property: JsonPropertyName("rstrip")] bool RightStrip, bool Normalized, bool Special);

/// <summary>A WordPiece tokenizer.json, as BertTokenizerFast builds it from vocab.txt.</summary>
internal sealed class WordPieceTokenizerJson
{
    public string Version { get; } = "1.0";
    public object? Truncation { get; }
    public object? Padding { get; }
    public required IReadOnlyList<AddedTokenJson> AddedTokens { get; init; }
    public object? PostProcessor { get; }
    public required BertNormalizerJson Normalizer { get; init; }
    public TypeOnlyJson PreTokenizer { get; } = new("BertPreTokenizer");
    public WordPieceDecoderJson Decoder { get; } = new();
    public required WordPieceModelJson Model { get; init; }
}

/// <summary>A byte-level BPE tokenizer.json, as GPT2TokenizerFast or RobertaTokenizerFast builds it from vocab.json and merges.txt.</summary>
internal sealed class ByteLevelBpeTokenizerJson
{
    public string Version { get; } = "1.0";
    public object? Truncation { get; }
    public object? Padding { get; }
    public required IReadOnlyList<AddedTokenJson> AddedTokens { get; init; }
    public object? PostProcessor { get; }
    public object? Normalizer { get; }
    public required ByteLevelJson PreTokenizer { get; init; }
    public required ByteLevelJson Decoder { get; init; }
    public required BpeModelJson Model { get; init; }
}

internal sealed class BertNormalizerJson
{
    public string Type { get; } = "BertNormalizer";
    public bool CleanText { get; } = true;
    public required bool HandleChineseChars { get; init; }
    public required bool? StripAccents { get; init; }
    public required bool Lowercase { get; init; }
}

internal sealed record TypeOnlyJson(string Type);

internal sealed class WordPieceDecoderJson
{
    public string Type { get; } = "WordPiece";
    public string Prefix { get; } = "##";
    public bool Cleanup { get; } = true;
}

internal sealed class WordPieceModelJson
{
    public string Type { get; } = "WordPiece";
    public required string UnkToken { get; init; }
    public string ContinuingSubwordPrefix { get; } = "##";
    public int MaxInputCharsPerWord { get; } = 100;
    public required IReadOnlyDictionary<string, int> Vocab { get; init; }
}

/// <summary>The ByteLevel pre-tokenizer or decoder.</summary>
internal sealed class ByteLevelJson
{
    public string Type { get; } = "ByteLevel";
    public required bool AddPrefixSpace { get; init; }
    public bool TrimOffsets { get; } = true;
    public bool UseRegex { get; } = true;
}

internal sealed class BpeModelJson
{
    public string Type { get; } = "BPE";
    public double? Dropout { get; }
    public string? UnkToken { get; }
    public string ContinuingSubwordPrefix { get; } = "";
    public string EndOfWordSuffix { get; } = "";
    public bool FuseUnk { get; } // false, as are the next two
    public bool ByteFallback { get; }
    public bool IgnoreMerges { get; }
    public required IReadOnlyDictionary<string, int> Vocab { get; init; }
    public required IReadOnlyList<(string Left, string Right)> Merges { get; init; }
}

/// <summary>A merge as the library writes it: the pair [left, right].</summary>
internal sealed class MergeConverter : JsonConverter<(string Left, string Right)>
{
    public override (string Left, string Right) Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => throw new NotSupportedException();

    public override void Write(Utf8JsonWriter writer, (string Left, string Right) value, JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteStartArray();
        writer.WriteStringValue(value.Left);
        writer.WriteStringValue(value.Right);
        writer.WriteEndArray();
    }
}

/// <summary>Source-generated serialisation of the converted tokenizer.json: compact, the default encoder's escaping.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, Converters = [typeof(MergeConverter)])]
[JsonSerializable(typeof(WordPieceTokenizerJson))]
[JsonSerializable(typeof(ByteLevelBpeTokenizerJson))]
[JsonSerializable(typeof(AddedTokenJson[]))]
internal sealed partial class TokenizerJsonContext : JsonSerializerContext;
