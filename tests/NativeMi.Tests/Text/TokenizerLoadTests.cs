using System.Text.Json.Nodes;
using NativeMi.Tests.Measurement;
using NativeMi.Text;
using Xunit;

namespace NativeMi.Tests.Text;

/// <summary>What the tokenizer does without the oracle: file choice, special tokens around and inside a sentence, refusals.</summary>
public sealed class TokenizerLoadTests
{
    private static string TokenizerFixture(string name) => Path.Combine(Fixtures.Folder("tokenizers"), name);

    [Fact]
    public void Tokenizer_json_is_preferred_over_vocab_files()
    {
        using var folder = new TempFolder("tokenizer");
        File.Copy(Path.Combine(Fixtures.Folder("bert-tiny"), "vocab.txt"), folder.Combine("vocab.txt"));
        File.Copy(Path.Combine(TokenizerFixture("wordpiece"), "tokenizer.json"), folder.Combine("tokenizer.json"));
        TextTokenizer tokenizer = TextTokenizer.Load(folder.Path, vocabSize: 1 << 20, configPadId: 0, encoder: true);
        Assert.Equal("tokenizer.json WordPiece", tokenizer.Kind);
        Assert.EndsWith("tokenizer.json", tokenizer.Source);
    }

    [Fact]
    public void Special_tokens_around_and_inside_a_sentence_are_no_targets_and_survive_truncation()
    {
        // llama2-spm: <s> = 1 before, </s> = 2 after (add_eos_token), <unk> = 0.
        TextTokenizer tokenizer = TextTokenizer.Load(TokenizerFixture("llama2-spm"), vocabSize: 1 << 20, configPadId: 0, encoder: false);
        Assert.Equal([1], tokenizer.PrefixIds);
        Assert.Equal([2], tokenizer.SuffixIds);
        Assert.Equal([0, 1, 2], tokenizer.SpecialIds.Order());
        Assert.Equal(0, tokenizer.UnknownId);
        EncodedSentence sentence = tokenizer.Encode("the </s> cat sat on the mat", 6);
        Assert.True(sentence.Truncated);
        Assert.Equal(6, sentence.Ids.Length);
        Assert.Equal(1, sentence.Ids[0]);
        Assert.Equal(2, sentence.Ids[^1]);
        for (int i = 0; i < sentence.Ids.Length; i++)
            Assert.Equal(i > 0 && i < sentence.Ids.Length - 1 && sentence.Ids[i] != 2, sentence.IsTarget[i]);
        Assert.Contains(2, sentence.Ids[1..^1]);
    }

    [Fact]
    public void A_lone_surrogate_becomes_a_replacement_character()
    {
        Assert.Equal("a\uFFFDb\uFFFD", HuggingFaceTokenizer.ReplaceLoneSurrogates("a\uD800b\uDC00"));
        Assert.Equal("ok 😀", HuggingFaceTokenizer.ReplaceLoneSurrogates("ok 😀"));
        TextTokenizer tokenizer = TextTokenizer.Load(TokenizerFixture("qwen2-bpe"), vocabSize: 1 << 20, configPadId: 0, encoder: false);
        Assert.Equal(tokenizer.EncodeText("x\uFFFDy"), tokenizer.EncodeText("x\uD800y"));
    }

    [Theory]
    [InlineData("""{"type": "RobertaProcessing2"}""", "post-processor type 'RobertaProcessing2' is not supported")]
    [InlineData("""{"type": "TemplateProcessing", "single": [{"Sequence": {"id": "B", "type_id": 0}}], "pair": [], "special_tokens": {}}""", "uses $B")]
    [InlineData("""{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<x>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}], "pair": [], "special_tokens": {}}""", "'<x>'")]
    [InlineData("""{"type": "Sequence", "processors": [{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}], "pair": [], "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]}, "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}}, {"type": "TemplateProcessing", "single": [], "pair": [], "special_tokens": {}}]}""", "receives 3 parts")]
    public void Post_processors_the_library_cannot_run_are_refused_by_name(string postProcessor, string message)
    {
        using var folder = new TempFolder("tokenizer");
        JsonNode definition = JsonNode.Parse(File.ReadAllText(Path.Combine(TokenizerFixture("wordpiece"), "tokenizer.json")))!;
        definition["post_processor"] = JsonNode.Parse(postProcessor);
        File.WriteAllText(folder.Combine("tokenizer.json"), definition.ToJsonString());
        var e = Assert.Throws<ModelFormatException>(() => TextTokenizer.Load(folder.Path, vocabSize: 1 << 20, configPadId: 0, encoder: true));
        Assert.Contains("tokenizer.json", e.Message);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void Malformed_vocabulary_files_are_refused_with_the_file_and_line()
    {
        using var folder = new TempFolder("tokenizer");
        foreach (string file in new[] { "config.json", "vocab.json", "merges.txt" })
            File.Copy(Path.Combine(Fixtures.Folder("gpt2-tiny"), file), folder.Combine(file));
        File.AppendAllText(folder.Combine("merges.txt"), "a b c\n");
        var e = Assert.Throws<ModelFormatException>(() => TextTokenizer.Load(folder.Path, vocabSize: 320, configPadId: 319, encoder: false));
        Assert.Contains("merges.txt", e.Message);
        Assert.Contains("expected two tokens", e.Message);

        File.Copy(Path.Combine(Fixtures.Folder("gpt2-tiny"), "merges.txt"), folder.Combine("merges.txt"), overwrite: true);
        File.AppendAllText(folder.Combine("merges.txt"), "zzz yyy\n");
        e = Assert.Throws<ModelFormatException>(() => TextTokenizer.Load(folder.Path, vocabSize: 320, configPadId: 319, encoder: false));
        Assert.Contains("tokenizers library refuses", e.Message);

        using var bert = new TempFolder("tokenizer");
        File.WriteAllLines(bert.Combine("vocab.txt"), ["[PAD]", "[CLS]", "[SEP]", "hello"]);
        e = Assert.Throws<ModelFormatException>(() => TextTokenizer.Load(bert.Path, vocabSize: 10, configPadId: 0, encoder: true));
        Assert.Contains("vocab.txt", e.Message);
        Assert.Contains("'[UNK]' is not in the vocabulary", e.Message);
    }
}
