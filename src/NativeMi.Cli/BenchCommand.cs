using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using NativeMi.Compute;
using NativeMi.Measurement;
using NativeMi.Models;
using NativeMi.Transformer;

namespace NativeMi.Cli;

/// <summary>
/// `nativemi bench`: times the forward pass of every layer on synthetic full-length batches, on the backend the other
/// commands would use, so the figure can be set beside another system's (scripts/gpu-check.sh puts PyTorch beside it).
/// Two timings per shape: with every layer pooled on the backend (what measure does) and with every token state of
/// every layer copied to host memory (what hidden does).
/// </summary>
internal static class BenchCommand
{
    public sealed record Row(string Model, string Backend, int BatchSize, int SequenceLength, int Runs,
        double PooledMedianMs, double PooledTokensPerSecond, double AllStatesMedianMs, double AllStatesTokensPerSecond);

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
        var command = new Command("bench", "Time the forward pass of every layer on synthetic batches (median of several runs)")
        {
            model, batchSizes, sequence, runs, warmup, json, backend, tf32,
        };
        command.SetAction(parse => ErrorBoundary.Run(parse.GetValue(verbose), () =>
        {
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
            if (parse.GetValue(json) is string path)
            {
                NativeMi.IO.AtomicFile.Write(path, stream => WriteJson(stream, compute.Description, rows));
                Console.Error.WriteLine($"wrote {Path.GetFullPath(path)}");
            }
            return ExitCodes.Success;
        }));
        return command;
    }

    private static void WriteJson(Stream stream, string backend, IReadOnlyList<Row> rows)
    {
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        json.WriteStartObject();
        json.WriteString("schema", "nativemi.bench/1");
        json.WriteString("backend", backend);
        json.WriteString("machine", $"{Environment.ProcessorCount} logical CPUs, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}");
        json.WriteStartArray("rows");
        foreach (Row row in rows)
        {
            json.WriteStartObject();
            json.WriteString("model", row.Model);
            json.WriteString("backend", row.Backend);
            json.WriteNumber("batch_size", row.BatchSize);
            json.WriteNumber("sequence_length", row.SequenceLength);
            json.WriteNumber("runs", row.Runs);
            json.WriteNumber("pooled_median_ms", row.PooledMedianMs);
            json.WriteNumber("pooled_tokens_per_s", row.PooledTokensPerSecond);
            json.WriteNumber("all_states_median_ms", row.AllStatesMedianMs);
            json.WriteNumber("all_states_tokens_per_s", row.AllStatesTokensPerSecond);
            json.WriteEndObject();
        }
        json.WriteEndArray();
        json.WriteEndObject();
    }

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
