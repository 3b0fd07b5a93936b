namespace NativeMi.IO;

/// <summary>
/// Where NativeMi keeps what it can recompute: imported built-in models, sentence vectors, compiled kernels. One place for
/// every part of the engine (the CUDA kernel cache must not depend on the model code to find it).
/// </summary>
internal static class CachePaths
{
    /// <summary>The cache root used when none is given: $NATIVEMI_CACHE, else $XDG_CACHE_HOME/nativemi, else ~/.cache/nativemi.</summary>
    public static string Root()
    {
        string? explicitRoot = Environment.GetEnvironmentVariable("NATIVEMI_CACHE");
        if (!string.IsNullOrEmpty(explicitRoot)) return Path.GetFullPath(explicitRoot);
        string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        if (!string.IsNullOrEmpty(xdg)) return Path.Combine(Path.GetFullPath(xdg), "nativemi");
        return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "nativemi");
    }

    /// <summary>The folder of compiled CUDA kernels under <paramref name="root"/> (the default root when null).</summary>
    public static string Kernels(string? root = null) => Path.Combine(root ?? Root(), "kernels");
}
