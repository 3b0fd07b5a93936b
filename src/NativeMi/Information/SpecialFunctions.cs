namespace NativeMi.Information;

/// <summary>
/// Log-gamma, the regularized incomplete beta function and its inverse, written to stay accurate for
/// the very unequal, very large shape parameters (up to about 10^7) that binomial confidence limits need.
/// </summary>
internal static class SpecialFunctions
{
    private const double HalfLogTwoPi = 0.91893853320467274178032973640562;

    // Lanczos coefficients (g = 671/128, 14 terms) from Numerical Recipes, 3rd edition, gammln.
    private static readonly double[] LanczosCoefficients =
    [
        57.1562356658629235, -59.5979603554754912, 14.1360979747417471, -0.491913816097620199,
        0.339946499848118887e-4, 0.465236289270485756e-4, -0.983744753048795646e-4,
        0.158088703224912494e-3, -0.210264441724104883e-3, 0.217439618115212643e-3,
        -0.164318106536763890e-3, 0.844182239838527433e-4, -0.261908384015814087e-4,
        0.368991826595316234e-5,
    ];

    /// <summary>ln(1 + x), accurate also when |x| is tiny (unlike Math.Log(1 + x)).</summary>
    public static double Log1p(double x)
    {
        if (Math.Abs(x) < 0.5) return Log1pMinusX(x) + x;
        return Math.Log(1 + x);
    }

    /// <summary>ln(1 + x) - x, accurate when |x| is small, where the two terms nearly cancel.</summary>
    public static double Log1pMinusX(double x)
    {
        if (!(x > -1)) return x == -1 ? double.NegativeInfinity : double.NaN;
        if (Math.Abs(x) >= 0.5) return Math.Log(1 + x) - x;
        // ln(1 + x) = 2 atanh(v) with v = x / (2 + x), and 2v - x = -x v exactly, so the cancelling
        // first-order terms are removed analytically: ln(1 + x) - x = -x v + 2 v^3 sum_k v^(2k) / (2k + 3).
        double v = x / (2 + x);
        double vSquared = v * v;
        double power = 1;
        double sum = 0;
        for (int k = 0; k < 60; k++)
        {
            double term = power / (2 * k + 3);
            sum += term;
            if (term <= 1e-17 * sum) break;
            power *= vSquared;
        }
        return -x * v + 2 * v * vSquared * sum;
    }

    /// <summary>ln Γ(x) for x &gt; 0 (Lanczos approximation, relative error near machine precision).</summary>
    public static double LogGamma(double x)
    {
        if (!(x > 0)) throw new ArgumentOutOfRangeException(nameof(x), x, "must be positive");
        if (x < 0.5)
        {
            // Reflection keeps the Lanczos series in the range where its error bound holds.
            return Math.Log(Math.PI / Math.Sin(Math.PI * x)) - LogGamma(1 - x);
        }
        double y = x;
        double shifted = x + 5.24218750000000000;
        shifted = (x + 0.5) * Math.Log(shifted) - shifted;
        double series = 0.999999999999997092;
        foreach (double coefficient in LanczosCoefficients) series += coefficient / ++y;
        return shifted + Math.Log(2.5066282746310005 * series / x);
    }

    /// <summary>
    /// The Stirling-series remainder δ(x) = ln Γ(x) - [(x - 1/2) ln x - x + ln √(2π)]. Working with δ
    /// instead of ln Γ avoids subtracting two numbers of size 10^8 when the arguments are large.
    /// </summary>
    public static double StirlingError(double x)
    {
        if (!(x > 0)) throw new ArgumentOutOfRangeException(nameof(x), x, "must be positive");
        if (x < 15) return LogGamma(x) - ((x - 0.5) * Math.Log(x) - x + HalfLogTwoPi);
        double inverseSquare = 1 / (x * x);
        // Asymptotic series; the first omitted term is below 2e-16 at x = 15.
        return (1.0 / 12 - (1.0 / 360 - (1.0 / 1260 - (1.0 / 1680 - inverseSquare / 1188) * inverseSquare) * inverseSquare) * inverseSquare) / x;
    }

    /// <summary>ln of x^a (1 - x)^b / B(a, b), computed without the cancellation a direct sum of log-gammas suffers.</summary>
    /// <param name="a">First shape.</param>
    /// <param name="b">Second shape.</param>
    /// <param name="x">The point.</param>
    /// <param name="y">1 - x, passed separately because a caller that has it exactly (x near 1) must not lose it to rounding.</param>
    internal static double LogBetaKernel(double a, double b, double x, double y)
    {
        double sum = a + b;
        double mean = a / sum;
        // a ln(x / x0) + b ln((1 - x) / (1 - x0)) with x0 = a / (a + b), the mean: its first-order terms cancel
        // exactly, so only the second-order remainders (Log1pMinusX) are summed.
        double relativeAbove = (x - mean) / mean;
        double meanComplement = b / sum;
        double relativeBelow = (y - meanComplement) / meanComplement;
        // Far from x0, 1 + t would round away x itself (x = 1e-20 against x0 = 0.5), so the ratio is
        // formed directly there.
        double aboveTerm = Math.Abs(relativeAbove) < 0.5 ? Log1pMinusX(relativeAbove) : Math.Log(x / mean) - relativeAbove;
        double belowTerm = Math.Abs(relativeBelow) < 0.5 ? Log1pMinusX(relativeBelow) : Math.Log(y / meanComplement) - relativeBelow;
        double divergence = a * aboveTerm + b * belowTerm;
        return divergence
            + 0.5 * Math.Log(a * b / sum) - HalfLogTwoPi
            + StirlingError(sum) - StirlingError(a) - StirlingError(b);
    }

    /// <summary>The regularized incomplete beta function I_x(a, b) = P(Beta(a, b) ≤ x).</summary>
    public static double RegularizedIncompleteBeta(double a, double b, double x) =>
        IncompleteBetaPair(a, b, x).Lower;

    /// <summary>
    /// 1 - I_x(a, b) = P(Beta(a, b) &gt; x), computed directly so that it keeps full relative precision
    /// when it is tiny.
    /// </summary>
    public static double RegularizedIncompleteBetaComplement(double a, double b, double x) =>
        IncompleteBetaPair(a, b, x).Upper;

    private static (double Lower, double Upper) IncompleteBetaPair(double a, double b, double x)
    {
        if (!(a > 0)) throw new ArgumentOutOfRangeException(nameof(a), a, "must be positive");
        if (!(b > 0)) throw new ArgumentOutOfRangeException(nameof(b), b, "must be positive");
        if (!(x >= 0 && x <= 1)) throw new ArgumentOutOfRangeException(nameof(x), x, "must be in [0, 1]");
        if (x == 0) return (0, 1);
        if (x == 1) return (1, 0);
        // The continued fraction converges fast only below the mean; above it use the symmetry
        // I_x(a, b) = 1 - I_(1-x)(b, a). Either way the smaller tail is the one computed directly.
        if (x < (a + 1) / (a + b + 2))
        {
            double lower = Math.Exp(LogBetaKernel(a, b, x, 1 - x)) * ContinuedFraction(a, b, x) / a;
            return (lower, 1 - lower);
        }
        double upper = Math.Exp(LogBetaKernel(b, a, 1 - x, x)) * ContinuedFraction(b, a, 1 - x) / b;
        return (1 - upper, upper);
    }

    /// <summary>The continued fraction of I_x(a, b) (Numerical Recipes betacf), evaluated with the modified Lentz method.</summary>
    private static double ContinuedFraction(double a, double b, double x)
    {
        const double tiny = 1e-300;
        const double tolerance = 1e-16;
        // Convergence takes O(sqrt(max(a, b))) terms in the worst case, so the cap scales with that.
        int maxTerms = 10_000 + (int)(50 * Math.Sqrt(Math.Max(a, b)));
        double sum = a + b;
        double c = 1;
        double d = 1 - sum * x / (a + 1);
        if (Math.Abs(d) < tiny) d = tiny;
        d = 1 / d;
        double result = d;
        for (int m = 1; m <= maxTerms; m++)
        {
            int twoM = 2 * m;
            double even = m * (b - m) * x / ((a - 1 + twoM) * (a + twoM));
            d = 1 + even * d;
            if (Math.Abs(d) < tiny) d = tiny;
            c = 1 + even / c;
            if (Math.Abs(c) < tiny) c = tiny;
            d = 1 / d;
            result *= d * c;
            double odd = -(a + m) * (sum + m) * x / ((a + twoM) * (a + 1 + twoM));
            d = 1 + odd * d;
            if (Math.Abs(d) < tiny) d = tiny;
            c = 1 + odd / c;
            if (Math.Abs(c) < tiny) c = tiny;
            d = 1 / d;
            double step = d * c;
            result *= step;
            if (Math.Abs(step - 1) <= tolerance) return result;
        }
        throw new InvalidOperationException($"incomplete beta continued fraction did not converge for a={a}, b={b}, x={x}");
    }

    /// <summary>
    /// The x in [0, 1] with I_x(a, b) = <paramref name="probability"/> (the Beta(a, b) quantile), to a
    /// relative precision of about 1e-14. Bisection, so it cannot diverge; the comparison uses whichever
    /// tail is smaller, so quantiles far in either tail keep their precision.
    /// </summary>
    public static double InverseRegularizedIncompleteBeta(double a, double b, double probability)
    {
        if (!(a > 0)) throw new ArgumentOutOfRangeException(nameof(a), a, "must be positive");
        if (!(b > 0)) throw new ArgumentOutOfRangeException(nameof(b), b, "must be positive");
        if (!(probability >= 0 && probability <= 1))
            throw new ArgumentOutOfRangeException(nameof(probability), probability, "must be a probability in [0, 1]");
        if (probability == 0) return 0;
        if (probability == 1) return 1;
        bool compareLowerTail = probability <= 0.5;
        double tailTarget = compareLowerTail ? probability : 1 - probability;
        double low = 0;
        double high = 1;
        for (int iteration = 0; iteration < 2_000; iteration++)
        {
            // Halving in the ratio as well as in the difference while the bracket spans many orders of
            // magnitude reaches a quantile of 1e-12 in tens of steps rather than hundreds.
            double middle = low > 0 && high / low > 4 ? Math.Sqrt(low * high) : 0.5 * (low + high);
            if (middle <= low || middle >= high) break;
            var (lower, upper) = IncompleteBetaPair(a, b, middle);
            bool belowQuantile = compareLowerTail ? lower < tailTarget : upper > tailTarget;
            if (belowQuantile) low = middle; else high = middle;
            if (high - low <= 1e-15 * high) break;
        }
        return 0.5 * (low + high);
    }
}
