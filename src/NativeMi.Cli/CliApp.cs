using System.CommandLine;

namespace NativeMi.Cli;

/// <summary>The nativemi command line, callable in-process (tests use it that way).</summary>
public static class CliApp
{
    /// <summary>Parses <paramref name="args"/>, runs the command and returns the exit code.</summary>
    public static int Run(string[] args)
    {
        var verbose = new Option<bool>("--verbose") { Description = "Show stack traces and details on errors", Recursive = true };
        var root = new RootCommand("NativeMi: how much of a sentence a language model keeps, layer by layer (probe-based mutual-information bounds).");
        root.Options.Add(verbose);
        root.Subcommands.Add(MeasureCommand.Create(verbose));
        root.Subcommands.Add(CompareCommand.Create(verbose));
        root.Subcommands.Add(EvaluateCommand.Create(verbose));
        root.Subcommands.Add(FinetuneCommand.Create(verbose));
        root.Subcommands.Add(TuneProbeCommand.Create(verbose));
        root.Subcommands.Add(InspectCommand.Create(verbose));
        root.Subcommands.Add(HiddenCommand.Create(verbose));
        root.Subcommands.Add(ImportOnnxCommand.Create(verbose));
        root.Subcommands.Add(DoctorCommand.Create(verbose));
        root.Subcommands.Add(BenchCommand.Create(verbose));

        ParseResult parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            // The same one-line shape as every other error (README, "Exit codes"); System.CommandLine's own messages
            // may span lines (the allowed values of an option, one per line).
            foreach (var error in parsed.Errors) Console.Error.WriteLine($"nativemi: error: {ErrorBoundary.OneLine(error.Message)}");
            Console.Error.WriteLine("Run 'nativemi --help' for usage.");
            return ExitCodes.Usage;
        }
        return parsed.Invoke();
    }
}
