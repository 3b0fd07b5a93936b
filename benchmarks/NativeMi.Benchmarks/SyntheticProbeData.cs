using NativeMi.Probing;

namespace NativeMi.Benchmarks;

/// <summary>
/// Synthetic probe data the size of the default <c>nativemi measure</c> run: ~1400 training and ~200 validation
/// sentences of 6..16 targets (mean ~11), d = 384, token ids from ~2500 classes. scripts/probe_epoch_torch.py
/// builds the same target layout with the same formulas, so both sides train on identical shapes.
/// </summary>
internal static class SyntheticProbeData
{
    /// <summary>Training sentences.</summary>
    public const int TrainSentences = 1400;
    /// <summary>Validation sentences.</summary>
    public const int ValidationSentences = 200;
    /// <summary>Sentence-vector width.</summary>
    public const int Width = 384;
    /// <summary>Distinct target tokens (the probe adds one "other" class).</summary>
    public const int Tokens = 2499;

    /// <summary>Targets of sentence <paramref name="s"/>: length 6 + (7s mod 11), token (131s + 977i + 7·(s/7)) mod 2499.</summary>
    public static int[] Targets(int s)
    {
        int length = 6 + 7 * s % 11;
        var t = new int[length];
        for (int i = 0; i < length; i++) t[i] = (int)((131L * s + 977L * i + 7L * (s / 7)) % Tokens);
        return t;
    }

    /// <summary>Sentences [first, first + count) with Gaussian vectors.</summary>
    public static ProbeDataset Split(int first, int count, int seed)
    {
        var rng = new Random(seed);
        var v = new float[count * Width];
        for (int i = 0; i < v.Length; i++) v[i] = (float)(Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));
        return new ProbeDataset(Width, v, Enumerable.Range(first, count).Select(Targets).ToArray());
    }

    /// <summary>The probe's classes: every token seen at least twice in training (all of them here) plus "other".</summary>
    public static ClassMap Classes(ProbeDataset train, ProbeDataset validation) => ClassMap.Build(train.Targets, validation.Targets, null, Tokens + 1000);

    /// <summary>The training split.</summary>
    public static ProbeDataset Train() => Split(0, TrainSentences, 1);

    /// <summary>The validation split.</summary>
    public static ProbeDataset Validation() => Split(TrainSentences, ValidationSentences, 2);
}
