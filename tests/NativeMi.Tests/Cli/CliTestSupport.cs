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
