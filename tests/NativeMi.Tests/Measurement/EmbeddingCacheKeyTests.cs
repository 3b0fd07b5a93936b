using NativeMi.Measurement;
using NativeMi.Pooling;
using NativeMi.Text;
using Xunit;

namespace NativeMi.Tests.Measurement;

public class EmbeddingCacheKeyTests
{
    private static string Key(params EncodedSentence[] sentences) =>
        EmbeddingCache.ComputeKey("model", sentences.Select(s => EmbeddingCache.SentenceKey("a + b", s)), PoolingMode.Mean, 128, "model|cpu");

    [Fact]
    public void TheSameTextTokenizedDifferentlyGetsAnotherKey()
    {
        // The tokenizer change of issue 16: "+" was dropped before, so the same sentence had other ids.
        var before = new EncodedSentence([101, 1037, 1038, 102], [false, true, true, false], false);
        var after = new EncodedSentence([101, 1037, 1009, 1038, 102], [false, true, true, true, false], false);
        var otherTargets = new EncodedSentence([101, 1037, 1009, 1038, 102], [false, true, false, true, false], false);
        Assert.NotEqual(Key(before), Key(after));
        Assert.NotEqual(Key(after), Key(otherTargets));
        Assert.Equal(Key(after), Key(new EncodedSentence([101, 1037, 1009, 1038, 102], [false, true, true, true, false], true)));
    }
}
