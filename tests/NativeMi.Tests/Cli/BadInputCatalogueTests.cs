using System.Text;
using System.Text.Json.Nodes;
using NativeMi.Cli;
using NativeMi.Compute.Cuda;
using NativeMi.IO;
using NativeMi.Tests.Measurement;
using Xunit;
using Xunit.Abstractions;

namespace NativeMi.Tests.Cli;

/// <summary>
/// The catalogue of bad inputs: each case runs the command line and checks the exit code, that the one error line
/// names the file (or line) and the problem, that no stack trace is printed, and that --verbose adds one.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class BadInputCatalogueTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempFolder _folder = new("catalogue");

    public void Dispose() => _folder.Dispose();

    /// <summary>
    /// Runs <paramref name="args"/>, expects <paramref name="code"/> and an error line holding every phrase, without a
    /// stack trace; then again with --verbose, which must add the stack. Returns the error line.
    /// </summary>
    private string Fails(int code, string[] args, params string[] phrases)
    {
        var (actual, error) = CliRunner.Run(args);
        output.WriteLine(error);
        Assert.True(actual == code, $"exit {actual}, expected {code}: {error}");
        string[] lines = error.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        string line = Assert.Single(lines, l => l.StartsWith("nativemi: error: ", StringComparison.Ordinal));
        Assert.Equal(line, lines[^1]);
        foreach (string phrase in phrases) Assert.Contains(phrase, line, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", error, StringComparison.Ordinal);

        var (verboseCode, verboseError) = CliRunner.Run([.. args, "--verbose"]);
        Assert.Equal(code, verboseCode);
        Assert.Contains(line, verboseError, StringComparison.Ordinal);
        Assert.Contains("   at ", verboseError, StringComparison.Ordinal);
        return line;
    }

    private string Model(string fixture = "bert-tiny")
    {
        string folder = _folder.Combine("model");
        Directory.CreateDirectory(folder);
        foreach (string file in Directory.GetFiles(Fixtures.Folder(fixture)))
            File.Copy(file, Path.Combine(folder, Path.GetFileName(file)), overwrite: true);
        return folder;
    }

    private static string Weights(string model) => Path.GetFullPath(Path.Combine(model, "model.safetensors"));

    private static void EditText(string path, string from, string to)
    {
        string text = File.ReadAllText(path);
        Assert.Contains(from, text, StringComparison.Ordinal);
        File.WriteAllText(path, text.Replace(from, to, StringComparison.Ordinal));
    }

    /// <summary>Rewrites the model's weights, each tensor through <paramref name="edit"/> (null drops the tensor).</summary>
    private static void EditWeights(string model, Func<string, float[], float[]?> edit)
    {
        var entries = new List<SafetensorsEntry>();
        using (var file = SafetensorsFile.Open(Weights(model)))
            foreach (SafetensorsTensorInfo info in file.TensorsInFileOrder)
                if (edit(info.Name, file.ReadFloat32(info.Name)) is float[] values)
                    entries.Add(SafetensorsEntry.FromFloat32(info.Name, info.Shape, values));
        SafetensorsWriter.Write(Weights(model), entries);
    }

    private static byte[] Header(string json, int dataBytes)
    {
        byte[] header = Encoding.UTF8.GetBytes(json);
        var bytes = new byte[8 + header.Length + dataBytes];
        BitConverter.GetBytes((ulong)header.Length).CopyTo(bytes, 0);
        header.CopyTo(bytes, 8);
        return bytes;
    }

    // ---- safetensors ----

    [Fact]
    public void EmptySafetensors()
    {
        string model = Model();
        File.WriteAllBytes(Weights(model), []);
        Fails(3, ["inspect", model], Weights(model), "file is 0 bytes; expected at least 8");
    }

    [Fact]
    public void TruncatedSafetensors()
    {
        string model = Model();
        byte[] bytes = File.ReadAllBytes(Weights(model));
        File.WriteAllBytes(Weights(model), bytes[..(bytes.Length - 1000)]);
        Fails(3, ["inspect", model], Weights(model), "tensor '", "run past the data section");
    }

    [Fact]
    public void HeaderLengthBeyondTheFile()
    {
        string model = Model();
        File.WriteAllBytes(Weights(model), [.. BitConverter.GetBytes(1_000_000UL), .. "{}"u8]);
        Fails(3, ["inspect", model], Weights(model), "header length 1000000 runs past the end of the file (10 bytes)");
    }

    [Fact]
    public void OverlappingTensorRanges()
    {
        string model = Model();
        File.WriteAllBytes(Weights(model), Header(
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8));
        Fails(3, ["inspect", model], Weights(model), "tensor 'b'", "overlap tensor 'a' [0, 8]");
    }

    /// <summary>Ranges given end first, and ranges that leave a hole, are refused; header order need not follow byte order.</summary>
    [Fact]
    public void OutOfOrderTensorRanges()
    {
        string model = Model();
        File.WriteAllBytes(Weights(model), Header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4));
        Fails(3, ["inspect", model], Weights(model), "tensor 'a'", "[4, 0] end before begin");

        File.WriteAllBytes(Weights(model), Header(
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 12));
        Fails(3, ["inspect", model], Weights(model), "tensor 'a'", "gap of 4 unused bytes");
    }

    [Fact]
    public void DTypeAndShapeDisagreeWithTheByteLength()
    {
        string model = Model();
        File.WriteAllBytes(Weights(model), Header("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8));
        Fails(3, ["inspect", model], Weights(model), "tensor 'a'", "shape [3] x F32 (4 bytes) = 12 bytes, but data_offsets [0, 8] hold 8");
    }

    [Fact]
    public void ATensorTheModelNeedsIsMissing()
    {
        string model = Model();
        EditWeights(model, (name, values) => name == "encoder.layer.1.output.dense.bias" ? null : values);
        Fails(3, ["inspect", model], Weights(model), "missing tensor 'encoder.layer.1.output.dense.bias' (expected shape [48])");
    }

    // ---- non-finite weights ----

    [Fact]
    public void NonFiniteWeightsAreRefusedByDefaultAndLoadWithTheOption()
    {
        string model = Model();
        EditWeights(model, (name, values) =>
        {
            if (name == "encoder.layer.2.intermediate.dense.weight") // [192, 48]
            {
                values[100] = float.NaN;
                values[5000] = float.PositiveInfinity;
            }
            return values;
        });
        string[] phrases =
        [
            Weights(model), "tensor 'encoder.layer.2.intermediate.dense.weight' [192, 48]", "holds 2 non-finite values (1 NaN, 1 infinite) out of 9216",
            "the first is NaN at [2, 4]", "--allow-nonfinite-weights",
        ];
        Fails(3, ["inspect", model], phrases);

        string corpus = MeasurementTestSupport.WriteCorpus(_folder.Combine("corpus.txt"), 60);
        Fails(3, ["hidden", "--model", model, "--input", corpus, "--out", _folder.Combine("h.safetensors")], phrases);
        Fails(3, ["measure", "--model", model, "--corpus", corpus, "--cache", _folder.Combine("cache"), "--out", _folder.Combine("out"), "--backend", "cpu"], phrases);
        Assert.False(File.Exists(_folder.Combine("h.safetensors")));

        var (code, error) = CliRunner.Run("inspect", model, "--allow-nonfinite-weights");
        Assert.True(code == 0, error);
        (code, error) = CliRunner.Run("hidden", "--model", model, "--input", corpus, "--out", _folder.Combine("h.safetensors"), "--allow-nonfinite-weights");
        Assert.True(code == 0, error);
        Assert.Contains("warning: the weights hold 2 NaN or infinite value(s)", error, StringComparison.Ordinal);
    }

    // ---- config.json ----

    [Fact]
    public void UnknownModelType()
    {
        string model = Model();
        EditText(Path.Combine(model, "config.json"), "\"model_type\": \"bert\"", "\"model_type\": \"t5\"");
        Fails(3, ["inspect", model], Path.GetFullPath(Path.Combine(model, "config.json")),
            "field 'model_type' is \"t5\"; supported: bert, roberta, xlm-roberta, gpt2");
    }

    [Fact]
    public void ConfigHiddenSizeContradictsTheWeights()
    {
        string model = Model();
        EditText(Path.Combine(model, "config.json"), "\"hidden_size\": 48", "\"hidden_size\": 64");
        Fails(3, ["inspect", model], Weights(model), "tensor 'encoder.layer.0.attention.self.query.weight' has shape [48, 48]; config.json implies [64, 64]",
            "config.json field 'hidden_size' = 64, the tensor has 48");
    }

    [Fact]
    public void ConfigLayerCountContradictsTheWeights()
    {
        string model = Model();
        EditText(Path.Combine(model, "config.json"), "\"num_hidden_layers\": 3", "\"num_hidden_layers\": 2");
        Fails(3, ["inspect", model], Weights(model),
            "config.json field 'num_hidden_layers' = 2, but the weights hold 3 blocks (tensors 'encoder.layer.0.*' .. 'encoder.layer.2.*')");

        model = Model("gpt2-tiny");
        EditText(Path.Combine(model, "config.json"), "\"n_layer\": 3", "\"n_layer\": 4");
        Fails(3, ["inspect", model], Weights(model), "config.json field 'n_layer' = 4, but the weights hold 3 blocks", "'h.3.*' is missing");
    }

    [Fact]
    public void ConfigVocabSizeContradictsTheWeights()
    {
        string model = Model("gpt2-tiny");
        EditText(Path.Combine(model, "config.json"), "\"vocab_size\": 320", "\"vocab_size\": 400");
        Fails(3, ["inspect", model], Weights(model), "tensor 'wte.weight' has shape [320, 48]; config.json implies [400, 48]",
            "config.json field 'vocab_size' = 400, the tensor has 320");
    }

    // ---- tokenizer ----

    [Fact]
    public void WordPieceVocabularyLargerThanVocabSize()
    {
        string model = Model();
        File.AppendAllLines(Path.Combine(model, "vocab.txt"), Enumerable.Range(0, 50).Select(i => $"extra{i}"));
        Fails(3, ["inspect", model], Path.GetFullPath(Path.Combine(model, "vocab.txt")),
            "tokenizer has 370 entries but config.json's vocab_size is 320; the tokenizer does not belong to this model");
    }

    [Fact]
    public void BpeVocabularyWithAnIdBeyondVocabSize()
    {
        string model = Model("gpt2-tiny");
        EditText(Path.Combine(model, "vocab.json"), "\"BPE\":317", "\"BPE\":500");
        Fails(3, ["inspect", model], Path.GetFullPath(Path.Combine(model, "vocab.json")),
            "token 'BPE' has id 500, but config.json's vocab_size is 320 (ids must be below it)");
    }

    [Fact]
    public void BpeVocabularySmallerThanVocabSizeAndMissingASpecialId()
    {
        string model = Model("gpt2-tiny");
        EditText(Path.Combine(model, "vocab.json"), ",\"<|endoftext|>\":319}", "}");
        // Named special tokens missing from vocab.json are added after it, as transformers does: name one it has.
        EditText(Path.Combine(model, "tokenizer_config.json"), "<|endoftext|>", "BPE");
        Fails(3, ["inspect", model], Path.GetFullPath(Path.Combine(model, "vocab.json")),
            "tokenizer has 319 entries and no token with id 319, which config.json's pad_token_id (eos_token_id when absent) names (vocab_size 320)");
    }

    // ---- corpus ----

    private string[] Measure(string corpus, params string[] extra) =>
    [
        "measure", "--model", Fixtures.Folder("bert-tiny"), "--corpus", corpus, "--max-sentences", "all", "--hidden", "16", "--epochs", "2",
        "--bootstrap", "10", "--backend", "cpu", "--cache", _folder.Combine("cache"), "--out", _folder.Combine("out"), .. extra,
    ];

    private string Corpus(string name, byte[] bytes)
    {
        string path = _folder.Combine(name);
        File.WriteAllBytes(path, bytes);
        return Path.GetFullPath(path);
    }

    [Fact]
    public void EmptyCorpus()
    {
        string corpus = Corpus("empty.txt", []);
        Fails(3, Measure(corpus), $"{corpus}: corpus is empty; expected one sentence per line");
    }

    [Fact]
    public void AllBlankCorpus()
    {
        string corpus = Corpus("blank.txt", Encoding.UTF8.GetBytes("\n   \n\t\r\n\n"));
        Fails(3, Measure(corpus), $"{corpus}: corpus has only blank lines; expected one sentence per line");
    }

    [Fact]
    public void InvalidUtf8CorpusNamesTheLine()
    {
        string corpus = Corpus("latin1.txt", [.. "a fine first line\nna"u8, 0xEF, .. "ve caf"u8, 0xE9, .. "\nthird line\n"u8]);
        Fails(3, Measure(corpus), $"{corpus}:2: line is not valid UTF-8; the corpus must be UTF-8 text, one sentence per line");
        Fails(3, ["hidden", "--model", Fixtures.Folder("bert-tiny"), "--input", corpus, "--out", _folder.Combine("h.safetensors")], $"{corpus}:2:");
    }

    [Fact]
    public void CorpusTooSmallForTheSplit()
    {
        string corpus = Corpus("three.txt", Encoding.UTF8.GetBytes("the cat sat\na dog ran\nbirds fly south\n"));
        string line = Fails(3, Measure(corpus), corpus, "corpus too small for the split", "from 3 usable; need at least 2 / 1 / 2", "(use a larger corpus)");
        // The whole corpus was used: a larger sample size cannot help, so it is not suggested.
        Assert.DoesNotContain("--max-sentences", line, StringComparison.Ordinal);
    }

    [Fact]
    public void SampleTooSmallForTheSplitSuggestsALargerSample()
    {
        string corpus = Path.GetFullPath(MeasurementTestSupport.WriteCorpus(_folder.Combine("corpus.txt"), 60));
        string[] args = Measure(corpus);
        args[Array.IndexOf(args, "--max-sentences") + 1] = "5";
        Fails(3, args, corpus, "corpus too small for the split", "(raise --max-sentences: the corpus has 60 distinct sentences, 5 were sampled)");
    }

    [Fact]
    public void CorpusThatIsAFolder()
    {
        string folder = _folder.Combine("sentences");
        Directory.CreateDirectory(folder);
        Fails(3, Measure(folder), $"{Path.GetFullPath(folder)}: is a folder, not a corpus file");
    }

    // ---- layers ----

    [Fact]
    public void LayerBeyondTheModelIsRefusedBeforeTheForwardPass()
    {
        string corpus = MeasurementTestSupport.WriteCorpus(_folder.Combine("corpus.txt"), 60);
        Fails(3, Measure(corpus, "--layers", "0,9"), "--layers: 9 is outside 0..3");
        Assert.False(Directory.Exists(_folder.Combine("cache", "embeddings")), "no embedding is computed for a run that cannot finish");
    }

    // ---- option values (usage errors) ----

    /// <summary>
    /// A bad option value is a usage error: exit 2 before any work (no output folder, no cache), the documented
    /// "nativemi: error:" line naming the option and the value, then the hint; --verbose changes nothing.
    /// </summary>
    [Theory]
    [InlineData("--max-sentences", "0", "--max-sentences must be at least 5 (or 'all'), got 0")]
    [InlineData("--max-sentences", "ten", "--max-sentences must be a positive integer or 'all', got 'ten'")]
    [InlineData("--layers", "0,abc", "--layers must be 'all' or a comma-separated list of layer numbers, got '0,abc'")]
    [InlineData("--layers", ",", "--layers names no layer")]
    [InlineData("--epochs", "0", "--epochs must be at least 1, got 0")]
    [InlineData("--epochs", "abc", "Cannot parse argument 'abc' for option '--epochs' as expected type 'System.Int32'.")]
    [InlineData("--batch-size", "0", "--batch-size must be at least 1, got 0")]
    [InlineData("--pool", "foo", "Argument 'foo' not recognized. Must be one of: 'auto' 'mean' 'cls' 'last' 'max'")]
    [InlineData("--hidden", "0", "--hidden must be at least 1, got 0")]
    [InlineData("--probe-batch-size", "0", "--probe-batch-size must be at least 1, got 0")]
    [InlineData("--bootstrap", "-1", "--bootstrap must be 0 or more, got -1")]
    [InlineData("--max-tokens", "2", "--max-tokens must be at least 3, got 2")]
    public void BadOptionValueIsAUsageError(string option, string value, string message)
    {
        string corpus = MeasurementTestSupport.WriteCorpus(_folder.Combine("corpus.txt"), 60);
        string[] args =
        [
            "measure", "--model", Fixtures.Folder("bert-tiny"), "--corpus", corpus, "--backend", "cpu",
            "--cache", _folder.Combine("cache"), "--out", _folder.Combine("out"), option, value,
        ];
        foreach (string[] attempt in new[] { args, [.. args, "--verbose"] })
        {
            var (code, error) = CliRunner.Run(attempt);
            output.WriteLine(error);
            Assert.True(code == 2, $"exit {code}, expected 2: {error}");
            Assert.Equal([$"nativemi: error: {message}", "Run 'nativemi --help' for usage."],
                error.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        }
        Assert.False(Directory.Exists(_folder.Combine("out")), "a usage error creates no output folder");
        Assert.False(Directory.Exists(_folder.Combine("cache")), "a usage error does no work");
    }

    [Fact]
    public void UnknownOptionAndCommandUseTheErrorFormat()
    {
        var (code, error) = CliRunner.Run("measure", "--no-such-option", "1");
        Assert.Equal(2, code);
        Assert.StartsWith("nativemi: error: Unrecognized command or argument '--no-such-option'", error, StringComparison.Ordinal);
        (code, error) = CliRunner.Run("measurez");
        Assert.Equal(2, code);
        Assert.Contains("nativemi: error: Unrecognized command or argument 'measurez'.", error, StringComparison.Ordinal);
        Assert.All(error.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)[..^1],
            line => Assert.StartsWith("nativemi: error: ", line, StringComparison.Ordinal));
    }

    [Fact]
    public void LinesLongerThanTheContextAreTruncatedAndCounted()
    {
        string corpus = MeasurementTestSupport.WriteCorpus(_folder.Combine("corpus.txt"), 120);
        string longLine = string.Join(' ', Enumerable.Repeat("the cat sat on the mat and looked at the dog", 20));
        File.AppendAllLines(corpus, [longLine, longLine + " twice", longLine + " thrice"]);
        var (code, error) = CliRunner.Run(Measure(corpus));
        output.WriteLine(error);
        Assert.True(code == 0, $"exit {code}: {error}");
        string warning = $"warning: 3 sentence(s) longer than 64 tokens were truncated ({Path.GetFullPath(corpus)})";
        Assert.Contains(warning, error, StringComparison.Ordinal);
        var json = JsonNode.Parse(File.ReadAllBytes(_folder.Combine("out", "results.json")))!;
        Assert.Equal(3, json["corpus"]!["truncated"]!.GetValue<int>());
        Assert.Contains(json["warnings"]!.AsArray(), w => warning.EndsWith(w!.GetValue<string>(), StringComparison.Ordinal));

        (code, error) = CliRunner.Run("hidden", "--model", Fixtures.Folder("bert-tiny"), "--input", corpus, "--out", _folder.Combine("h.safetensors"));
        Assert.True(code == 0, $"exit {code}: {error}");
        Assert.Contains("warning: 3 sentence(s) were longer than 64 tokens and were truncated", error, StringComparison.Ordinal);
    }

    // ---- output ----

    [Fact]
    public void OutputFolderUnderARegularFileWritesNothing()
    {
        string corpus = MeasurementTestSupport.WriteCorpus(_folder.Combine("corpus.txt"), 60);
        string file = _folder.Combine("regular-file");
        File.WriteAllText(file, "not a folder");
        string[] args = Measure(corpus);
        args[Array.IndexOf(args, "--out") + 1] = Path.Combine(file, "results");
        Fails(4, args, $"{Path.Combine(file, "results")}: cannot write output: output folder is not writable: '{file}' is a file, not a folder");
        Assert.False(Directory.Exists(_folder.Combine("cache", "embeddings")), "nothing is computed before the output check");

        string hidden = Path.Combine(file, "hidden.safetensors");
        Fails(4, ["hidden", "--model", Fixtures.Folder("bert-tiny"), "--input", corpus, "--out", hidden],
            $"{hidden}: cannot write output: cannot create folder '{file}': '{file}' is a file, not a folder");
        Assert.Equal("not a folder", File.ReadAllText(file));
        var everything = new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 };
        Assert.Empty(Directory.GetFiles(_folder.Path, "*.tmp", everything));
        Assert.Empty(Directory.GetFiles(_folder.Path, "*.safetensors", everything));
    }

    // ---- GPU memory: a real failed allocation on the emulated device (NATIVEMI_EMU_MEMORY_BYTES makes it small) ----

    /// <summary>
    /// Runs nativemi as a child process on the emulated device with <paramref name="memory"/> of device memory; expects
    /// the environment exit code, one error line holding every phrase and no output file; then again with --verbose.
    /// </summary>
    private string FailsOnTheEmulatedDevice(string memory, string[] args, string outputFile, params string[] phrases)
    {
        var environment = new Dictionary<string, string?>
        {
            ["NATIVEMI_CUDA_PATH"] = NativeMi.Tests.Cuda.CudaEmulator.RequireLibraryFolder(),
            ["NATIVEMI_EMU_MEMORY_BYTES"] = memory,
        };
        var (code, _, error) = NativemiChild.Run(args, environment);
        output.WriteLine(error);
        Assert.True(code == 4, $"exit {code}, expected 4: {error}");
        string[] lines = error.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        string line = lines[^1];
        Assert.StartsWith("nativemi: error: ", line, StringComparison.Ordinal);
        foreach (string phrase in phrases) Assert.Contains(phrase, line, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", error, StringComparison.Ordinal);
        Assert.False(File.Exists(outputFile), $"{outputFile} was written by a failed run");

        var (verboseCode, _, verboseError) = NativemiChild.Run([.. args, "--verbose"], environment);
        Assert.Equal(4, verboseCode);
        Assert.Contains("   at ", verboseError, StringComparison.Ordinal);
        return line;
    }

    [NativeMi.Tests.Cuda.EmulatorFact]
    public void DeviceAllocationLargerThanTheFreeMemoryIsAnEnvironmentError()
    {
        string sentences = MeasurementTestSupport.WriteCorpus(_folder.Combine("sentences.txt"), 24);
        string hidden = _folder.Combine("hidden.safetensors");
        // 35 MiB: cuBLAS's 32 MiB workspace and the fixture's weights fit; the forward pass's activations do not (since the
        // forward pass shares one buffer between q/k/v and the feed-forward activations, they fit in 36 MiB).
        string line = FailsOnTheEmulatedDevice("35M",
            ["hidden", "--backend", "cuda", "--model", Fixtures.Folder("bert-tiny"), "--input", sentences, "--out", hidden], hidden,
            "nativemi: error: GPU out of memory: cuMemAlloc(", "bytes) failed with CUDA_ERROR_OUT_OF_MEMORY: ",
            "free of 35.00 MiB (36700160 bytes); try a smaller --batch-size (or --probe-batch-size), or --backend cpu");
        Assert.Matches(@"\(([0-9]+) bytes\) requested; the device has .* \(([0-9]+) bytes\) free", line);
        var numbers = System.Text.RegularExpressions.Regex.Match(line, @"\(([0-9]+) bytes\) requested; the device has .* \(([0-9]+) bytes\) free");
        Assert.True(long.Parse(numbers.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) >
                    long.Parse(numbers.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture), line);
    }

    [NativeMi.Tests.Cuda.EmulatorFact]
    public void CublasWorkspaceThatDoesNotFitIsAnEnvironmentError()
    {
        string corpus = MeasurementTestSupport.WriteCorpus(_folder.Combine("corpus.txt"), 60);
        string results = _folder.Combine("out");
        FailsOnTheEmulatedDevice("16M",
            ["measure", "--backend", "cuda", "--model", Fixtures.Folder("bert-tiny"), "--corpus", corpus, "--max-sentences", "all",
             "--cache", _folder.Combine("cache"), "--out", results], Path.Combine(results, "results.json"),
            "GPU out of memory: cublasCreate failed with CUBLAS_STATUS_ALLOC_FAILED: cuBLAS could not allocate its workspace; ",
            "the device has 16.00 MiB (16777216 bytes) free of 16.00 MiB (16777216 bytes); try a smaller --batch-size (or --probe-batch-size), or --backend cpu");
    }
}
