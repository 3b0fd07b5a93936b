using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using NativeMi.Compute;
using NativeMi.Measurement;
using NativeMi.Models;
using NativeMi.Transformer;
using NativeMi.Pooling;

namespace NativeMi.Cli;

/// <summary>
/// `nativemi bench`: times the forward pass of every layer on synthetic full-length batches, on the backend the other
/// commands would use, so the figure can be set beside another system's (scripts/gpu-check.sh puts PyTorch beside it).
/// Two timings per shape: with every layer pooled on the backend (what measure does) and with every token state of
/// every layer copied to host memory (what hidden does).
/// </summary>
internal static class BenchCommand
{
    /// <summary>One shape's timings, as the table prints them and --json writes them.</summary>
    public sealed record Row(string Model, string Backend, int BatchSize, int SequenceLength, int Runs,
        double PooledMedianMs, [property: JsonPropertyName("pooled_tokens_per_s")] double PooledTokensPerSecond,
        double AllStatesMedianMs, [property: JsonPropertyName("all_states_tokens_per_s")] double AllStatesTokensPerSecond);

    public static Command Create(Option<bool> verbose)
    {
        var model = new Option<string>("--model") { Description = "Built-in model name or model folder", DefaultValueFactory = _ => "minilm" };
        var batchSizes = new Option<string>("--batch-sizes") { Description = "Comma-separated batch sizes", DefaultValueFactory = _ => "1,8,32" };
        var sequence = new Option<int>("--seq") { Description = "Tokens per sentence (every position real; capped at the model's context)", DefaultValueFactory = _ => 128 };
        var runs = new Option<int>("--runs") { Description = "Timed runs per shape (the median is reported)", DefaultValueFactory = _ => 10 };
        var warmup = new Option<int>("--warmup") { Description = "Untimed runs per shape before timing", DefaultValueFactory = _ => 3 };
        var json = new Option<string?>("--json") { Description = "Also write the rows as JSON to this file" };
        var backend = BackendChoice.BackendOption();
        var tf32 = BackendChoice.Tf32Option();
        var ops = new Option<bool>("--ops")
        {
            Description = "Time every backend op at the model's shapes (first batch size, --seq) instead of the forward pass: ms, GFLOP/s, GB/s and the fraction of the device's peak; --backend auto times every available backend",
        };
        var command = new Command("bench", "Time the forward pass of every layer on synthetic batches (median of several runs), or with --ops every backend op")
        {
            model, batchSizes, sequence, runs, warmup, json, backend, tf32, ops,
        };
        command.SetAction(parse => ErrorBoundary.Run(parse.GetValue(verbose), () =>
        {
            if (parse.GetValue(ops))
                return RunOps(parse.GetValue(model)!, ParseSizes(parse.GetValue(batchSizes)!)[0], parse.GetValue(sequence), parse.GetValue(runs), parse.GetValue(warmup),
                    parse.GetValue(backend)!, parse.GetValue(tf32), parse.GetValue(json));
            int[] sizes = ParseSizes(parse.GetValue(batchSizes)!);
            int timedRuns = parse.GetValue(runs), warmupRuns = parse.GetValue(warmup);
            if (timedRuns < 1) throw new InputException($"--runs must be at least 1, got {timedRuns}");
            if (warmupRuns < 0) throw new InputException($"--warmup must be at least 0, got {warmupRuns}");
            using IComputeBackend compute = BackendChoice.Choose(parse.GetValue(backend)!, parse.GetValue(tf32));
            using TransformerModel loaded = ModelResolver.Load(parse.GetValue(model)!, compute, log: new SynchronousProgress<string>(m => Console.Error.WriteLine(m)));
            int seq = Math.Min(parse.GetValue(sequence), loaded.Config.MaxSequenceLength);
            if (seq < 3) throw new InputException($"--seq must be at least 3, got {parse.GetValue(sequence)}");

            var rows = new List<Row>();
            Console.WriteLine($"{"model",-10} {"backend",-6} {"batch",5} {"seq",4} {"pooled ms",10} {"tokens/s",12} {"all states ms",14} {"tokens/s",12}");
            foreach (int size in sizes)
            {
                EncodedBatch batch = SyntheticBatch(loaded, size, seq);
                Console.Error.WriteLine($"bench: batch {size} x {seq}: {warmupRuns} warm-up + {timedRuns} timed runs of each mode");
                double pooled = MedianMilliseconds(() => loaded.ForwardPooled(batch, PoolingMode.Mean), warmupRuns, timedRuns);
                double all = MedianMilliseconds(() => loaded.Forward(batch), warmupRuns, timedRuns);
                double tokens = (double)size * seq;
                string modelName = BuiltinModels.IsBuiltin(parse.GetValue(model)!) ? parse.GetValue(model)! : Path.GetFileName(loaded.Directory);
                var row = new Row(modelName, compute.Name, size, seq, timedRuns, pooled, tokens / (pooled / 1000), all, tokens / (all / 1000));
                rows.Add(row);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{row.Model,-10} {row.Backend,-6} {size,5} {seq,4} {pooled,10:F2} {row.PooledTokensPerSecond,12:F0} {all,14:F2} {row.AllStatesTokensPerSecond,12:F0}"));
            }
            Console.WriteLine($"backend: {compute.Description}");
            if (EmulatedNote(compute) is string emulated) Console.WriteLine(emulated);
            if (parse.GetValue(json) is string path)
            {
                NativeMi.IO.AtomicFile.Write(path, stream => WriteJson(stream, compute.Description, EmulatedNote(compute), rows));
                Console.Error.WriteLine($"wrote {Path.GetFullPath(path)}");
            }
            return ExitCodes.Success;
        }));
        return command;
    }

    /// <summary>`bench --ops`: every op at the model's shapes on each chosen backend.</summary>
    private static int RunOps(string model, int batch, int sequence, int runs, int warmup, string backendChoice, bool tf32, string? json)
    {
        if (runs < 1) throw new InputException($"--runs must be at least 1, got {runs}");
        if (warmup < 0) throw new InputException($"--warmup must be at least 0, got {warmup}");
        string folder = ModelResolver.Resolve(model, new SynchronousProgress<string>(m => Console.Error.WriteLine(m)));
        TransformerConfig config = TransformerConfig.Load(Path.Combine(folder, "config.json"));
        int seq = Math.Min(sequence, config.MaxSequenceLength);
        if (seq < 3) throw new InputException($"--seq must be at least 3, got {sequence}");
        var shapes = new OpShapes(batch, seq, config.HiddenSize, config.NumHeads, config.HeadDim, config.IntermediateSize, config.VocabSize,
            Causal: config.Layout.Attention.Causal);
        var backends = new List<IComputeBackend>();
        try
        {
            if (backendChoice is "cpu" or "auto") backends.Add(new NativeMi.Compute.Cpu.CpuBackend());
            if (backendChoice == "cuda") backends.Add(BackendChoice.Choose("cuda", tf32));
            else if (backendChoice == "auto")
            {
                var cuda = NativeMi.Compute.Cuda.CudaBackend.TryCreate(out string reason, new NativeMi.Compute.Cuda.CudaBackendOptions(AllowTf32: tf32));
                if (cuda is null) Console.Error.WriteLine($"bench: cuda not timed: {reason.Split('\n')[0]}");
                else backends.Add(cuda);
            }
            var results = new List<(IComputeBackend Backend, IReadOnlyList<OpTiming> Timings)>();
            foreach (IComputeBackend compute in backends)
            {
                Console.Error.WriteLine($"bench: {compute.Name}: every op at batch {batch} x {seq} of {model}, {warmup} warm-up + {runs} timed calls each");
                var timings = OpBenchmark.Run(compute, shapes, warmup, runs, progress: new SynchronousProgress<OpTiming>(t =>
                    Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"bench: {compute.Name} {t.Role}: {t.MedianMilliseconds:F3} ms"))));
                results.Add((compute, timings));
                PrintOps(compute, timings, tf32 && compute.Name == "cuda");
            }
            if (json is not null)
            {
                NativeMi.IO.AtomicFile.Write(json, stream => WriteOpsJson(stream, model, shapes, results, tf32));
                Console.Error.WriteLine($"wrote {Path.GetFullPath(json)}");
            }
            return ExitCodes.Success;
        }
        finally
        {
            foreach (IComputeBackend compute in backends) compute.Dispose();
        }
    }

    /// <summary>Why a backend's timings have no fraction of peak, or null when they have one.</summary>
    private static string? PeakNote(IComputeBackend backend, DevicePeak? peak) =>
        EmulatedNote(backend) ?? (peak is null ? $"peak: unknown for {backend.Description}" : null);

    /// <summary>The warning every timing from the emulated CUDA device carries, or null for a real device or the CPU.</summary>
    private static string? EmulatedNote(IComputeBackend backend) =>
        backend.Description.Contains("emulated", StringComparison.OrdinalIgnoreCase)
            ? "emulated device: these are the CPU emulator's timings, not GPU figures"
            : null;

    private static void PrintOps(IComputeBackend backend, IReadOnlyList<OpTiming> timings, bool tf32)
    {
        DevicePeak? peak = backend.Name == "cuda" ? DevicePeak.For(backend.Description) : null;
        string? note = PeakNote(backend, peak);
        Console.WriteLine($"backend: {backend.Description}");
        Console.WriteLine($"{"op",-20} {"role",-30} {"shape",-44} {"ms",10} {"GFLOP/s",10} {"GB/s",9} {"of peak",9}");
        foreach (OpTiming t in timings)
        {
            string fraction = note is not null ? (peak is null ? "unknown" : "n/a") : $"{t.FractionOfPeak(peak, tf32)!.Value * 100:F1}%";
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{t.Op,-20} {t.Role,-30} {t.Shape,-44} {t.MedianMilliseconds,10:F3} {t.GigaflopsPerSecond,10:F1} {t.GigabytesPerSecond,9:F1} {fraction,9}"));
        }
        if (peak is not null && note is null)
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"peak ({peak.Name}): {peak.Fp32FlopsPerSecond / 1e12:F1} TFLOP/s fp32, {peak.Tf32FlopsPerSecond / 1e12:F1} TFLOP/s TF32, {peak.BytesPerSecond / 1e12:F2} TB/s; GEMMs and attention against FLOP/s, the rest against bandwidth"));
        if (note is not null) Console.WriteLine(note);
    }

    private static string Machine => $"{Environment.ProcessorCount} logical CPUs, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}";

    internal static void WriteOpsJson(Stream stream, string model, OpShapes shapes, IReadOnlyList<(IComputeBackend Backend, IReadOnlyList<OpTiming> Timings)> results, bool tf32)
    {
        var backends = results.Select(r =>
        {
            DevicePeak? peak = r.Backend.Name == "cuda" ? DevicePeak.For(r.Backend.Description) : null;
            string? note = PeakNote(r.Backend, peak);
            return new BenchOpsBackendJson(r.Backend.Description, note, [.. r.Timings.Select(t => new BenchOpJson(t.Op, t.Role, t.Shape, t.MedianMilliseconds,
                t.GigaflopsPerSecond, t.GigabytesPerSecond, note is null ? t.FractionOfPeak(peak, tf32 && r.Backend.Name == "cuda") : null))]);
        }).ToArray();
        JsonSerializer.Serialize(stream, new BenchOpsJson("nativemi.bench-ops/1", model, shapes.Batch, shapes.Sequence, Machine, backends),
            CliJsonContext.Default.BenchOpsJson);
    }

    internal static void WriteJson(Stream stream, string backend, string? note, IReadOnlyList<Row> rows) =>
        JsonSerializer.Serialize(stream, new BenchJson("nativemi.bench/1", backend, note, Machine, rows), CliJsonContext.Default.BenchJson);

    private static int[] ParseSizes(string text)
    {
        var sizes = new List<int>();
        foreach (string part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out int size) || size < 1)
                throw new InputException($"--batch-sizes: '{part}' is not a positive whole number");
            sizes.Add(size);
        }
        if (sizes.Count == 0) throw new InputException("--batch-sizes: no batch size given");
        return [.. sizes];
    }

    /// <summary>Sentences of exactly <paramref name="seq"/> tokens: [CLS]-like first id, random ids, [SEP]-like last id; no padding.</summary>
    private static EncodedBatch SyntheticBatch(TransformerModel model, int size, int seq)
    {
        var random = new Random(20_261_128);
        int vocabulary = model.Config.VocabSize;
        var ids = new int[size * seq];
        var targets = new bool[size * seq];
        for (int cell = 0; cell < ids.Length; cell++)
        {
            int position = cell % seq;
            ids[cell] = random.Next(Math.Min(1000, vocabulary / 2), vocabulary);
            targets[cell] = position > 0 && position < seq - 1;
        }
        var mask = new int[ids.Length];
        Array.Fill(mask, 1);
        return new EncodedBatch(size, seq, ids, mask, null, targets);
    }

    private static double MedianMilliseconds(Action run, int warmup, int runs)
    {
        for (int i = 0; i < warmup; i++) run();
        var times = new double[runs];
        for (int i = 0; i < runs; i++)
        {
            long start = Stopwatch.GetTimestamp();
            run();
            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        Array.Sort(times);
        return runs % 2 == 1 ? times[runs / 2] : (times[runs / 2 - 1] + times[runs / 2]) / 2;
    }
}
