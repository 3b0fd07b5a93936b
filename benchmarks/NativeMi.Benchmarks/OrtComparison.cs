using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using NativeMi.Models;
using NativeMi.Transformer;

namespace NativeMi.Benchmarks;

/// <summary>
/// Side-by-side timing of our CPU forward pass and ONNX Runtime (all graph optimisations, same thread
/// count) on the built-in models, in one process, on the same token batches. Runs alternate between the
/// two systems so that machine noise hits both alike; medians are reported.
/// </summary>
public static class OrtComparison
{
    private const int Warmup = 15;

    /// <summary>Runs the comparison and returns a Markdown report.</summary>
    /// <param name="runs">Timed runs per cell.</param>
    /// <param name="batchSizes">Sentences per batch, one cell each.</param>
    /// <param name="sequenceWords">Minimum words per sentence.</param>
    /// <param name="gapMilliseconds">
    /// Idle time before each timed run. ORT's intra-op threads spin for a while after a run returns, and so do idle
    /// .NET pool threads; with 0 each system's run starts while the other's threads may still hold the cores.
    /// </param>
    public static string Run(int runs, int[] batchSizes, int sequenceWords, int gapMilliseconds = 0, bool ortSpinning = true) =>
        Run(runs, batchSizes, sequenceWords, gapMilliseconds, ortSpinning, out _);

    /// <summary>One cell of the comparison: a model at a batch size, both medians in milliseconds.</summary>
    public sealed record Cell(string Model, int Batch, string Tokens, double OursMedianMs, double OrtMedianMs)
    {
        /// <summary>Our time over ORT's (below 1: we are faster).</summary>
        public double Ratio => OursMedianMs / OrtMedianMs;
    }

    /// <summary>As <see cref="Run(int, int[], int, int, bool)"/>, also returning every cell's medians.</summary>
    /// <param name="ortSpinning">
    /// False sets ORT's session.intra_op.allow_spinning to 0: its pool threads sleep as soon as a run ends instead of
    /// spinning, so they no longer hold the cores while our next run starts.
    /// </param>
    public static string Run(int runs, int[] batchSizes, int sequenceWords, int gapMilliseconds, bool ortSpinning, out List<Cell> cells)
    {
        cells = [];
        var report = new StringBuilder();
        report.AppendLine(CultureInfo.InvariantCulture, $"# Forward pass: NativeMi CPU vs ONNX Runtime {typeof(InferenceSession).Assembly.GetName().Version}");
        report.AppendLine();
        report.AppendLine(CultureInfo.InvariantCulture, $"- machine: {CpuName()}, {Environment.ProcessorCount} logical cores, {Environment.OSVersion}, .NET {Environment.Version}");
        report.AppendLine(CultureInfo.InvariantCulture, $"- date (UTC): {DateTime.UtcNow:yyyy-MM-dd HH:mm}");
        report.AppendLine(CultureInfo.InvariantCulture, $"- threads: NativeMi thread pool on {Environment.ProcessorCount} cores; ORT intra-op threads = {Environment.ProcessorCount}, ORT_ENABLE_ALL, spinning {(ortSpinning ? "allowed (its default)" : "disabled")}");
        report.AppendLine(CultureInfo.InvariantCulture, $"- inputs: packaged WordNet sentences, our tokenizer, right padding; {runs} timed runs per cell after 3 untimed runs per batch size and {Warmup} warm-up runs per cell (the JIT has promoted the hot loops by then), alternating systems{(gapMilliseconds > 0 ? $", {gapMilliseconds} ms idle before each run" : ", back to back")}; every layer's hidden states returned by ours, last_hidden_state by ORT");
        report.AppendLine();
        report.AppendLine("| model | batch | tokens (padded) | NativeMi median ms | ORT median ms | NativeMi / ORT |");
        report.AppendLine("|---|---:|---:|---:|---:|---:|");
        string[] sentences = File.ReadLines(Path.Combine(AppContext.BaseDirectory, "data", "wordnet-examples.txt"))
            .Where(l => l.Split(' ').Length >= sequenceWords).Take(batchSizes.Max()).ToArray();
        foreach (string name in BuiltinModels.Names)
        {
            using var model = ModelResolver.Load(name);
            using var options = new SessionOptions
            {
                GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
                IntraOpNumThreads = Environment.ProcessorCount,
                InterOpNumThreads = 1,
                ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            };
            if (!ortSpinning) options.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
            using var session = new InferenceSession(BuiltinModels.GetOnnxPath(name), options);
            // Three untimed passes of both systems at every batch size first, so that the first cell (batch 1 of the
            // first model) does not pay for JIT tiering and thread-pool start-up that later cells find done.
            foreach (int batchSize in batchSizes)
            {
                EncodedBatch warm = model.Encode(sentences.Take(batchSize).ToArray());
                for (int i = 0; i < 3; i++)
                {
                    model.Forward(warm);
                    using (session.Run(Feeds(session, warm), ["last_hidden_state"])) { }
                }
            }
            foreach (int batchSize in batchSizes)
            {
                EncodedBatch batch = model.Encode(sentences.Take(batchSize).ToArray());
                var feeds = Feeds(session, batch);
                var ours = new List<double>();
                var theirs = new List<double>();
                for (int i = 0; i < runs + Warmup; i++)
                {
                    if (gapMilliseconds > 0) Thread.Sleep(gapMilliseconds);
                    var clock = Stopwatch.StartNew();
                    model.Forward(batch);
                    double a = clock.Elapsed.TotalMilliseconds;
                    if (gapMilliseconds > 0) Thread.Sleep(gapMilliseconds);
                    clock.Restart();
                    using (session.Run(feeds, ["last_hidden_state"])) { }
                    double b = clock.Elapsed.TotalMilliseconds;
                    if (i < Warmup) continue;
                    ours.Add(a);
                    theirs.Add(b);
                }
                double mo = Median(ours), mt = Median(theirs);
                cells.Add(new Cell(name, batchSize, $"{batch.BatchSize}x{batch.SequenceLength}", mo, mt));
                string line = string.Create(CultureInfo.InvariantCulture,
                    $"| {name} | {batchSize} | {batch.BatchSize}x{batch.SequenceLength} | {mo:F1} | {mt:F1} | {mo / mt:F2} |");
                report.AppendLine(line);
                Console.Error.WriteLine(line);
            }
        }
        return report.ToString();
    }

    private static List<NamedOnnxValue> Feeds(InferenceSession session, EncodedBatch batch)
    {
        int[] dims = [batch.BatchSize, batch.SequenceLength];
        var feeds = new List<NamedOnnxValue>();
        foreach (string input in session.InputMetadata.Keys)
        {
            int[] source = input switch
            {
                "input_ids" => batch.InputIds,
                "attention_mask" => batch.AttentionMask,
                "token_type_ids" => batch.TokenTypeIds,
                _ => throw new InvalidOperationException($"unexpected model input '{input}'"),
            };
            feeds.Add(NamedOnnxValue.CreateFromTensor(input, new DenseTensor<long>(source.Select(v => (long)v).ToArray(), dims)));
        }
        return feeds;
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    internal static string CpuName()
    {
        try
        {
            string? line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            return line?.Split(':', 2)[1].Trim() ?? "unknown CPU";
        }
        catch (IOException)
        {
            return "unknown CPU";
        }
    }
}
