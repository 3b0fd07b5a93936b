using System.Security.Cryptography;
using System.Text;

namespace NativeMi.Measurement;

/// <summary>Which split a sentence belongs to.</summary>
internal enum Split
{
    /// <summary>Probe training.</summary>
    Train,
    /// <summary>Early stopping.</summary>
    Validation,
    /// <summary>Every reported figure.</summary>
    HeldOut,
}

/// <summary>Seeded, content-based sampling and splitting: a sentence's fate depends only on its text and the seed.</summary>
internal static class CorpusSampler
{
    /// <summary>A uniform number in [0, 1) from the seed, a purpose tag and the sentence text.</summary>
    public static double Hash(ulong seed, string purpose, string text)
    {
        Span<byte> digest = stackalloc byte[32];
        byte[] bytes = Encoding.UTF8.GetBytes($"{seed}\u0001{purpose}\u0001{text}");
        SHA256.HashData(bytes, digest);
        ulong value = BitConverter.ToUInt64(digest[..8]);
        return (value >> 11) * (1.0 / (1UL << 53));
    }

    /// <summary>The split of a sentence (default 70 / 10 / 20).</summary>
    public static Split SplitOf(ulong seed, string text, double trainFraction, double validationFraction)
    {
        double u = Hash(seed, "split", text);
        return u < trainFraction ? Split.Train : u < trainFraction + validationFraction ? Split.Validation : Split.HeldOut;
    }

    /// <summary>
    /// Indices of a seeded sample of at most <paramref name="maxCount"/> distinct sentences (the ones with the
    /// smallest hash), returned in corpus order. Duplicate sentences are kept once.
    /// </summary>
    public static int[] Sample(IReadOnlyList<string> sentences, int? maxCount, ulong seed)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var distinct = new List<int>();
        for (int i = 0; i < sentences.Count; i++)
            if (seen.Add(sentences[i])) distinct.Add(i);
        if (maxCount is null || maxCount >= distinct.Count) return distinct.ToArray();
        return distinct
            .Select(i => (Index: i, Key: Hash(seed, "sample", sentences[i])))
            .OrderBy(p => p.Key).ThenBy(p => p.Index)
            .Take(maxCount.Value)
            .Select(p => p.Index)
            .Order()
            .ToArray();
    }
}
