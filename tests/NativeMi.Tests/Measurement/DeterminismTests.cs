using System.Diagnostics;
using System.Text.Json.Nodes;
using NativeMi.Measurement;
using Xunit;
using Xunit.Abstractions;

namespace NativeMi.Tests.Measurement;

/// <summary>Same seed and backend give the same numbers; another seed gives other numbers.</summary>
public class DeterminismTests(MeasurementRunFixture runs, ITestOutputHelper output) : IClassFixture<MeasurementRunFixture>
{
    [Theory]
    [InlineData("bert-tiny")]
    [InlineData("gpt2-tiny")]
    public void TwoRunsWithTheSameOptionsWriteTheSameResultsJson(string model)
    {
        MeasurementResult first = runs.Run(model);
        var clock = Stopwatch.StartNew();
        // A separate cache folder: the second run recomputes every forward pass instead of reading the first run's vectors.
        MeasurementResult second = MeasurementRunner.Run(runs.Options(model) with { CacheDirectory = runs.NewFolder("cache") });
        output.WriteLine($"{model}: one run took {clock.Elapsed.TotalSeconds:F1} s");

        JsonObject a = MeasurementTestSupport.JsonWithoutTimings(first), b = MeasurementTestSupport.JsonWithoutTimings(second);
        Assert.Equal(a.ToJsonString(), b.ToJsonString());
        Assert.True(JsonNode.DeepEquals(a, b));
        Assert.True(first.Layers.Count >= 4);
    }

    [Theory]
    [InlineData("bert-tiny")]
    [InlineData("gpt2-tiny")]
    public void ADifferentSeedChangesTheSplitAndTheFigures(string model)
    {
        MeasurementResult first = runs.Run(model);
        MeasurementResult other = MeasurementRunner.Run(runs.Options(model, seed: 12345));
        Assert.Equal(12345UL, other.Options.Seed);
        JsonObject a = MeasurementTestSupport.JsonWithoutTimings(first), b = MeasurementTestSupport.JsonWithoutTimings(other);
        // Not only the recorded seed: the held-out figures differ.
        Assert.False(JsonNode.DeepEquals(a["layers"], b["layers"]), "another seed should give other per-layer figures");
        Assert.NotEqual(first.Layers[0].Token.HeldOutMillerMadowEntropyBits, other.Layers[0].Token.HeldOutMillerMadowEntropyBits);
        // H(X) is the whole corpus's, whatever the split.
        Assert.Equal(first.Targets.Token.Entropies.EntropyBits, other.Targets.Token.Entropies.EntropyBits);
        // The corpus is the same and every sentence is used, whatever the seed.
        Assert.Equal(first.Corpus.Sha256, other.Corpus.Sha256);
        Assert.Equal(first.Corpus.Train + first.Corpus.Validation + first.Corpus.HeldOut, other.Corpus.Train + other.Corpus.Validation + other.Corpus.HeldOut);
    }
}
