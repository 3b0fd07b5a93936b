using NativeMi.Compute;
using NativeMi.Information;

namespace NativeMi.Probing;

/// <summary>
/// Trains a probe with AdamW on mini-batches of whole sentences, stopping early on validation
/// cross-entropy, written against <see cref="IComputeBackend"/> so it runs on either backend.
/// Sentence vectors are standardised per feature with training-split statistics first: an affine map
/// of z is absorbed by the probe's first layer, so the family is unchanged, and optimisation is easier.
/// </summary>
internal static class ProbeTrainer
{
    /// <summary>
    /// Trains on <paramref name="train"/>, early-stopping on <paramref name="validation"/>. The probe starts as the
    /// training unigram over <paramref name="classes"/> (its output weights are zero and its bias the unigram's log
    /// probabilities); the validation CE of that start counts as epoch 0, so the kept probe is never worse on
    /// validation data than the unigram.
    /// </summary>
    public static TrainedProbe Train(IComputeBackend backend, ProbeDataset train, ProbeDataset validation, ClassMap classes, ProbeOptions options,
        IProgress<ProbeEpoch>? progress = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(classes);
        if (train.Count == 0) throw new ArgumentException("the training split has no sentences", nameof(train));
        if (validation.Count == 0) throw new ArgumentException("the validation split has no sentences", nameof(validation));
        int maxPosition = Math.Max(train.Targets.Max(t => t.Length), 1);
        var (mean, scale) = Standardisation(train);
        var network = new ProbeNetwork(backend, options, train.Width, classes.Count, maxPosition, classes.UnigramLogits());
        try
        {
            var trainBatches = new BatchSource(backend, Standardise(train, mean, scale), train.Targets, classes, maxPosition);
            var validationBatches = new BatchSource(backend, Standardise(validation, mean, scale), validation.Targets, classes, maxPosition);
            var random = new SplitMix64(options.Seed ^ 0x5052_4F42_4554_5241UL);
            float[][] best = network.Snapshot();
            double bestValidation = network.MeanCrossEntropyBits(validationBatches, options.BatchSentences);
            int step = 0, epochsRun = 0, bestEpoch = 0;
            int[] order = Enumerable.Range(0, train.Count).ToArray();
            // The positional probe trains in two stages: its linear path alone, then, from the kept linear probe, the
            // whole probe with the MLP path. Each stage stops early on validation CE and may keep its starting point,
            // so the result is never worse on validation data than the trained linear probe.
            int stages = options.Family == ProbeFamily.Positional ? 2 : 1;
            int totalEpochs = stages * options.MaxEpochs;
            for (int stage = 1; stage <= stages; stage++)
            {
                if (stages == 2) network.MlpActive = stage == 2;
                int sinceBest = 0;
                for (int epoch = 1; epoch <= options.MaxEpochs; epoch++)
                {
                    cancellation.ThrowIfCancellationRequested();
                    Shuffle(order, random);
                    double lossSum = 0;
                    long targetSum = 0;
                    for (int start = 0; start < order.Length; start += options.BatchSentences)
                    {
                        // Checked per mini-batch too: an epoch over thousands of sentences would keep a cancelled run going for seconds.
                        cancellation.ThrowIfCancellationRequested();
                        var members = order.AsSpan(start, Math.Min(options.BatchSentences, order.Length - start)).ToArray();
                        using var batch = trainBatches.Prepare(members);
                        lossSum += network.TrainStep(batch, ++step);
                        targetSum += batch.TargetCount;
                    }
                    double validationBits = network.MeanCrossEntropyBits(validationBatches, options.BatchSentences);
                    bool improved = validationBits < bestValidation - 1e-6;
                    epochsRun++;
                    if (improved)
                    {
                        bestValidation = validationBits;
                        network.SnapshotInto(best);
                        sinceBest = 0;
                        bestEpoch = epochsRun;
                    }
                    else
                    {
                        sinceBest++;
                    }
                    progress?.Report(new ProbeEpoch(epochsRun, totalEpochs, lossSum / targetSum / Math.Log(2), validationBits, improved, stage, stages));
                    if (sinceBest >= options.Patience) break;
                }
                network.Restore(best);
            }
            network.Restore(best);
            return new TrainedProbe(network, classes, mean, scale, maxPosition, epochsRun, bestEpoch, bestValidation);
        }
        catch
        {
            network.Dispose();
            throw;
        }
    }

    private static void Shuffle(int[] order, SplitMix64 random)
    {
        for (int i = order.Length - 1; i > 0; i--)
        {
            int j = random.NextInt(i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }
    }

    private static (float[] Mean, float[] Scale) Standardisation(ProbeDataset train)
    {
        int d = train.Width, n = train.Count;
        var mean = new double[d];
        var square = new double[d];
        for (int s = 0; s < n; s++)
            for (int k = 0; k < d; k++)
            {
                double v = train.Vectors[(long)s * d + k];
                mean[k] += v;
                square[k] += v * v;
            }
        var m = new float[d];
        var scale = new float[d];
        for (int k = 0; k < d; k++)
        {
            double mu = mean[k] / n;
            double variance = Math.Max(square[k] / n - mu * mu, 0);
            m[k] = (float)mu;
            // A constant feature (or the control's zero vectors) stays zero instead of dividing by zero.
            scale[k] = variance > 1e-12 ? (float)(1 / Math.Sqrt(variance)) : 0f;
        }
        return (m, scale);
    }

    internal static float[] Standardise(ProbeDataset data, float[] mean, float[] scale)
    {
        int d = data.Width;
        var result = new float[data.Vectors.Length];
        for (int s = 0; s < data.Count; s++)
            for (int k = 0; k < d; k++)
            {
                long i = (long)s * d + k;
                result[i] = (data.Vectors[i] - mean[k]) * scale[k];
            }
        return result;
    }
}
