using System.Text.RegularExpressions;

namespace NativeMi;

/// <summary>
/// The class of an outcome: the exit status of the nativemi command and the nativemi_status of the C ABI
/// (include/nativemi.h), which share these numbers.
/// </summary>
public enum ExitStatus
{
    /// <summary>Success.</summary>
    Success = 0,
    /// <summary>A bug in the engine.</summary>
    Internal = 1,
    /// <summary>A wrong argument: an unknown option, a bad value, a buffer too small.</summary>
    Usage = 2,
    /// <summary>A wrong input: a file, a folder, a model, a corpus.</summary>
    Input = 3,
    /// <summary>The environment lacks something: no GPU, a missing native library, device memory, an unwritable output.</summary>
    Environment = 4,
    /// <summary>Cancelled (Ctrl-C, a cancellation token, the C ABI's flag or progress callback).</summary>
    Cancelled = 130,
}

/// <summary>Turns an exception into its <see cref="ExitStatus"/>: one rule for the command line and the C ABI.</summary>
public static partial class ErrorClassification
{
    /// <summary>
    /// <see cref="UsageException"/> is usage; every other <see cref="InputException"/>, and a missing file or folder, is
    /// input; <see cref="EnvironmentException"/> (device out of memory included), an output that cannot be written and a
    /// refused access are environment; a cancellation is cancelled; anything else is a bug.
    /// </summary>
    public static ExitStatus Classify(Exception exception) => exception switch
    {
        UsageException => ExitStatus.Usage,
        InputException or FileNotFoundException or DirectoryNotFoundException => ExitStatus.Input,
        EnvironmentException or IO.OutputWriteException or UnauthorizedAccessException => ExitStatus.Environment,
        OperationCanceledException => ExitStatus.Cancelled,
        _ => ExitStatus.Internal,
    };

    /// <summary>
    /// <paramref name="message"/> on one line: each run of white space holding a line break or a tab becomes one space,
    /// so that a library's multi-line message (allowed values one per line, a list of paths tried) stays one line.
    /// </summary>
    public static string OneLine(string message)
    {
        ArgumentNullException.ThrowIfNull(message);
        return LineBreaks().Replace(message.Trim(), " ");
    }

    [GeneratedRegex(@"[ ]*[\r\n\t]+\s*")]
    private static partial Regex LineBreaks();
}
