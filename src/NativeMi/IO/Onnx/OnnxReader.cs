using System.Globalization;

namespace NativeMi.IO.Onnx;

/// <summary>
/// Reads ONNX model files (ModelProto) without a protobuf library. The file is untrusted: anything
/// malformed raises <see cref="ModelFormatException"/> naming the file and the problem. Tensors
/// stored outside the file (external data) and sparse initializers are rejected with a message
/// saying so, since the models this reader serves keep everything in one file.
/// </summary>
internal static class OnnxReader
{
    /// <summary>Protobuf's hard limit on a message, which is also the most a single ONNX file can hold.</summary>
    public const long MaxModelBytes = int.MaxValue;

    // Field numbers from onnx.proto (ModelProto, GraphProto, NodeProto, ...).
    internal const int ModelIrVersion = 1, ModelProducerName = 2, ModelProducerVersion = 3, ModelGraph = 7, ModelOpsetImport = 8;
    internal const int GraphNode = 1, GraphName = 2, GraphInitializer = 5, GraphInput = 11, GraphOutput = 12, GraphSparseInitializer = 15;
    internal const int ValueInfoName = 1, ValueInfoType = 2;
    internal const int TypeTensorType = 1, TensorTypeElemType = 1, TensorTypeShape = 2, ShapeDim = 1, DimValue = 1, DimParam = 2;

    /// <summary>Reads and parses <paramref name="path"/>.</summary>
    /// <exception cref="ModelFormatException">The file is not a well-formed ONNX model.</exception>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    public static OnnxModel Load(string path)
    {
        string fullPath = Path.GetFullPath(path);
        if (!File.Exists(fullPath)) throw new FileNotFoundException($"{fullPath}: ONNX model not found", fullPath);
        long length = new FileInfo(fullPath).Length;
        if (length > MaxModelBytes)
            throw new ModelFormatException(fullPath, $"file is {length} bytes; an ONNX file holds at most {MaxModelBytes} (larger models keep weights as external data, which is not supported)");
        return Parse(fullPath, File.ReadAllBytes(fullPath));
    }

    /// <summary>Parses an encoded ModelProto held in memory.</summary>
    /// <param name="filePath">Name used in error messages.</param>
    /// <param name="bytes">The encoded model; tensors keep referring to it.</param>
    public static OnnxModel Parse(string filePath, ReadOnlyMemory<byte> bytes)
    {
        if (bytes.Length == 0) throw new ModelFormatException(filePath, "file is empty; expected an ONNX ModelProto");
        var reader = new ProtoReader(filePath, bytes, "ModelProto");
        long irVersion = 0;
        string producerName = "", producerVersion = "";
        var opsets = new List<OnnxOpsetImport>();
        ProtoReader? graphReader = null;
        while (reader.TryReadTag(out int field, out ProtoWireType wire))
        {
            switch (field)
            {
                case ModelIrVersion:
                    reader.ExpectWireType(wire, ProtoWireType.Varint, "ir_version");
                    irVersion = reader.ReadInt64();
                    break;
                case ModelProducerName:
                    reader.ExpectWireType(wire, ProtoWireType.LengthDelimited, "producer_name");
                    producerName = reader.ReadString();
                    break;
                case ModelProducerVersion:
                    reader.ExpectWireType(wire, ProtoWireType.LengthDelimited, "producer_version");
                    producerVersion = reader.ReadString();
                    break;
                case ModelOpsetImport:
                    reader.ExpectWireType(wire, ProtoWireType.LengthDelimited, "opset_import");
                    opsets.Add(ReadOpset(reader.ReadMessage($"opset_import[{opsets.Count}]")));
                    break;
                case ModelGraph:
                    reader.ExpectWireType(wire, ProtoWireType.LengthDelimited, "graph");
                    if (graphReader is not null) throw reader.Error("field 'graph' appears twice");
                    graphReader = reader.ReadMessage("graph");
                    break;
                default:
                    reader.Skip(wire);
                    break;
            }
        }
        if (graphReader is null)
            throw new ModelFormatException(filePath, "not an ONNX model: ModelProto has no graph (the file may be truncated or of another format)");
        if (irVersion <= 0)
            throw new ModelFormatException(filePath, $"not an ONNX model: ir_version is {irVersion}; expected a positive version");
        OnnxGraph graph = ReadGraph(graphReader.Value);
        return new OnnxModel(filePath, bytes, irVersion, producerName, producerVersion, opsets, graph);
    }

    private static OnnxOpsetImport ReadOpset(ProtoReader reader)
    {
        string domain = "";
        long version = 0;
        while (reader.TryReadTag(out int field, out ProtoWireType wire))
        {
            if (field == 1 && wire == ProtoWireType.LengthDelimited) domain = reader.ReadString();
            else if (field == 2 && wire == ProtoWireType.Varint) version = reader.ReadInt64();
            else reader.Skip(wire);
        }
        return new OnnxOpsetImport(domain, version);
    }

    private static OnnxGraph ReadGraph(ProtoReader reader)
    {
        string name = "";
        var nodes = new List<OnnxNode>();
        var initializers = new List<OnnxTensor>();
        var inputs = new List<OnnxValueInfo>();
        var outputs = new List<OnnxValueInfo>();
        while (reader.TryReadTag(out int field, out ProtoWireType wire))
        {
            switch (field)
            {
                case GraphNode:
                    reader.ExpectWireType(wire, ProtoWireType.LengthDelimited, "node");
                    nodes.Add(ReadNode(reader.ReadMessage($"node[{nodes.Count}]"), nodes.Count));
                    break;
                case GraphName:
                    reader.ExpectWireType(wire, ProtoWireType.LengthDelimited, "name");
                    name = reader.ReadString();
                    break;
                case GraphInitializer:
                    reader.ExpectWireType(wire, ProtoWireType.LengthDelimited, "initializer");
                    initializers.Add(ReadTensor(reader.ReadMessage($"initializer[{initializers.Count}]")));
                    break;
                case GraphInput:
                    reader.ExpectWireType(wire, ProtoWireType.LengthDelimited, "input");
                    inputs.Add(ReadValueInfo(reader.ReadMessage($"input[{inputs.Count}]")));
                    break;
                case GraphOutput:
                    reader.ExpectWireType(wire, ProtoWireType.LengthDelimited, "output");
                    outputs.Add(ReadValueInfo(reader.ReadMessage($"output[{outputs.Count}]")));
                    break;
                case GraphSparseInitializer:
                    throw reader.Error("the graph has sparse initializers, which are not supported");
                default:
                    reader.Skip(wire);
                    break;
            }
        }
        return new OnnxGraph(reader.FilePath, name, nodes, initializers, inputs, outputs);
    }

    private static OnnxNode ReadNode(ProtoReader reader, int index)
    {
        var inputs = new List<string>();
        var outputs = new List<string>();
        string name = "", opType = "", domain = "";
        var attributes = new Dictionary<string, OnnxAttribute>(StringComparer.Ordinal);
        while (reader.TryReadTag(out int field, out ProtoWireType wire))
        {
            switch (field)
            {
                case 1:
                    reader.ExpectWireType(wire, ProtoWireType.LengthDelimited, "input");
                    inputs.Add(reader.ReadString());
                    break;
                case 2:
                    reader.ExpectWireType(wire, ProtoWireType.LengthDelimited, "output");
                    outputs.Add(reader.ReadString());
                    break;
                case 3:
                    reader.ExpectWireType(wire, ProtoWireType.LengthDelimited, "name");
                    name = reader.ReadString();
                    break;
                case 4:
                    reader.ExpectWireType(wire, ProtoWireType.LengthDelimited, "op_type");
                    opType = reader.ReadString();
                    break;
                case 5:
                    reader.ExpectWireType(wire, ProtoWireType.LengthDelimited, "attribute");
                    OnnxAttribute attribute = ReadAttribute(reader.ReadMessage($"attribute[{attributes.Count}]"));
                    if (!attributes.TryAdd(attribute.Name, attribute))
                        throw reader.Error($"attribute '{attribute.Name}' appears twice");
                    break;
                case 7:
                    reader.ExpectWireType(wire, ProtoWireType.LengthDelimited, "domain");
                    domain = reader.ReadString();
                    break;
                default:
                    reader.Skip(wire);
                    break;
            }
        }
        if (opType.Length == 0) throw reader.Error("node has no op_type");
        // Every operator produces at least one value; the analysis follows outputs[0] of each node.
        if (outputs.Count == 0) throw reader.Error($"node '{name}' ({opType}) has no outputs");
        return new OnnxNode(index, name, opType, domain, inputs, outputs, attributes);
    }

    private static OnnxAttribute ReadAttribute(ProtoReader reader)
    {
        string name = "";
        var type = OnnxAttributeType.Undefined;
        float f = 0;
        long i = 0;
        ReadOnlyMemory<byte> s = default;
        OnnxTensor? t = null;
        var floats = new List<float>();
        var ints = new List<long>();
        var strings = new List<ReadOnlyMemory<byte>>();
        var inferred = OnnxAttributeType.Undefined;
        while (reader.TryReadTag(out int field, out ProtoWireType wire))
        {
            switch (field)
            {
                case 1:
                    reader.ExpectWireType(wire, ProtoWireType.LengthDelimited, "name");
                    name = reader.ReadString();
                    break;
                case 20:
                    reader.ExpectWireType(wire, ProtoWireType.Varint, "type");
                    type = (OnnxAttributeType)reader.ReadInt32();
                    break;
                case 2:
                    reader.ExpectWireType(wire, ProtoWireType.Fixed32, "f");
                    f = reader.ReadFloat();
                    inferred = OnnxAttributeType.Float;
                    break;
                case 3:
                    reader.ExpectWireType(wire, ProtoWireType.Varint, "i");
                    i = reader.ReadInt64();
                    inferred = OnnxAttributeType.Int;
                    break;
                case 4:
                    reader.ExpectWireType(wire, ProtoWireType.LengthDelimited, "s");
                    s = reader.ReadBytes();
                    inferred = OnnxAttributeType.String;
                    break;
                case 5:
                    reader.ExpectWireType(wire, ProtoWireType.LengthDelimited, "t");
                    t = ReadTensor(reader.ReadMessage("t"));
                    inferred = OnnxAttributeType.Tensor;
                    break;
                case 7:
                    reader.ReadRepeatedFloat(wire, "floats", floats);
                    inferred = OnnxAttributeType.Floats;
                    break;
                case 8:
                    reader.ReadRepeatedInt64(wire, "ints", ints);
                    inferred = OnnxAttributeType.Ints;
                    break;
                case 9:
                    reader.ExpectWireType(wire, ProtoWireType.LengthDelimited, "strings");
                    strings.Add(reader.ReadBytes());
                    inferred = OnnxAttributeType.Strings;
                    break;
                default:
                    // Subgraphs, sparse tensors and type protos are not needed by the BERT importer.
                    reader.Skip(wire);
                    break;
            }
        }
        if (name.Length == 0) throw reader.Error("attribute has no name");
        return new OnnxAttribute(name, type == OnnxAttributeType.Undefined ? inferred : type, f, i, s, t, floats, ints, strings);
    }

    internal static OnnxTensor ReadTensor(ProtoReader reader)
    {
        var dims = new List<long>();
        int dataType = 0;
        string name = "";
        ReadOnlyMemory<byte> raw = default;
        bool hasRaw = false;
        List<float>? floatData = null;
        List<long>? int64Data = null;
        List<long>? int32Data = null;
        List<double>? doubleData = null;
        bool external = false;
        while (reader.TryReadTag(out int field, out ProtoWireType wire))
        {
            switch (field)
            {
                case 1: reader.ReadRepeatedInt64(wire, "dims", dims); break;
                case 2:
                    reader.ExpectWireType(wire, ProtoWireType.Varint, "data_type");
                    dataType = reader.ReadInt32();
                    break;
                case 3: throw reader.Error("tensor uses segments (field 'segment'), which are not supported");
                case 4: reader.ReadRepeatedFloat(wire, "float_data", floatData ??= []); break;
                case 5: reader.ReadRepeatedInt64(wire, "int32_data", int32Data ??= []); break;
                case 7: reader.ReadRepeatedInt64(wire, "int64_data", int64Data ??= []); break;
                case 8:
                    reader.ExpectWireType(wire, ProtoWireType.LengthDelimited, "name");
                    name = reader.ReadString();
                    break;
                case 9:
                    reader.ExpectWireType(wire, ProtoWireType.LengthDelimited, "raw_data");
                    raw = reader.ReadBytes();
                    hasRaw = true;
                    break;
                case 10: reader.ReadRepeatedDouble(wire, "double_data", doubleData ??= []); break;
                case 13:
                    reader.Skip(wire);
                    external = true;
                    break;
                case 14:
                    reader.ExpectWireType(wire, ProtoWireType.Varint, "data_location");
                    if (reader.ReadInt64() == 1) external = true;
                    break;
                default:
                    reader.Skip(wire);
                    break;
            }
        }
        string label = name.Length > 0 ? name : reader.Context;
        if (external)
            throw new ModelFormatException(reader.FilePath,
                $"tensor '{label}' keeps its data in an external file; external data is not supported (export the model with all weights inside the .onnx file)");
        if (!Enum.IsDefined((OnnxDataType)dataType) || dataType == 0)
            throw new ModelFormatException(reader.FilePath, $"tensor '{label}' has unknown data_type {dataType.ToString(CultureInfo.InvariantCulture)}");
        int[]? int32Array = null;
        if (int32Data is not null)
        {
            int32Array = new int[int32Data.Count];
            for (int k = 0; k < int32Array.Length; k++)
            {
                long v = int32Data[k];
                if (v < int.MinValue || v > int.MaxValue)
                    throw new ModelFormatException(reader.FilePath, $"tensor '{label}' int32_data value {v} is out of range");
                int32Array[k] = (int)v;
            }
        }
        return new OnnxTensor(reader.FilePath, name, (OnnxDataType)dataType, dims.ToArray(), raw, hasRaw,
            floatData?.ToArray(), int64Data?.ToArray(), int32Array, doubleData?.ToArray());
    }

    private static OnnxValueInfo ReadValueInfo(ProtoReader reader)
    {
        string name = "";
        var elementType = OnnxDataType.Undefined;
        List<OnnxDimension>? shape = null;
        while (reader.TryReadTag(out int field, out ProtoWireType wire))
        {
            if (field == ValueInfoName && wire == ProtoWireType.LengthDelimited) name = reader.ReadString();
            else if (field == ValueInfoType && wire == ProtoWireType.LengthDelimited)
            {
                ProtoReader type = reader.ReadMessage("type");
                while (type.TryReadTag(out int typeField, out ProtoWireType typeWire))
                {
                    if (typeField != TypeTensorType || typeWire != ProtoWireType.LengthDelimited)
                    {
                        type.Skip(typeWire);
                        continue;
                    }
                    ProtoReader tensorType = type.ReadMessage("tensor_type");
                    while (tensorType.TryReadTag(out int ttField, out ProtoWireType ttWire))
                    {
                        if (ttField == TensorTypeElemType && ttWire == ProtoWireType.Varint)
                            elementType = (OnnxDataType)tensorType.ReadInt32();
                        else if (ttField == TensorTypeShape && ttWire == ProtoWireType.LengthDelimited)
                            shape = ReadShape(tensorType.ReadMessage("shape"));
                        else tensorType.Skip(ttWire);
                    }
                }
            }
            else reader.Skip(wire);
        }
        if (name.Length == 0) throw reader.Error("value info has no name");
        return new OnnxValueInfo(name, elementType, shape);
    }

    private static List<OnnxDimension> ReadShape(ProtoReader reader)
    {
        var dims = new List<OnnxDimension>();
        while (reader.TryReadTag(out int field, out ProtoWireType wire))
        {
            if (field != ShapeDim || wire != ProtoWireType.LengthDelimited)
            {
                reader.Skip(wire);
                continue;
            }
            ProtoReader dim = reader.ReadMessage($"dim[{dims.Count}]");
            long? value = null;
            string? parameter = null;
            while (dim.TryReadTag(out int dimField, out ProtoWireType dimWire))
            {
                if (dimField == DimValue && dimWire == ProtoWireType.Varint) value = dim.ReadInt64();
                else if (dimField == DimParam && dimWire == ProtoWireType.LengthDelimited) parameter = dim.ReadString();
                else dim.Skip(dimWire);
            }
            dims.Add(new OnnxDimension(value, parameter));
        }
        return dims;
    }
}
