using NativeMi.Information;
using Xunit;

namespace NativeMi.Tests.Information;

public class SpecialFunctionsTests
{
    // Reference values from mpmath (50 digits).
    [Theory]
    [InlineData(0.1, 2.252712651734205902)]
    [InlineData(0.5, 0.57236494292470008707)]
    [InlineData(1.0, 0.0)]
    [InlineData(1.5, -0.12078223763524522235)]
    [InlineData(2.5, 0.28468287047291915963)]
    [InlineData(10.0, 12.801827480081469611)]
    [InlineData(100.0, 359.13420536957539878)]
    [InlineData(12345.678, 103959.91990554605982)]
    [InlineData(1e7, 151180949.36947391394)]
    public void LogGammaMatchesReference(double x, double expected)
    {
        double tolerance = Math.Max(1e-14, Math.Abs(expected) * 4e-16);
        Assert.Equal(expected, SpecialFunctions.LogGamma(x), tolerance);
    }

    [Theory]
    [InlineData(1e-10)]
    [InlineData(-3e-7)]
    [InlineData(0.3)]
    [InlineData(-0.45)]
    [InlineData(2.0)]
    public void Log1pMinusXMatchesSeriesAndLibrary(double x)
    {
        // Reference: the alternating series for small |x|, Math.Log otherwise.
        double expected = Math.Abs(x) < 1e-3
            ? -x * x / 2 + x * x * x / 3 - x * x * x * x / 4
            : Math.Log(1 + x) - x;
        Assert.Equal(1.0, SpecialFunctions.Log1pMinusX(x) / expected, 12);
    }

    // Reference values from mpmath: hypergeometric evaluation for the small cases, exact binomial
    // sums (I_x(a, b) = P(Bin(a + b - 1, x) >= a) for integer a, b) for the large ones.
    [Theory]
    [InlineData(2, 3, 0.4, 0.52480000000000003837)]
    [InlineData(0.5, 0.5, 0.2, 0.29516723530086655719)]
    [InlineData(10, 20, 0.3, 0.36400408107194422775)]
    [InlineData(1000, 5000, 0.17, 0.757046127902177)]
    [InlineData(5_000_000, 5_000_000, 0.5001, 0.73645536846858173822)]
    [InlineData(3, 10_000_000, 2e-7, 0.32332369208517305441)]
    [InlineData(9_999_995, 6, 0.999999523162841796875, 0.6565295989732631636)] // x = 1 - 2^-21, exact in binary
    public void IncompleteBetaMatchesReference(double a, double b, double x, double expected)
    {
        Assert.Equal(expected, SpecialFunctions.RegularizedIncompleteBeta(a, b, x), 1e-12);
        Assert.Equal(1 - expected, SpecialFunctions.RegularizedIncompleteBetaComplement(a, b, x), 1e-12);
    }

    [Fact]
    public void IncompleteBetaWithUnitFirstShapeHasClosedForm()
    {
        // I_x(1, b) = 1 - (1 - x)^b.
        Assert.Equal(1 - Math.Pow(0.7, 12), SpecialFunctions.RegularizedIncompleteBeta(1, 12, 0.3), 14);
    }

    [Fact]
    public void IncompleteBetaKeepsTinyLowerTail()
    {
        // I_x(1, 1) = x, even far below the mean where exp/log round-trips would lose it.
        Assert.Equal(1.0, SpecialFunctions.RegularizedIncompleteBeta(1, 1, 1e-20) / 1e-20, 12);
    }

    [Theory]
    [InlineData(2, 3, 0.52480000000000003837, 0.4)]
    [InlineData(10, 20, 0.36400408107194422775, 0.3)]
    [InlineData(5_000_000, 5_000_000, 0.73645536846858173822, 0.5001)]
    [InlineData(3, 10_000_000, 0.32332369208517305441, 2e-7)]
    public void InverseIncompleteBetaRecoversX(double a, double b, double probability, double expectedX)
    {
        Assert.Equal(1.0, SpecialFunctions.InverseRegularizedIncompleteBeta(a, b, probability) / expectedX, 11);
    }

    [Fact]
    public void InverseIncompleteBetaOfUnitFirstShapeHasClosedForm()
    {
        // I_x(1, n) = 1 - (1 - x)^n = p gives x = 1 - (1 - p)^(1/n).
        double expected = 1 - Math.Pow(0.05, 1.0 / 250);
        Assert.Equal(1.0, SpecialFunctions.InverseRegularizedIncompleteBeta(1, 250, 0.95) / expected, 12);
    }
}
