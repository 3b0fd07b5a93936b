using System.Text.Json;
using System.Text.Json.Nodes;
using NativeMi.Models;
using NativeMi.Tests.Measurement;
using NativeMi.Tests.Onnx;
using NativeMi.Text;
using Xunit;

namespace NativeMi.Tests.Text;

/// <summary>
/// Our tokenizer against Hugging Face's tokenizers library itself (tests/oracle/hf-tokenize.js, the npm package):
/// ids without and with special tokens, which positions are special, the special ids and the vocabulary size, on the
/// hand-picked lines of fixtures/tokenizers/lines.json (accents, combining marks, CJK, emoji, math and currency,
/// whitespace, zero-width and control characters, URLs, words over 100 characters, special-token spellings) and
/// on corpus lines: the whole corpus for the built-in models' (shared) vocabulary, for the others every corpus line with a
/// character outside plain ASCII words and punctuation plus every 100th line.
/// </summary>
[Collection(BuiltinModelCollection.Name)]
public sealed class TokenizerOracleTests(BuiltinModelFixture builtins)
{
    private static readonly string[] Lines =
        JsonSerializer.Deserialize<string[]>(File.ReadAllText(Path.Combine(Fixtures.Folder("tokenizers"), "lines.json")))!;

    private static readonly string[] Corpus =
        File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, "data", "wordnet-examples.txt")).Where(l => l.Length > 0).ToArray();

    /// <summary>Corpus lines with a character other than letters, digits, spaces and , . ; : ' " ( ) ? ! -, and every 100th line.</summary>
    private static readonly string[] CorpusSample =
        Corpus.Where((line, i) => i % 100 == 0 || line.Any(c => !(char.IsAsciiLetterOrDigit(c) || " ,.;:'\"()?!-".Contains(c)))).ToArray();

    public static TheoryData<string> BuiltinNames => new(BuiltinModels.Names);

    public static TheoryData<string> VocabFixtures => new(Fixtures.GoldenModels);

    public static TheoryData<string> TokenizerJsonFixtures => new("llama2-spm", "mistral-spm", "llama3-bpe", "qwen2-bpe", "wordpiece", "gpt2-bpe", "unigram-spm");

    [OracleTheory]
    [MemberData(nameof(BuiltinNames))]
    public void Builtin_vocabulary_matches_on_the_tricky_lines_and_the_whole_corpus(string name)
    {
        string folder = builtins.Folders[name];
        TextTokenizer tokenizer = TextTokenizer.Load(folder, TransformerConfig.Load(Path.Combine(folder, "config.json")));
        Assert.Equal("wordpiece", tokenizer.Kind);
        Assert.Equal(30522, tokenizer.VocabularySize);
        if (name == "minilm")
        {
            Compare(folder, tokenizer, [.. Lines, .. Corpus]);
            return;
        }
        // Both built-ins carry bert-base-uncased's files byte for byte, so minilm's whole-corpus run covers this one too.
        string minilm = builtins.Folders["minilm"];
        foreach (string file in new[] { "vocab.txt", "tokenizer_config.json" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(minilm, file)), File.ReadAllBytes(Path.Combine(folder, file)));
        Compare(folder, tokenizer, [.. Lines, .. CorpusSample]);
    }

    [OracleTheory]
    [MemberData(nameof(VocabFixtures))]
    public void Vocab_file_fixtures_match(string name)
    {
        string folder = Fixtures.Folder(name);
        Compare(folder, TextTokenizer.Load(folder, TransformerConfig.Load(Path.Combine(folder, "config.json"))), [.. Lines, .. CorpusSample]);
    }

    [OracleTheory]
    [MemberData(nameof(TokenizerJsonFixtures))]
    public void Tokenizer_json_fixtures_match(string name)
    {
        string folder = Path.Combine(Fixtures.Folder("tokenizers"), name);
        TextTokenizer tokenizer = TextTokenizer.Load(folder, vocabSize: 1 << 20, configPadId: 0, encoder: name == "wordpiece");
        Assert.StartsWith("tokenizer.json", tokenizer.Kind);
        Compare(folder, tokenizer, [.. Lines, .. CorpusSample]);
    }

    /// <summary>tokenizer_config.json settings BertTokenizerFast honours, on the built-in vocabulary.</summary>
    [OracleTheory]
    [InlineData("""{"do_lower_case": false}""")]
    [InlineData("""{"do_lower_case": true, "strip_accents": false}""")]
    [InlineData("""{"do_lower_case": false, "strip_accents": true}""")]
    [InlineData("""{"do_lower_case": true, "tokenize_chinese_chars": false}""")]
    [InlineData("""{"do_lower_case": false, "strip_accents": false, "tokenize_chinese_chars": false}""")]
    [InlineData("""{"additional_special_tokens": ["[NEW]", "<mask>"], "mask_token": {"content": "[MASK]", "lstrip": true, "rstrip": false, "normalized": false, "single_word": false, "special": true}}""")]
    public void WordPiece_settings_match(string tokenizerConfig)
    {
        using var folder = new TempFolder("tokenizer");
        File.Copy(Path.Combine(builtins.Folders["minilm"], "vocab.txt"), Path.Combine(folder.Path, "vocab.txt"));
        File.WriteAllText(Path.Combine(folder.Path, "tokenizer_config.json"), tokenizerConfig);
        Compare(folder.Path, TextTokenizer.Load(folder.Path, vocabSize: 1 << 20, configPadId: 0, encoder: true), [.. Lines, .. CorpusSample]);
    }

    /// <summary>Byte-level BPE folders with the tokenizer_config.json fields GPT2TokenizerFast and RobertaTokenizerFast honour.</summary>
    [OracleTheory]
    [InlineData("gpt2-tiny", """{"add_bos_token": true, "bos_token": "<|endoftext|>", "tokenizer_class": "GPT2Tokenizer"}""")]
    [InlineData("gpt2-tiny", """{"add_prefix_space": true, "tokenizer_class": "GPT2Tokenizer"}""")]
    [InlineData("roberta-tiny", """{"add_prefix_space": true, "tokenizer_class": "RobertaTokenizer"}""")]
    [InlineData("roberta-tiny", """{}""")]
    public void Byte_level_settings_match(string fixture, string tokenizerConfig)
    {
        using var folder = new TempFolder("tokenizer");
        foreach (string file in new[] { "config.json", "vocab.json", "merges.txt" })
            File.Copy(Path.Combine(Fixtures.Folder(fixture), file), Path.Combine(folder.Path, file));
        File.WriteAllText(Path.Combine(folder.Path, "tokenizer_config.json"), tokenizerConfig);
        Compare(folder.Path, TextTokenizer.Load(folder.Path, TransformerConfig.Load(Path.Combine(folder.Path, "config.json"))), [.. Lines, .. CorpusSample]);
    }

    /// <summary>tokenizer_config.json fields transformers applies on top of a tokenizer.json: BOS/EOS flags and extra special tokens.</summary>
    [OracleTheory]
    [InlineData("llama3-bpe", """{"add_bos_token": false, "bos_token": "<|begin_of_text|>"}""")]
    [InlineData("llama3-bpe", """{"add_eos_token": true, "bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"}""")]
    [InlineData("llama2-spm", """{"tokenizer_class": "LlamaTokenizerFast", "bos_token": "<s>", "eos_token": "</s>"}""")]
    [InlineData("mistral-spm", """{"add_bos_token": false, "add_eos_token": true, "bos_token": "<s>", "eos_token": "</s>"}""")]
    [InlineData("qwen2-bpe", """{"additional_special_tokens": ["<|im_start|>", "<|new|>"], "pad_token": "<|endoftext|>"}""")]
    public void Tokenizer_config_on_top_of_tokenizer_json_matches(string fixture, string tokenizerConfig)
    {
        using var folder = new TempFolder("tokenizer");
        File.Copy(Path.Combine(Fixtures.Folder("tokenizers"), fixture, "tokenizer.json"), folder.Combine("tokenizer.json"));
        File.WriteAllText(folder.Combine("tokenizer_config.json"), tokenizerConfig);
        Compare(folder.Path, TextTokenizer.Load(folder.Path, vocabSize: 1 << 20, configPadId: 0, encoder: false), Lines);
    }

    /// <summary>Every post-processor type we read (ours, not the library's) against the library running it.</summary>
    [OracleTheory]
    [InlineData("""null""")]
    [InlineData("""{"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]}""")]
    [InlineData("""{"type": "RobertaProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2], "trim_offsets": true, "add_prefix_space": false}""")]
    [InlineData("""{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true}""")]
    [InlineData("""{"type": "Sequence", "processors": [{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}], "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}], "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]}}}, {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "[MASK]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}], "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}], "special_tokens": {"[MASK]": {"id": "[MASK]", "ids": [4], "tokens": ["[MASK]"]}, "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}}]}""")]
    [InlineData("""{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "both", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}], "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}], "special_tokens": {"both": {"id": "both", "ids": [2, 4], "tokens": ["[CLS]", "[MASK]"]}, "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}}""")]
    [InlineData("""{"type": "Sequence", "processors": [{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "[MASK]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}], "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}], "special_tokens": {"[MASK]": {"id": "[MASK]", "ids": [4], "tokens": ["[MASK]"]}}}, {"type": "RobertaProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2], "trim_offsets": true, "add_prefix_space": false}]}""")]
    public void Post_processors_match(string postProcessor)
    {
        using var folder = new TempFolder("tokenizer");
        JsonNode definition = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures.Folder("tokenizers"), "wordpiece", "tokenizer.json")))!;
        definition["post_processor"] = JsonNode.Parse(postProcessor);
        File.WriteAllText(folder.Combine("tokenizer.json"), definition.ToJsonString());
        Compare(folder.Path, TextTokenizer.Load(folder.Path, vocabSize: 1 << 20, configPadId: 0, encoder: true), Lines);
    }

    private static void Compare(string folder, TextTokenizer tokenizer, string[] texts)
    {
        OracleResult oracle = HuggingFaceOracle.Encode(folder, texts);
        Assert.Equal(oracle.VocabSize, tokenizer.VocabularySize);
        Assert.Equal(oracle.AddedTokens.Where(t => t.Special).Select(t => t.Id).Order(), tokenizer.SpecialIds.Order());
        var differences = new List<string>();
        for (int i = 0; i < texts.Length; i++)
        {
            OracleLine expected = oracle.Lines[i];
            int[] text = tokenizer.EncodeText(texts[i]).ToArray();
            EncodedSentence sentence = tokenizer.Encode(texts[i], 1 << 20);
            // Probe targets: every position the library did not add, unless it holds a special token (the unknown token excepted).
            bool[] targets = expected.IdsWithSpecial.Select((id, p) => expected.SpecialMask[p] == 0 && tokenizer.IsTarget(id)).ToArray();
            string? problem = !text.SequenceEqual(expected.Ids) ? $"ids [{string.Join(",", text)}], HF [{string.Join(",", expected.Ids)}]"
                : !sentence.Ids.SequenceEqual(expected.IdsWithSpecial) ? $"with special tokens [{string.Join(",", sentence.Ids)}], HF [{string.Join(",", expected.IdsWithSpecial)}]"
                : !sentence.IsTarget.SequenceEqual(targets) ? $"targets [{string.Join(",", sentence.IsTarget.Select(t => t ? 1 : 0))}], expected [{string.Join(",", targets.Select(t => t ? 1 : 0))}]"
                : null;
            if (problem is not null) differences.Add($"{JsonSerializer.Serialize(texts[i])}: {problem}");
        }
        Assert.True(differences.Count == 0,
            $"{differences.Count} of {texts.Length} lines differ from Hugging Face's tokenizers {oracle.Version} for {folder}:\n" + string.Join('\n', differences.Take(20)));
    }
}
