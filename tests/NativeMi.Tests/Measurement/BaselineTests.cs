using NativeMi.IO;
using NativeMi.Measurement;
using Xunit;

namespace NativeMi.Tests.Measurement;

/// <summary>The random-init and shuffled baselines run next to the model and land in results.json.</summary>
public class BaselineTests
{
    [Fact]
    public void ShuffledBaselineMeasuresPermutedVectorsOfTheSameSentences()
    {
        using var folder = new TempFolder("baseline-shuffled");
        string corpus = MeasurementTestSupport.WriteCorpus(folder.Combine("corpus.txt"), 150);
        var options = MeasurementTestSupport.SmallOptions(Fixtures.Folder("bert-tiny"), corpus, folder.Combine("cache")) with { Baseline = BaselineKind.Shuffled };
        MeasurementResult result = MeasurementRunner.Run(options);
        Assert.NotNull(result.Baseline);
        Assert.Equal("shuffled", result.Baseline!.Kind);
        var baseline = result.Baseline.Layers;
        Assert.Equal(result.Layers.Select(l => l.Layer), baseline.Select(l => l.Layer));
        for (int i = 0; i < result.Layers.Count; i++)
        {
            // Same held-out targets, so the same H(X) and control; different vectors, so different probes.
            Assert.Equal(result.Layers[i].Token.EntropyBits, baseline[i].Token.EntropyBits);
            Assert.Equal(result.Layers[i].TokenGain.Bits - result.Layers[i].Token.BarberAgakovBits, baseline[i].TokenGain.Bits - baseline[i].Token.BarberAgakovBits, 12);
            Assert.NotEqual(result.Layers[i].Token.CrossEntropyBits, baseline[i].Token.CrossEntropyBits);
        }
        var json = MeasurementTestSupport.JsonWithoutTimings(result);
        Assert.Equal("shuffled", (string?)json["baseline"]!["kind"]);
        Assert.Equal(result.Layers.Count, json["baseline"]!["layers"]!.AsArray().Count);
    }

    [Fact]
    public void RandomInitBaselineUsesSeededRandomWeightsWithTheSameTensorNames()
    {
        using var folder = new TempFolder("baseline-random");
        string corpus = MeasurementTestSupport.WriteCorpus(folder.Combine("corpus.txt"), 150);
        string cache = folder.Combine("cache");
        var options = MeasurementTestSupport.SmallOptions(Fixtures.Folder("gpt2-tiny"), corpus, cache) with { Baseline = BaselineKind.RandomInit, Layers = [0, 3] };
        MeasurementResult result = MeasurementRunner.Run(options);
        Assert.Equal([0, 3], result.Baseline!.Layers.Select(l => l.Layer));
        Assert.Equal("random-init", result.Baseline.Kind);

        string randomFolder = Assert.Single(Directory.GetDirectories(Path.Combine(cache, "random-init")));
        using var original = SafetensorsFile.Open(Path.Combine(Fixtures.Folder("gpt2-tiny"), "model.safetensors"));
        using var random = SafetensorsFile.Open(Path.Combine(randomFolder, "model.safetensors"));
        Assert.Equal(original.Tensors.Keys.Order(), random.Tensors.Keys.Order());
        foreach (string name in original.Tensors.Keys)
            Assert.Equal(original.GetInfo(name).Shape, random.GetInfo(name).Shape);
        Assert.All(random.ReadFloat32("ln_f.weight"), v => Assert.Equal(1f, v));
        Assert.All(random.ReadFloat32("h.0.attn.c_attn.bias"), v => Assert.Equal(0f, v));
        float[] weights = random.ReadFloat32("h.0.mlp.c_fc.weight");
        double std = Math.Sqrt(weights.Select(v => (double)v * v).Average());
        Assert.InRange(std, 0.018, 0.022);
        Assert.NotEqual(original.ReadFloat32("h.0.mlp.c_fc.weight"), weights);
    }
}
