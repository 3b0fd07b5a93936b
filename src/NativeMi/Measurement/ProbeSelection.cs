using NativeMi.Compute;

namespace NativeMi.Measurement;

/// <summary>One probe configuration of a tuning grid.</summary>
/// <param name="Hidden">Hidden width of the MLP path.</param>
/// <param name="LearningRate">AdamW learning rate.</param>
/// <param name="Patience">Early-stopping patience in epochs.</param>
/// <param name="SecondStageLearningRateScale">Learning-rate fraction of the positional probe's second stage.</param>
internal sealed record ProbeCandidate(int Hidden, float LearningRate, int Patience, float SecondStageLearningRateScale);

/// <summary>A candidate's validation cross-entropy (coarse target, bits) at each tuned layer, and its mean.</summary>
/// <param name="Candidate">The configuration.</param>
/// <param name="ValidationCrossEntropyBits">Per tuned layer, in the order the layers were given.</param>
/// <param name="ProbeSeconds">Wall time of its probes (the control excluded).</param>
internal sealed record CandidateScore(ProbeCandidate Candidate, IReadOnlyList<double> ValidationCrossEntropyBits, double ProbeSeconds)
{
    /// <summary>Mean validation CE over the tuned layers.</summary>
    public double MeanValidationCrossEntropyBits => ValidationCrossEntropyBits.Average();
}

/// <summary>
/// Chooses probe hyper-parameters on validation data only (METHOD.md, "Probes"; docs/METHOD.md records the grid and the
/// result behind the defaults). Every candidate is trained on the training split and scored by its validation CE; the
/// held-out split plays no part in the choice, so the held-out figures of a run with the chosen settings stay honest.
/// </summary>
internal static class ProbeSelection
{
    /// <summary>
    /// The choice rule: among the candidates whose mean validation CE is within <paramref name="toleranceBits"/> of the best,
    /// the narrowest probe, then the lowest patience, then the highest learning rate (the cheapest to train), then the
    /// lowest mean validation CE.
    /// </summary>
    public static CandidateScore Choose(IReadOnlyList<CandidateScore> scores, double toleranceBits = 0.01)
    {
        ArgumentNullException.ThrowIfNull(scores);
        if (scores.Count == 0) throw new ArgumentException("no candidates", nameof(scores));
        double best = scores.Min(s => s.MeanValidationCrossEntropyBits);
        return scores.Where(s => s.MeanValidationCrossEntropyBits <= best + toleranceBits)
            .OrderBy(s => s.Candidate.Hidden).ThenBy(s => s.Candidate.Patience).ThenByDescending(s => s.Candidate.LearningRate)
            .ThenBy(s => s.MeanValidationCrossEntropyBits).First();
    }

    /// <summary>
    /// Scores every candidate of <paramref name="grid"/> on the layers of <paramref name="baseOptions"/> (its Layers must
    /// name them): each is a measurement run with that candidate's settings and no bootstrap, sharing one embedding
    /// cache, of which only the validation CE of each layer's kept probe is used.
    /// </summary>
    public static IReadOnlyList<CandidateScore> Score(MeasureOptions baseOptions, IReadOnlyList<ProbeCandidate> grid, IComputeBackend? backend = null,
        IProgress<(int Done, int Total, CandidateScore? Last)>? progress = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(baseOptions);
        ArgumentNullException.ThrowIfNull(grid);
        if (baseOptions.Layers is null || baseOptions.Layers.Count == 0) throw new InputException("tuning needs the layers to tune on");
        var scores = new List<CandidateScore>();
        progress?.Report((0, grid.Count, null));
        foreach (ProbeCandidate candidate in grid)
        {
            cancellation.ThrowIfCancellationRequested();
            MeasurementResult run = MeasurementRunner.Run(baseOptions with
            {
                Hidden = candidate.Hidden,
                LearningRate = candidate.LearningRate,
                Patience = candidate.Patience,
                SecondStageLearningRateScale = candidate.SecondStageLearningRateScale,
                Bootstrap = 0,
                ProbeSeeds = 1,
                Baseline = BaselineKind.None,
            }, progress: null, backend: backend, cancellation: cancellation);
            var score = new CandidateScore(candidate, [.. run.Layers.Select(l => l.ValidationCrossEntropyBits)], run.TimingsSeconds["probes"]);
            scores.Add(score);
            progress?.Report((scores.Count, grid.Count, score));
        }
        return scores;
    }
}
