namespace NativeMi.IO.Onnx;

/// <summary>Small edits to an encoded ONNX model that leave every other byte as it was.</summary>
internal static class OnnxGraphEditor
{
    /// <summary>
    /// Returns a copy of the model whose graph also declares <paramref name="valueNames"/> as outputs
    /// (so a runtime returns those intermediate tensors). The new outputs follow the existing ones, in
    /// the order given; names already declared as outputs are not repeated.
    /// </summary>
    /// <param name="filePath">Name used in error messages.</param>
    /// <param name="model">The encoded ModelProto.</param>
    /// <param name="valueNames">Values produced inside the graph.</param>
    /// <param name="elementType">Element type declared for the new outputs.</param>
    public static byte[] AddGraphOutputs(string filePath, ReadOnlyMemory<byte> model, IReadOnlyList<string> valueNames,
        OnnxDataType elementType = OnnxDataType.Float)
    {
        ArgumentNullException.ThrowIfNull(valueNames);
        // Parsing validates the whole model and tells which names exist and which are already outputs.
        OnnxGraph graph = OnnxReader.Parse(filePath, model).Graph;
        var declared = new HashSet<string>(graph.Outputs.Select(o => o.Name), StringComparer.Ordinal);
        var additions = new List<string>();
        foreach (string name in valueNames)
        {
            if (graph.ProducerOf(name) is null)
                throw new ModelFormatException(filePath, $"cannot expose '{name}' as a graph output: no node produces it");
            if (declared.Add(name)) additions.Add(name);
        }

        using var output = new MemoryStream(model.Length + 1024);
        var reader = new ProtoReader(filePath, model, "ModelProto");
        while (true)
        {
            long fieldStart = reader.FileOffset;
            if (!reader.TryReadTag(out int field, out ProtoWireType wire)) break;
            if (field != OnnxReader.ModelGraph)
            {
                reader.Skip(wire);
                output.Write(model.Span[(int)fieldStart..(int)reader.FileOffset]);
                continue;
            }
            // Repeated fields may be appended anywhere in a message, so the new outputs go after the
            // graph's existing bytes; only the graph's own length prefix changes.
            ReadOnlyMemory<byte> graphBytes = reader.ReadBytes();
            using var graphStream = new MemoryStream(graphBytes.Length + 256 * additions.Count);
            graphStream.Write(graphBytes.Span);
            foreach (string name in additions) ProtoWriter.WriteBytesField(graphStream, OnnxReader.GraphOutput, EncodeValueInfo(name, elementType));
            ProtoWriter.WriteBytesField(output, OnnxReader.ModelGraph, graphStream.GetBuffer().AsSpan(0, (int)graphStream.Length));
        }
        return output.ToArray();
    }

    private static byte[] EncodeValueInfo(string name, OnnxDataType elementType)
    {
        using var tensorType = new MemoryStream();
        ProtoWriter.WriteVarintField(tensorType, OnnxReader.TensorTypeElemType, (ulong)elementType);
        using var type = new MemoryStream();
        ProtoWriter.WriteBytesField(type, OnnxReader.TypeTensorType, tensorType.ToArray());
        using var valueInfo = new MemoryStream();
        ProtoWriter.WriteStringField(valueInfo, OnnxReader.ValueInfoName, name);
        ProtoWriter.WriteBytesField(valueInfo, OnnxReader.ValueInfoType, type.ToArray());
        return valueInfo.ToArray();
    }
}
