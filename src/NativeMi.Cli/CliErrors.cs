using System.CommandLine;

namespace NativeMi.Cli;

/// <summary>Exit codes of the nativemi command (documented in the README).</summary>
internal static class ExitCodes
{
    public const int Success = 0;
    /// <summary>An internal error: a bug. The message asks for a report; --verbose shows the stack.</summary>
    public const int Internal = 1;
    /// <summary>The command line is wrong (unknown option, missing argument, bad value).</summary>
    public const int Usage = 2;
    /// <summary>An input is wrong: a file, a folder, a model, a corpus.</summary>
    public const int Input = 3;
    /// <summary>The environment lacks something: no GPU, a missing native library, an unwritable output.</summary>
    public const int Environment = 4;
}

/// <summary>A bad option value found by a command's own parsing (exit 2, like System.CommandLine's errors).</summary>
internal sealed class UsageException(string message) : Exception(message);

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
        catch (UsageException e)
        {
            return Fail(ExitCodes.Usage, e, verbose);
        }
        catch (InputException e)
        {
            return Fail(ExitCodes.Input, e, verbose);
        }
        catch (FileNotFoundException e)
        {
            return Fail(ExitCodes.Input, e, verbose);
        }
        catch (DirectoryNotFoundException e)
        {
            return Fail(ExitCodes.Input, e, verbose);
        }
        catch (EnvironmentException e)
        {
            return Fail(ExitCodes.Environment, e, verbose);
        }
        catch (NativeMi.IO.OutputWriteException e)
        {
            return Fail(ExitCodes.Environment, e, verbose);
        }
        catch (UnauthorizedAccessException e)
        {
            return Fail(ExitCodes.Environment, e, verbose);
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("nativemi: cancelled");
            return 130;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"nativemi: internal error: {e.Message}");
            if (verbose) Console.Error.WriteLine(e);
            else Console.Error.WriteLine("(run again with --verbose for details; this is a bug, please report it)");
            return ExitCodes.Internal;
        }
    }

    /// <summary>
    /// <paramref name="message"/> on one line: each run of white space holding a line break or a tab becomes one space,
    /// so that a library's multi-line message (allowed values one per line, a list of paths tried) stays one line.
    /// </summary>
    public static string OneLine(string message) =>
        System.Text.RegularExpressions.Regex.Replace(message.Trim(), @"[ ]*[\r\n\t]+\s*", " ");

    private static int Fail(int code, Exception e, bool verbose)
    {
        Console.Error.WriteLine($"nativemi: error: {e.Message}");
        if (verbose) Console.Error.WriteLine(e);
        return code;
    }
}
