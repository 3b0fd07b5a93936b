using System.Globalization;
using System.Text.Json.Nodes;
using NativeMi.Evaluation;
using NativeMi.Models;
using NativeMi.Pooling;
using NativeMi.Tests.Measurement;
using NativeMi.Transformer;
using Xunit;

namespace NativeMi.Tests.Cli;

/// <summary>`nativemi evaluate` end to end on the bert-tiny fixture (random weights) with a small subset of the packaged evaluation.</summary>
[Collection(CliCollection.Name)]
public sealed class EvaluateCommandTests : IDisposable
{
    private const int SubsetGlosses = 80;
    private readonly TempFolder _folder = new("cli-evaluate");

    public void Dispose() => _folder.Dispose();

    /// <summary>
    /// Writes the first <paramref name="glosses"/> glosses of the packaged files, their examples and the pairs among them, as
    /// the files themselves (not through the loader), so the command reads a real subset from disk.
    /// </summary>
    private string WriteSubset(int glosses)
    {
        string source = EvaluationSet.DefaultFolder, target = _folder.Combine("subset");
        Directory.CreateDirectory(target);
        string[] glossLines = File.ReadAllLines(Path.Combine(source, EvaluationSet.GlossesFile)).Take(glosses + 1).ToArray();
        var synsets = glossLines.Skip(1).Select(l => l.Split('\t')[0]).ToHashSet(StringComparer.Ordinal);
        string[] exampleLines = File.ReadAllLines(Path.Combine(source, EvaluationSet.ExamplesFile));
        exampleLines = [exampleLines[0], .. exampleLines.Skip(1).Where(l => synsets.Contains(l.Split('\t')[1]))];
        var examples = exampleLines.Skip(1).Select(l => l.Split('\t')[0]).ToHashSet(StringComparer.Ordinal);
        string[] pairLines = File.ReadAllLines(Path.Combine(source, EvaluationSet.PairsFile));
        pairLines = [pairLines[0], .. pairLines.Skip(1).Where(l => examples.Contains(l.Split('\t')[2]) && examples.Contains(l.Split('\t')[3]))];
        File.WriteAllLines(Path.Combine(target, EvaluationSet.GlossesFile), glossLines);
        File.WriteAllLines(Path.Combine(target, EvaluationSet.ExamplesFile), exampleLines);
        File.WriteAllLines(Path.Combine(target, EvaluationSet.PairsFile), pairLines);
        return target;
    }

    private static string[] Evaluate(string data, string output, params string[] extra) =>
        ["evaluate", "--model", Fixtures.Folder("bert-tiny"), "--data", data, "--out", output, "--backend", "cpu", "--bootstrap", "200", .. extra];

    private static double Value(JsonNode? node) => node!.GetValue<double>();

    [Fact]
    public void ARunWritesItsFiguresAndTheyAreTheFiguresOfTheModelsOwnPooledVectors()
    {
        string data = WriteSubset(SubsetGlosses), output = _folder.Combine("out");
        var (code, error, stdout) = CliRunner.RunWithOutput(Evaluate(data, output));
        Assert.True(code == 0, $"exit {code}: {error}");
        Assert.Contains("R@1", stdout, StringComparison.Ordinal);
        Assert.Contains("ROC-AUC", stdout, StringComparison.Ordinal);
        Assert.Contains("forward: 100%", error, StringComparison.Ordinal);
        Assert.Equal(["evaluation.csv", "evaluation.json", "pair-scores.csv", "retrieval-ranks.csv"],
            Directory.GetFiles(output).Select(f => Path.GetFileName(f)!).Order(StringComparer.Ordinal).ToArray());

        JsonNode json = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "evaluation.json")))!;
        Assert.Equal(EvaluationResult.Schema, json["schema"]!.GetValue<string>());
        Assert.Equal("3", json["settings"]!["layer"]!.GetValue<string>()); // bert-tiny's 3 blocks: the output is layer 3
        Assert.Equal("mean", json["settings"]!["pool"]!.GetValue<string>());

        // The same figures from the fixture's pooled vectors computed here, one text at a time: the command's batching,
        // ordering and layer choice must not change them.
        EvaluationSet set = EvaluationSet.Load(data);
        Assert.Equal(SubsetGlosses, json["data"]!["glosses"]!.GetValue<int>());
        Assert.Equal(set.Examples.Count, json["data"]!["examples"]!.GetValue<int>());
        Assert.Equal(set.Pairs.Count, json["data"]!["pairs"]!.GetValue<int>());
        Assert.True(set.Pairs.Any(p => p.SameSynset) && set.Pairs.Any(p => !p.SameSynset), "the subset needs pairs of both kinds");
        using var model = TransformerModel.Load(Fixtures.Folder("bert-tiny"));
        float[] Embed(IEnumerable<string> texts) => texts.SelectMany(t => model.ForwardPooled(model.Encode([t]), PoolingMode.Mean)[model.Config.NumLayers]).ToArray();
        int d = model.Config.HiddenSize;
        EvaluationScores expected = EvaluationScoring.Score(set, Embed(set.Glosses.Select(g => g.Definition)), Embed(set.Examples.Select(e => e.Sentence)), d, 200, 0);

        JsonNode retrieval = json["retrieval"]!;
        Assert.Equal(expected.Retrieval.RecallAt1.Value, Value(retrieval["r_at_1"]!["value"]), 12);
        Assert.Equal(expected.Retrieval.RecallAt10.Value, Value(retrieval["r_at_10"]!["value"]), 12);
        Assert.Equal(expected.Retrieval.MeanReciprocalRank.Value, Value(retrieval["mrr"]!["value"]), 6);
        Assert.Equal(expected.SameSense!.Value, Value(json["same_sense"]!["roc_auc"]!["value"]), 6);
        foreach (JsonNode figure in new[] { retrieval["r_at_1"]!, retrieval["r_at_10"]!, retrieval["mrr"]!, json["same_sense"]!["roc_auc"]! })
            Assert.True(Value(figure["lower"]) <= Value(figure["value"]) && Value(figure["value"]) <= Value(figure["upper"]), figure.ToJsonString());

        string[] ranks = File.ReadAllLines(Path.Combine(output, "retrieval-ranks.csv"));
        Assert.Equal("synset,rank,right_answers", ranks[0]);
        Assert.Equal(expected.Ranks.Select(r => r.ToString(CultureInfo.InvariantCulture)), ranks.Skip(1).Select(l => l.Split(',')[1]));
        Assert.Equal(set.Pairs.Count + 1, File.ReadAllLines(Path.Combine(output, "pair-scores.csv")).Length);

        string[] summary = File.ReadAllLines(Path.Combine(output, "evaluation.csv"));
        Assert.Equal("task,metric,value,lower,upper,n,layer,pool", summary[0]);
        string[] mrr = summary.Single(l => l.StartsWith("retrieval,mrr,", StringComparison.Ordinal)).Split(',');
        Assert.Equal(Value(retrieval["mrr"]!["value"]), double.Parse(mrr[2], CultureInfo.InvariantCulture));
        Assert.Equal(Value(retrieval["mrr"]!["upper"]), double.Parse(mrr[4], CultureInfo.InvariantCulture));
    }

    [Fact]
    public void TheSameSeedGivesTheSameFilesAndAnotherSeedOtherIntervals()
    {
        string data = WriteSubset(SubsetGlosses);
        string a = _folder.Combine("a"), b = _folder.Combine("b"), c = _folder.Combine("c");
        Assert.Equal(0, CliRunner.Run(Evaluate(data, a, "--seed", "4")).Code);
        Assert.Equal(0, CliRunner.Run(Evaluate(data, b, "--seed", "4")).Code);
        Assert.Equal(0, CliRunner.Run(Evaluate(data, c, "--seed", "5")).Code);
        Assert.Equal(File.ReadAllText(Path.Combine(a, "evaluation.csv")), File.ReadAllText(Path.Combine(b, "evaluation.csv")));
        Assert.NotEqual(File.ReadAllText(Path.Combine(a, "evaluation.csv")), File.ReadAllText(Path.Combine(c, "evaluation.csv")));
        Assert.Equal(File.ReadAllText(Path.Combine(a, "retrieval-ranks.csv")), File.ReadAllText(Path.Combine(c, "retrieval-ranks.csv")));
    }

    [Fact]
    public void LayerAndPoolingChooseTheVectors()
    {
        string data = WriteSubset(SubsetGlosses), output = _folder.Combine("layer0");
        var (code, error) = CliRunner.Run(Evaluate(data, output, "--layer", "0", "--pool", "cls"));
        Assert.True(code == 0, $"exit {code}: {error}");
        JsonNode json = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "evaluation.json")))!;
        Assert.Equal("0", json["settings"]!["layer"]!.GetValue<string>());
        Assert.Equal("cls", json["settings"]!["pool"]!.GetValue<string>());
        // [CLS] at layer 0 is the same embedding for every text (position 0, the same token): every pair ties.
        Assert.Equal(0.5, Value(json["same_sense"]!["roc_auc"]!["value"]), 12);
    }

    [Fact]
    public void AMissingModelFolderIsAnInputErrorNamingIt()
    {
        string data = WriteSubset(10), output = _folder.Combine("no-model-out");
        string missing = _folder.Combine("no-such-model");
        var (code, error) = CliRunner.Run(["evaluate", "--model", missing, "--data", data, "--out", output, "--backend", "cpu"]);
        Assert.Equal(3, code);
        Assert.Contains(missing, error, StringComparison.Ordinal);
        Assert.Contains("no such folder", error, StringComparison.Ordinal);
        Assert.False(Directory.Exists(output), "a failed run left its output folder behind");
    }

    [Fact]
    public void AMissingDataFileIsAnInputErrorNamingTheFileAndItsHeader()
    {
        string data = WriteSubset(10), output = _folder.Combine("no-data-out");
        File.Delete(Path.Combine(data, EvaluationSet.PairsFile));
        var (code, error) = CliRunner.Run(Evaluate(data, output));
        Assert.Equal(3, code);
        Assert.Contains(Path.Combine(data, EvaluationSet.PairsFile), error, StringComparison.Ordinal);
        Assert.Contains("pair lemma example_a example_b same_synset", error, StringComparison.Ordinal);
        Assert.False(Directory.Exists(output), "a failed run made an output folder");
    }

    [Fact]
    public void ALayerTheModelLacksIsAnInputErrorAndABadLayerAUsageError()
    {
        string data = WriteSubset(10);
        var (code, error) = CliRunner.Run(Evaluate(data, _folder.Combine("l9"), "--layer", "9"));
        Assert.Equal(3, code);
        Assert.Contains("--layer: 9 is outside 0..3", error, StringComparison.Ordinal);
        Assert.False(Directory.Exists(_folder.Combine("l9")));

        (code, error) = CliRunner.Run(Evaluate(data, _folder.Combine("lx"), "--layer", "last"));
        Assert.Equal(2, code);
        Assert.Contains("--layer must be a layer number or 'final', got 'last'", error, StringComparison.Ordinal);
        (code, _) = CliRunner.Run(Evaluate(data, _folder.Combine("b0"), "--batch-size", "0"));
        Assert.Equal(2, code);
    }

    [Fact]
    public void ADecoderFixtureEvaluatesItsFinalEntryWithLastTokenPooling()
    {
        string data = WriteSubset(20), output = _folder.Combine("gpt2");
        var (code, error) = CliRunner.Run(["evaluate", "--model", Fixtures.Folder("gpt2-tiny"), "--data", data, "--out", output, "--backend", "cpu", "--bootstrap", "0"]);
        Assert.True(code == 0, $"exit {code}: {error}");
        JsonNode json = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "evaluation.json")))!;
        Assert.Equal("final", json["settings"]!["layer"]!.GetValue<string>());
        Assert.Equal("last", json["settings"]!["pool"]!.GetValue<string>());
        Assert.Null(json["retrieval"]!["mrr"]!["lower"]?.GetValue<double?>());
    }
}
