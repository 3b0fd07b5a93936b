using System.CommandLine;
using NativeMi.Models;
using Spectre.Console;

namespace NativeMi.Cli;

internal static class InspectCommand
{
    public static Command Create(Option<bool> verbose)
    {
        var model = new Argument<string>("model") { Description = "A built-in model name (minilm, arctic-xs) or a Hugging Face model folder" };
        var allowNonFinite = ModelOptions.AllowNonFiniteWeights();
        var widen = ModelOptions.WidenSixteenBitWeights();
        var command = new Command("inspect", "Show a model's architecture, size, dtypes and tokenizer") { model, allowNonFinite, widen };
        command.SetAction(parse => ErrorBoundary.Run(parse.GetValue(verbose), () =>
        {
            string directory = ModelResolver.Resolve(parse.GetValue(model)!, new Progress<string>(m => Console.Error.WriteLine(m)));
            using TransformerModel loaded = TransformerModel.Load(directory, options: new ModelLoadOptions { AllowNonFiniteWeights = parse.GetValue(allowNonFinite), WidenSixteenBitWeights = parse.GetValue(widen) });
            TransformerConfig c = loaded.Config;
            var table = new Table().Border(TableBorder.Rounded).AddColumn("property").AddColumn("value");
            void Row(string k, string v) => table.AddRow(Markup.Escape(k), Markup.Escape(v));
            Row("folder", loaded.Directory);
            Row("architecture", $"{c.ModelType} ({(c.Layout.Attention.Causal ? "decoder-only" : "encoder-only")})");
            Row("layers", $"{c.NumLayers} blocks; hidden states l = 0..{c.NumLayers}{(c.HasFinalEntry ? " + final (after the final norm)" : "")}");
            Row("width", c.HiddenSize.ToString(System.Globalization.CultureInfo.InvariantCulture));
            foreach (var (part, value) in c.Layout.Describe()) Row(part, value);
            Row("context", $"{c.MaxPositions} positions (max sequence {c.MaxSequenceLength})");
            Row("vocabulary", c.VocabSize.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Row("parameters", $"{loaded.ParameterCount:N0}");
            Row("checkpoint dtypes", string.Join(", ", loaded.CheckpointDTypes));
            Row("weights in memory", WeightMemory(loaded));
            if (loaded.NonFiniteWeightCount > 0) Row("non-finite weights", $"{loaded.NonFiniteWeightCount:N0} NaN or infinite values (allowed by --allow-nonfinite-weights)");
            Row("weight name prefix", loaded.WeightNamePrefix.Length == 0 ? "(none)" : loaded.WeightNamePrefix);
            Row("tokenizer", $"{loaded.Tokenizer.Kind}, {loaded.Tokenizer.VocabularySize} entries, pad id {loaded.Tokenizer.PadId} ({loaded.Tokenizer.Source})");
            AnsiConsole.Write(table);
            return ExitCodes.Success;
        }));
        return command;
    }

    /// <summary>"476.6 MiB: BF16 98.7 %, F32 1.3 %" — how the loaded weights are held.</summary>
    internal static string WeightMemory(TransformerModel loaded)
    {
        long total = loaded.ResidentWeightElements.Values.Sum();
        string shares = string.Join(", ", loaded.ResidentWeightElements.OrderByDescending(e => e.Value)
            .Select(e => $"{e.Key} {100.0 * e.Value / Math.Max(1, total):0.0} %"));
        return $"{loaded.ResidentWeightBytes / 1048576.0:0.0} MiB ({shares} of the elements)";
    }
}
