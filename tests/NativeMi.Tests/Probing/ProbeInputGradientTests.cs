using NativeMi.Compute.Cpu;
using NativeMi.Probing;
using Xunit;

namespace NativeMi.Tests.Probing;

/// <summary>
/// d(mean loss)/d(sentence vectors) from <see cref="ProbeNetwork.TrainStep"/>, the gradient fine-tuning passes back into
/// a model, against central differences of the probe's own loss in random directions (every family and path).
/// </summary>
public class ProbeInputGradientTests
{
    [Theory]
    [InlineData(ProbeFamily.Positional, false)]
    [InlineData(ProbeFamily.Positional, true)]
    [InlineData(ProbeFamily.Bag, false)]
    public void TheInputGradientMatchesCentralDifferences(ProbeFamily family, bool mlp)
    {
        const int sentences = 6, width = 12, classes = 5, positions = 4;
        var random = new Random(11);
        float[] vectors = Enumerable.Range(0, sentences * width).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        var targets = Enumerable.Range(0, sentences).Select(s => Enumerable.Range(0, 1 + s % 4).Select(i => random.Next(classes + 2)).ToArray()).ToList();
        ClassMap map = ClassMap.Build(targets, [], maxClasses: classes - 1, vocabularySize: 50);
        using var backend = new CpuBackend();
        var options = new ProbeOptions { Family = family, Hidden = 8, LearningRate = 0f, WeightDecay = 0f, Seed = 3 };
        using var probe = new ProbeNetwork(backend, options, width, map.Count, positions, new float[map.Count]);
        probe.MlpActive = mlp;
        // Output weights start at zero (so the input gradient would be zero); give every parameter values.
        float[][] values = probe.Snapshot();
        for (int p = 0; p < values.Length; p++)
            for (int i = 0; i < values[p].Length; i++)
                if (values[p][i] == 0) values[p][i] = (float)(random.NextDouble() - 0.5) * 0.5f;
        probe.Restore(values);
        int[] members = Enumerable.Range(0, sentences).ToArray();

        double MeanLoss(float[] at)
        {
            using PreparedBatch batch = new BatchSource(backend, at, targets, map, positions).Prepare(members);
            var (loss, _) = probe.Score(batch);
            return loss.Select(v => (double)v).Average();
        }

        var gradient = new float[sentences * width];
        using (PreparedBatch batch = new BatchSource(backend, vectors, targets, map, positions).Prepare(members))
        {
            using var input = backend.Allocate<float>(sentences * width);
            // Learning rate 0: the step leaves the parameters as they are, so the differences below see the same probe.
            probe.TrainStep(batch, step: 1, inputGradient: input);
            backend.Download(input, gradient);
        }
        Assert.Contains(gradient, g => g != 0);
        for (int direction = 0; direction < 4; direction++)
        {
            float[] v = Enumerable.Range(0, vectors.Length).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
            const float h = 1e-2f;
            double analytic = 0;
            for (int i = 0; i < v.Length; i++) analytic += (double)gradient[i] * v[i];
            double numeric = (MeanLoss(vectors.Select((x, i) => x + h * v[i]).ToArray()) - MeanLoss(vectors.Select((x, i) => x - h * v[i]).ToArray())) / (2 * h);
            // fp32 losses: central differences at h = 1e-2 are good to a few 1e-4 relative on these sizes.
            Assert.True(Math.Abs(analytic - numeric) <= 2e-3 * Math.Max(Math.Abs(numeric), 1e-2),
                $"{family} mlp={mlp} direction {direction}: analytic {analytic:E6}, central difference {numeric:E6}");
        }
    }
}
