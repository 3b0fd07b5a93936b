using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using NativeMi.Compute.Cpu;
using NativeMi.Probing;

namespace NativeMi.Benchmarks;

/// <summary>
/// One probe epoch per stage (ProbeTrainer.Train with MaxEpochs = 1: the positional probe's linear stage, then one epoch of the whole probe) of ours against scripts/probe_epoch_torch.py on the
/// same synthetic sizes, in one run: ours first, then the script as a child process. The torch half is skipped
/// with a message when /usr/bin/python3 cannot import torch. NATIVEMI_TORCH_LD_LIBRARY_PATH, when set, is passed
/// to the child as LD_LIBRARY_PATH (e.g. an OpenBLAS folder: Debian's torch links the reference BLAS otherwise).
/// </summary>
public static class ProbeComparison
{
    /// <summary>Runs the comparison with <paramref name="runs"/> timed epochs per side and returns a Markdown report.</summary>
    public static string Run(int runs, string python = "/usr/bin/python3") => Run(runs, out _, out _, python);

    /// <summary>As <see cref="Run(int, string)"/>, also returning both medians (seconds per epoch; torch's null when skipped).</summary>
    public static string Run(int runs, out double oursMedianSeconds, out double? torchMedianSeconds, string python = "/usr/bin/python3")
    {
        torchMedianSeconds = null;
        var report = new StringBuilder();
        var train = SyntheticProbeData.Train();
        var validation = SyntheticProbeData.Validation();
        var backend = new CpuBackend();
        var ours = new List<double>();
        for (int i = 0; i < runs + 1; i++)
        {
            var clock = Stopwatch.StartNew();
            using (ProbeTrainer.Train(backend, train, validation, SyntheticProbeData.Classes(train, validation), new ProbeOptions { MaxEpochs = 1 })) { }
            if (i > 0) ours.Add(clock.Elapsed.TotalSeconds);
        }
        double oursMedian = Median(ours);
        oursMedianSeconds = oursMedian;
        report.AppendLine("# Probe epoch: NativeMi CPU vs PyTorch CPU");
        report.AppendLine();
        report.AppendLine(CultureInfo.InvariantCulture, $"- date (UTC): {DateTime.UtcNow:yyyy-MM-dd HH:mm}; {Environment.ProcessorCount} cores; {backend.Description}");
        report.AppendLine(CultureInfo.InvariantCulture, $"- data: {train.Count} training sentences / {train.TargetCount} targets, {validation.Count} validation sentences, d = {train.Width}, hidden 512, {SyntheticProbeData.Tokens + 1} classes, batches of 32 sentences");
        report.AppendLine(CultureInfo.InvariantCulture, $"- NativeMi: ProbeTrainer.Train(MaxEpochs = 1), {runs} timed runs after 1 warm-up: {string.Join(", ", ours.Select(s => s.ToString("F2", CultureInfo.InvariantCulture)))} s");

        string script = FindScript();
        string? torchLine = null, skip = null;
        if (!File.Exists(python)) skip = $"{python} not found";
        else if (script.Length == 0) skip = "scripts/probe_epoch_torch.py not found";
        else
        {
            var start = new ProcessStartInfo(python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            start.ArgumentList.Add("-c");
            start.ArgumentList.Add("import torch");
            using (var probe = Process.Start(start)!)
            {
                probe.WaitForExit();
                if (probe.ExitCode != 0) skip = $"{python} cannot import torch";
            }
            if (skip is null)
            {
                start = new ProcessStartInfo(python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
                foreach (string a in new[] { script, "--runs", runs.ToString(CultureInfo.InvariantCulture), "--threads", Environment.ProcessorCount.ToString(CultureInfo.InvariantCulture) })
                    start.ArgumentList.Add(a);
                string? blas = Environment.GetEnvironmentVariable("NATIVEMI_TORCH_LD_LIBRARY_PATH");
                if (!string.IsNullOrEmpty(blas)) start.Environment["LD_LIBRARY_PATH"] = blas;
                using var child = Process.Start(start)!;
                Task<string> stderr = child.StandardError.ReadToEndAsync();
                string stdout = child.StandardOutput.ReadToEnd();
                child.WaitForExit();
                torchLine = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault();
                if (child.ExitCode != 0 || torchLine is null) skip = $"the torch script failed ({child.ExitCode}): {stderr.Result.Trim()}";
                else report.AppendLine(CultureInfo.InvariantCulture, $"- PyTorch ({(string.IsNullOrEmpty(blas) ? "its default BLAS" : $"LD_LIBRARY_PATH={blas}")}): `{torchLine.Trim()}`");
            }
        }
        report.AppendLine();
        report.AppendLine("| system | median s / epoch |");
        report.AppendLine("|---|---:|");
        report.AppendLine(CultureInfo.InvariantCulture, $"| NativeMi | {oursMedian:F2} |");
        if (skip is not null)
        {
            report.AppendLine();
            report.AppendLine(CultureInfo.InvariantCulture, $"PyTorch half skipped: {skip}.");
            return report.ToString();
        }
        double torchMedian = JsonDocument.Parse(torchLine!).RootElement.GetProperty("median_s").GetDouble();
        torchMedianSeconds = torchMedian;
        report.AppendLine(CultureInfo.InvariantCulture, $"| PyTorch | {torchMedian:F2} |");
        report.AppendLine();
        report.AppendLine(CultureInfo.InvariantCulture, $"NativeMi / PyTorch = {oursMedian / torchMedian:F2}");
        return report.ToString();
    }

    private static string FindScript()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "scripts", "probe_epoch_torch.py");
            if (File.Exists(candidate)) return candidate;
        }
        string cwd = Path.Combine(Environment.CurrentDirectory, "scripts", "probe_epoch_torch.py");
        return File.Exists(cwd) ? cwd : "";
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
