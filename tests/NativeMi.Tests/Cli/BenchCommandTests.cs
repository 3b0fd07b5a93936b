using System.Text.Json;
using NativeMi.Cli;
using Xunit;

namespace NativeMi.Tests.Cli;

[Collection(CliCollection.Name)]
public class BenchCommandTests
{
    private static (int Code, string Output, string Error) RunBench(params string[] extra)
    {
        TextWriter originalOut = Console.Out, originalError = Console.Error;
        using var output = new StringWriter();
        using var error = new StringWriter();
        Console.SetOut(output);
        Console.SetError(error);
        try
        {
            int code = CliApp.Run(["bench", .. extra]);
            return (code, output.ToString(), error.ToString());
        }
        finally
        {
            Console.SetOut(originalOut);
            Console.SetError(originalError);
        }
    }

    [Fact]
    public void TimesEveryBatchSizeAndWritesTheRowsAsJson()
    {
        string json = Path.Combine(Path.GetTempPath(), $"nativemi-bench-{Guid.NewGuid():N}.json");
        try
        {
            var (code, output, error) = RunBench("--model", Fixtures.Folder("gpt2-tiny"), "--batch-sizes", "1,3", "--seq", "9",
                "--runs", "3", "--warmup", "1", "--backend", "cpu", "--json", json);

            Assert.True(code == 0, error);
            Assert.Contains("pooled ms", output);
            Assert.Contains("backend: cpu", output);
            using JsonDocument document = JsonDocument.Parse(File.ReadAllText(json));
            Assert.Equal("nativemi.bench/1", document.RootElement.GetProperty("schema").GetString());
            JsonElement[] rows = [.. document.RootElement.GetProperty("rows").EnumerateArray()];
            Assert.Equal([1, 3], rows.Select(r => r.GetProperty("batch_size").GetInt32()));
            Assert.All(rows, r =>
            {
                Assert.Equal(9, r.GetProperty("sequence_length").GetInt32());
                Assert.True(r.GetProperty("pooled_median_ms").GetDouble() > 0);
                Assert.True(r.GetProperty("all_states_median_ms").GetDouble() > 0);
                Assert.True(r.GetProperty("pooled_tokens_per_s").GetDouble() > 0);
            });
        }
        finally
        {
            File.Delete(json);
        }
    }

    [Theory]
    [InlineData("--batch-sizes", "0", "--batch-sizes: '0' is not a positive whole number")]
    [InlineData("--batch-sizes", "2,x", "--batch-sizes: 'x' is not a positive whole number")]
    [InlineData("--runs", "0", "--runs must be at least 1")]
    [InlineData("--seq", "2", "--seq must be at least 3")]
    public void BadSettingsAreInputErrors(string option, string value, string message)
    {
        var (code, _, error) = RunBench("--model", Fixtures.Folder("bert-tiny"), "--backend", "cpu", option, value);

        Assert.Equal(3, code);
        Assert.Contains(message, error);
    }
}
