using System.Runtime.InteropServices;
using System.Text;
using NativeMi.IO;
using Xunit;

namespace NativeMi.Tests.IO;

public sealed class SafetensorsTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("nativemi-st-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private string PathOf(string name) => Path.Combine(_folder, name);

    [Fact]
    public void RoundTripKeepsNamesShapesDtypesValuesAndMetadata()
    {
        var f32 = new float[] { 1.5f, -2.25f, 3e-8f, float.MaxValue, 0f, -0f };
        var i64 = new long[] { long.MinValue, -1, 0, 1, long.MaxValue };
        var f16 = new Half[] { (Half)1.5f, (Half)(-0.125f), Half.MaxValue, (Half)0 };
        var bf16 = new ushort[] { 0x3FC0, 0xBF80, 0x0000, 0x4049 }; // 1.5, -1, 0, 3.140625
        var entries = new List<SafetensorsEntry>
        {
            SafetensorsEntry.FromFloat32("w", [2, 3], f32),
            SafetensorsEntry.FromInt64("ids", [5], i64),
            new("half", SafetensorsDType.F16, [4], MemoryMarshal.AsBytes(f16.AsSpan()).ToArray()),
            new("brain", SafetensorsDType.BF16, [2, 2], MemoryMarshal.AsBytes(bf16.AsSpan()).ToArray()),
            new("scalar", SafetensorsDType.I32, [], BitConverter.GetBytes(7)),
            new("empty", SafetensorsDType.F32, [0, 4], Array.Empty<byte>()),
            new("flags", SafetensorsDType.Bool, [3], new byte[] { 1, 0, 1 }),
        };
        SafetensorsWriter.Write(PathOf("a.safetensors"), entries, new Dictionary<string, string> { ["format"] = "pt" });

        using var file = SafetensorsFile.Open(PathOf("a.safetensors"));
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Equal(7, file.Tensors.Count);
        Assert.Equal([2L, 3], file.GetInfo("w").Shape);
        Assert.Equal(f32, file.GetFloat32Span("w").ToArray());
        Assert.Equal(f32, file.ReadFloat32("w"));
        Assert.Equal(i64, file.ReadInt64("ids"));
        Assert.Equal(f16.Select(h => (float)h).ToArray(), file.ReadFloat32("half"));
        Assert.Equal(new[] { 1.5f, -1f, 0f, 3.140625f }, file.ReadFloat32("brain"));
        Assert.Equal([7L], file.ReadInt64("scalar"));
        Assert.Empty(file.GetInfo("scalar").Shape);
        Assert.Equal(0, file.GetInfo("empty").ElementCount);
        Assert.Equal([1L, 0, 1], file.ReadInt64("flags"));
        Assert.Equal(new FileInfo(PathOf("a.safetensors")).Length, file.FileLength);
        Assert.Throws<SafetensorsException>(() => file.GetFloat32Span("half"));
        Assert.Throws<SafetensorsException>(() => file.ReadInt64("w"));
        var missing = Assert.Throws<SafetensorsException>(() => file.GetInfo("nope"));
        Assert.Equal("nope", missing.TensorName);
    }

    [Fact]
    public void HeaderIsPaddedToEightBytesAndStartsWithItsLength()
    {
        byte[] bytes = SafetensorsWriter.ToBytes([SafetensorsEntry.FromFloat32("x", [1], [1f])]);
        ulong headerLength = BitConverter.ToUInt64(bytes, 0);
        Assert.Equal(0UL, headerLength % 8);
        Assert.Equal(8 + (long)headerLength + 4, bytes.Length);
    }

    private static byte[] Build(string header, int dataBytes)
    {
        byte[] json = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + json.Length + dataBytes];
        BitConverter.GetBytes((ulong)json.Length).CopyTo(bytes, 0);
        json.CopyTo(bytes, 8);
        return bytes;
    }

    /// <summary>Each malformed file, the tensor the error must name (or null), and a phrase the message must contain.</summary>
    public static TheoryData<string, byte[], string?, string> Malformed => new()
    {
        { "empty file", [], null, "at least 8" },
        { "truncated length", [1, 0, 0], null, "at least 8" },
        { "header length past end", BitConverter.GetBytes(1000UL), null, "past the end" },
        { "header length huge", BitConverter.GetBytes(ulong.MaxValue), null, "exceeds the limit" },
        { "zero header length", BitConverter.GetBytes(0UL), null, "header length is 0" },
        { "not json", Build("{not json", 0), null, "not well-formed JSON" },
        { "json array", Build("[1,2]", 0), null, "must be a JSON object" },
        { "invalid utf8", Build("{\"\u00e9\":1}", 0).Select((b, i) => i == 10 ? (byte)0xFF : b).ToArray(), null, "UTF-8" },
        { "unknown dtype", Build("{\"a\":{\"dtype\":\"F128\",\"shape\":[1],\"data_offsets\":[0,16]}}", 16), "a", "unknown dtype" },
        { "missing shape", Build("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4), "a", "missing field 'shape'" },
        { "negative dim", Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4), "a", "non-negative integer" },
        { "fractional dim", Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4), "a", "non-negative integer" },
        { "shape bytes mismatch", Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4), "a", "8 bytes" },
        { "shape overflow", Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,4]}}", 4), "a", "overflows" },
        { "offsets reversed", Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4), "a", "end before begin" },
        { "offsets past data", Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 2), "a", "past the data section" },
        { "overlap", Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8), "b", "overlap" },
        { "gap", Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8), "a", "gap" },
        { "trailing bytes", Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8), null, "trailing" },
        { "duplicate tensor", Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4), "a", "twice" },
        { "unknown field", Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4), "a", "unknown field" },
        { "metadata not strings", Build("{\"__metadata__\":{\"k\":1}}", 0), null, "must be a string" },
        { "entry not object", Build("{\"a\":3}", 0), "a", "must be an object" },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public void MalformedFilesRaiseOneExceptionTypeNamingFileTensorAndProblem(string caseName, byte[] bytes, string? tensor, string phrase)
    {
        string path = PathOf(caseName.Replace(' ', '-') + ".safetensors");
        File.WriteAllBytes(path, bytes);
        var error = Assert.Throws<SafetensorsException>(() => SafetensorsFile.Open(path).Dispose());
        Assert.Equal(Path.GetFullPath(path), error.FilePath);
        Assert.Equal(tensor, error.TensorName);
        Assert.Contains(phrase, error.Message, StringComparison.Ordinal);
        Assert.StartsWith(Path.GetFullPath(path), error.Message, StringComparison.Ordinal);
        // The in-memory validator (used by fuzzing) agrees with the file reader.
        Assert.Throws<SafetensorsException>(() => SafetensorsFile.ValidateBytes(path, bytes));
    }

    [Fact]
    public void ShardedIndexJoinsShardsAndRejectsInconsistentMaps()
    {
        SafetensorsWriter.Write(PathOf("model-00001-of-00002.safetensors"), [SafetensorsEntry.FromFloat32("a", [2], [1f, 2f])]);
        SafetensorsWriter.Write(PathOf("model-00002-of-00002.safetensors"), [SafetensorsEntry.FromFloat32("b", [1], [3f])]);
        File.WriteAllText(PathOf("model.safetensors.index.json"),
            "{\"metadata\":{\"total_size\":12},\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\",\"b\":\"model-00002-of-00002.safetensors\"}}");
        using (var store = WeightStore.OpenDirectory(_folder))
        {
            Assert.Equal([1f, 2f], store.ReadFloat32("a"));
            Assert.Equal([3f], store.ReadFloat32("b"));
            Assert.Equal(2, store.Files.Count);
        }

        File.WriteAllText(PathOf("model.safetensors.index.json"), "{\"weight_map\":{\"a\":\"model-00002-of-00002.safetensors\",\"b\":\"model-00002-of-00002.safetensors\"}}");
        var wrongShard = Assert.Throws<SafetensorsException>(() => WeightStore.OpenDirectory(_folder));
        Assert.Equal("a", wrongShard.TensorName);

        SafetensorsWriter.Write(PathOf("model-00001-of-00002.safetensors"), [SafetensorsEntry.FromFloat32("a", [2], [1f, 2f]), SafetensorsEntry.FromFloat32("c", [1], [0f])]);
        File.WriteAllText(PathOf("model.safetensors.index.json"), "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\"}}");
        var unmapped = Assert.Throws<SafetensorsException>(() => WeightStore.OpenDirectory(_folder));
        Assert.Equal("c", unmapped.TensorName);
        Assert.Contains("missing from weight_map", unmapped.Message);

        File.WriteAllText(PathOf("model.safetensors.index.json"), "{\"weight_map\":{\"a\":\"../escape.safetensors\"}}");
        Assert.Contains("plain file name", Assert.Throws<SafetensorsException>(() => WeightStore.OpenDirectory(_folder)).Message);
    }

    [Fact]
    public void FileBuilderWritesPiecesAndLeavesNothingWhenAbandoned()
    {
        string path = PathOf("built.safetensors");
        using (var builder = new SafetensorsFileBuilder(path, [("x", SafetensorsDType.F32, [2, 3]), ("ids", SafetensorsDType.I64, [2])]))
        {
            builder.Write<float>("x", 3, [4f, 5f, 6f]);
            builder.Write<float>("x", 0, [1f, 2f, 3f]);
            builder.Write<long>("ids", 0, [9L, 8L]);
            builder.Commit();
        }
        using (var file = SafetensorsFile.Open(path))
        {
            Assert.Equal([1f, 2f, 3f, 4f, 5f, 6f], file.ReadFloat32("x"));
            Assert.Equal([9L, 8L], file.ReadInt64("ids"));
        }
        string abandoned = PathOf("abandoned.safetensors");
        using (var builder = new SafetensorsFileBuilder(abandoned, [("x", SafetensorsDType.F32, [1])]))
            builder.Write<float>("x", 0, [1f]);
        Assert.False(File.Exists(abandoned));
        Assert.DoesNotContain(Directory.GetFiles(_folder), f => f.Contains("abandoned", StringComparison.Ordinal));
    }
}
