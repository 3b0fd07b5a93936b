using NativeMi.Text;

namespace NativeMi.Transformer;

/// <summary>
/// A padded batch of token ids, [batch, sequence] row-major. Padding may be on either side: positions
/// are always derived from the attention mask, so the real tokens get the same vectors either way.
/// </summary>
internal sealed class EncodedBatch
{
    /// <summary>Creates a batch from explicit arrays (each [batch·sequence]).</summary>
    public EncodedBatch(int batchSize, int sequenceLength, int[] inputIds, int[] attentionMask, int[]? tokenTypeIds = null, bool[]? isTarget = null)
    {
        long cells = (long)batchSize * sequenceLength;
        if (batchSize < 1 || sequenceLength < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), "batch and sequence must be at least 1");
        if (inputIds.Length != cells) throw new ArgumentException($"input ids hold {inputIds.Length} elements; expected {cells}", nameof(inputIds));
        if (attentionMask.Length != cells) throw new ArgumentException($"attention mask holds {attentionMask.Length} elements; expected {cells}", nameof(attentionMask));
        if (tokenTypeIds is not null && tokenTypeIds.Length != cells) throw new ArgumentException($"token type ids hold {tokenTypeIds.Length} elements; expected {cells}", nameof(tokenTypeIds));
        if (isTarget is not null && isTarget.Length != cells) throw new ArgumentException($"target mask holds {isTarget.Length} elements; expected {cells}", nameof(isTarget));
        BatchSize = batchSize;
        SequenceLength = sequenceLength;
        InputIds = inputIds;
        AttentionMask = attentionMask;
        TokenTypeIds = tokenTypeIds ?? new int[cells];
        IsTarget = isTarget ?? attentionMask.Select(m => m != 0).ToArray();
    }

    /// <summary>Sentences in the batch.</summary>
    public int BatchSize { get; }
    /// <summary>Padded length T.</summary>
    public int SequenceLength { get; }
    /// <summary>Token ids, padding filled with the pad id.</summary>
    public int[] InputIds { get; }
    /// <summary>1 for real tokens (special tokens included), 0 for padding.</summary>
    public int[] AttentionMask { get; }
    /// <summary>Segment ids (all 0 for single sentences).</summary>
    public int[] TokenTypeIds { get; }
    /// <summary>True at real text tokens, false at special tokens and padding.</summary>
    public bool[] IsTarget { get; }

    /// <summary>Pads encoded sentences to the longest one.</summary>
    /// <param name="sentences">Encoded sentences.</param>
    /// <param name="padId">Id written into padding cells.</param>
    /// <param name="padLeft">Put padding before the tokens instead of after.</param>
    public static EncodedBatch Pad(IReadOnlyList<EncodedSentence> sentences, int padId, bool padLeft = false)
    {
        if (sentences.Count == 0) throw new ArgumentException("no sentences", nameof(sentences));
        int length = sentences.Max(s => s.Ids.Length);
        int count = sentences.Count;
        var ids = new int[count * length];
        var mask = new int[count * length];
        var targets = new bool[count * length];
        Array.Fill(ids, padId);
        for (int b = 0; b < count; b++)
        {
            EncodedSentence s = sentences[b];
            int start = b * length + (padLeft ? length - s.Ids.Length : 0);
            s.Ids.CopyTo(ids, start);
            s.IsTarget.CopyTo(targets, start);
            mask.AsSpan(start, s.Ids.Length).Fill(1);
        }
        return new EncodedBatch(count, length, ids, mask, null, targets);
    }
}

/// <summary>Hidden states of every layer for one batch.</summary>
/// <param name="BatchSize">Sentences.</param>
/// <param name="SequenceLength">Padded length T.</param>
/// <param name="Width">Hidden width d.</param>
/// <param name="Layers">Entry l is [batch·T·d]: l = 0 the embedding output, l = 1..L the output of block l (GPT-2: before ln_f).</param>
/// <param name="Final">GPT-2 only: ln_f applied to the last block output (what Hugging Face reports as its last hidden state); null for BERT.</param>
internal sealed record HiddenStates(int BatchSize, int SequenceLength, int Width, IReadOnlyList<float[]> Layers, float[]? Final);
