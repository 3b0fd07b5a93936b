using NativeMi.Compute;
using NativeMi.Information;
using NativeMi.Probing;

namespace NativeMi.Measurement;

/// <summary>Figures of the control probe (z replaced by zeros) on the held-out targets.</summary>
/// <param name="CrossEntropyBits">CE_ctrl.</param>
/// <param name="Accuracy">acc_ctrl.</param>
public sealed record ControlFigures(double CrossEntropyBits, double Accuracy);

/// <summary>
/// One layer's measurement from sentence vectors already split: train the probe, score the held-out
/// sentences, and compute every figure. The measurement run uses it per layer; tests use it on synthetic vectors.
/// </summary>
public static class ProbeMeasurement
{
    /// <summary>Trains the control probe on zero vectors and scores it on the held-out targets.</summary>
    public static ControlFigures TrainControl(IComputeBackend backend, ProbeDataset train, ProbeDataset validation, ProbeDataset heldOut,
        ProbeOptions options, long vocabularySize, IProgress<ProbeEpoch>? progress = null, CancellationToken cancellation = default)
    {
        using TrainedProbe probe = ProbeTrainer.Train(backend, train.WithZeroVectors(), validation.WithZeroVectors(), options, progress, cancellation);
        var (outcomes, _) = probe.Evaluate(backend, heldOut.WithZeroVectors(), vocabularySize);
        long n = outcomes.Sum(o => (long)o.Length);
        return new ControlFigures(outcomes.Sum(o => o.CrossEntropyBitsSum) / n, outcomes.Sum(o => (long)o.CorrectCount) / (double)n);
    }

    /// <summary>Trains a probe on one layer's vectors and returns its held-out figures (layer number and depth left 0).</summary>
    public static LayerResult MeasureLayer(IComputeBackend backend, ProbeDataset train, ProbeDataset validation, ProbeDataset heldOut,
        ProbeOptions options, LayerFigureOptions figureOptions, ControlFigures control, IProgress<ProbeEpoch>? progress = null,
        CancellationToken cancellation = default)
    {
        using TrainedProbe probe = ProbeTrainer.Train(backend, train, validation, options, progress, cancellation);
        var (outcomes, lists) = probe.Evaluate(backend, heldOut, figureOptions.VocabularySize);
        LayerFigures figures = LayerFigures.Calculate(outcomes, figureOptions);
        double controlBa = figures.EntropyBits - control.CrossEntropyBits;
        double? listFano = null;
        if (lists is not null)
        {
            var groups = lists.GroupBy(l => l.ListSize).OrderBy(g => g.Key)
                .Select(g => ((long)g.Key, (long)g.Sum(x => x.Errors), (long)g.Sum(x => x.ListSize))).ToArray();
            listFano = InformationBounds.ListFanoMixed(figures.EntropyBits, figures.AlphabetSize, groups);
            // For list decoding the ordinary Fano formula does not apply: the bag probe's Fano figures are
            // list-Fano, point and certified. Bootstrap intervals are not computed for list-Fano.
            figures = figures with
            {
                FanoBits = listFano.Value,
                CertifiedFanoBits = CertifiedListFano(figures.EntropyBits, figures.AlphabetSize, groups, figureOptions.CertificationAlpha),
                FanoInterval = null,
            };
        }
        return new LayerResult(0, "0", 0, figures, control.CrossEntropyBits, control.Accuracy, controlBa, figures.BarberAgakovBits - controlBa,
            listFano, probe.Epochs, probe.BestValidationCrossEntropyBits);
    }

    /// <summary>
    /// List-Fano with each list size's error rate replaced by its one-sided Clopper-Pearson upper limit at
    /// level alpha / G (Bonferroni over the G list sizes, so all hold together with confidence 1 − alpha),
    /// capped where the conditional-entropy bound peaks (P_e = 1 − k / |X|).
    /// </summary>
    public static double CertifiedListFano(double entropyBits, long alphabetSize, IReadOnlyList<(long ListSize, long Errors, long Targets)> groups, double alpha)
    {
        long total = groups.Sum(g => g.Targets);
        double conditional = 0;
        var counts = new long[groups.Count];
        for (int i = 0; i < groups.Count; i++)
        {
            var (k, errors, targets) = groups[i];
            counts[i] = targets;
            if (targets == 0) continue;
            double errorRate = Math.Min(ClopperPearson.UpperLimit(errors, targets, alpha / groups.Count), 1 - (double)k / alphabetSize);
            conditional += (double)targets / total * InformationBounds.ListFanoConditionalEntropy(errorRate, alphabetSize, k);
        }
        return entropyBits - Entropy.PlugInBits(counts) - conditional;
    }
}
