using System.Runtime.InteropServices;
using NativeMi.Compute.Cpu;
using NativeMi.IO;
using NativeMi.Models;
using Xunit;

namespace NativeMi.Tests.Models;

/// <summary>
/// On the CPU, F32 embedding tables are used where they lie in the mapped weights file and nn.Linear weights are packed
/// straight from it (no copies on open). The hidden states must be the bits of the copying load, which a checkpoint
/// stored as F64 (exactly the same values) still takes.
/// </summary>
public sealed class InPlaceWeightTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("nativemi-inplace-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Theory]
    [InlineData("bert-tiny")]
    [InlineData("roberta-tiny")]
    [InlineData("gpt2-tiny")]
    [InlineData("llama-tiny")]
    [InlineData("qwen3-tiny")]
    public void In_place_weights_give_the_hidden_states_of_copied_weights_bit_for_bit(string fixture)
    {
        string mapped = Fixtures.Folder(fixture);
        string copied = CopyWithFloat64Weights(mapped, Path.Combine(_root, fixture));
        string[] sentences = ["the cat sat on the mat", "a much longer sentence, with punctuation; and more words than the first!", "x"];

        using TransformerModel inPlace = TransformerModel.Load(mapped);
        using TransformerModel reference = TransformerModel.Load(copied);
        Assert.DoesNotContain("F64", inPlace.CheckpointDTypes);
        Assert.Contains("F64", reference.CheckpointDTypes);
        Assert.Equal(reference.ParameterCount, inPlace.ParameterCount);

        var expected = reference.Forward(reference.Encode(sentences));
        var actual = inPlace.Forward(inPlace.Encode(sentences));
        Assert.Equal(expected.Layers.Count, actual.Layers.Count);
        for (int layer = 0; layer < expected.Layers.Count; layer++)
            Assert.True(MemoryMarshal.AsBytes(expected.Layers[layer].AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(actual.Layers[layer].AsSpan())),
                $"{fixture}: hidden states of entry {layer} differ");
        Assert.Equal(expected.Final is null, actual.Final is null);
        if (expected.Final is not null) Assert.Equal(expected.Final, actual.Final!);
    }

    [Theory]
    [InlineData("bert-tiny", true)]
    [InlineData("llama-tiny", true)]
    [InlineData("gpt2-tiny", false)] // GPT-2's Conv1D weights are [in, out] already: packed from a copy as before
    public void F32_tables_stay_in_the_mapping_and_linear_weights_are_packed_from_it(string fixture, bool linearFromMapping)
    {
        string folder = Fixtures.Folder(fixture);
        TransformerConfig config = TransformerConfig.Load(Path.Combine(folder, "config.json"));
        using var backend = new CpuBackend();
        TransformerWeights weights;
        using (WeightStore store = WeightStore.OpenDirectory(folder))
            weights = TransformerWeights.Load(store, config, backend);
        using (weights)
        {
            // The store is closed: the table reads through its own lease on the mapping.
            Assert.IsType<CpuMappedTable>(weights.WordEmbeddings);
            Assert.IsType<CpuWeightMatrix>(weights.Blocks[0].QkvWeight);
            var row = new float[config.HiddenSize];
            backend.Download(weights.WordEmbeddings, row.AsSpan());
            using var file = SafetensorsFile.Open(Path.Combine(folder, "model.safetensors"));
            string name = file.Tensors.Keys.Single(n => n.EndsWith(config.Names.WordEmbeddings, StringComparison.Ordinal));
            Assert.Equal(file.GetFloat32Span(name)[..config.HiddenSize].ToArray(), row);
        }
        Assert.True(linearFromMapping == !config.Names.InOutMatrices);
    }

    [Fact]
    public void A_lease_keeps_the_mapping_after_the_file_is_disposed()
    {
        string path = Path.Combine(_root, "one.safetensors");
        float[] values = [1.5f, -2f, 3.25f, float.Epsilon];
        SafetensorsWriter.Write(path, [SafetensorsEntry.FromFloat32("t", [4], values)]);
        var file = SafetensorsFile.Open(path);
        Assert.True(file.IsFloat32Aligned("t"));
        var table = new CpuMappedTable(file.GetFloat32Span("t"), file.Lease());
        file.Dispose();
        Assert.Throws<ObjectDisposedException>(() => file.GetFloat32Span("t"));
        Assert.Equal(values, table.Slice(0, 4).ToArray());
        Assert.Throws<ArgumentOutOfRangeException>(() => table.Slice(3, 2).ToArray());
        table.Dispose();
        Assert.Throws<ObjectDisposedException>(() => table.Slice(0, 1).ToArray());
        table.Dispose(); // a second release is harmless
    }

    /// <summary>
    /// A large mapped table reads the rows a gather asks for from the file, not through the mapping; they must be the
    /// file's values bit for bit, through both gathers, and the whole table through Download.
    /// </summary>
    [Fact]
    public void A_large_table_reads_its_rows_from_the_file()
    {
        const int rows = 3000, width = 96;
        string path = Path.Combine(_root, "table.safetensors");
        var random = new Random(5);
        float[] values = Enumerable.Range(0, rows * width).Select(_ => (float)random.NextDouble() - 0.5f).ToArray();
        SafetensorsWriter.Write(path, [SafetensorsEntry.FromFloat32("t", [rows, width], values)]);
        using var file = SafetensorsFile.Open(path);
        using var table = new CpuMappedTable(file.GetFloat32Span("t"), file.Lease(), file.FilePath, file.FileOffset("t"));
        Assert.True(table.ReadsRowsFromFile);
        var backend = new CpuBackend();
        const int gathered = 500;
        int[] order = Enumerable.Range(0, gathered).Select(i => (int)((i * 7919L) % rows)).ToArray();
        using var indices = backend.Upload<int>(order);
        using var output = backend.Allocate<float>((long)gathered * width);
        backend.GatherRows(table, indices, output, gathered, width);
        float[] host = new float[gathered * width];
        backend.Download(output, host);
        for (int r = 0; r < gathered; r++)
            for (int j = 0; j < width; j++)
                Assert.Equal(BitConverter.SingleToInt32Bits(values[order[r] * width + j]), BitConverter.SingleToInt32Bits(host[r * width + j]));
        // EmbeddingGather: word row + position row (a small table, read through the mapping) + nothing else.
        using var positions = backend.Upload<float>(values.AsSpan(0, 4 * width));
        using var ids = backend.Upload<int>(order.AsSpan(0, 4));
        using var positionIds = backend.Upload<int>([0, 1, 2, 3]);
        using var embedded = backend.Allocate<float>(4L * width);
        backend.EmbeddingGather(ids, positionIds, null, table, positions, null, embedded, 4, width);
        float[] embeddedHost = new float[4 * width];
        backend.Download(embedded, embeddedHost);
        for (int r = 0; r < 4; r++)
            for (int j = 0; j < width; j++)
                Assert.Equal(BitConverter.SingleToInt32Bits(values[order[r] * width + j] + values[r * width + j]), BitConverter.SingleToInt32Bits(embeddedHost[r * width + j]));
        // The large table as the position table: its rows are read from the file before they are added.
        backend.EmbeddingGather(positionIds, ids, null, positions, table, null, embedded, 4, width);
        backend.Download(embedded, embeddedHost);
        for (int r = 0; r < 4; r++)
            for (int j = 0; j < width; j++)
                Assert.Equal(BitConverter.SingleToInt32Bits(values[r * width + j] + values[order[r] * width + j]), BitConverter.SingleToInt32Bits(embeddedHost[r * width + j]));
        float[] whole = new float[rows * width];
        backend.Download(table, whole);
        Assert.Equal(values, whole);
    }

    [Fact]
    public void A_table_outside_the_file_it_names_fails_with_the_reason()
    {
        const int rows = 3000, width = 96;
        string path = Path.Combine(_root, "short.safetensors");
        SafetensorsWriter.Write(path, [SafetensorsEntry.FromFloat32("t", [rows, width], new float[rows * width])]);
        using var file = SafetensorsFile.Open(path);
        // The offset claims the table starts near the file's end, so its last rows lie past it.
        using var table = new CpuMappedTable(file.GetFloat32Span("t"), file.Lease(), file.FilePath, file.FileLength - 100);
        var error = Assert.Throws<IOException>(() => table.CopyTo((long)(rows - 1) * width, new float[width]));
        Assert.Contains("ended", error.Message);
    }

    [Theory]
    [InlineData(384, 384)]
    [InlineData(384, 1536)]
    [InlineData(1536, 384)]
    [InlineData(48, 37)] // columns that end in a partial panel
    [InlineData(5, 3)]
    public void Packing_the_transposed_weight_gives_the_panels_of_packing_its_transpose(int k, int n)
    {
        var random = new Random(k * 7919 + n);
        float[] stored = new float[n * k]; // [n, k] as nn.Linear keeps it
        for (int i = 0; i < stored.Length; i++) stored[i] = (float)(random.NextDouble() * 2 - 1);
        float[] transposed = new float[k * n];
        for (int o = 0; o < n; o++)
            for (int i = 0; i < k; i++)
                transposed[i * n + o] = stored[o * k + i];

        PackedMatrix direct = CpuGemm.PackB(stored, k, n, transposed: true);
        PackedMatrix reference = CpuGemm.PackB(transposed, k, n);
        var a = new float[k * n];
        var b = new float[k * n];
        direct.Unpack(a);
        reference.Unpack(b);
        Assert.Equal(b, a);
        int panelFloats = (n + reference.Nr - 1) / reference.Nr * reference.Nr * k; // zero columns past N included
        Assert.True(MemoryMarshal.AsBytes(direct.Data.AsSpan(direct.Offset, panelFloats)).SequenceEqual(MemoryMarshal.AsBytes(reference.Data.AsSpan(reference.Offset, panelFloats))));
    }

    /// <summary>The fixture with every F32 tensor rewritten as F64 (the same values), which the loader copies and converts.</summary>
    private static string CopyWithFloat64Weights(string source, string destination)
    {
        Directory.CreateDirectory(destination);
        foreach (string file in Directory.GetFiles(source))
            if (Path.GetFileName(file) != "model.safetensors") File.Copy(file, Path.Combine(destination, Path.GetFileName(file)));
        using var weights = SafetensorsFile.Open(Path.Combine(source, "model.safetensors"));
        var entries = new List<SafetensorsEntry>();
        foreach (var (name, info) in weights.Tensors)
        {
            if (info.DType != SafetensorsDType.F32)
            {
                entries.Add(new SafetensorsEntry(name, info.DType, info.Shape, weights.GetBytes(name).ToArray()));
                continue;
            }
            double[] wide = weights.GetFloat32Span(name).ToArray().Select(v => (double)v).ToArray();
            entries.Add(new SafetensorsEntry(name, SafetensorsDType.F64, info.Shape, MemoryMarshal.AsBytes(wide.AsSpan()).ToArray()));
        }
        SafetensorsWriter.Write(Path.Combine(destination, "model.safetensors"), entries);
        return destination;
    }
}
