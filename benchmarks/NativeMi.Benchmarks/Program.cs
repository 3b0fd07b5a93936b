using BenchmarkDotNet.Running;

BenchmarkSwitcher.FromAssembly(typeof(NativeMi.Benchmarks.ForwardBenchmarks).Assembly).Run(args);
