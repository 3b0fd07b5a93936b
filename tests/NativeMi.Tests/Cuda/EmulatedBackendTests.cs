using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using NativeMi.IO;
using NativeMi.Tests.Cli;
using NativeMi.Tests.Measurement;
using Xunit;
using Xunit.Abstractions;

namespace NativeMi.Tests.Cuda;

/// <summary>
/// The CUDA backend end to end on the emulated device: the CLI runs as a child process with NATIVEMI_CUDA_PATH naming the
/// emulator, so the engine's own bindings, NVRTC-compiled kernels, cuBLAS calls and stream handling execute, in the
/// emulator's forward and reversed fiber orders and in its deferred-stream mode (queued work runs only at a
/// synchronisation point, so a missing one gives wrong figures).
/// </summary>
public sealed partial class EmulatedBackendTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(10);
    private readonly TempFolder _folder = new("emulated-backend");

    public void Dispose() => _folder.Dispose();

    private static Dictionary<string, string?> Environment(string setting)
    {
        var environment = new Dictionary<string, string?> { ["NATIVEMI_CUDA_PATH"] = CudaEmulator.RequireLibraryFolder() };
        if (setting.Length > 0) environment[setting.Split('=')[0]] = setting.Split('=')[1];
        return environment;
    }

    private (int Code, string Output, string Error) Nativemi(string setting, params string[] args)
    {
        var result = NativemiChild.Run(args, Environment(setting), Limit);
        output.WriteLine($"nativemi {string.Join(' ', args)} [{setting}] exited {result.Code}\n{result.Output}\n{result.Error}");
        return result;
    }

    [GeneratedRegex(@"(\d+) of (\d+) cases match")]
    private static partial Regex CasesMatch();

    private static void AssertEveryCaseMatches(string text, int configurations)
    {
        var counts = CasesMatch().Matches(text);
        Assert.Equal(configurations, counts.Count);
        foreach (Match count in counts)
        {
            Assert.Equal(count.Groups[2].Value, count.Groups[1].Value);
            Assert.True(int.Parse(count.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture) >= 80, $"too few parity cases: {count.Value}");
        }
    }

    [EmulatorFact]
    public void DoctorPassesEveryCheckOnTheEmulatedDevice()
    {
        var (code, stdout, stderr) = Nativemi("", "doctor", "--require-gpu", "--model", Fixtures.Folder("bert-tiny"), "--probe-sentences", "100");
        Assert.True(code == 0, $"doctor exited {code}:\n{stdout}\n{stderr}");
        Assert.Matches(@"gpu 0: .*emulated", stdout);
        Assert.Contains("cuBLAS 12.8; TF32 GEMMs) [TF32]", stdout);
        Assert.Contains("[fused attention kernel]", stdout);
        AssertEveryCaseMatches(stdout, configurations: 3);
        Assert.Matches(@"(\d+) of \1 layers agree", stdout);
        Assert.Matches(@"(\d+) of \1 parameter gradients agree", stdout);
        Assert.Matches(@"(\d+) of \1 figures inside", stdout);
        Assert.Contains("every CUDA check matches the CPU backend", stdout);
    }

    [EmulatorTheory]
    [InlineData("NATIVEMI_EMU_REVERSE=1")]
    [InlineData("NATIVEMI_EMU_DEFERRED=1")]
    [InlineData("NATIVEMI_CUDA_LAUNCH_BLOCKING=1")]
    public void EveryOpMatchesTheCpuInEveryConfiguration(string setting)
    {
        var (code, stdout, stderr) = Nativemi(setting, "doctor", "--require-gpu", "--skip-model-checks");
        Assert.True(code == 0, $"doctor [{setting}] exited {code}:\n{stdout}\n{stderr}");
        AssertEveryCaseMatches(stdout, configurations: 3);
    }

    [EmulatorFact]
    public void FinetuneOnTheEmulatedDeviceLowersTheCrossEntropyAndTracksTheCpuRun()
    {
        string corpus = MeasurementTestSupport.WriteCorpus(_folder.Combine("corpus.txt"), 200);
        JsonNode Run(string backend)
        {
            string folder = _folder.Combine($"tuned-{backend}");
            var (code, stdout, stderr) = Nativemi("", "finetune", "--backend", backend, "--model", Fixtures.Folder("bert-tiny"), "--corpus", corpus, "--out", folder,
                "--epochs", "1", "--lr", "1e-3", "--batch-size", "16", "--max-validation-sentences", "40", "--skip-report", "--cache", _folder.Combine("cache"));
            Assert.True(code == 0, $"finetune --backend {backend} exited {code}:\n{stdout}\n{stderr}");
            return JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "finetune.json")))!;
        }
        JsonNode cuda = Run("cuda"), cpu = Run("cpu");
        Assert.Contains("emulated", (string)cuda["backend"]!, StringComparison.Ordinal);
        double before = (double)cuda["initial_validation_cross_entropy_bits"]!, after = (double)cuda["epochs"]![0]!["validation_cross_entropy_bits"]!;
        Assert.True(after < before, $"validation cross-entropy on cuda {before} -> {after}");
        using var cudaWeights = SafetensorsFile.Open(_folder.Combine("tuned-cuda", "model.safetensors"));
        using var cpuWeights = SafetensorsFile.Open(_folder.Combine("tuned-cpu", "model.safetensors"));
        foreach (string name in cpuWeights.Tensors.Keys)
        {
            double difference = RelativeDifference(cudaWeights.ReadFloat32(name), cpuWeights.ReadFloat32(name));
            // A few AdamW steps from the same start: the backends' summation orders differ only in the last bits.
            Assert.True(difference < 1e-3, $"{name}: cuda and cpu weights differ by {difference:E2} (relative L2)");
        }
    }

    [EmulatorFact]
    public void BenchTimesEveryOpAndTheForwardPassAndSaysTheyAreNotGpuFigures()
    {
        const string note = "emulated device: these are the CPU emulator's timings, not GPU figures";
        string opsJson = _folder.Combine("ops.json"), forwardJson = _folder.Combine("forward.json");
        var (code, stdout, stderr) = Nativemi("", "bench", "--ops", "--backend", "cuda", "--model", Fixtures.Folder("bert-tiny"), "--batch-sizes", "2",
            "--seq", "16", "--runs", "1", "--warmup", "0", "--json", opsJson);
        Assert.True(code == 0, $"bench --ops exited {code}:\n{stdout}\n{stderr}");
        Assert.Contains(note, stdout, StringComparison.Ordinal);
        var ops = JsonNode.Parse(File.ReadAllText(opsJson))!["backends"]!.AsArray();
        JsonNode cuda = Assert.Single(ops)!;
        Assert.Equal(note, (string)cuda["note"]!);
        Assert.True(cuda["ops"]!.AsArray().Count >= 20, "bench --ops timed too few ops");

        (code, stdout, stderr) = Nativemi("", "bench", "--backend", "cuda", "--model", Fixtures.Folder("bert-tiny"), "--batch-sizes", "2", "--seq", "16",
            "--runs", "1", "--warmup", "0", "--json", forwardJson);
        Assert.True(code == 0, $"bench exited {code}:\n{stdout}\n{stderr}");
        Assert.Contains(note, stdout, StringComparison.Ordinal);
        Assert.Equal(note, (string)JsonNode.Parse(File.ReadAllText(forwardJson))!["note"]!);
    }

    /// <summary>Relative L2 difference of two tensors over the reference's finite values.</summary>
    private static double RelativeDifference(ReadOnlySpan<float> candidate, ReadOnlySpan<float> reference)
    {
        double difference = 0, norm = 0;
        for (int i = 0; i < reference.Length; i++)
        {
            if (!float.IsFinite(reference[i])) continue;
            double d = (double)candidate[i] - reference[i];
            difference += d * d;
            norm += (double)reference[i] * reference[i];
        }
        return Math.Sqrt(difference) / Math.Max(Math.Sqrt(norm), 1e-30);
    }

    // 16-bit weights run GemmEx with the activations rounded to the format on CUDA (8 significant bits for BF16, 11 for
    // F16), which the CPU, widening the weights, does not: hence the wider tolerances.
    [EmulatorTheory]
    [InlineData("bert-tiny", 1e-4, "")]
    [InlineData("bert-tiny", 1e-4, "NATIVEMI_EMU_DEFERRED=1")]
    [InlineData("bert-tiny", 1e-4, "NATIVEMI_EMU_REVERSE=1")]
    [InlineData("roberta-tiny", 1e-4, "")]
    [InlineData("gpt2-tiny", 1e-4, "")]
    [InlineData("gpt2-tiny", 1e-4, "NATIVEMI_EMU_DEFERRED=1")]
    [InlineData("llama-tiny", 1e-4, "")]
    [InlineData("llama-tiny", 1e-4, "NATIVEMI_EMU_DEFERRED=1")]
    [InlineData("mistral-tiny", 1e-4, "")]
    [InlineData("qwen2-tiny", 1e-4, "")]
    [InlineData("qwen3-tiny", 1e-4, "")]
    [InlineData("qwen3-tiny", 1e-4, "NATIVEMI_EMU_REVERSE=1")]
    [InlineData("gemma-tiny", 1e-4, "")]
    [InlineData("llama-tiny-bf16", 2e-2, "")]
    [InlineData("llama-tiny-bf16", 2e-2, "NATIVEMI_EMU_DEFERRED=1")]
    [InlineData("qwen2-tiny-f16", 3e-3, "")]
    public void HiddenStatesOnTheEmulatedDeviceEqualTheCpuBackend(string fixture, double tolerance, string setting)
    {
        string sentences = MeasurementTestSupport.WriteCorpus(_folder.Combine("sentences.txt"), 24);
        string OutputOf(string backend)
        {
            string path = _folder.Combine($"{backend}.safetensors");
            var (code, stdout, stderr) = Nativemi(backend == "cuda" ? setting : "", "hidden", "--backend", backend, "--model", Fixtures.Folder(fixture),
                "--input", sentences, "--out", path, "--batch-size", "8");
            Assert.True(code == 0, $"hidden --backend {backend} exited {code}:\n{stdout}\n{stderr}");
            return path;
        }
        using var cuda = SafetensorsFile.Open(OutputOf("cuda"));
        using var cpu = SafetensorsFile.Open(OutputOf("cpu"));
        Assert.Equal(cpu.Tensors.Keys.Order(StringComparer.Ordinal), cuda.Tensors.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(cpu.ReadInt64("input_ids"), cuda.ReadInt64("input_ids"));
        var hidden = cpu.Tensors.Keys.Where(name => name.StartsWith("hidden.", StringComparison.Ordinal)).ToArray();
        Assert.True(hidden.Length >= 3, $"{fixture}: only {hidden.Length} hidden tensors");
        foreach (string name in hidden)
        {
            double difference = RelativeDifference(cuda.GetFloat32Span(name), cpu.GetFloat32Span(name));
            output.WriteLine($"{fixture} {name}: relative L2 {difference:E2}");
            Assert.True(difference <= tolerance, $"{fixture} {name} [{setting}]: relative L2 {difference:E2} > {tolerance:E0}");
        }
    }

    [EmulatorTheory]
    [InlineData("")]
    [InlineData("NATIVEMI_EMU_DEFERRED=1")]
    public void MeasureOnTheEmulatedDeviceFallsInsideTheCpuIntervals(string setting)
    {
        string corpus = MeasurementTestSupport.WriteCorpus(_folder.Combine("corpus.txt"), 120);
        JsonNode Results(string backend)
        {
            string folder = _folder.Combine($"out-{backend}");
            var (code, stdout, stderr) = Nativemi(backend == "cuda" ? setting : "", "measure", "--backend", backend, "--model", Fixtures.Folder("bert-tiny"),
                "--corpus", corpus, "--max-sentences", "all", "--hidden", "16", "--epochs", "2", "--bootstrap", "10",
                "--cache", _folder.Combine($"cache-{backend}"), "--out", folder);
            Assert.True(code == 0, $"measure --backend {backend} exited {code}:\n{stdout}\n{stderr}");
            return JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "results.json")))!;
        }
        JsonNode cuda = Results("cuda"), cpu = Results("cpu");
        Assert.Contains("emulated", (string)cuda["backend"]!, StringComparison.Ordinal);
        var cpuLayers = cpu["layers"]!.AsArray();
        var cudaLayers = cuda["layers"]!.AsArray();
        Assert.Equal(cpuLayers.Count, cudaLayers.Count);
        for (int layer = 0; layer < cpuLayers.Count; layer++)
        {
            JsonNode reference = cpuLayers[layer]!["token"]!, candidate = cudaLayers[layer]!["token"]!;
            Assert.Equal((int)reference["held_out_targets"]!, (int)candidate["held_out_targets"]!);
            foreach (string figure in new[] { "acc", "ba" })
            {
                string key = figure == "acc" ? "acc" : "ba_bits";
                double value = (double)candidate[key]!;
                var interval = reference[figure + "_ci"]!.AsArray();
                double low = (double)interval[0]!, high = (double)interval[1]!;
                output.WriteLine($"layer {layer} {key}: cuda {value:F5}, cpu {(double)reference[key]!:F5} [{low:F5}, {high:F5}]");
                Assert.InRange(value, low, high);
            }
        }
    }
}
