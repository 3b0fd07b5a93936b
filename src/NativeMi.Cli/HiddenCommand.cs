using System.CommandLine;
using NativeMi.IO;
using NativeMi.Models;
using NativeMi.Text;
using NativeMi.Transformer;
using Spectre.Console;

namespace NativeMi.Cli;

internal static class HiddenCommand
{
    public static Command Create(Option<bool> verbose)
    {
        var model = new Option<string>("--model") { Description = "Built-in model name or model folder", DefaultValueFactory = _ => "minilm" };
        var input = new Option<string>("--input") { Description = "UTF-8 text file, one sentence per line", Required = true };
        var output = new Option<string>("--out") { Description = "Output .safetensors file", Required = true };
        var batchSize = new Option<int>("--batch-size") { Description = "Sentences per forward batch", DefaultValueFactory = _ => 32 };
        var maxLength = new Option<int?>("--max-length") { Description = "Truncate sentences to this many tokens (default: the model's context)" };
        var allowNonFinite = ModelOptions.AllowNonFiniteWeights();
        var widen = ModelOptions.WidenSixteenBitWeights();
        var backend = BackendChoice.BackendOption();
        var tf32 = BackendChoice.Tf32Option();
        var command = new Command("hidden", "Write every layer's hidden states for a text file to a safetensors file")
        {
            model, input, output, batchSize, maxLength, allowNonFinite, widen, backend, tf32,
        };
        command.SetAction(parse => ErrorBoundary.Run(parse.GetValue(verbose), () =>
        {
            int batch = parse.GetValue(batchSize);
            if (batch < 1) throw new InputException($"--batch-size must be at least 1, got {batch}");
            using NativeMi.Compute.IComputeBackend compute = BackendChoice.Choose(parse.GetValue(backend)!, parse.GetValue(tf32));
            using TransformerModel loaded = ModelResolver.Load(parse.GetValue(model)!, compute, log: new Progress<string>(m => Console.Error.WriteLine(m)),
                options: new ModelLoadOptions { AllowNonFiniteWeights = parse.GetValue(allowNonFinite), WidenSixteenBitWeights = parse.GetValue(widen) });
            if (loaded.NonFiniteWeightCount > 0)
                Console.Error.WriteLine($"warning: the weights hold {loaded.NonFiniteWeightCount} NaN or infinite value(s) (allowed by --allow-nonfinite-weights)");
            IReadOnlyList<CorpusLine> lines = CorpusReader.Read(parse.GetValue(input)!);
            int limit = Math.Min(parse.GetValue(maxLength) ?? loaded.Config.MaxSequenceLength, loaded.Config.MaxSequenceLength);
            var encoded = lines.Select(l => loaded.Tokenizer.Encode(l.Text, limit)).ToArray();
            int truncated = encoded.Count(e => e.Truncated);
            var report = HiddenStateExport.Write(loaded, encoded, parse.GetValue(output)!, batch, Console.Error);
            if (truncated > 0) Console.Error.WriteLine($"warning: {truncated} sentence(s) were longer than {limit} tokens and were truncated");
            Console.Error.WriteLine($"wrote {report.Path}: {encoded.Length} sentences, T = {report.SequenceLength}, {report.LayerEntries} hidden-state entries of width {loaded.Config.HiddenSize}");
            return ExitCodes.Success;
        }));
        return command;
    }
}

/// <summary>Streams hidden states of every layer into a safetensors file, one sentence slab at a time.</summary>
internal static class HiddenStateExport
{
    public sealed record Report(string Path, int SequenceLength, int LayerEntries);

    public static Report Write(TransformerModel model, IReadOnlyList<EncodedSentence> sentences, string path, int batchSize, TextWriter progressWriter)
    {
        int n = sentences.Count, t = sentences.Max(s => s.Ids.Length), d = model.Config.HiddenSize;
        bool final = model.Config.HasFinalEntry;
        var layerNames = Enumerable.Range(0, model.LayerCount).Select(l => $"hidden.{l}").ToList();
        if (final) layerNames.Add("hidden.final");
        var layout = new List<(string, SafetensorsDType, long[])>
        {
            ("input_ids", SafetensorsDType.I64, [n, t]),
            ("attention_mask", SafetensorsDType.I64, [n, t]),
        };
        layout.AddRange(layerNames.Select(name => (name, SafetensorsDType.F32, new long[] { n, t, d })));
        var metadata = new Dictionary<string, string>
        {
            ["model"] = model.Directory,
            ["model_type"] = model.Config.ModelType,
            ["padding"] = "right; hidden states at padding positions are zero",
            ["hidden.0"] = "embedding output",
            ["hidden.L"] = final ? "output of the last block before ln_f; hidden.final is after ln_f (Hugging Face's last hidden state)" : "output of the last block",
        };
        using var builder = new SafetensorsFileBuilder(path, layout, metadata);
        for (int s = 0; s < n; s++)
        {
            var ids = new long[t];
            var mask = new long[t];
            for (int i = 0; i < sentences[s].Ids.Length; i++) { ids[i] = sentences[s].Ids[i]; mask[i] = 1; }
            for (int i = sentences[s].Ids.Length; i < t; i++) ids[i] = model.Tokenizer.PadId;
            builder.Write<long>("input_ids", (long)s * t, ids);
            builder.Write<long>("attention_mask", (long)s * t, mask);
        }

        // Sentences of similar length share a batch so little work is spent on padding.
        int[] order = Enumerable.Range(0, n).OrderBy(i => sentences[i].Ids.Length).ThenBy(i => i).ToArray();
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(progressWriter) });
        console.Progress().AutoClear(false).Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask("forward", maxValue: n);
                for (int start = 0; start < n; start += batchSize)
                {
                    int[] members = order.AsSpan(start, Math.Min(batchSize, n - start)).ToArray();
                    EncodedBatch batch = EncodedBatch.Pad(members.Select(i => sentences[i]).ToArray(), model.Tokenizer.PadId);
                    HiddenStates states = model.Forward(batch);
                    for (int entry = 0; entry < layerNames.Count; entry++)
                    {
                        float[] layer = entry < states.Layers.Count ? states.Layers[entry] : states.Final!;
                        for (int b = 0; b < members.Length; b++)
                        {
                            int length = sentences[members[b]].Ids.Length;
                            builder.Write<float>(layerNames[entry], (long)members[b] * t * d, layer.AsSpan(b * batch.SequenceLength * d, length * d));
                        }
                    }
                    task.Increment(members.Length);
                }
            });
        builder.Commit();
        return new Report(Path.GetFullPath(path), t, layerNames.Count);
    }
}
