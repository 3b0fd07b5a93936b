using System.Diagnostics;
using NativeMi.Cli;
using Xunit;

namespace NativeMi.Tests.Cli;

/// <summary>CLI tests swap the process-wide Console.Error, so they run alone, one after another.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class CliCollection
{
    public const string Name = "command line";
}

internal static class CliRunner
{
    private static readonly Lock Gate = new();

    /// <summary>Runs nativemi in-process and returns its exit code and what it wrote to standard error and standard output.</summary>
    public static (int Code, string Error, string Output) RunWithOutput(params string[] args)
    {
        lock (Gate)
        {
            TextWriter original = Console.Out;
            using var captured = new StringWriter();
            Console.SetOut(captured);
            try
            {
                var (code, error) = Run(args);
                return (code, error, captured.ToString());
            }
            finally
            {
                Console.SetOut(original);
            }
        }
    }

    /// <summary>Runs nativemi in-process and returns its exit code and what it wrote to standard error.</summary>
    public static (int Code, string Error) Run(params string[] args)
    {
        lock (Gate)
        {
            TextWriter original = Console.Error;
            using var captured = new StringWriter();
            Console.SetError(captured);
            try
            {
                int code = CliApp.Run(args);
                return (code, captured.ToString());
            }
            finally
            {
                Console.SetError(original);
            }
        }
    }
}

/// <summary>
/// The built CLI (nativemi.dll beside the tests) as a child process: its standard output and error are pipes, as when a
/// user redirects them to a file, and several can run at once against one cache.
/// </summary>
internal static class NativemiChild
{
    public static readonly TimeSpan Limit = TimeSpan.FromMinutes(4);

    /// <summary>Starts nativemi with <paramref name="args"/>; <paramref name="environment"/> entries with a null value are removed.</summary>
    public static Process Start(IEnumerable<string> args, IReadOnlyDictionary<string, string?>? environment = null, string? workingDirectory = null)
    {
        string host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
        var start = new ProcessStartInfo(host) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (workingDirectory is not null) start.WorkingDirectory = workingDirectory;
        start.ArgumentList.Add("exec");
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "nativemi.dll"));
        foreach (string arg in args) start.ArgumentList.Add(arg);
        start.Environment.Remove(TestPausePoint.EnvironmentVariable);
        foreach (var (name, value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null) start.Environment.Remove(name);
            else start.Environment[name] = value;
        }
        return Process.Start(start)!;
    }

    /// <summary>Waits for a started process and returns its exit code, standard output and standard error.</summary>
    public static async Task<(int Code, string Output, string Error)> Finish(Process process, TimeSpan? limit = null)
    {
        Task<string> output = process.StandardOutput.ReadToEndAsync(), error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(limit ?? Limit);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill();
            throw new TimeoutException($"nativemi did not finish within {limit ?? Limit}: {await error}");
        }
        return (process.ExitCode, await output, await error);
    }

    /// <summary>Runs nativemi to the end.</summary>
    public static (int Code, string Output, string Error) Run(IEnumerable<string> args, IReadOnlyDictionary<string, string?>? environment = null,
        TimeSpan? limit = null, string? workingDirectory = null)
    {
        using Process process = Start(args, environment, workingDirectory);
        return Finish(process, limit).GetAwaiter().GetResult();
    }
}
