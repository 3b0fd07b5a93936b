using System.Text.Json.Nodes;
using NativeMi.IO;
using NativeMi.Tests.Measurement;
using NativeMi.Transformer;
using Xunit;
using Xunit.Abstractions;

namespace NativeMi.Tests.Cli;

/// <summary>`nativemi finetune` end to end on the fixtures: it must lower the probe's validation cross-entropy and leave a model folder the other commands read.</summary>
public sealed class FinetuneCommandTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempFolder _folder = new("cli-finetune");

    public void Dispose() => _folder.Dispose();

    private (int Code, string Output, string Error) Finetune(string fixture, string corpus, string folder, params string[] extra)
    {
        var result = NativemiChild.Run(["finetune", "--model", Fixtures.Folder(fixture), "--corpus", corpus, "--out", folder, "--epochs", "2", "--lr", "1e-3",
            "--batch-size", "16", "--backend", "cpu", "--cache", _folder.Combine("cache"), .. extra]);
        output.WriteLine($"exit {result.Code}\n{result.Output}\n{result.Error}");
        return result;
    }

    [Theory]
    [InlineData("bert-tiny")]
    [InlineData("llama-tiny")]
    public void ItLowersTheValidationCrossEntropyAndWritesAModelFolder(string fixture)
    {
        string corpus = MeasurementTestSupport.WriteCorpus(_folder.Combine("corpus.txt"), 400);
        string tuned = _folder.Combine("tuned");
        var (code, _, error) = Finetune(fixture, corpus, tuned, "--skip-report");
        Assert.True(code == 0, $"finetune exited {code}: {error}");
        Assert.False(Directory.Exists(Path.Combine(tuned, "report")));

        JsonNode report = JsonNode.Parse(File.ReadAllText(Path.Combine(tuned, "finetune.json")))!;
        double before = (double)report["initial_validation_cross_entropy_bits"]!;
        double after = (double)report["epochs"]!.AsArray()[^1]!["validation_cross_entropy_bits"]!;
        Assert.True(after < before, $"validation cross-entropy {before} -> {after}: fine-tuning did not lower it");
        foreach (string file in new[] { "config.json", "model.safetensors", "finetune-steps.csv", "finetune-loss.png", "finetune-loss.svg" })
            Assert.True(File.Exists(Path.Combine(tuned, file)), $"{file} is missing");
        Assert.Empty(Directory.GetFileSystemEntries(_folder.Path, ".tuned.partial-*"));

        // Every tensor the forward pass reads, changed by training, under the checkpoint's names; the other commands read the folder.
        using var original = TrainableTransformer.Load(Fixtures.Folder(fixture));
        using var trained = SafetensorsFile.Open(Path.Combine(tuned, "model.safetensors"));
        Assert.Equal(original.ParameterNames.Order(StringComparer.Ordinal), trained.Tensors.Keys.Order(StringComparer.Ordinal));
        var before0 = original.DownloadParameters();
        Assert.Contains(original.ParameterNames, name => !before0[name].AsSpan().SequenceEqual(trained.ReadFloat32(name)));
        Assert.Equal(0, CliRunner.Run("inspect", tuned).Code);
        string sentences = MeasurementTestSupport.WriteCorpus(_folder.Combine("sentences.txt"), 8);
        Assert.Equal(0, CliRunner.Run("hidden", "--model", tuned, "--input", sentences, "--out", _folder.Combine("h.safetensors")).Code);
    }

    [Fact]
    public void FrozenEmbeddingsStayAsTheyWere()
    {
        string corpus = MeasurementTestSupport.WriteCorpus(_folder.Combine("corpus.txt"), 120);
        string tuned = _folder.Combine("tuned");
        var (code, _, error) = Finetune("bert-tiny", corpus, tuned, "--freeze-embeddings", "--skip-report");
        Assert.True(code == 0, $"finetune exited {code}: {error}");
        using var original = SafetensorsFile.Open(Path.Combine(Fixtures.Folder("bert-tiny"), "model.safetensors"));
        using var trained = SafetensorsFile.Open(Path.Combine(tuned, "model.safetensors"));
        string word = trained.Tensors.Keys.Single(n => n.EndsWith("word_embeddings.weight", StringComparison.Ordinal));
        Assert.Equal(original.ReadFloat32(word), trained.ReadFloat32(word));
        string query = trained.Tensors.Keys.First(n => n.EndsWith("attention.self.query.weight", StringComparison.Ordinal));
        Assert.NotEqual(original.ReadFloat32(query), trained.ReadFloat32(query));
    }

    [Fact]
    public void TheReportMeasuresAndEvaluatesBothModelsWithFreshProbes()
    {
        string corpus = MeasurementTestSupport.WriteCorpus(_folder.Combine("corpus.txt"), 300);
        string tuned = _folder.Combine("tuned");
        var (code, stdout, error) = Finetune("bert-tiny", corpus, tuned, "--report-corpus", corpus, "--report-sentences", "300", "--report-glosses", "40");
        Assert.True(code == 0, $"finetune exited {code}: {error}");
        Assert.Contains("# Recoverability fine-tuning: before and after", stdout, StringComparison.Ordinal);
        string report = Path.Combine(tuned, "report");
        JsonNode before = JsonNode.Parse(File.ReadAllText(Path.Combine(report, "before-measure", "results.json")))!;
        JsonNode after = JsonNode.Parse(File.ReadAllText(Path.Combine(report, "after-measure", "results.json")))!;
        Assert.Equal(Path.GetFullPath(Fixtures.Folder("bert-tiny")), (string)before["model"]!["directory"]!);
        Assert.Equal(tuned, (string)after["model"]!["directory"]!);
        // The same sentences before and after, split the same way: the held-out targets are the same count.
        Assert.Equal(before["corpus"]!["sentences"]!.ToJsonString(), after["corpus"]!["sentences"]!.ToJsonString());
        Assert.Equal((int)before["layers"]![0]!["token"]!["held_out_targets"]!, (int)after["layers"]![0]!["token"]!["held_out_targets"]!);
        foreach (string side in new[] { "before", "after" })
            Assert.True(File.Exists(Path.Combine(report, $"{side}-evaluate", "evaluation.json")), $"{side}-evaluate/evaluation.json is missing");
        string summary = File.ReadAllText(Path.Combine(report, "report.md"));
        Assert.Contains("| 3 (tuned) |", summary, StringComparison.Ordinal);
        Assert.Contains("same sense ROC-AUC", summary, StringComparison.Ordinal);
        Assert.Equal(0, CliRunner.Run("compare", Path.Combine(report, "before-measure", "results.json"), Path.Combine(report, "after-measure", "results.json"),
            "--out", _folder.Combine("compared")).Code);
    }

    [Fact]
    public void AKilledRunResumesToTheSameWeightsAsAnUninterruptedOne()
    {
        string corpus = MeasurementTestSupport.WriteCorpus(_folder.Combine("corpus.txt"), 300);
        string[] Args(string folder) =>
        [
            "finetune", "--model", Fixtures.Folder("bert-tiny"), "--corpus", corpus, "--out", folder, "--epochs", "2", "--lr", "1e-3", "--batch-size", "16",
            "--backend", "cpu", "--skip-report", "--checkpoint-every", "4", "--cache", _folder.Combine("cache"),
        ];
        string whole = _folder.Combine("whole"), killed = _folder.Combine("killed");
        Assert.Equal(0, NativemiChild.Run(Args(whole)).Code);

        using (System.Diagnostics.Process process = NativemiChild.Start(Args(killed)))
        {
            // Killed (SIGKILL, no chance to clean up) just after its second checkpoint, in the middle of the first epoch.
            string? line;
            while ((line = process.StandardError.ReadLine()) is not null && !line.Contains("checkpoint: step 8", StringComparison.Ordinal)) { }
            Assert.NotNull(line);
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
        }
        Assert.False(Directory.Exists(killed), "the output folder appeared before the run was complete");
        var (code, _, error) = NativemiChild.Run(Args(killed));
        output.WriteLine(error);
        Assert.True(code == 0, $"the resumed run exited {code}: {error}");
        Assert.Contains("resuming from the checkpoint", error, StringComparison.Ordinal);
        Assert.Equal(File.ReadAllBytes(Path.Combine(whole, "model.safetensors")), File.ReadAllBytes(Path.Combine(killed, "model.safetensors")));
        Assert.Equal(File.ReadAllText(Path.Combine(whole, "finetune-steps.csv")), File.ReadAllText(Path.Combine(killed, "finetune-steps.csv")));
        Assert.Empty(Directory.GetFileSystemEntries(_folder.Path, ".killed.checkpoint*"));
    }

    [Fact]
    public void ACheckpointOfOtherSettingsIsRefused()
    {
        string corpus = MeasurementTestSupport.WriteCorpus(_folder.Combine("corpus.txt"), 200);
        string tuned = _folder.Combine("tuned");
        using (System.Diagnostics.Process process = NativemiChild.Start(["finetune", "--model", Fixtures.Folder("bert-tiny"), "--corpus", corpus, "--out", tuned,
                   "--epochs", "3", "--backend", "cpu", "--skip-report", "--checkpoint-every", "2"]))
        {
            string? line;
            while ((line = process.StandardError.ReadLine()) is not null && !line.Contains("checkpoint: step 2", StringComparison.Ordinal)) { }
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
        }
        var (code, _, error) = Finetune("bert-tiny", corpus, tuned, "--skip-report");
        Assert.Equal(3, code);
        Assert.Contains("a checkpoint of another fine-tuning run", error, StringComparison.Ordinal);
    }

    [Fact]
    public void AnExistingOutputFolderIsRefusedBeforeAnyWork()
    {
        string corpus = MeasurementTestSupport.WriteCorpus(_folder.Combine("corpus.txt"), 60);
        string tuned = _folder.Combine("tuned");
        Directory.CreateDirectory(tuned);
        File.WriteAllText(Path.Combine(tuned, "keep.txt"), "mine");
        var (code, _, error) = Finetune("bert-tiny", corpus, tuned);
        Assert.Equal(3, code);
        Assert.Contains("already exists", error, StringComparison.Ordinal);
        Assert.Equal(["keep.txt"], Directory.GetFiles(tuned).Select(Path.GetFileName));
    }
}
