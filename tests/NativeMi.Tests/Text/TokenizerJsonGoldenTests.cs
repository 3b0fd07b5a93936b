using System.Security.Cryptography;
using System.Text;
using NativeMi.Tests.Measurement;
using NativeMi.Text;
using Xunit;

namespace NativeMi.Tests.Text;

/// <summary>
/// The tokenizer.json handed to the tokenizers library, byte for byte against goldens written by the hand-written writer it
/// had before: converted from vocab.txt (WordPiece) and from vocab.json + merges.txt (GPT-2 and RoBERTa byte-level BPE),
/// and a tokenizer.json passed through with its added tokens rewritten.
/// </summary>
public sealed class TokenizerJsonGoldenTests : IDisposable
{
    private readonly TempFolder _folder = new("tokenizer-golden");

    public void Dispose() => _folder.Dispose();

    private string Folder(string name, params (string File, string Text)[] files)
    {
        string folder = _folder.Combine(name);
        Directory.CreateDirectory(folder);
        foreach (var (file, text) in files) File.WriteAllText(Path.Combine(folder, file), text, new UTF8Encoding(false));
        return folder;
    }

    [Theory]
    [InlineData("bert-tiny")]
    public void AFixtureVocabTxtConvertsAsBefore(string fixture)
    {
        string folder = Fixtures.Folder(fixture);
        var definition = TokenizerDefinition.FromVocabTxt(Path.Combine(folder, "vocab.txt"), TokenizerSettings.Read(folder));
        GoldenJson.AssertMatches($"tokenizer-{fixture}.json", definition.Json);
    }

    [Theory]
    [InlineData("gpt2-tiny", false)]
    [InlineData("roberta-tiny", true)]
    public void AFixtureVocabJsonConvertsAsBefore(string fixture, bool roberta)
    {
        string folder = Fixtures.Folder(fixture);
        var definition = TokenizerDefinition.FromVocabJson(Path.Combine(folder, "vocab.json"), Path.Combine(folder, "merges.txt"), TokenizerSettings.Read(folder), roberta);
        GoldenJson.AssertMatches($"tokenizer-{fixture}.json", definition.Json);
    }

    [Fact]
    public void AWordPieceVocabularyWithAwkwardTokensAndSettingsConvertsAsBefore()
    {
        string vocab = string.Join("\r\n", "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "é", "中", "😀", "<b>", "a+b", "\"q\"", "back\\slash", "'s", "##ing", "é", "tab\there") + "\n";
        string config = """
            {
              "do_lower_case": false, "strip_accents": true, "tokenize_chinese_chars": false,
              "added_tokens_decoder": { "16": { "content": "<new é>", "lstrip": true, "special": false }, "0": { "content": "[PAD]", "special": true } },
              "additional_special_tokens": ["<extra+1>", { "content": "<x>", "rstrip": true, "single_word": true, "normalized": true }]
            }
            """;
        string folder = Folder("wordpiece", ("vocab.txt", vocab), ("tokenizer_config.json", config));
        var definition = TokenizerDefinition.FromVocabTxt(Path.Combine(folder, "vocab.txt"), TokenizerSettings.Read(folder));
        GoldenJson.AssertMatches("tokenizer-wordpiece-awkward.json", definition.Json);

        // Without a tokenizer_config.json: strip_accents null, the defaults for everything else.
        string bare = Folder("wordpiece-bare", ("vocab.txt", vocab));
        GoldenJson.AssertMatches("tokenizer-wordpiece-bare.json", TokenizerDefinition.FromVocabTxt(Path.Combine(bare, "vocab.txt"), TokenizerSettings.Read(bare)).Json);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AByteLevelVocabularyWithAwkwardTokensConvertsAsBefore(bool roberta)
    {
        string vocab = """{ "<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "Ġ": 4, "t": 5, "Ġt": 6, "é": 7, "<|endoftext|>": 8, "a+b": 9, "\"": 10, "\\": 11, "<mask>": 12, "😀": 13 }""";
        string merges = "#version: 0.2\nĠ t\r\na +b\n\" \\\n";
        string config = roberta ? """{ "add_prefix_space": true, "mask_token": { "content": "<mask>", "lstrip": true, "special": true } }""" : """{ "add_bos_token": true }""";
        string folder = Folder(roberta ? "roberta" : "gpt2", ("vocab.json", vocab), ("merges.txt", merges), ("tokenizer_config.json", config));
        var definition = TokenizerDefinition.FromVocabJson(Path.Combine(folder, "vocab.json"), Path.Combine(folder, "merges.txt"), TokenizerSettings.Read(folder), roberta);
        GoldenJson.AssertMatches($"tokenizer-{(roberta ? "roberta" : "gpt2")}-awkward.json", definition.Json);
    }

    /// <summary>SHA-256 of the rewritten tokenizer.json of every committed tokenizer fixture (tens of kilobytes each, so hashes rather than copies).</summary>
    public static TheoryData<string, string> PassedThrough => new()
    {
        { "gpt2-bpe", "f7da7a80c0b21ad4f7b98b2eae19ad8759d07d1b515775c72c925d96a4c9e4d1" },
        { "llama2-spm", "4cbe4b7227a0f351b368836fa78610df3bfe3d13d6bce6be3540c73f3c4c26a8" },
        { "llama3-bpe", "d9be48796b29aca3d334767d085356717812b93ed41347f56b63f0847e460094" },
        { "mistral-spm", "b217e8c0928ede12ea09007513c1b406fe6e5bde4074e9b5ce948d20b75a41c6" },
        { "qwen2-bpe", "e79c3dc74fd9f189171cd062598de9010bb528435bf9ecb4345fd5b428db487c" },
        { "unigram-spm", "b548cd30d5457456d55ab6cd1cafd04a86892887338d5e1fb376cdee6c3647d2" },
        { "wordpiece", "49f31d41b9ebec6ad65990d6c9b421498ef72fa9c2d712191804c9bf779d4f70" },
    };

    [Theory]
    [MemberData(nameof(PassedThrough))]
    public void ATokenizerJsonIsPassedThroughAsBefore(string fixture, string sha256)
    {
        string folder = Fixtures.Folder(Path.Combine("tokenizers", fixture));
        var definition = TokenizerDefinition.FromTokenizerJson(Path.Combine(folder, "tokenizer.json"), TokenizerSettings.Read(folder));
        string actual = Convert.ToHexStringLower(SHA256.HashData(definition.Json));
        Assert.True(actual == sha256, $"{fixture}: the rewritten tokenizer.json has SHA-256 {actual}, not {sha256}");
    }
}
