using Xunit;
using System.Diagnostics;
using System.Text.Json;
using NativeMi.IO;
using NativeMi.IO.Onnx;
using NativeMi.Models;

namespace NativeMi.Tests.Onnx;

[Collection(BuiltinModelCollection.Name)]
public sealed class OnnxBertImporterTests(BuiltinModelFixture models)
{
    public static TheoryData<string> BuiltinNames => new(BuiltinModels.Names);

    [Theory]
    [MemberData(nameof(BuiltinNames))]
    public void ConfigMatchesTheUpstreamModel(string name)
    {
        using JsonDocument config = JsonDocument.Parse(File.ReadAllText(Path.Combine(models.Folders[name], "config.json")));
        JsonElement root = config.RootElement;
        // Both all-MiniLM-L6-v2 and snowflake-arctic-embed-xs are 6-layer, 384-wide, 12-head BERTs.
        Assert.Equal("bert", root.GetProperty("model_type").GetString());
        Assert.Equal("BertModel", root.GetProperty("architectures")[0].GetString());
        Assert.Equal(30522, root.GetProperty("vocab_size").GetInt32());
        Assert.Equal(384, root.GetProperty("hidden_size").GetInt32());
        Assert.Equal(6, root.GetProperty("num_hidden_layers").GetInt32());
        Assert.Equal(12, root.GetProperty("num_attention_heads").GetInt32());
        Assert.Equal(1536, root.GetProperty("intermediate_size").GetInt32());
        Assert.Equal(512, root.GetProperty("max_position_embeddings").GetInt32());
        Assert.Equal(2, root.GetProperty("type_vocab_size").GetInt32());
        Assert.Equal(1e-12, root.GetProperty("layer_norm_eps").GetDouble());
        Assert.Equal("gelu", root.GetProperty("hidden_act").GetString());
        Assert.Equal(0, root.GetProperty("pad_token_id").GetInt32());

        using JsonDocument tokenizer = JsonDocument.Parse(File.ReadAllText(Path.Combine(models.Folders[name], "tokenizer_config.json")));
        Assert.True(tokenizer.RootElement.GetProperty("do_lower_case").GetBoolean());
        Assert.Equal("[CLS]", tokenizer.RootElement.GetProperty("cls_token").GetString());
        Assert.True(File.Exists(Path.Combine(models.Folders[name], "special_tokens_map.json")));

        string vocab = File.ReadAllText(Path.Combine(models.Folders[name], "vocab.txt"));
        Assert.DoesNotContain('\r', vocab);
        string[] lines = vocab.Split('\n');
        Assert.Equal(30522, lines.Length - 1);
        Assert.Equal("[PAD]", lines[0]);
        Assert.Equal("[CLS]", lines[101]);
    }

    [Theory]
    [MemberData(nameof(BuiltinNames))]
    public void SafetensorsHoldsExactlyTheHuggingFaceTensors(string name)
    {
        const int H = 384, I = 1536, L = 6;
        var expected = new Dictionary<string, long[]>
        {
            ["embeddings.word_embeddings.weight"] = [30522, H],
            ["embeddings.position_embeddings.weight"] = [512, H],
            ["embeddings.token_type_embeddings.weight"] = [2, H],
            ["embeddings.LayerNorm.weight"] = [H],
            ["embeddings.LayerNorm.bias"] = [H],
        };
        for (int i = 0; i < L; i++)
        {
            string p = $"encoder.layer.{i}.";
            foreach (string qkv in (string[])["query", "key", "value"])
            {
                expected[p + $"attention.self.{qkv}.weight"] = [H, H];
                expected[p + $"attention.self.{qkv}.bias"] = [H];
            }
            expected[p + "attention.output.dense.weight"] = [H, H];
            expected[p + "attention.output.dense.bias"] = [H];
            expected[p + "attention.output.LayerNorm.weight"] = [H];
            expected[p + "attention.output.LayerNorm.bias"] = [H];
            expected[p + "intermediate.dense.weight"] = [I, H];
            expected[p + "intermediate.dense.bias"] = [I];
            expected[p + "output.dense.weight"] = [H, I];
            expected[p + "output.dense.bias"] = [H];
            expected[p + "output.LayerNorm.weight"] = [H];
            expected[p + "output.LayerNorm.bias"] = [H];
        }
        if (name == "minilm")
        {
            // The MiniLM export keeps the pooler (its second output is the pooled vector); arctic's does not.
            expected["pooler.dense.weight"] = [H, H];
            expected["pooler.dense.bias"] = [H];
        }

        using SafetensorsFile file = SafetensorsFile.Open(Path.Combine(models.Folders[name], "model.safetensors"));
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), file.Tensors.Keys.Order(StringComparer.Ordinal));
        foreach ((string tensor, long[] shape) in expected)
        {
            Assert.Equal(SafetensorsDType.F32, file.Tensors[tensor].DType);
            Assert.True(shape.SequenceEqual(file.Tensors[tensor].Shape), $"{tensor}: {file.Tensors[tensor].ShapeText}");
        }
        Assert.Equal("pt", file.Metadata["format"]);
    }

    [Theory]
    [MemberData(nameof(BuiltinNames))]
    public void ImportedWeightsEqualTheOnnxInitializers(string name)
    {
        string folder = models.Folders[name];
        OnnxModel model = OnnxReader.Load(models.OnnxPaths[name]);
        using JsonDocument record = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "import.json")));
        var transposed = record.RootElement.GetProperty("transposed").EnumerateArray().Select(e => e.GetString()!).ToHashSet();
        Assert.Equal(36, transposed.Count); // six MatMul weights per layer; embeddings, LayerNorms, biases and pooler are not

        using SafetensorsFile file = SafetensorsFile.Open(Path.Combine(folder, "model.safetensors"));
        int compared = 0;
        foreach (JsonProperty entry in record.RootElement.GetProperty("mapping").EnumerateObject())
        {
            OnnxTensor source = model.Graph.Initializers[entry.Name];
            string hfName = entry.Value.GetString()!;
            float[] onnx = source.ToFloatArray();
            float[] hf = file.ReadFloat32(hfName);
            Assert.Equal(onnx.Length, hf.Length);
            if (transposed.Contains(hfName))
            {
                int rows = (int)source.Dims[0], columns = (int)source.Dims[1];
                Assert.Equal([columns, rows], file.Tensors[hfName].Shape);
                for (int r = 0; r < rows; r++)
                    for (int c = 0; c < columns; c++)
                        if (onnx[r * columns + c] != hf[c * rows + r])
                            Assert.Fail($"{hfName}[{c}, {r}] = {hf[c * rows + r]} but ONNX '{entry.Name}'[{r}, {c}] = {onnx[r * columns + c]}");
            }
            else
            {
                Assert.True(source.Dims.SequenceEqual(file.Tensors[hfName].Shape), hfName);
                Assert.True(onnx.AsSpan().SequenceEqual(hf), $"{hfName} differs from ONNX '{entry.Name}'");
            }
            compared++;
        }
        Assert.Equal(file.Tensors.Count, compared);
    }

    [Theory]
    [MemberData(nameof(BuiltinNames))]
    public void ImportRecordNamesSourceAndHash(string name)
    {
        using JsonDocument record = JsonDocument.Parse(File.ReadAllText(Path.Combine(models.Folders[name], "import.json")));
        string sha = record.RootElement.GetProperty("source_sha256").GetString()!;
        Assert.Matches("^[0-9a-f]{64}$", sha);
        Assert.EndsWith($"{name}-{sha[..12]}", models.Folders[name]);
        Assert.Equal(Path.GetFullPath(models.OnnxPaths[name]), record.RootElement.GetProperty("source").GetString());
        Assert.Equal(7, record.RootElement.GetProperty("hidden_state_values").GetArrayLength());
    }

    [Fact]
    public void SecondEnsureImportedReturnsTheCachedFolderQuickly()
    {
        var stopwatch = Stopwatch.StartNew();
        string again = BuiltinModels.EnsureImported("minilm", models.CacheRoot, null);
        stopwatch.Stop();
        Assert.Equal(models.Folders["minilm"], again);
        Assert.True(stopwatch.ElapsedMilliseconds < 2000, $"took {stopwatch.ElapsedMilliseconds} ms");
    }

    [Fact]
    public void UnknownBuiltinNameIsAnInputError()
    {
        Assert.False(BuiltinModels.IsBuiltin("bert-base"));
        Assert.True(BuiltinModels.IsBuiltin("arctic-xs"));
        Assert.Equal(["minilm", "arctic-xs"], BuiltinModels.Names);
        var error = Assert.Throws<InputException>(() => BuiltinModels.EnsureImported("bert-base", models.CacheRoot, null));
        Assert.Contains("minilm", error.Message);
    }

    [Fact]
    public void ImportRefusesANonEmptyOutputFolder()
    {
        string folder = Path.Combine(models.CacheRoot, "occupied-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "keep.txt"), "mine");
        string vocab = Path.Combine(models.Folders["minilm"], "vocab.txt");
        var error = Assert.Throws<OutputWriteException>(() => OnnxBertImporter.Import(models.OnnxPaths["minilm"], vocab, folder));
        Assert.Contains(folder, error.Message);
        Assert.Equal("mine", File.ReadAllText(Path.Combine(folder, "keep.txt")));
    }

    [Fact]
    public void FailedImportLeavesNoFolderBehind()
    {
        string parent = Path.Combine(models.CacheRoot, "failed-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(parent);
        string badVocab = Path.Combine(parent, "vocab.txt");
        File.WriteAllText(badVocab, "[PAD]\nhello\n"); // lacks [CLS], [SEP], ...
        string output = Path.Combine(parent, "out");
        var error = Assert.Throws<ModelFormatException>(() => OnnxBertImporter.Import(models.OnnxPaths["arctic-xs"], badVocab, output));
        Assert.Contains(badVocab, error.Message);
        Assert.Equal([badVocab], Directory.GetFileSystemEntries(parent));
    }
}
