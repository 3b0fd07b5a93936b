using NativeMi.Information;
using Xunit;

namespace NativeMi.Tests.Information;

public class ClopperPearsonTests
{
    /// <summary>P(Bin(n, p) ≤ x) by direct summation of the probability mass function.</summary>
    private static double BinomialLowerTail(long x, long n, double p)
    {
        if (p > 0.5)
        {
            // Summing the short upper tail from k = n keeps p^n from underflowing when p is near 1.
            double upperMass = Math.Pow(p, n);
            double upperSum = 0;
            for (long k = n; k > x; k--)
            {
                upperSum += upperMass;
                upperMass *= k / (double)(n - k + 1) * (1 - p) / p;
            }
            return 1 - upperSum;
        }
        double mass = Math.Pow(1 - p, n);
        double sum = mass;
        for (long k = 0; k < x; k++)
        {
            mass *= (double)(n - k) / (k + 1) * p / (1 - p);
            sum += mass;
        }
        return sum;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(20)]
    [InlineData(1000)]
    [InlineData(10_000_000)]
    public void NoErrorsGivesOneMinusAlphaToTheOneOverN(long trials)
    {
        double expected = 1 - Math.Pow(0.05, 1.0 / trials);
        Assert.Equal(1.0, ClopperPearson.UpperLimit(0, trials) / expected, 9);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(10_000_000)]
    public void AllErrorsGivesExactlyOne(long trials)
    {
        Assert.Equal(1.0, ClopperPearson.UpperLimit(trials, trials));
    }

    [Theory]
    [InlineData(7, 40, 0.05)]
    [InlineData(1, 200, 0.05)]
    [InlineData(150, 200, 0.05)]
    [InlineData(3, 10, 0.01)]
    [InlineData(199, 200, 0.05)]
    public void MidCaseLeavesAlphaInTheBinomialLowerTail(long errors, long trials, double alpha)
    {
        double upper = ClopperPearson.UpperLimit(errors, trials, alpha);
        Assert.Equal(alpha, BinomialLowerTail(errors, trials, upper), 12);
        Assert.True(upper > (double)errors / trials);
    }

    // Reference: mpmath bisection on exact binomial sums (40 digits).
    [Theory]
    [InlineData(3, 10, 0.60662421610541342555)]
    [InlineData(17, 100, 0.24401675622436266519)]
    [InlineData(500, 1000, 0.52648226876430879554)]
    [InlineData(1, 10_000_000, 4.7438636303713684247e-7)]
    [InlineData(123_456, 10_000_000, 0.0124031906023644719)]
    [InlineData(5_000_000, 10_000_000, 0.5002601241698341889)]
    [InlineData(9_999_999, 10_000_000, 0.9999999948706705744)]
    public void MatchesHighPrecisionReference(long errors, long trials, double expected)
    {
        // Relative 1e-11, or 1e-16 absolute: below 1e-6 the limit is as exact as a double near 1 can
        // make 1 - p, which the incomplete beta's upper branch works with.
        Assert.InRange(Math.Abs(ClopperPearson.UpperLimit(errors, trials) - expected), 0, 1e-11 * expected + 1e-16);
    }

    [Fact]
    public void LowerLimitMirrorsUpperLimit()
    {
        Assert.Equal(1 - ClopperPearson.UpperLimit(7, 40), ClopperPearson.LowerLimit(33, 40), 15);
        Assert.Equal(0.0, ClopperPearson.LowerLimit(0, 40));
    }

    [Fact]
    public void RejectsImpossibleCounts()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => ClopperPearson.UpperLimit(5, 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => ClopperPearson.UpperLimit(-1, 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => ClopperPearson.UpperLimit(1, 4, alpha: 0));
    }
}
