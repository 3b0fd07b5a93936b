using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using System.Text;
using NativeMi.Compute;
using NativeMi.Compute.Cpu;
using NativeMi.Models;
using NativeMi.Transformer;

namespace NativeMi.Benchmarks;

/// <summary>
/// `kernels [rounds]`: a quick Stopwatch harness (no BenchmarkDotNet) for A/B comparisons on a noisy machine. Each
/// round times every case once, rounds interleave the cases, and the report gives medians over rounds. Cases: the
/// FMA peak (the widest FMA the CPU has, 1 and all threads), minilm's GEMM shapes with a pre-packed weight as the forward pass runs
/// them (batch 32 and 8 × 27 tokens and 1024 rows) and with raw B, the attention op, and (filter 'Forward') minilm's forward pass. The filter keeps the cases whose
/// name contains any of its '|'-separated parts.
/// </summary>
public static class QuickKernels
{
    private sealed record Case(string Name, double Flops, Action Body);

    /// <summary>Runs the cases and returns a Markdown table.</summary>
    public static string Run(int rounds, string? filter) => Run(rounds, filter, out _);

    /// <summary>One case's result: its name, 2·m·k·n (0 for cases that are not products) and median milliseconds.</summary>
    public sealed record Timing(string Name, double Flops, double MedianMs)
    {
        /// <summary>GFLOP/s at the median time (0 for cases without a FLOP count).</summary>
        public double GflopsPerSecond => Flops / MedianMs / 1e6;
    }

    /// <summary>As <see cref="Run(int, string)"/>, also returning every case's median.</summary>
    public static string Run(int rounds, string? filter, out List<Timing> timings)
    {
        timings = [];
        var cases = new List<Case>();
        // The peak is the widest FMA this CPU has (the GEMM's micro-kernel follows the same choice): a machine without
        // AVX-512 is measured against its 256-bit peak rather than failing.
        bool wide = System.Runtime.Intrinsics.X86.Avx512F.IsSupported;
        int lanes = wide ? 16 : 8;
        Func<long, float> chains = wide ? FmaPeakBenchmarks.Chains512 : FmaPeakBenchmarks.Chains256;
        string width = wide ? "512" : "256";
        cases.Add(new Case($"FMA peak {width}, 1 thread", 12.0 * lanes * 2 * PeakIterations, () => chains(PeakIterations)));
        cases.Add(new Case($"FMA peak {width}, {Environment.ProcessorCount} threads", Environment.ProcessorCount * 12.0 * lanes * 2 * PeakIterations,
            () => FmaPeakBenchmarks.AllThreads(() => chains(PeakIterations))));
        var rng = new Random(1);
        foreach (int m in new[] { 1024, 864, 216 })
            foreach (var (k, n) in new[] { (384, 1152), (384, 384), (384, 1536), (1536, 384) })
                cases.Add(Packed(rng, m, k, n, m == 864 && n == 1536 ? Activation.GeluExact : Activation.None));
        // Narrow products: packing A dominates.
        cases.Add(Packed(rng, 1024, 384, 32, Activation.None));
        cases.Add(Packed(rng, 216, 1536, 32, Activation.None));
        foreach (var (m, k, n) in new[] { (1024, 384, 1152), (350, 512, 879) })
            cases.Add(Raw(rng, m, k, n));
        foreach (int batch in new[] { 32, 8 })
            cases.Add(AttentionCase(rng, batch, 27, 12, 32));
        foreach (int rows in new[] { 864, 216 })
        {
            var backend = new CpuBackend();
            var x = new CpuBuffer<float>(Fill(rng, rows * 384));
            var residual = new CpuBuffer<float>(Fill(rng, rows * 384));
            var gamma = new CpuBuffer<float>(Fill(rng, 384));
            var beta = new CpuBuffer<float>(Fill(rng, 384));
            var y = new CpuBuffer<float>(new float[rows * 384]);
            cases.Add(new Case($"LayerNorm+residual {rows}x384", 0, () => backend.LayerNorm(x, residual, gamma, beta, y, rows, 384, 1e-12f)));
        }
        bool forward = filter is not null && filter.Contains("Forward", StringComparison.OrdinalIgnoreCase);
        if (forward)
        {
            var model = ModelResolver.Load("minilm");
            string[] sentences = File.ReadLines(Path.Combine(AppContext.BaseDirectory, "data", "wordnet-examples.txt"))
                .Where(l => l.Split(' ').Length >= 8).Take(32).ToArray();
            foreach (int batchSize in new[] { 1, 8, 32 })
            {
                EncodedBatch batch = model.Encode(sentences.Take(batchSize).ToArray());
                cases.Add(new Case($"Forward minilm batch {batchSize}", 0, () => model.Forward(batch)));
            }
        }
        if (filter is not null)
        {
            string[] parts = filter.Split('|');
            cases = cases.Where(c => parts.Any(p => c.Name.Contains(p, StringComparison.OrdinalIgnoreCase))).ToList();
        }

        for (int w = 0; w < (forward ? 15 : 2); w++)
            foreach (Case c in cases) c.Body();
        var times = cases.ToDictionary(c => c, _ => new List<double>());
        for (int r = 0; r < rounds; r++)
            foreach (Case c in cases)
            {
                long start = Stopwatch.GetTimestamp();
                c.Body();
                times[c].Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            }
        var report = new StringBuilder();
        report.AppendLine(CultureInfo.InvariantCulture, $"path {CpuGemm.ActivePath}, {Environment.ProcessorCount} threads, {rounds} rounds");
        report.AppendLine("| case | median ms | min ms | GFLOP/s (median) | GFLOP/s (min) |");
        report.AppendLine("|---|---:|---:|---:|---:|");
        foreach (Case c in cases)
        {
            var t = times[c].OrderBy(x => x).ToList();
            double median = t[t.Count / 2], min = t[0];
            timings.Add(new Timing(c.Name, c.Flops, median));
            report.AppendLine(CultureInfo.InvariantCulture, $"| {c.Name} | {median:F3} | {min:F3} | {c.Flops / median / 1e6:F1} | {c.Flops / min / 1e6:F1} |");
        }
        return report.ToString();
    }

    private const long PeakIterations = 2_000_000;

    private static Case Packed(Random rng, int m, int k, int n, Activation activation)
    {
        float[] a = Fill(rng, m * k), bias = Fill(rng, n), c = new float[m * n];
        PackedMatrix b = CpuGemm.PackB(Fill(rng, k * n), k, n);
        string act = activation == Activation.None ? "" : " +GELU";
        return new Case($"GEMM packed {m}x{k}x{n}{act}", 2.0 * m * k * n, () => CpuGemm.Multiply(a, b, bias, c, m, activation));
    }

    private static Case Raw(Random rng, int m, int k, int n)
    {
        float[] a = Fill(rng, m * k), b = Fill(rng, k * n), bias = Fill(rng, n), c = new float[m * n];
        return new Case($"GEMM raw {m}x{k}x{n}", 2.0 * m * k * n, () => CpuGemm.Multiply(a, b, bias, c, m, k, n));
    }

    private static Case AttentionCase(Random rng, int batch, int seq, int heads, int headDim)
    {
        var backend = new CpuBackend();
        int width = heads * headDim;
        var qkv = new CpuBuffer<float>(Fill(rng, batch * seq * 3 * width));
        var mask = new int[batch * seq];
        for (int s = 0; s < batch; s++)
            for (int i = 0; i < seq; i++) mask[s * seq + i] = i < seq - 3 * (s % 5) ? 1 : 0;
        var maskBuffer = new CpuBuffer<int>(mask);
        var output = new CpuBuffer<float>(new float[batch * seq * width]);
        double flops = 4.0 * batch * heads * seq * seq * headDim;
        return new Case($"Attention {batch}x{seq}, {heads}x{headDim}", flops,
            () => backend.Attention(qkv, maskBuffer, output, batch, seq, heads, headDim, causal: false));
    }

    private static float[] Fill(Random rng, int length)
    {
        var x = new float[length];
        for (int i = 0; i < length; i++) x[i] = (float)(rng.NextDouble() - 0.5);
        return x;
    }
}
