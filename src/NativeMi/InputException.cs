namespace NativeMi;

/// <summary>
/// Base type of every error caused by the user's input (a file, a folder, an option) rather than by
/// the environment or by a bug. Its message always names the file or option and what was expected.
/// </summary>
public class InputException : Exception
{
    /// <summary>Creates the exception.</summary>
    public InputException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>A model folder (config.json, weights, tokenizer files) is missing something or contradicts itself.</summary>
internal sealed class ModelFormatException : InputException
{
    /// <summary>Creates the exception for <paramref name="filePath"/>.</summary>
    public ModelFormatException(string filePath, string problem, Exception? inner = null)
        : base($"{filePath}: {problem}", inner)
    {
        FilePath = filePath;
    }

    /// <summary>The file or folder that is wrong.</summary>
    public string FilePath { get; }
}

/// <summary>
/// Base type of every error caused by the environment rather than by the input or a bug: no GPU, a missing
/// native library, not enough device memory, an output folder that cannot be written. The message says what
/// was missing and, where there is one, what to change.
/// </summary>
public class EnvironmentException : Exception
{
    /// <summary>Creates the exception.</summary>
    public EnvironmentException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>
/// A wrong argument rather than a wrong file: an unknown option, a value of the wrong type or out of range, a buffer too
/// small. An <see cref="InputException"/> (it names the option and what was expected), classified apart from the other
/// input errors as <see cref="ExitStatus.Usage"/>, the exit status of a command line the parser refused.
/// </summary>
public sealed class UsageException : InputException
{
    /// <summary>Creates the exception.</summary>
    public UsageException(string message, Exception? inner = null) : base(message, inner) { }
}
