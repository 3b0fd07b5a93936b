using Xunit;
using NativeMi.IO.Onnx;

namespace NativeMi.Tests.Onnx;

[Collection(BuiltinModelCollection.Name)]
public sealed class OnnxReaderTests(BuiltinModelFixture models)
{
    [Fact]
    public void ReadsTheMiniLmGraphInterface()
    {
        OnnxModel model = OnnxReader.Load(models.OnnxPaths["minilm"]);
        Assert.Equal(["input_ids", "attention_mask", "token_type_ids"], model.Graph.Inputs.Select(i => i.Name));
        Assert.All(model.Graph.Inputs, i => Assert.Equal(OnnxDataType.Int64, i.ElementType));
        Assert.Equal("last_hidden_state", model.Graph.Outputs[0].Name);
        Assert.Equal(OnnxDataType.Float, model.Graph.Outputs[0].ElementType);
        Assert.Equal("pytorch", model.ProducerName);
        OnnxTensor word = model.Graph.Initializers["embeddings.word_embeddings.weight"];
        Assert.Equal([30522L, 384L], word.Dims);
        Assert.Contains(model.Graph.Nodes, n => n.OpType == "Softmax");
    }

    [Theory]
    [InlineData("minilm")]
    [InlineData("arctic-xs")]
    public void TruncatedModelNamesTheFile(string name)
    {
        byte[] bytes = File.ReadAllBytes(models.OnnxPaths[name]);
        string path = WriteTemp(bytes.AsSpan(0, bytes.Length / 2).ToArray());
        var error = Assert.Throws<ModelFormatException>(() => OnnxReader.Load(path));
        Assert.Contains(path, error.Message);
        Assert.Equal(path, error.FilePath);
    }

    [Fact]
    public void GarbageAndEmptyFilesNameTheFile()
    {
        var random = new Random(1234);
        byte[] garbage = new byte[4096];
        random.NextBytes(garbage);
        foreach (byte[] content in new[] { garbage, [], "not an onnx model at all\n"u8.ToArray(), [0x08, 0x07] })
        {
            string path = WriteTemp(content);
            var error = Assert.Throws<ModelFormatException>(() => OnnxReader.Load(path));
            Assert.Contains(path, error.Message);
        }
    }

    [Fact]
    public void EveryTruncationOfTheHeaderRegionIsAFormatError()
    {
        // The first bytes hold the model header, node list and the start of the graph; cutting
        // anywhere there must surface as ModelFormatException, never as an index or cast error.
        byte[] bytes = File.ReadAllBytes(models.OnnxPaths["arctic-xs"]);
        for (int length = 1; length < 4096; length += 7)
            Assert.Throws<ModelFormatException>(() => OnnxReader.Parse("cut.onnx", bytes.AsMemory(0, length)));
    }

    [Fact]
    public void CorruptedBytesRaiseOnlyFormatErrors()
    {
        // Flip bytes in the node region (right after the graph's length prefix) and at the end of
        // the file (initializers); reading and BERT analysis may succeed or raise
        // ModelFormatException, but nothing else.
        byte[] original = File.ReadAllBytes(models.OnnxPaths["minilm"]);
        var random = new Random(42);
        int failures = 0;
        for (int trial = 0; trial < 300; trial++)
        {
            byte[] bytes = (byte[])original.Clone();
            int flips = 1 + random.Next(3);
            for (int f = 0; f < flips; f++)
            {
                int position = trial % 2 == 0 ? random.Next(0, 120_000) : original.Length - 1 - random.Next(0, 20_000);
                bytes[position] = (byte)random.Next(256);
            }
            try
            {
                OnnxModel model = OnnxReader.Parse("fuzz.onnx", bytes);
                OnnxBertGraph.Analyze(model);
            }
            catch (ModelFormatException e)
            {
                Assert.Contains("fuzz.onnx", e.Message);
                failures++;
            }
        }
        Assert.True(failures > 0, "no corruption was detected at all, so the test exercised nothing");
    }

    [Fact]
    public void ExternalDataIsRejectedWithAnExplanation()
    {
        using var tensor = new MemoryStream();
        ProtoWriter.WriteVarintField(tensor, 1, 4);               // dims
        ProtoWriter.WriteVarintField(tensor, 2, 1);               // data_type FLOAT
        ProtoWriter.WriteStringField(tensor, 8, "weights");       // name
        ProtoWriter.WriteVarintField(tensor, 14, 1);              // data_location EXTERNAL
        using var graph = new MemoryStream();
        ProtoWriter.WriteBytesField(graph, 5, tensor.ToArray());  // initializer
        using var model = new MemoryStream();
        ProtoWriter.WriteVarintField(model, 1, 8);                // ir_version
        ProtoWriter.WriteBytesField(model, 7, graph.ToArray());   // graph
        var error = Assert.Throws<ModelFormatException>(() => OnnxReader.Parse("external.onnx", model.ToArray()));
        Assert.Contains("external", error.Message);
        Assert.Contains("weights", error.Message);
    }

    [Fact]
    public void RawDataThatDisagreesWithTheShapeIsRejected()
    {
        using var tensor = new MemoryStream();
        ProtoWriter.WriteVarintField(tensor, 1, 3);
        ProtoWriter.WriteVarintField(tensor, 2, 1);
        ProtoWriter.WriteStringField(tensor, 8, "w");
        ProtoWriter.WriteBytesField(tensor, 9, new byte[8]);      // 2 floats for shape [3]
        using var graph = new MemoryStream();
        ProtoWriter.WriteBytesField(graph, 5, tensor.ToArray());
        using var model = new MemoryStream();
        ProtoWriter.WriteVarintField(model, 1, 8);
        ProtoWriter.WriteBytesField(model, 7, graph.ToArray());
        var error = Assert.Throws<ModelFormatException>(() => OnnxReader.Parse("short.onnx", model.ToArray()));
        Assert.Contains("'w'", error.Message);
    }

    [Fact]
    public void ProtoReaderRejectsOverlongVarintsGroupsAndOverrunningLengths()
    {
        byte[] overlong = [0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01];
        Assert.Throws<ModelFormatException>(() => OnnxReader.Parse("varint.onnx", overlong));
        byte[] group = [0x0B, 0x0C];
        Assert.Contains("group", Assert.Throws<ModelFormatException>(() => OnnxReader.Parse("group.onnx", group)).Message);
        byte[] overrun = [0x3A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x00];
        Assert.Contains("runs past", Assert.Throws<ModelFormatException>(() => OnnxReader.Parse("overrun.onnx", overrun)).Message);
    }

    private string WriteTemp(byte[] content)
    {
        string folder = Path.Combine(models.CacheRoot, "malformed");
        Directory.CreateDirectory(folder);
        string path = Path.Combine(folder, Guid.NewGuid().ToString("N") + ".onnx");
        File.WriteAllBytes(path, content);
        return path;
    }
}
