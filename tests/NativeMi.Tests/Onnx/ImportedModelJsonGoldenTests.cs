using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using NativeMi.Models;
using NativeMi.Text;
using Xunit;

namespace NativeMi.Tests.Onnx;

/// <summary>
/// The JSON files of an imported ONNX model, byte for byte against goldens written by the hand-written writer they had
/// before (import.json with the private cache folder replaced by "&lt;cache&gt;"), and the tokenizer.json converted from its
/// 30,522-token vocab.txt, by hash.
/// </summary>
[Collection(BuiltinModelCollection.Name)]
public sealed class ImportedModelJsonGoldenTests(BuiltinModelFixture models)
{
    public static TheoryData<string, string> Files
    {
        get
        {
            var data = new TheoryData<string, string>();
            foreach (string name in BuiltinModels.Names)
                foreach (string file in new[] { "config.json", "tokenizer_config.json", "special_tokens_map.json", "import.json" })
                    data.Add(name, file);
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void AnImportedFileIsWrittenAsBefore(string name, string file)
    {
        string text = File.ReadAllText(Path.Combine(models.Folders[name], file), Encoding.UTF8);
        text = text.Replace(JsonEncodedText.Encode(models.CacheRoot).ToString(), "<cache>", StringComparison.Ordinal);
        GoldenJson.AssertMatches($"import-{name}-{file}", text);
    }

    public static TheoryData<string, string> ConvertedTokenizers => new()
    {
        { "minilm", "6f0cf809ca261eb6873c06d7aff2712a4945c26d7b3d22f826a90c1fa898040a" },
        { "arctic-xs", "6f0cf809ca261eb6873c06d7aff2712a4945c26d7b3d22f826a90c1fa898040a" },
    };

    [Theory]
    [MemberData(nameof(ConvertedTokenizers))]
    public void TheTokenizerJsonConvertedFromTheVocabularyIsAsBefore(string name, string sha256)
    {
        string folder = models.Folders[name];
        var definition = TokenizerDefinition.FromVocabTxt(Path.Combine(folder, "vocab.txt"), TokenizerSettings.Read(folder));
        string actual = Convert.ToHexStringLower(SHA256.HashData(definition.Json));
        Assert.True(actual == sha256, $"{name}: the converted tokenizer.json has SHA-256 {actual}, not {sha256}");
    }
}
