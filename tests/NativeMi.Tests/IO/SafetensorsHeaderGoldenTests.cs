using System.Buffers.Binary;
using NativeMi.IO;
using Xunit;

namespace NativeMi.Tests.IO;

/// <summary>The safetensors header byte for byte against goldens written by the hand-written header writer it had before.</summary>
public class SafetensorsHeaderGoldenTests
{
    private static byte[] Header(IReadOnlyList<SafetensorsEntry> entries, IReadOnlyDictionary<string, string>? metadata)
    {
        byte[] file = SafetensorsWriter.ToBytes(entries, metadata);
        int length = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(file));
        byte[] header = file.AsSpan(8, length).ToArray();
        // The layout-only header (tensors filled later) is the same bytes.
        var placeholders = entries.Select(e => e with { Data = ReadOnlyMemory<byte>.Empty }).ToArray();
        Assert.Equal(header, SafetensorsWriter.BuildHeaderForLayout(placeholders, metadata));
        return header;
    }

    private static SafetensorsEntry Zeros(string name, SafetensorsDType dtype, params long[] shape) =>
        new(name, dtype, shape, new byte[shape.Aggregate(1L, (a, d) => a * d) * SafetensorsDTypes.SizeOf(dtype)]);

    [Fact]
    public void EveryDtypeShapeAndAwkwardNameIsWrittenAsBefore()
    {
        SafetensorsDType[] dtypes = Enum.GetValues<SafetensorsDType>();
        var entries = dtypes.Select((d, i) => Zeros($"t{i}.{SafetensorsDTypes.ToName(d)}", d, i % 3 == 0 ? [] : [2, i])).ToList();
        entries.Add(Zeros("encoder.layer.0.attention.self.query.weight", SafetensorsDType.F32, 4, 3));
        entries.Add(Zeros("empty", SafetensorsDType.F32, 0, 4));
        entries.Add(Zeros("näme <with> \"quotes\" & 'apostrophes' + 😀", SafetensorsDType.I64, 1));
        var metadata = new Dictionary<string, string> { ["nativemi"] = "finetune", ["format"] = "pt", ["Zeta"] = "é <x> + 'y'", ["a"] = "" };
        GoldenJson.AssertMatches("safetensors-header-full.json", Header(entries, metadata));
    }

    [Fact]
    public void HeadersWithoutMetadataOrTensorsAreWrittenAsBefore()
    {
        GoldenJson.AssertMatches("safetensors-header-no-metadata.json", Header([Zeros("x", SafetensorsDType.F32, 1)], null));
        // Empty metadata is left out like none.
        Assert.Equal(Header([Zeros("x", SafetensorsDType.F32, 1)], null), Header([Zeros("x", SafetensorsDType.F32, 1)], new Dictionary<string, string>()));
        GoldenJson.AssertMatches("safetensors-header-metadata-only.json", Header([], new Dictionary<string, string> { ["format"] = "pt" }));
        GoldenJson.AssertMatches("safetensors-header-empty.json", Header([], null));
    }

    [Fact]
    public void OffsetsBeyondFourGigabytesAreWrittenAsBefore()
    {
        // Layout only: a header for tensors larger than an int can count, filled later.
        SafetensorsEntry[] entries = [new("big", SafetensorsDType.F32, [3, 1L << 30], ReadOnlyMemory<byte>.Empty), new("after", SafetensorsDType.F64, [2], ReadOnlyMemory<byte>.Empty)];
        GoldenJson.AssertMatches("safetensors-header-large.json", SafetensorsWriter.BuildHeaderForLayout(entries, null));
    }
}
