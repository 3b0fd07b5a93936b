using NativeMi.Cli;
using NativeMi.IO;
using NativeMi.Tests.Measurement;
using NativeMi.Tests.Onnx;
using Xunit;
using Xunit.Abstractions;

namespace NativeMi.Tests.Cli;

/// <summary>`nativemi hidden` on the real built-in minilm against ONNX Runtime running the original ONNX export.</summary>
[Collection(BuiltinModelCollection.Name)]
public sealed class HiddenCommandVersusOnnxRuntimeTests(BuiltinModelFixture models, ITestOutputHelper output) : IDisposable
{
    private readonly TempFolder _folder = new("cli-minilm");

    public void Dispose() => _folder.Dispose();

    [Fact]
    public void MiniLmHiddenStatesMatchOnnxRuntimeAtEveryLayerWithin1e4()
    {
        // 20 sentences from very short to long, so that the file holds plenty of padding.
        string[] corpus = File.ReadLines(MeasurementTestSupport.PackagedCorpus).Take(3000).ToArray();
        string[] byLength = corpus.OrderBy(s => s.Length).ThenBy(s => s, StringComparer.Ordinal).ToArray();
        var sentences = new List<string> { "Hi.", "A café in Zürich — naïve? Yes!" };
        for (int i = 0; sentences.Count < 20; i++) sentences.Add(byLength[(int)((long)i * (byLength.Length - 1) / 17)]);
        string input = _folder.Combine("sentences.txt");
        File.WriteAllLines(input, sentences);
        string file = _folder.Combine("minilm-hidden.safetensors");

        // The imported folder, not the name: the CLI would resolve "minilm" through the user's default cache.
        int code = CliApp.Run(["hidden", "--model", models.Folders["minilm"], "--input", input, "--out", file, "--batch-size", "8"]);
        Assert.Equal(0, code);

        using var hidden = SafetensorsFile.Open(file);
        long[] shape = hidden.GetInfo("input_ids").Shape;
        int n = (int)shape[0], t = (int)shape[1];
        Assert.Equal(20, n);
        long[] ids = hidden.ReadInt64("input_ids"), mask = hidden.ReadInt64("attention_mask");
        Assert.Contains(0L, mask);
        Assert.True(t >= 20, $"the longest sentence should have many tokens, T = {t}");

        using var oracle = new OnnxOracle(models.OnnxPaths["minilm"]);
        var reference = oracle.Run(ids, mask, new long[ids.Length], n, t);
        int d = reference.Hidden;
        Assert.Equal(reference.HiddenStates.Count, hidden.Tensors.Keys.Count(k => k.StartsWith("hidden.", StringComparison.Ordinal)));
        for (int layer = 0; layer < reference.HiddenStates.Count; layer++)
        {
            float[] ours = hidden.ReadFloat32($"hidden.{layer}");
            Assert.Equal(reference.HiddenStates[layer].Length, ours.Length);
            double maxDiff = 0;
            for (int cell = 0; cell < n * t; cell++)
            {
                if (mask[cell] == 0) continue;
                for (int k = 0; k < d; k++)
                    maxDiff = Math.Max(maxDiff, Math.Abs(ours[cell * d + k] - reference.HiddenStates[layer][cell * d + k]));
            }
            output.WriteLine($"minilm hidden.{layer}: max |nativemi hidden - ORT| = {maxDiff:E2}");
            Assert.True(maxDiff <= 1e-4, $"minilm hidden.{layer}: max |nativemi hidden - ORT| = {maxDiff:E3}");
        }
    }
}
