using System.Diagnostics;
using Xunit;

namespace NativeMi.Tests.Cuda;

/// <summary>
/// Where cmake (and, for a full configure and build, make or ninja) is. CI installs them (see .ci/run), so with
/// CI=true a missing one fails the tests rather than hiding them; elsewhere they are skipped with the reason.
/// </summary>
internal static class CmakeTools
{
    public static string? Cmake { get; } = OnPath("cmake");

    public static bool HasBuildTool { get; } = OnPath("make") is not null || OnPath("ninja") is not null;

    /// <summary>The repository root (the folder holding CMakeLists.txt and kernels/), found upward from the tests' binaries.</summary>
    public static string? RepositoryRoot { get; } = FindRepositoryRoot();

    public static string? SkipReason(bool needsBuildTool)
    {
        if (NvrtcAvailability.RunningInCi) return null;
        if (RepositoryRoot is null) return $"no CMakeLists.txt with kernels/ above {AppContext.BaseDirectory}";
        if (Cmake is null) return "cmake is not on PATH (CI is not 'true', so skipping)";
        if (needsBuildTool && !HasBuildTool) return "neither make nor ninja is on PATH (CI is not 'true', so skipping)";
        return null;
    }

    /// <summary>Runs cmake with <paramref name="arguments"/>; returns its exit code, standard output and standard error.</summary>
    public static (int Code, string Output, string Error) Run(params string[] arguments)
    {
        var start = new ProcessStartInfo(Cmake ?? throw new InvalidOperationException("cmake is not on PATH"))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in arguments) start.ArgumentList.Add(argument);
        using Process process = Process.Start(start)!;
        Task<string> output = process.StandardOutput.ReadToEndAsync();
        Task<string> error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(3)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"cmake {string.Join(' ', arguments)} ran over 3 minutes");
        }
        return (process.ExitCode, output.Result, error.Result);
    }

    private static string? OnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(folder => Path.Combine(folder, name))
            .FirstOrDefault(File.Exists);

    private static string? FindRepositoryRoot()
    {
        for (DirectoryInfo? folder = new(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
            if (File.Exists(Path.Combine(folder.FullName, "CMakeLists.txt")) && File.Exists(Path.Combine(folder.FullName, "kernels", "common.cuh")))
                return folder.FullName;
        return null;
    }
}

/// <summary>A fact that runs cmake scripts: skipped outside CI when cmake is missing, failing inside CI.</summary>
public sealed class CmakeFactAttribute : FactAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when cmake (or, with <paramref name="needsBuildTool"/>, make and ninja)
    /// is missing and CI is not set.</summary>
    public CmakeFactAttribute(bool needsBuildTool = false)
    {
        if (CmakeTools.SkipReason(needsBuildTool) is { } reason) Skip = reason;
    }
}
