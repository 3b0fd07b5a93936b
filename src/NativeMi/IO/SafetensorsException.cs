namespace NativeMi.IO;

/// <summary>
/// A safetensors file, or a sharded index, is malformed or lacks what was asked of it.
/// The message always names the file and, where one is involved, the tensor.
/// </summary>
internal sealed class SafetensorsException : InputException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="filePath">The file that is wrong.</param>
    /// <param name="tensorName">The tensor involved, or null when the problem is the file itself.</param>
    /// <param name="problem">What was wrong and what was expected.</param>
    public SafetensorsException(string filePath, string? tensorName, string problem)
        : base(tensorName is null ? $"{filePath}: {problem}" : $"{filePath}: tensor '{tensorName}': {problem}")
    {
        FilePath = filePath;
        TensorName = tensorName;
        Problem = problem;
    }

    /// <summary>The file that is wrong.</summary>
    public string FilePath { get; }

    /// <summary>The tensor involved, or null.</summary>
    public string? TensorName { get; }

    /// <summary>What was wrong, without the file and tensor prefix.</summary>
    public string Problem { get; }
}
