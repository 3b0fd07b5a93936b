using NativeMi.Measurement;
using NativeMi.Probing;
using Xunit;

namespace NativeMi.Tests.Measurement;

/// <summary>The probe defaults earn their place: chosen on validation data only, and never worse there than the linear probe.</summary>
public class ProbeSelectionTests(MeasurementRunFixture runs) : IClassFixture<MeasurementRunFixture>
{
    private static CandidateScore Score(int hidden, float lr, int patience, double validation) =>
        new(new ProbeCandidate(hidden, lr, patience, 0.3f), [validation], 1);

    [Fact]
    public void TheChoiceIsTheCheapestCandidateWithinTheToleranceOfTheBest()
    {
        CandidateScore[] scores =
        [
            Score(512, 1e-3f, 3, 3.486),
            Score(256, 1e-3f, 3, 3.491),
            Score(256, 1e-3f, 2, 3.489),
            Score(128, 1e-3f, 2, 3.501),
            Score(256, 3e-3f, 2, 3.493),
        ];
        // Within 0.01 bits of 3.486: the three 256-wide ones and the 512-wide best; the narrowest, least patient,
        // fastest-learning of them is 256 / patience 2 / lr 3e-3.
        Assert.Same(scores[4], ProbeSelection.Choose(scores, 0.01));
        // With no tolerance only the best qualifies.
        Assert.Same(scores[0], ProbeSelection.Choose(scores, 0));
        // A wide tolerance admits the 128-wide candidate.
        Assert.Same(scores[3], ProbeSelection.Choose(scores, 0.02));
        Assert.Throws<ArgumentException>(() => ProbeSelection.Choose([]));
    }

    [Fact]
    public void OnAFixtureACandidateThatCannotLearnIsNeverChosen()
    {
        var options = runs.Options("bert-tiny") with { Layers = [0, 3], Epochs = 4, CacheDirectory = runs.NewFolder("tune-cache") };
        ProbeCandidate frozen = new(16, 1e-7f, 2, 0.3f), learning = new(16, 3e-3f, 2, 0.3f), wider = new(32, 3e-3f, 2, 0.3f);
        var scores = ProbeSelection.Score(options, [frozen, learning, wider]);
        Assert.Equal(3, scores.Count);
        Assert.All(scores, s => Assert.Equal(2, s.ValidationCrossEntropyBits.Count));
        CandidateScore chosen = ProbeSelection.Choose(scores);
        Assert.NotEqual(frozen, chosen.Candidate);
        Assert.True(scores[0].MeanValidationCrossEntropyBits > chosen.MeanValidationCrossEntropyBits + 0.05,
            $"lr 1e-7: {scores[0].MeanValidationCrossEntropyBits:F4}, chosen {chosen.MeanValidationCrossEntropyBits:F4}");
        Assert.True(chosen.MeanValidationCrossEntropyBits <= scores.Min(s => s.MeanValidationCrossEntropyBits) + 0.01);
    }

    [Theory]
    [InlineData("bert-tiny")]
    [InlineData("gpt2-tiny")]
    public void TheDefaultPositionalProbeIsNeverWorseOnValidationThanTheLinearProbeOnTheSameVectors(string model)
    {
        // The positional probe's first stage is the linear probe, trained identically; its second stage starts from the
        // kept linear probe and may keep it. So on validation data it cannot lose, layer by layer.
        MeasurementResult positional = MeasurementRunner.Run(runs.Options(model) with { Epochs = 8 });
        MeasurementResult linear = MeasurementRunner.Run(runs.Options(model) with { Epochs = 8, Probe = ProbeFamily.Linear });
        Assert.Equal(positional.Layers.Count, linear.Layers.Count);
        for (int i = 0; i < positional.Layers.Count; i++)
            Assert.True(positional.Layers[i].ValidationCrossEntropyBits <= linear.Layers[i].ValidationCrossEntropyBits + 1e-9,
                $"layer {positional.Layers[i].Name}: positional {positional.Layers[i].ValidationCrossEntropyBits:F5} vs linear {linear.Layers[i].ValidationCrossEntropyBits:F5}");
        // The same held-out targets, so the same entropies: the figures are comparable, and on average no worse.
        Assert.Equal(positional.Targets.Token.Entropies.EntropyBits, linear.Targets.Token.Entropies.EntropyBits);
        Assert.True(positional.Layers.Average(l => l.Coarse.BarberAgakovBits) >= linear.Layers.Average(l => l.Coarse.BarberAgakovBits) - 0.02);
    }

    [Fact]
    public void SeveralProbeSeedsKeepTheLowestValidationCrossEntropyAndReportEverySeed()
    {
        MeasurementResult result = MeasurementRunner.Run(runs.Options("bert-tiny") with { ProbeSeeds = 3, Layers = [0, 2] });
        foreach (LayerResult layer in result.Layers)
        {
            Assert.Equal(3, layer.Seeds.Count);
            Assert.Equal(3, layer.Seeds.Select(s => s.Seed).Distinct().Count());
            Assert.Equal(runs.Options("bert-tiny").Seed + 1, layer.Seeds[0].Seed); // the first seed is the single-seed run's
            SeedFit kept = layer.Seeds.MinBy(s => s.ValidationCrossEntropyBits)!;
            Assert.Equal(kept.ValidationCrossEntropyBits, layer.ValidationCrossEntropyBits);
            Assert.Equal(kept.CoarseBarberAgakovBits, layer.Coarse.BarberAgakovBits);
            Assert.Equal(kept.TokenBarberAgakovBits, layer.Token.BarberAgakovBits);
            // Different seeds, different probes: the spread is real, not one fit copied three times.
            Assert.True(layer.Seeds.Select(s => s.CoarseBarberAgakovBits).Distinct().Count() > 1);
        }
        // One seed gives exactly the first seed's figures.
        MeasurementResult single = MeasurementRunner.Run(runs.Options("bert-tiny") with { Layers = [0, 2] });
        Assert.Equal(result.Layers[0].Seeds[0].CoarseBarberAgakovBits, single.Layers[0].Coarse.BarberAgakovBits);
    }
}
