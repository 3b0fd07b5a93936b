using NativeMi.Compute;
using NativeMi.Information;
using NativeMi.Probing;

namespace NativeMi.Measurement;

/// <summary>The two target variables a measurement probes for: the token X and the coarsened f(X) (the probe's classes), with their population entropies.</summary>
/// <param name="Token">X over the tokenizer vocabulary.</param>
/// <param name="Coarse">f(X): the class set's tokens, every other token one symbol.</param>
public sealed record TargetVariables(TargetVariable Token, TargetVariable Coarse)
{
    /// <summary>
    /// Both target variables (sentences given as the token ids of their target positions): X's exact entropies over the
    /// whole <paramref name="population"/>, and f(X)'s, with <paramref name="classes"/> defining f, over
    /// <paramref name="coarsePopulation"/>: the population without the sentences the classes and the probe were fitted on.
    /// f depends on the training split (its classes are the tokens frequent there), so over the training sentences f(X)
    /// is spread over more classes than over any other sentences, and an entropy that counted them would exceed what
    /// held-out sentences can show: H(f(X)) − CE would then not be a bound.
    /// </summary>
    internal static TargetVariables FromPopulation(IReadOnlyList<int[]> population, IReadOnlyList<int[]> coarsePopulation, ClassMap classes)
    {
        ArgumentNullException.ThrowIfNull(population);
        ArgumentNullException.ThrowIfNull(coarsePopulation);
        ArgumentNullException.ThrowIfNull(classes);
        return new TargetVariables(
            new TargetVariable("token", classes.VocabularySize, TargetEntropies.FromSequences(population)),
            new TargetVariable("coarse", classes.Count, TargetEntropies.FromSequences(coarsePopulation, classes.ClassOf)));
    }
}

/// <summary>
/// Figures of the control probe (z replaced by zeros) on the held-out targets, for both target variables, with the
/// smoothed training unigram's figures beside them: a well-trained control is never worse than that unigram.
/// </summary>
/// <param name="Token">The control's figures on the token target.</param>
/// <param name="Coarse">The control's figures on the coarse target.</param>
/// <param name="UnigramToken">The training unigram's figures on the token target (the same within-"other" spread).</param>
/// <param name="UnigramCoarse">The training unigram's figures on the coarse target.</param>
/// <param name="Epochs">Epochs the control trained.</param>
/// <param name="BestEpoch">Epoch of the kept parameters (0: the unigram start itself).</param>
public sealed record ControlResult(LayerFigures Token, LayerFigures Coarse, LayerFigures UnigramToken, LayerFigures UnigramCoarse, int Epochs, int BestEpoch)
{
    /// <summary>The control's figures on the named target.</summary>
    public LayerFigures For(string target) => target == "token" ? Token : Coarse;

    /// <summary>I_ctrl − I_unigram = CE_unigram − CE_ctrl on the named target, with its paired interval (never negative for a well-trained control).</summary>
    public PairedDifference OverUnigram(string target) => target == "token"
        ? PairedDifference.Of("control", Token, "unigram", UnigramToken)
        : PairedDifference.Of("control", Coarse, "unigram", UnigramCoarse);

    /// <summary>
    /// True when the control is worse than the training unigram on either target beyond sampling noise: the paired
    /// interval of the difference lies below zero (without resamples, the point estimate is below zero).
    /// </summary>
    public bool WorseThanUnigram => TargetNames.Select(OverUnigram).Any(d => d.Interval is { } i ? i.Upper < 0 : d.Bits < 0);

    private static readonly string[] TargetNames = ["token", "coarse"];
}

/// <summary>One probe seed's fit on a layer.</summary>
/// <param name="Seed">The probe seed.</param>
/// <param name="ValidationCrossEntropyBits">Validation CE (coarse target) of its kept parameters: what chose between seeds.</param>
/// <param name="TokenBarberAgakovBits">Its held-out I_BA on the token target.</param>
/// <param name="CoarseBarberAgakovBits">Its held-out I_BA on the coarse target.</param>
/// <param name="Epochs">Epochs it trained.</param>
public sealed record SeedFit(ulong Seed, double ValidationCrossEntropyBits, double TokenBarberAgakovBits, double CoarseBarberAgakovBits, int Epochs);

/// <summary>
/// One layer's measurement from sentence vectors already split: train the probe (one or several seeds), score the
/// held-out sentences, and compute every figure. The run uses it per layer; tests use it on synthetic vectors.
/// </summary>
internal static class ProbeMeasurement
{
    /// <summary>Trains the control probe on zero vectors and scores it on the held-out targets.</summary>
    public static ControlResult TrainControl(IComputeBackend backend, ProbeDataset train, ProbeDataset validation, ProbeDataset heldOut, ClassMap classes,
        ProbeOptions options, TargetVariables targets, LayerFigureOptions figureOptions, HeldOutResampling? resampling = null,
        IProgress<ProbeEpoch>? progress = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(heldOut);
        ArgumentNullException.ThrowIfNull(classes);
        ArgumentNullException.ThrowIfNull(targets);
        using TrainedProbe probe = ProbeTrainer.Train(backend, Zeroed(train), Zeroed(validation), classes, options, progress, cancellation);
        ProbeOutcomes outcomes = probe.Evaluate(backend, Zeroed(heldOut));
        // The smoothed training unigram the probes start from, scored like a probe that always guesses its top class.
        int top = Enumerable.Range(0, classes.Count).MaxBy(c => classes.TrainingClassCounts[c]);
        var unigramToken = new SentenceOutcome[heldOut.Count];
        var unigramCoarse = new SentenceOutcome[heldOut.Count];
        for (int s = 0; s < heldOut.Count; s++)
        {
            int[] tokens = heldOut.Targets[s];
            int[] symbols = [.. tokens.Select(classes.ClassOf)];
            double[] coarseBits = [.. symbols.Select(classes.UnigramClassBits)];
            double[] tokenBits = [.. tokens.Select((t, i) => coarseBits[i] + (symbols[i] == classes.Other ? classes.OtherTokenBits(t) : 0))];
            unigramCoarse[s] = new SentenceOutcome(symbols, [.. symbols.Select(c => c == top)], coarseBits);
            unigramToken[s] = new SentenceOutcome(tokens, [.. symbols.Select(c => c == top && c != classes.Other)], tokenBits);
        }
        return new ControlResult(
            LayerFigures.Calculate(outcomes.Token, targets.Token, figureOptions, resampling),
            LayerFigures.Calculate(outcomes.Coarse, targets.Coarse, figureOptions, resampling),
            LayerFigures.Calculate(unigramToken, targets.Token, figureOptions, resampling),
            LayerFigures.Calculate(unigramCoarse, targets.Coarse, figureOptions, resampling),
            probe.Epochs, probe.BestEpoch);
    }

    /// <summary>The dataset with zero vectors: itself when its vectors are all +0 already (the run builds them so), else a copy.</summary>
    private static ProbeDataset Zeroed(ProbeDataset data) =>
        System.Runtime.InteropServices.MemoryMarshal.Cast<float, int>(data.Vectors.AsSpan()).IndexOfAnyExcept(0) < 0 ? data : data.WithZeroVectors();

    /// <summary>
    /// Trains a probe on one layer's vectors with each of <paramref name="seeds"/> probe seeds, keeps the one with the
    /// lowest validation CE (a choice made on validation data only, so the held-out figures stay honest), and returns
    /// its held-out figures (layer number, name and depth left for the caller) with every seed's fit beside them.
    /// </summary>
    public static LayerResult MeasureLayer(IComputeBackend backend, ProbeDataset train, ProbeDataset validation, ProbeDataset heldOut, ClassMap classes,
        ProbeOptions options, TargetVariables targets, LayerFigureOptions figureOptions, ControlResult control, int seeds = 1,
        HeldOutResampling? resampling = null, IProgress<ProbeEpoch>? progress = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentNullException.ThrowIfNull(control);
        ArgumentOutOfRangeException.ThrowIfLessThan(seeds, 1);
        var fits = new List<SeedFit>();
        (LayerFigures Token, LayerFigures Coarse, TrainedProbeSummary Probe)? best = null;
        for (int k = 0; k < seeds; k++)
        {
            ProbeOptions seeded = options with { Seed = options.Seed + (ulong)k * 0x9E37_79B9UL };
            using TrainedProbe probe = ProbeTrainer.Train(backend, train, validation, classes, seeded, progress, cancellation);
            ProbeOutcomes outcomes = probe.Evaluate(backend, heldOut);
            var token = LayerFigures.Calculate(outcomes.Token, targets.Token, figureOptions, resampling);
            var coarse = LayerFigures.Calculate(outcomes.Coarse, targets.Coarse, figureOptions, resampling);
            fits.Add(new SeedFit(seeded.Seed, probe.BestValidationCrossEntropyBits, token.BarberAgakovBits, coarse.BarberAgakovBits, probe.Epochs));
            if (best is null || probe.BestValidationCrossEntropyBits < best.Value.Probe.ValidationCrossEntropyBits)
                best = (token, coarse, new TrainedProbeSummary(probe.Epochs, probe.BestEpoch, probe.BestValidationCrossEntropyBits));
        }
        var (tokenFigures, coarseFigures, summary) = best!.Value;
        return new LayerResult
        {
            Layer = 0,
            Name = "0",
            Depth = 0,
            Token = tokenFigures,
            Coarse = coarseFigures,
            TokenGain = PairedDifference.Of("layer", tokenFigures, "control", control.Token),
            CoarseGain = PairedDifference.Of("layer", coarseFigures, "control", control.Coarse),
            Epochs = summary.Epochs,
            BestEpoch = summary.BestEpoch,
            ValidationCrossEntropyBits = summary.ValidationCrossEntropyBits,
            Seeds = fits,
        };
    }

    private readonly record struct TrainedProbeSummary(int Epochs, int BestEpoch, double ValidationCrossEntropyBits);
}
