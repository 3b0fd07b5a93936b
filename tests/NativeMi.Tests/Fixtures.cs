namespace NativeMi.Tests;

/// <summary>Paths of the committed test fixtures (copied next to the test assembly).</summary>
internal static class Fixtures
{
    public static string Folder(string name) => Path.Combine(AppContext.BaseDirectory, "fixtures", name);

    public static readonly string[] GoldenModels =
    [
        "gpt2-tiny", "gpt2-tiny-lmhead", "bert-tiny", "bert-tiny-mlm", "roberta-tiny",
        "llama-tiny", "llama-tiny-bf16", "mistral-tiny", "qwen2-tiny", "qwen2-tiny-f16", "qwen3-tiny", "gemma-tiny",
    ];
}
