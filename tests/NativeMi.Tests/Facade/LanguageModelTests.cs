using NativeMi.Compute.Cpu;
using NativeMi.Compute.Cuda;
using NativeMi.Information;
using NativeMi.IO;
using NativeMi.Measurement;
using NativeMi.Models;
using NativeMi.Pooling;
using NativeMi.Probing;
using NativeMi.Transformer;
using Xunit;

namespace NativeMi.Tests.Facade;

/// <summary>The library facade (what the C ABI calls) computes what the engine's own forward pass computes.</summary>
public class LanguageModelTests
{
    private static readonly string[] Sentences =
    [
        "the cat sat on the mat",
        "Hi.",
        "we were at last able to buy a car after saving for many years",
        "she was able to program her computer",
        "a",
    ];

    [Theory]
    [InlineData("bert-tiny")]
    [InlineData("gpt2-tiny")]
    public void EmbedEqualsForwardPooledAtTheChosenEntriesInTheirOrder(string name)
    {
        using LanguageModel model = LanguageModel.Open(Fixtures.Folder(name));
        using TransformerModel reference = TransformerModel.Load(Fixtures.Folder(name));
        LanguageModelDescription description = model.Description;
        int d = description.Width, n = Sentences.Length;
        int[] layers = [description.Entries - 1, 0, 1];

        foreach (PoolingMode? pool in new PoolingMode?[] { null, PoolingMode.Mean, PoolingMode.Cls, PoolingMode.Last, PoolingMode.Max })
        {
            PoolingMode mode = pool ?? description.DefaultPool;
            float[][] expected = reference.ForwardPooled(reference.Encode(Sentences), mode);
            float[] vectors = model.Embed(Sentences, layers, pool);
            Assert.Equal(layers.Length * n * d, vectors.Length);
            for (int k = 0; k < layers.Length; k++)
                for (int s = 0; s < n; s++)
                    for (int j = 0; j < d; j++)
                    {
                        float ours = vectors[(k * n + s) * d + j], theirs = expected[layers[k]][s * d + j];
                        Assert.True(Math.Abs(ours - theirs) <= 1e-5 * Math.Max(1.0, Math.Abs(theirs)),
                            $"{name} {mode} entry {layers[k]} sentence {s} component {j}: {ours} vs {theirs}");
                    }
        }
    }

    [Fact]
    public void DescriptionTellsTheShapeAndTheDefaultPoolOfEachFamily()
    {
        using LanguageModel bert = LanguageModel.Open(Fixtures.Folder("bert-tiny"));
        using LanguageModel gpt2 = LanguageModel.Open(Fixtures.Folder("gpt2-tiny"));
        TransformerConfig bertConfig = TransformerConfig.Load(Path.Combine(Fixtures.Folder("bert-tiny"), "config.json"));

        Assert.Equal("bert", bert.Description.Family);
        Assert.Equal("cpu", bert.Description.Backend);
        Assert.Equal(bertConfig.NumLayers, bert.Description.Layers);
        Assert.Equal(bertConfig.NumLayers + 1, bert.Description.Entries);
        Assert.Equal(bertConfig.HiddenSize, bert.Description.Width);
        Assert.False(bert.Description.IsCausal);
        Assert.Equal(PoolingMode.Mean, bert.Description.DefaultPool);
        Assert.Equal(Path.GetFullPath(Fixtures.Folder("bert-tiny")), bert.Description.Directory);

        Assert.Equal("gpt2", gpt2.Description.Family);
        Assert.True(gpt2.Description.IsCausal);
        Assert.Equal(PoolingMode.Last, gpt2.Description.DefaultPool);
        Assert.Equal(gpt2.Description.Layers + 2, gpt2.Description.Entries); // ln_f's final entry
    }

    [Theory]
    [InlineData("bert-tiny")]
    [InlineData("gpt2-tiny")]
    public void HiddenHoldsTheForwardPassStatesWithZerosPastEachLength(string name)
    {
        using LanguageModel model = LanguageModel.Open(Fixtures.Folder(name));
        using TransformerModel reference = TransformerModel.Load(Fixtures.Folder(name));
        int n = Sentences.Length, d = model.Description.Width, entries = model.Description.Entries;
        int t = model.HiddenLength(Sentences);
        Assert.Equal(Sentences.Max(s => model.Tokenize(s).Length), t);

        var states = new float[model.HiddenStatesLength(n, t)];
        Array.Fill(states, float.NaN);
        var lengths = new int[n];
        model.Hidden(Sentences, states, lengths);

        EncodedBatch batch = reference.Encode(Sentences);
        Assert.Equal(t, batch.SequenceLength);
        HiddenStates expected = reference.Forward(batch);
        for (int s = 0; s < n; s++)
        {
            Assert.Equal(reference.Tokenizer.Encode(Sentences[s], reference.Config.MaxSequenceLength).Ids, model.Tokenize(Sentences[s]));
            Assert.Equal(model.Tokenize(Sentences[s]).Length, lengths[s]);
        }
        for (int e = 0; e < entries; e++)
        {
            float[] layer = e < expected.Layers.Count ? expected.Layers[e] : expected.Final!;
            for (int s = 0; s < n; s++)
                for (int i = 0; i < t; i++)
                    for (int j = 0; j < d; j++)
                    {
                        float ours = states[((e * n + s) * t + i) * d + j];
                        if (i >= lengths[s])
                        {
                            Assert.Equal(0f, ours);
                            continue;
                        }
                        float theirs = layer[(s * t + i) * d + j];
                        Assert.True(Math.Abs(ours - theirs) <= 1e-5 * Math.Max(1.0, Math.Abs(theirs)), $"{name} entry {e} sentence {s} position {i}: {ours} vs {theirs}");
                    }
        }
    }

    [Fact]
    public void ABufferTooSmallIsAUsageErrorWithTheSizeNeededAndIsLeftUntouched()
    {
        using LanguageModel model = LanguageModel.Open(Fixtures.Folder("bert-tiny"));
        long needed = model.EmbedLength(Sentences.Length, 2);
        var small = new float[needed - 1];
        Array.Fill(small, 7f);

        var error = Assert.Throws<UsageException>(() => model.Embed(Sentences, [0, 1], small));
        Assert.Contains(needed.ToString(System.Globalization.CultureInfo.InvariantCulture), error.Message);
        Assert.All(small, v => Assert.Equal(7f, v));

        var tooFewLengths = new int[1];
        Assert.Throws<UsageException>(() => model.Hidden(Sentences, new float[model.HiddenStatesLength(Sentences.Length, model.HiddenLength(Sentences))], tooFewLengths));
        Assert.Equal(0, tooFewLengths[0]);
    }

    [Fact]
    public void AnEntryOutOfRangeIsAUsageErrorAndASentenceWithoutTextIsAnInputError()
    {
        using LanguageModel model = LanguageModel.Open(Fixtures.Folder("bert-tiny"));
        var outOfRange = Assert.Throws<UsageException>(() => model.Embed(Sentences, [model.Description.Entries]));
        Assert.Contains($"layers[0] = {model.Description.Entries}", outOfRange.Message);

        // [CLS] [SEP] alone: nothing for mean pooling to average, while cls pooling has its token.
        var empty = Assert.Throws<InputException>(() => model.Embed(["a sentence", ""], [0], PoolingMode.Mean));
        Assert.Contains("sentences[1]", empty.Message);
        Assert.Equal(2 * model.Description.Width, model.Embed(["a sentence", ""], [0], PoolingMode.Cls).Length);
    }

    [Fact]
    public void CallsFromSeveralThreadsOnOneInstanceGiveWhatOneThreadGives()
    {
        using LanguageModel model = LanguageModel.Open(Fixtures.Folder("bert-tiny"));
        float[] alone = model.Embed(Sentences, [0, 1, 2]);
        float[][] together = new float[4][];
        Parallel.For(0, together.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i => together[i] = model.Embed(Sentences, [0, 1, 2]));
        Assert.All(together, vectors => Assert.Equal(alone, vectors));
    }

    [Fact]
    public void AMissingFolderIsAnInputErrorNamingIt()
    {
        string missing = Path.Combine(Path.GetTempPath(), $"nativemi-no-model-{Guid.NewGuid():N}");
        var error = Assert.ThrowsAny<InputException>(() => LanguageModel.Open(missing));
        Assert.Contains(missing, error.Message);
        Assert.Equal(ExitStatus.Input, ErrorClassification.Classify(error));
        Assert.Equal(ExitStatus.Usage, ErrorClassification.Classify(Assert.Throws<UsageException>(() => LanguageModel.Open(Fixtures.Folder("bert-tiny"), "tpu"))));
    }
}

/// <summary>The options object of nativemi_measure (include/nativemi.h) becomes <see cref="MeasureOptions"/>, and nothing else does.</summary>
public class MeasureRequestTests
{
    [Fact]
    public void EveryKeyOfTheHeaderSetsItsOption()
    {
        MeasureRequest request = MeasureRequest.FromJson("""
            {"model": "arctic-xs", "backend": "auto", "corpus": "c.txt", "max_sentences": null, "layers": [0, 6], "pool": "max", "probe": "bag",
             "hidden": 64, "epochs": 3, "patience": 2, "learning_rate": 0.01, "classes": null, "probe_seeds": 2, "target": "token", "batch_size": 8,
             "probe_batch_size": 16, "seed": 7, "max_tokens": 40, "bootstrap": 0, "fano_alphabet": "observed", "baseline": "random-init", "cache": "cache-folder"}
            """);
        MeasureOptions o = request.Options;
        Assert.Equal("auto", request.Backend);
        Assert.Equal(2, request.ProbeSeeds);
        Assert.Equal(("arctic-xs", "c.txt", (int?)null), (o.Model, o.Corpus, o.MaxSentences));
        Assert.Equal([0, 6], o.Layers!);
        Assert.Equal((PoolingMode.Max, ProbeFamily.Bag, 64, 3, 2, 0.01f), (o.Pool!.Value, o.Probe, o.Hidden, o.Epochs, o.Patience, o.LearningRate));
        Assert.Equal(((int?)null, "token", 8, 16, 7UL, (int?)40, 0), (o.Classes, o.HeadlineTarget, o.BatchSize, o.ProbeBatchSize, o.Seed, o.MaxTokens, o.Bootstrap));
        Assert.Equal((FanoAlphabet.ObservedPlusOne, BaselineKind.RandomInit, "cache-folder"), (o.FanoAlphabet, o.Baseline, o.CacheDirectory));
        using var cpu = new CpuBackend();
        Assert.Equal(2, request.OptionsFor(cpu).ProbeSeeds);
    }

    [Fact]
    public void AnEmptyObjectIsTheCommandsDefaultsOnTheCpu()
    {
        MeasureRequest request = MeasureRequest.FromJson("{}");
        Assert.Equal("cpu", request.Backend);
        using var cpu = new CpuBackend();
        Assert.Equal(new MeasureOptions(), request.OptionsFor(cpu));
    }

    [Theory]
    [InlineData("""{"epoch": 2}""", "unknown key 'epoch'")]
    [InlineData("""{"epochs": "2"}""", "'epochs' must be an integer of at least 1, got a string \"2\"")]
    [InlineData("""{"epochs": 2.5}""", "'epochs' must be an integer")]
    [InlineData("""{"epochs": 0}""", "'epochs' must be an integer of at least 1, got the number 0")]
    [InlineData("""{"layers": "all"}""", "'layers' must be a non-empty array")]
    [InlineData("""{"layers": [0, -1]}""", "'layers' must be a non-empty array of layer numbers")]
    [InlineData("""{"pool": "auto"}""", "'pool' must be one of \"mean\", \"cls\", \"last\", \"max\"")]
    [InlineData("""{"max_sentences": 4}""", "'max_sentences' must be an integer of at least 5, or null")]
    [InlineData("""{"learning_rate": -1}""", "'learning_rate' must be a positive number")]
    [InlineData("""{"seed": -1}""", "'seed' must be an integer of 0 or more")]
    [InlineData("""{"backend": "tpu"}""", "'backend' must be one of \"auto\", \"cpu\", \"cuda\"")]
    [InlineData("""{"epochs": 2, "epochs": 3}""", "'epochs' is given twice")]
    [InlineData("""[1]""", "expected a JSON object, got an array")]
    [InlineData("""{"epochs": 2""", "not well-formed JSON")]
    public void AWrongKeyOrValueIsRefusedNamingItAndWhatWasExpected(string json, string message)
    {
        var error = Assert.Throws<UsageException>(() => MeasureRequest.FromJson(json));
        Assert.Contains(message, error.Message);
        Assert.IsAssignableFrom<InputException>(error);
        Assert.Equal(ExitStatus.Usage, ErrorClassification.Classify(error));
    }
}

/// <summary>One classification of exceptions into exit statuses, shared by the CLI and the C ABI.</summary>
public class ErrorClassificationTests
{
    public static TheoryData<Exception, ExitStatus> Cases() => new()
    {
        { new UsageException("bad option"), ExitStatus.Usage },
        { new InputException("bad corpus"), ExitStatus.Input },
        { new ModelFormatException("/m/config.json", "bad field"), ExitStatus.Input },
        { new FileNotFoundException("gone"), ExitStatus.Input },
        { new DirectoryNotFoundException("gone"), ExitStatus.Input },
        { new EnvironmentException("no GPU"), ExitStatus.Environment },
        { new DeviceOutOfMemoryException("cuMemAlloc(8 bytes)", "CUDA_ERROR_OUT_OF_MEMORY", 2, 8, 0, 8), ExitStatus.Environment },
        { new OutputWriteException("/out", "read-only"), ExitStatus.Environment },
        { new UnauthorizedAccessException("denied"), ExitStatus.Environment },
        { new OperationCanceledException(), ExitStatus.Cancelled },
        { new InvalidOperationException("a bug"), ExitStatus.Internal },
        { new IOException("disk"), ExitStatus.Internal },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void EachExceptionHasTheStatusOfItsClass(Exception exception, ExitStatus status) =>
        Assert.Equal(status, ErrorClassification.Classify(exception));

    [Fact]
    public void TheStatusesAreTheCommandsExitCodes()
    {
        Assert.Equal([0, 1, 2, 3, 4, 130], Enum.GetValues<ExitStatus>().Select(s => (int)s));
        Assert.Equal("allowed: a b", ErrorClassification.OneLine("allowed:\n  a\r\n\tb\n"));
    }
}
