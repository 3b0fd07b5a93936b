using System.CommandLine;
using NativeMi.IO.Onnx;

namespace NativeMi.Cli;

internal static class ImportOnnxCommand
{
    public static Command Create(Option<bool> verbose)
    {
        var onnx = new Argument<string>("model.onnx") { Description = "A BERT-family model exported to ONNX" };
        var vocab = new Option<string>("--vocab") { Description = "WordPiece vocab.txt of the model", Required = true };
        var output = new Option<string>("--out") { Description = "Folder to create (Hugging Face layout)", Required = true };
        var command = new Command("import-onnx", "Convert a BERT ONNX export into a Hugging Face model folder (config.json, model.safetensors, vocab.txt)")
        {
            onnx, vocab, output,
        };
        command.SetAction(parse => ErrorBoundary.Run(parse.GetValue(verbose), () =>
        {
            OnnxBertImporter.Import(parse.GetValue(onnx)!, parse.GetValue(vocab)!, parse.GetValue(output)!);
            Console.Error.WriteLine($"imported into {Path.GetFullPath(parse.GetValue(output)!)}");
            return ExitCodes.Success;
        }));
        return command;
    }
}
