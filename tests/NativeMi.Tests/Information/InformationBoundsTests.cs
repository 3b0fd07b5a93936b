using NativeMi.Information;
using Xunit;

namespace NativeMi.Tests.Information;

public class InformationBoundsTests
{
    [Fact]
    public void FanoWithNoErrorsIsTheEntropy()
    {
        Assert.Equal(7.25, InformationBounds.Fano(7.25, 0, 50_257), 14);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(16)]
    [InlineData(50_257)]
    public void FanoForUniformSourceAtChanceErrorIsZero(long alphabetSize)
    {
        // Guessing a uniform X blindly errs with probability 1 - 1/|X|, where Fano is tight at zero.
        double entropy = Math.Log2(alphabetSize);
        double chanceError = 1 - 1.0 / alphabetSize;
        Assert.Equal(0.0, InformationBounds.Fano(entropy, chanceError, alphabetSize), 12);
    }

    [Fact]
    public void FanoKnownCase()
    {
        // H = 3, P_e = 0.25, |X| = 9: 3 - H_b(0.25) - 0.25 * 3.
        Assert.Equal(3 - 0.81127812445913283 - 0.75, InformationBounds.Fano(3, 0.25, 9), 14);
    }

    [Fact]
    public void FanoIsUnclipped()
    {
        Assert.True(InformationBounds.Fano(1, 0.9, 1000) < 0);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.3)]
    [InlineData(0.999)]
    public void ListFanoWithListSizeOneIsFano(double errorRate)
    {
        Assert.Equal(InformationBounds.Fano(5, errorRate, 1000), InformationBounds.ListFano(5, errorRate, 1000, 1), 13);
    }

    [Fact]
    public void ListFanoConditionalEntropyKnownCase()
    {
        // P_e = 0.5, |X| = 12, k = 4: H_b = 1, 0.5 log2 8 = 1.5, 0.5 log2 4 = 1.
        Assert.Equal(3.5, InformationBounds.ListFanoConditionalEntropy(0.5, 12, 4), 14);
        Assert.Equal(0.5, InformationBounds.ListFano(4, 0.5, 12, 4), 14);
    }

    [Fact]
    public void ListFanoMixedWithOneGroupAddsNoLengthEntropy()
    {
        double single = InformationBounds.ListFano(6, 0.2, 500, 3);
        Assert.Equal(single, InformationBounds.ListFanoMixed(6, 500, [(3, 20, 100)]), 13);
    }

    [Fact]
    public void ListFanoMixedChargesTheEntropyOfTheListSize()
    {
        // Two equally likely list sizes cost H(N) = 1 bit on top of the averaged conditional bounds.
        double conditional = 0.5 * InformationBounds.ListFanoConditionalEntropy(0.1, 500, 2)
            + 0.5 * InformationBounds.ListFanoConditionalEntropy(0.3, 500, 5);
        Assert.Equal(6 - 1 - conditional, InformationBounds.ListFanoMixed(6, 500, [(2, 5, 50), (5, 15, 50)]), 13);
    }

    [Fact]
    public void BarberAgakovKnownCase()
    {
        // X uniform over 8 tokens (3 bits); a probe putting probability 1/2 on the truth has CE = 1 bit.
        Assert.Equal(2.0, InformationBounds.BarberAgakov(3, -Math.Log2(0.5)), 15);
    }

    [Fact]
    public void FanoAtUpperErrorUsesClopperPearsonUpperLimit()
    {
        double upper = ClopperPearson.UpperLimit(30, 200);
        Assert.Equal(InformationBounds.Fano(6, upper, 50_257), InformationBounds.FanoAtUpperError(6, 30, 200, 50_257), 14);
        Assert.True(InformationBounds.FanoAtUpperError(6, 30, 200, 50_257) < InformationBounds.Fano(6, 0.15, 50_257));
    }

    [Fact]
    public void ListFanoAtUpperErrorUsesBonferroniLimitsPerListSize()
    {
        (long, long, long)[] groups = [(2, 5, 50), (5, 15, 50)];
        double expected = 1 + 0.5 * InformationBounds.ListFanoConditionalEntropy(ClopperPearson.UpperLimit(5, 50, 0.025), 500, 2)
            + 0.5 * InformationBounds.ListFanoConditionalEntropy(ClopperPearson.UpperLimit(15, 50, 0.025), 500, 5);
        Assert.Equal(expected, InformationBounds.ListFanoMixedConditionalEntropy(500, groups, alpha: 0.05), 13);
        Assert.True(expected > InformationBounds.ListFanoMixedConditionalEntropy(500, groups));
    }

    [Fact]
    public void UpperErrorRateStopsWhereFanoIsSmallest()
    {
        // With |X| = 2 the Fano curve turns up after P_e = 1/2; the upper error rate must not go past it.
        Assert.Equal(0.5, InformationBounds.UpperErrorRate(9, 10, 2), 15);
    }
}
