using NativeMi.IO;
using NativeMi.Models;
using Xunit;

namespace NativeMi.Tests.Models;

/// <summary>A broken model folder gives a clear error naming the file and what was wrong.</summary>
public sealed class ModelFolderErrorTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("nativemi-model-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private void CopyFixture(string name)
    {
        foreach (string file in Directory.GetFiles(Fixtures.Folder(name)))
            File.Copy(file, Path.Combine(_folder, Path.GetFileName(file)), overwrite: true);
    }

    private void EditConfig(string from, string to)
    {
        string path = Path.Combine(_folder, "config.json");
        string text = File.ReadAllText(path);
        Assert.Contains(from, text);
        File.WriteAllText(path, text.Replace(from, to));
    }

    [Fact]
    public void UnsupportedModelTypeIsNamed()
    {
        CopyFixture("bert-tiny");
        EditConfig("\"model_type\": \"bert\"", "\"model_type\": \"t5\"");
        var error = Assert.Throws<ModelFormatException>(() => TransformerModel.Load(_folder));
        Assert.Contains("config.json", error.Message);
        Assert.Contains("\"t5\"", error.Message);
        Assert.Contains("supported", error.Message);
    }

    [Fact]
    public void ConfigContradictingTheWeightsNamesTensorAndShapes()
    {
        CopyFixture("gpt2-tiny");
        EditConfig("\"n_layer\": 3", "\"n_layer\": 4");
        var missing = Assert.Throws<ModelFormatException>(() => TransformerModel.Load(_folder));
        Assert.Contains("'n_layer' = 4", missing.Message);
        Assert.Contains("'h.3.*' is missing", missing.Message);

        CopyFixture("gpt2-tiny");
        EditConfig("\"n_positions\": 64", "\"n_positions\": 65");
        var shape = Assert.Throws<ModelFormatException>(() => TransformerModel.Load(_folder));
        Assert.Contains("wpe.weight", shape.Message);
        Assert.Contains("[64, 48]", shape.Message);
        Assert.Contains("[65, 48]", shape.Message);
    }

    [Fact]
    public void MissingOrMistypedFieldsAreNamed()
    {
        CopyFixture("bert-tiny");
        EditConfig("\"hidden_size\": 48", "\"hidden_size\": \"48\"");
        Assert.Contains("'hidden_size'", Assert.Throws<ModelFormatException>(() => TransformerModel.Load(_folder)).Message);

        CopyFixture("bert-tiny");
        EditConfig("\"num_attention_heads\": 4", "\"num_attention_heads\": 5");
        Assert.Contains("not divisible", Assert.Throws<ModelFormatException>(() => TransformerModel.Load(_folder)).Message);

        CopyFixture("bert-tiny");
        File.WriteAllText(Path.Combine(_folder, "config.json"), "{\"model_type\": \"bert\", ");
        Assert.Contains("not well-formed JSON", Assert.Throws<ModelFormatException>(() => TransformerModel.Load(_folder)).Message);
    }

    [Fact]
    public void TokenizerLargerThanTheModelVocabularyIsRejected()
    {
        CopyFixture("bert-tiny");
        File.AppendAllLines(Path.Combine(_folder, "vocab.txt"), Enumerable.Range(0, 50).Select(i => $"extra{i}"));
        var error = Assert.Throws<ModelFormatException>(() => TransformerModel.Load(_folder));
        Assert.Contains("vocab.txt", error.Message);
        Assert.Contains("does not belong", error.Message);
    }

    [Fact]
    public void MissingWeightsAndTokenizerFilesAreNamed()
    {
        CopyFixture("bert-tiny");
        File.Delete(Path.Combine(_folder, "model.safetensors"));
        Assert.Contains("model.safetensors", Assert.Throws<ModelFormatException>(() => TransformerModel.Load(_folder)).Message);

        CopyFixture("gpt2-tiny");
        File.Delete(Path.Combine(_folder, "merges.txt"));
        Assert.Contains("merges.txt", Assert.Throws<ModelFormatException>(() => TransformerModel.Load(_folder)).Message);
    }

    [Fact]
    public void PrefixedAndUnprefixedCheckpointsLoadTheSameArchitecture()
    {
        using var plain = TransformerModel.Load(Fixtures.Folder("gpt2-tiny"));
        using var prefixed = TransformerModel.Load(Fixtures.Folder("gpt2-tiny-lmhead"));
        using var bert = TransformerModel.Load(Fixtures.Folder("bert-tiny-mlm"));
        using var roberta = TransformerModel.Load(Fixtures.Folder("roberta-tiny"));
        Assert.Equal("", plain.WeightNamePrefix);
        Assert.Equal("transformer.", prefixed.WeightNamePrefix);
        Assert.Equal("bert.", bert.WeightNamePrefix);
        Assert.Equal("roberta.", roberta.WeightNamePrefix);
        Assert.Equal(2, roberta.Config.PositionOffset);
    }
}
