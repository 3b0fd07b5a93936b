namespace NativeMi.Models;

/// <summary>Turns what a user types as a model (a built-in name or a folder) into a model folder.</summary>
internal static class ModelResolver
{
    /// <summary>
    /// A built-in name ("minilm", "arctic-xs") is imported on first use and served from the cache afterwards, even
    /// when a folder of that name exists in the current directory (write ./minilm for the folder); any other folder
    /// path is returned as it is.
    /// </summary>
    /// <exception cref="InputException">Neither an existing folder nor a built-in name.</exception>
    public static string Resolve(string nameOrDirectory, IProgress<string>? log = null) => Resolve(nameOrDirectory, null, log);

    /// <summary>
    /// As <see cref="Resolve(string, IProgress{string})"/>, with built-in models imported into (and served from)
    /// <paramref name="cacheRoot"/>; null stands for the default cache root (<see cref="BuiltinModels.CacheRoot"/>).
    /// </summary>
    /// <exception cref="InputException">Neither an existing folder nor a built-in name.</exception>
    public static string Resolve(string nameOrDirectory, string? cacheRoot, IProgress<string>? log)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(nameOrDirectory);
        // A built-in name wins over a folder of the same name in the current directory (an --out folder called
        // "minilm" must not become the model of the next run); such a folder is reached as ./minilm.
        if (BuiltinModels.IsBuiltin(nameOrDirectory))
            return BuiltinModels.EnsureImported(nameOrDirectory, cacheRoot is null ? BuiltinModels.CacheRoot() : Path.GetFullPath(cacheRoot), log);
        if (Directory.Exists(nameOrDirectory)) return Path.GetFullPath(nameOrDirectory);
        throw new InputException(
            $"model '{nameOrDirectory}': no such folder, and not a built-in model; built-ins: {string.Join(", ", BuiltinModels.Names)}");
    }

    /// <summary>Resolves and loads the model on the CPU backend unless another is given.</summary>
    public static TransformerModel Load(string nameOrDirectory, Compute.IComputeBackend? backend = null, IProgress<string>? log = null,
        ModelLoadOptions? options = null) =>
        TransformerModel.Load(Resolve(nameOrDirectory, log), backend, options);
}
