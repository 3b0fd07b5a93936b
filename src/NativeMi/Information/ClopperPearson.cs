namespace NativeMi.Information;

/// <summary>Exact (Clopper-Pearson) confidence limits for a binomial proportion.</summary>
internal static class ClopperPearson
{
    /// <summary>
    /// The one-sided upper limit at confidence 1 - <paramref name="alpha"/> for a proportion after
    /// <paramref name="successes"/> in <paramref name="trials"/>: the p with P(Bin(trials, p) ≤ successes) = alpha,
    /// i.e. the 1 - alpha quantile of Beta(successes + 1, trials - successes). It is exactly 1 when
    /// successes = trials (including no trials at all: nothing has been observed).
    /// </summary>
    /// <param name="successes">Observed count, here usually the number of probe errors.</param>
    /// <param name="trials">Number of trials, here the number of held-out targets.</param>
    /// <param name="alpha">One-sided error level in (0, 1); 0.05 gives a 95% upper limit.</param>
    public static double UpperLimit(long successes, long trials, double alpha = 0.05)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(trials);
        ArgumentOutOfRangeException.ThrowIfNegative(successes);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(successes, trials);
        if (!(alpha > 0 && alpha < 1)) throw new ArgumentOutOfRangeException(nameof(alpha), alpha, "must be in (0, 1)");
        if (successes == trials) return 1;
        if (successes == 0)
        {
            // (1 - p)^n = alpha has the closed form 1 - alpha^(1/n); expm1 keeps it exact for huge n.
            return -ExpMinusOne(Math.Log(alpha) / trials);
        }
        return SpecialFunctions.InverseRegularizedIncompleteBeta(successes + 1, trials - successes, 1 - alpha);
    }

    /// <summary>
    /// The one-sided lower limit at confidence 1 - <paramref name="alpha"/>: the p with
    /// P(Bin(trials, p) ≥ successes) = alpha; exactly 0 when successes = 0.
    /// </summary>
    /// <param name="successes">Observed count.</param>
    /// <param name="trials">Number of trials.</param>
    /// <param name="alpha">One-sided error level in (0, 1).</param>
    public static double LowerLimit(long successes, long trials, double alpha = 0.05) =>
        1 - UpperLimit(trials - successes, trials, alpha);

    private static double ExpMinusOne(double x)
    {
        if (Math.Abs(x) >= 1e-5) return Math.Exp(x) - 1;
        // Taylor series: exact to double precision for |x| < 1e-5 and immune to the cancellation in exp(x) - 1.
        return x * (1 + x * (0.5 + x * (1.0 / 6 + x / 24)));
    }
}
