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
        }
        return new LayerResult(0, "0", 0, figures, control.CrossEntropyBits, control.Accuracy, controlBa, figures.BarberAgakovBits - controlBa,
            listFano, probe.Epochs, probe.BestValidationCrossEntropyBits);
    }
}
