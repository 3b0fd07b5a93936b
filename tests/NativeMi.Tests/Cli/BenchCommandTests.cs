using NativeMi.Compute;
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

    [Fact]
    public void OpsModeTimesEveryOpAtTheModelsShapesAndWritesJson()
    {
        string json = Path.Combine(Path.GetTempPath(), $"nativemi-bench-ops-{Guid.NewGuid():N}.json");
        try
        {
            var (code, output, error) = RunBench("--ops", "--model", Fixtures.Folder("bert-tiny"), "--batch-sizes", "3", "--seq", "9",
                "--runs", "2", "--warmup", "0", "--backend", "cpu", "--json", json);
            Assert.True(code == 0, error);
            // bert-tiny: width 48, 4 heads, intermediate 192; batch 3 x 9 = 27 token rows.
            Assert.Contains("m=27 k=48 n=144 None +bias", output, StringComparison.Ordinal);
            Assert.Contains("m=27 k=48 n=192 GeluExact +bias", output, StringComparison.Ordinal);
            Assert.Contains("batch=3 seq=9 heads=4 dim=12", output, StringComparison.Ordinal);
            Assert.Contains("peak: unknown", output, StringComparison.Ordinal);
            var root = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(json))!;
            Assert.Equal("nativemi.bench-ops/1", root["schema"]!.GetValue<string>());
            var opsArray = root["backends"]![0]!["ops"]!.AsArray();
            Assert.Equal(26, opsArray.Count);
            string[] required = ["Gemm", "GemmEx", "Attention", "LayerNorm", "EmbeddingGather", "AddInPlace", "PoolSentences", "GatherRows", "ScatterAddRows",
                "BiasActivation", "SoftmaxCrossEntropy", "ColumnSums", "GeluBackward", "AdamW", "CountPredictions",
                "PoolSentencesBackward", "LayerNormBackward", "ActivationBackward", "AttentionBackward", "SumOfSquares"];
            foreach (string op in required) Assert.Contains(opsArray, o => o!["op"]!.GetValue<string>() == op);
            Assert.All(opsArray, o => Assert.True(o!["median_ms"]!.GetValue<double>() > 0));
            Assert.All(opsArray, o => Assert.Null(o!["fraction_of_peak"]));
        }
        finally
        {
            File.Delete(json);
        }
    }

    [Fact]
    public void ThePeakTableKnowsTheH200AndSaysNothingOfOtherDevices()
    {
        DevicePeak? h200 = DevicePeak.For("cuda (NVIDIA H200, 132 SMs, cc 9.0)");
        Assert.NotNull(h200);
        Assert.Equal(4.8e12, h200!.BytesPerSecond);
        Assert.Null(DevicePeak.For("cpu (GEMM kernel avx512)"));
        Assert.Null(DevicePeak.For("cuda (NVIDIA GeForce GTX 1080)"));
        // A 1 ms GEMM of 2·4096³ flops reaches 137 TFLOP/s: 2.05 x the fp32 peak, 28 % of the TF32 one; a 1 ms copy of 4.8 GB, 100 % of the bandwidth.
        var gemm = new OpTiming("Gemm", "x", "x", 1, 2.0 * 4096 * 4096 * 4096, 0);
        Assert.Equal(2.0 * 4096 * 4096 * 4096 / 1e-3 / 67e12, gemm.FractionOfPeak(h200, tf32: false)!.Value, 12);
        Assert.Equal(2.0 * 4096 * 4096 * 4096 / 1e-3 / 494.7e12, gemm.FractionOfPeak(h200, tf32: true)!.Value, 12);
        Assert.Equal(1.0, new OpTiming("AddInPlace", "x", "x", 1, 0, 4.8e9).FractionOfPeak(h200, tf32: false)!.Value, 12);
        Assert.Null(gemm.FractionOfPeak(null, tf32: false));
    }
}
