using System.Text.Json;
using NativeMi.Models;
using Xunit;

namespace NativeMi.Tests.Text;

/// <summary>Our tokenizer against ids recorded by the fixture script's own WordPiece / byte-level BPE (no oracle needed).</summary>
public class TokenizerCaseTests
{
    public static TheoryData<string> Models => new(Fixtures.GoldenModels);

    [Theory]
    [MemberData(nameof(Models))]
    public void IdsMatchTheRecordedCases(string name)
    {
        string folder = Fixtures.Folder(name);
        using var model = TransformerModel.Load(folder);
        using var document = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(folder, "tokenizer_cases.json")));
        int checkedCases = 0;
        foreach (JsonElement c in document.RootElement.GetProperty("cases").EnumerateArray())
        {
            string text = c.GetProperty("text").GetString()!;
            if (model.Tokenizer.IdOf(text) is int special && model.Tokenizer.SpecialIds.Contains(special))
            {
                // The recorded cases spell special tokens (<|endoftext|>) as plain text, as GPT-2's original encoder.py
                // did; Hugging Face's fast tokenizers match them as the added token, and so does this one.
                Assert.Equal([special], model.Tokenizer.EncodeText(text).ToArray());
                Assert.DoesNotContain(true, model.Tokenizer.Encode(text, 10_000).IsTarget);
                checkedCases++;
                continue;
            }
            int[] expected = c.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            Assert.Equal(expected, model.Tokenizer.EncodeText(text).ToArray());
            if (c.TryGetProperty("ids_with_special", out JsonElement withSpecial))
            {
                var encoded = model.Tokenizer.Encode(text, 10_000);
                Assert.Equal(withSpecial.EnumerateArray().Select(e => e.GetInt32()).ToArray(), encoded.Ids);
                // Special tokens the text spells ([MASK], [SEP]) are no targets, like those placed around it.
                Assert.Equal(expected.Count(id => !model.Tokenizer.SpecialIds.Contains(id) || id == model.Tokenizer.UnknownId),
                    encoded.IsTarget.Count(t => t));
            }
            checkedCases++;
        }
        Assert.True(checkedCases >= 5);
    }
}
