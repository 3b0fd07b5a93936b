using System.CommandLine;

namespace NativeMi.Cli;

/// <summary>Exit codes of the nativemi command (documented in the README); the engine's <see cref="ExitStatus"/> numbers.</summary>
internal static class ExitCodes
{
    public const int Success = (int)ExitStatus.Success;
    /// <summary>An internal error: a bug. The message asks for a report; --verbose shows the stack.</summary>
    public const int Internal = (int)ExitStatus.Internal;
    /// <summary>The command line is wrong (unknown option, missing argument, bad value).</summary>
    public const int Usage = (int)ExitStatus.Usage;
    /// <summary>An input is wrong: a file, a folder, a model, a corpus.</summary>
    public const int Input = (int)ExitStatus.Input;
    /// <summary>The environment lacks something: no GPU, a missing native library, an unwritable output.</summary>
    public const int Environment = (int)ExitStatus.Environment;
}

/// <summary>Options shared by the commands that load a model.</summary>
internal static class ModelOptions
{
    /// <summary>--allow-nonfinite-weights: load weights holding NaN or infinite values instead of refusing them.</summary>
    public static Option<bool> AllowNonFiniteWeights() => new("--allow-nonfinite-weights")
    {
        Description = "Load a model whose weights hold NaN or infinite values (refused by default)",
    };

    /// <summary>--widen-16bit-weights: convert F16/BF16 weights to fp32 at load instead of keeping them 16-bit.</summary>
    public static Option<bool> WidenSixteenBitWeights() => new("--widen-16bit-weights")
    {
        Description = "Convert F16/BF16 weights to fp32 at load (twice the memory; on CUDA, fp32 GEMMs instead of 16-bit ones)",
    };
}

/// <summary>Runs a command body and turns exceptions into one-line messages and exit codes.</summary>
internal static class ErrorBoundary
{
    public static int Run(bool verbose, Func<int> body)
    {
        try
        {
            return body();
        }
#pragma warning disable CA1031 // the boundary of the command: every exception becomes a message and an exit code
        catch (Exception e)
#pragma warning restore CA1031
        {
            ExitStatus status = ErrorClassification.Classify(e);
            switch (status)
            {
                case ExitStatus.Cancelled:
                    Console.Error.WriteLine("nativemi: cancelled");
                    break;
                case ExitStatus.Internal:
                    Console.Error.WriteLine($"nativemi: internal error: {e.Message}");
                    if (verbose) Console.Error.WriteLine(e);
                    else Console.Error.WriteLine("(run again with --verbose for details; this is a bug, please report it)");
                    break;
                default:
                    Console.Error.WriteLine($"nativemi: error: {e.Message}");
                    if (verbose) Console.Error.WriteLine(e);
                    break;
            }
            return (int)status;
        }
    }

    /// <inheritdoc cref="ErrorClassification.OneLine"/>
    public static string OneLine(string message) => ErrorClassification.OneLine(message);
}
