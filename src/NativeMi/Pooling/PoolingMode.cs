namespace NativeMi.Pooling;

/// <summary>How a sentence embedding is pooled from a layer's token states.</summary>
public enum PoolingMode
{
    /// <summary>Mean over the real target tokens (special tokens and padding excluded).</summary>
    Mean,
    /// <summary>The first real token ([CLS] for BERT).</summary>
    Cls,
    /// <summary>The last real token (the natural choice for decoder-only models).</summary>
    Last,
    /// <summary>Element-wise maximum over the real target tokens.</summary>
    Max,
}
