using NativeMi.IO;
using NativeMi.Models;
using NativeMi.Tests.Measurement;
using NativeMi.Transformer;
using Xunit;

namespace NativeMi.Tests.Cli;

/// <summary>`nativemi inspect` and `nativemi hidden` on the committed fixture models.</summary>
[Collection(CliCollection.Name)]
public sealed class InspectAndHiddenCommandTests : IDisposable
{
    private readonly TempFolder _folder = new("cli-hidden");

    public void Dispose() => _folder.Dispose();

    [Theory]
    [InlineData("bert-tiny")]
    [InlineData("gpt2-tiny")]
    [InlineData("roberta-tiny")]
    public void InspectOfAFixtureSucceeds(string model)
    {
        var (code, error) = CliRunner.Run("inspect", Fixtures.Folder(model));
        Assert.True(code == 0, $"exit {code}: {error}");
    }

    [Fact]
    public void InspectOfAMissingFolderIsAnInputError()
    {
        var (code, error) = CliRunner.Run("inspect", _folder.Combine("no-such-model"));
        Assert.Equal(3, code);
        Assert.Contains("no-such-model", error, StringComparison.Ordinal);
    }

    private static readonly string[] Sentences =
    [
        "the cat sat on the mat",
        "Hi.",
        "she was able to program her computer after many long and patient evenings",
        "a",
        "we were at last able to buy a car",
        "Café in Zürich",
    ];

    [Theory]
    [InlineData("bert-tiny")]
    [InlineData("gpt2-tiny")]
    public void HiddenWritesIdsMaskAndEveryLayerAsTheForwardPassComputesThem(string name)
    {
        string input = _folder.Combine("sentences.txt");
        File.WriteAllLines(input, Sentences);
        string output = _folder.Combine("hidden.safetensors");
        var (code, error) = CliRunner.Run("hidden", "--model", Fixtures.Folder(name), "--input", input, "--out", output, "--batch-size", "2");
        Assert.True(code == 0, $"exit {code}: {error}");

        using var model = TransformerModel.Load(Fixtures.Folder(name));
        EncodedBatch batch = model.Encode(Sentences);
        HiddenStates reference = model.Forward(batch);
        int n = Sentences.Length, t = batch.SequenceLength, d = model.Config.HiddenSize;
        bool gpt2 = model.Config.Family == ArchitectureFamily.Gpt2;

        using var file = SafetensorsFile.Open(output);
        Assert.Equal([n, t], file.GetInfo("input_ids").Shape);
        Assert.Equal([n, t], file.GetInfo("attention_mask").Shape);
        long[] ids = file.ReadInt64("input_ids"), mask = file.ReadInt64("attention_mask");
        Assert.Equal(batch.InputIds.Select(i => (long)i), ids);
        Assert.Equal(batch.AttentionMask.Select(m => (long)m), mask);
        Assert.Contains(0L, mask);

        var entries = Enumerable.Range(0, model.LayerCount).Select(l => ($"hidden.{l}", reference.Layers[l])).ToList();
        if (gpt2) entries.Add(("hidden.final", reference.Final!));
        Assert.Equal(gpt2, file.Tensors.ContainsKey("hidden.final"));
        Assert.False(file.Tensors.ContainsKey($"hidden.{model.LayerCount}"));
        Assert.Equal(2 + entries.Count, file.Tensors.Count);
        foreach (var (tensor, expected) in entries)
        {
            SafetensorsTensorInfo info = file.GetInfo(tensor);
            Assert.Equal(SafetensorsDType.F32, info.DType);
            Assert.Equal([n, t, d], info.Shape);
            float[] values = file.ReadFloat32(tensor);
            double maxDiff = 0;
            for (int cell = 0; cell < n * t; cell++)
                for (int k = 0; k < d; k++)
                {
                    float v = values[cell * d + k];
                    if (mask[cell] == 0) Assert.Equal(0f, v);
                    else maxDiff = Math.Max(maxDiff, Math.Abs(v - expected[cell * d + k]));
                }
            Assert.True(maxDiff <= 1e-5, $"{name} {tensor}: max |file - forward| = {maxDiff:E3}");
        }
        var everything = new EnumerationOptions { AttributesToSkip = 0 };
        Assert.Empty(Directory.GetFiles(_folder.Path, "*.tmp", everything));
    }
}
