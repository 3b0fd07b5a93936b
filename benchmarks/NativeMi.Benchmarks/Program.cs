using System.Globalization;
using BenchmarkDotNet.Running;
using NativeMi.Benchmarks;

// `ort-compare [runs] [--gap-ms N] [--ort-no-spin] [--out file.md]` times our forward pass against ONNX Runtime side by side;
// anything else goes to BenchmarkDotNet.
if (args.Length > 0 && args[0] == "ort-compare")
{
    int runs = args.Length > 1 && int.TryParse(args[1], NumberStyles.None, CultureInfo.InvariantCulture, out int r) ? r : 10;
    int gapIndex = Array.IndexOf(args, "--gap-ms");
    int gap = gapIndex >= 0 && gapIndex + 1 < args.Length ? int.Parse(args[gapIndex + 1], CultureInfo.InvariantCulture) : 0;
    string report = OrtComparison.Run(runs, [1, 8, 32], sequenceWords: 8, gap, ortSpinning: !args.Contains("--ort-no-spin"));
    int outIndex = Array.IndexOf(args, "--out");
    if (outIndex >= 0 && outIndex + 1 < args.Length) NativeMi.IO.AtomicFile.WriteAllText(args[outIndex + 1], report);
    Console.WriteLine(report);
    return 0;
}
// `forward-profile [runs]` prints the share of forward time per op at batch 8 and 32.
if (args.Length > 0 && args[0] == "forward-profile")
{
    int runs = args.Length > 1 && int.TryParse(args[1], NumberStyles.None, CultureInfo.InvariantCulture, out int r) ? r : 9;
    Console.WriteLine(ForwardProfile.Run(runs, [8, 32]));
    return 0;
}
// `probe-compare [runs] [--out file.md]` times one probe epoch against PyTorch (scripts/probe_epoch_torch.py).
if (args.Length > 0 && args[0] == "probe-compare")
{
    int runs = args.Length > 1 && int.TryParse(args[1], NumberStyles.None, CultureInfo.InvariantCulture, out int r) ? r : 5;
    string report = ProbeComparison.Run(runs);
    int outIndex = Array.IndexOf(args, "--out");
    if (outIndex >= 0 && outIndex + 1 < args.Length) NativeMi.IO.AtomicFile.WriteAllText(args[outIndex + 1], report);
    Console.WriteLine(report);
    return 0;
}
// `probe-profile [epochs]` prints where the default probe's training time goes, per stage, phase and op;
// `probe-profile kernels [rounds] [filter]` times the probe's heavy ops alone, interleaved; `probe-profile measure <cache>`
// profiles the default measure's probes on the embeddings cached there.
if (args.Length > 1 && args[0] == "probe-profile" && args[1] == "kernels")
{
    int rounds = args.Length > 2 && int.TryParse(args[2], NumberStyles.None, CultureInfo.InvariantCulture, out int r) ? r : 21;
    Console.WriteLine(ProbeProfile.RunKernels(rounds, args.Length > 3 ? args[3] : null));
    return 0;
}
if (args.Length > 2 && args[0] == "probe-profile" && args[1] == "measure")
{
    Console.WriteLine(ProbeProfile.RunMeasure(args[2]));
    return 0;
}
if (args.Length > 0 && args[0] == "probe-profile")
{
    int epochs = args.Length > 1 && int.TryParse(args[1], NumberStyles.None, CultureInfo.InvariantCulture, out int e) ? e : 2;
    Console.WriteLine(ProbeProfile.Run(epochs));
    return 0;
}
// `kernels [rounds] [filter]`: quick interleaved Stopwatch medians of the FMA peak, GEMM shapes and attention.
if (args.Length > 0 && args[0] == "kernels")
{
    int rounds = args.Length > 1 && int.TryParse(args[1], NumberStyles.None, CultureInfo.InvariantCulture, out int r) ? r : 15;
    Console.WriteLine(QuickKernels.Run(rounds, args.Length > 2 ? args[2] : null));
    return 0;
}
// `bar [--quick] [--out file.md] [--nativemi path] [--skip-measure]`: every goal of the CPU speed bar in one pass (scripts/bench-bar.sh).
if (args.Length > 0 && args[0] == "bar") return Bar.Run(args[1..]);
// `latency [--calls N] [--cold-runs N] [--out file.md] [--native folder]`: one-sentence embedding latency and cold start beside ONNX Runtime (issue 12 item 5).
if (args.Length > 0 && args[0] == "latency") return Latency.Run(args[1..]);
// `latency-cold-dotnet MODEL SENTENCE` (used by `latency`): the .NET facade's cold start in a fresh process.
if (args.Length > 0 && args[0] == "latency-cold-dotnet") return Latency.ColdDotnet(args[1..]);
BenchmarkSwitcher.FromAssembly(typeof(ForwardBenchmarks).Assembly).Run(args);
return 0;
