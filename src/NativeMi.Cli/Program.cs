return NativeMi.Cli.CliApp.Run(args);
