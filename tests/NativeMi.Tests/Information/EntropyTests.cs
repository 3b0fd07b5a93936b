using NativeMi.Information;
using Xunit;

namespace NativeMi.Tests.Information;

public class EntropyTests
{
    [Fact]
    public void PlugInOfUniformHistogramIsLogOfSupport()
    {
        Assert.Equal(2.0, Entropy.PlugInBits([5, 5, 5, 5]), 14);
        Assert.Equal(0.0, Entropy.PlugInBits([7]), 14);
        Assert.Equal(0.0, Entropy.PlugInBits([]), 14);
    }

    [Fact]
    public void PlugInIgnoresZeroCounts()
    {
        Assert.Equal(Entropy.PlugInBits([3, 1]), Entropy.PlugInBits([3, 0, 1, 0]), 15);
    }

    [Fact]
    public void MillerMadowOnSmallHistogramMatchesHandComputation()
    {
        // Counts {2, 1, 1}: p = (1/2, 1/4, 1/4), plug-in H = 1.5 bits; K = 3, N = 4, so the
        // correction is (3 - 1) / (2 * 4 * ln 2) = 1 / (4 ln 2) = 0.36067376022224085 bits.
        Assert.Equal(1.5, Entropy.PlugInBits([2, 1, 1]), 14);
        Assert.Equal(1.5 + 0.36067376022224085, Entropy.MillerMadowBits([2, 1, 0, 1]), 14);
    }

    [Fact]
    public void MillerMadowAddsNothingForOneOutcome()
    {
        Assert.Equal(0.0, Entropy.MillerMadowBits([10]), 15);
    }

    [Fact]
    public void HistogramCountsEachDistinctValueInValueOrder()
    {
        Assert.Equal(new long[] { 1, 2, 3 }, Entropy.Histogram([9, 4, 4, 1, 9, 9]));
    }

    [Theory]
    [InlineData(0.0, 0.0)]
    [InlineData(1.0, 0.0)]
    [InlineData(0.5, 1.0)]
    [InlineData(0.25, 0.81127812445913283)]
    [InlineData(0.11, 0.499915958164528)]
    public void BinaryEntropyKnownValues(double probability, double expectedBits)
    {
        Assert.Equal(expectedBits, Entropy.BinaryBits(probability), 14);
    }

    [Fact]
    public void BinaryEntropyIsAccurateForTinyProbabilities()
    {
        // H_b(p) = p log2(1/p) + p / ln 2 + O(p^2) for small p.
        double p = 1e-12;
        double expected = p * Math.Log2(1 / p) + p / Math.Log(2);
        Assert.Equal(1.0, Entropy.BinaryBits(p) / expected, 10);
    }

    [Theory]
    [InlineData(-0.1)]
    [InlineData(1.1)]
    [InlineData(double.NaN)]
    public void BinaryEntropyRejectsNonProbabilities(double probability)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Entropy.BinaryBits(probability));
    }
}
