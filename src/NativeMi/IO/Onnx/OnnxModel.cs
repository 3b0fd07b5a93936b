namespace NativeMi.IO.Onnx;

/// <summary>ONNX <c>AttributeProto.AttributeType</c> values.</summary>
internal enum OnnxAttributeType
{
    /// <summary>Not set (older writers omit the type; the reader then infers it from the value present).</summary>
    Undefined = 0,
    /// <summary>One float.</summary>
    Float = 1,
    /// <summary>One int64.</summary>
    Int = 2,
    /// <summary>One byte string.</summary>
    String = 3,
    /// <summary>One tensor.</summary>
    Tensor = 4,
    /// <summary>A subgraph.</summary>
    Graph = 5,
    /// <summary>Floats.</summary>
    Floats = 6,
    /// <summary>Int64s.</summary>
    Ints = 7,
    /// <summary>Byte strings.</summary>
    Strings = 8,
    /// <summary>Tensors.</summary>
    Tensors = 9,
    /// <summary>Subgraphs.</summary>
    Graphs = 10,
    /// <summary>A sparse tensor.</summary>
    SparseTensor = 11,
    /// <summary>Sparse tensors.</summary>
    SparseTensors = 12,
    /// <summary>A type proto.</summary>
    TypeProto = 13,
    /// <summary>Type protos.</summary>
    TypeProtos = 14,
}

/// <summary>One node attribute. Only the value kinds a BERT export uses are decoded; subgraphs are skipped.</summary>
internal sealed class OnnxAttribute
{
    internal OnnxAttribute(string name, OnnxAttributeType type, float floatValue, long intValue, ReadOnlyMemory<byte> stringValue,
        OnnxTensor? tensor, IReadOnlyList<float> floats, IReadOnlyList<long> ints, IReadOnlyList<ReadOnlyMemory<byte>> strings)
    {
        Name = name;
        Type = type;
        Float = floatValue;
        Int = intValue;
        String = stringValue;
        Tensor = tensor;
        Floats = floats;
        Ints = ints;
        Strings = strings;
    }

    /// <summary>Attribute name.</summary>
    public string Name { get; }

    /// <summary>The declared (or inferred) value kind.</summary>
    public OnnxAttributeType Type { get; }

    /// <summary>The float value (0 when absent).</summary>
    public float Float { get; }

    /// <summary>The int value (0 when absent).</summary>
    public long Int { get; }

    /// <summary>The string value's bytes (empty when absent).</summary>
    public ReadOnlyMemory<byte> String { get; }

    /// <summary>The tensor value, or null.</summary>
    public OnnxTensor? Tensor { get; }

    /// <summary>The floats value.</summary>
    public IReadOnlyList<float> Floats { get; }

    /// <summary>The ints value.</summary>
    public IReadOnlyList<long> Ints { get; }

    /// <summary>The strings value.</summary>
    public IReadOnlyList<ReadOnlyMemory<byte>> Strings { get; }
}

/// <summary>One graph node.</summary>
internal sealed class OnnxNode
{
    internal OnnxNode(int index, string name, string opType, string domain, IReadOnlyList<string> inputs,
        IReadOnlyList<string> outputs, IReadOnlyDictionary<string, OnnxAttribute> attributes)
    {
        Index = index;
        Name = name;
        OpType = opType;
        Domain = domain;
        Inputs = inputs;
        Outputs = outputs;
        Attributes = attributes;
    }

    /// <summary>Position in the graph's node list.</summary>
    public int Index { get; }

    /// <summary>Node name (may be empty).</summary>
    public string Name { get; }

    /// <summary>Operator, e.g. "MatMul".</summary>
    public string OpType { get; }

    /// <summary>Operator domain; empty for the default ONNX domain.</summary>
    public string Domain { get; }

    /// <summary>Input value names; an empty string marks an omitted optional input.</summary>
    public IReadOnlyList<string> Inputs { get; }

    /// <summary>Output value names.</summary>
    public IReadOnlyList<string> Outputs { get; }

    /// <summary>Attributes by name.</summary>
    public IReadOnlyDictionary<string, OnnxAttribute> Attributes { get; }

    /// <summary>A readable identification for error messages.</summary>
    public string Describe() => $"{OpType} node {(Name.Length > 0 ? $"'{Name}'" : $"#{Index}")}";
}

/// <summary>One dimension of a declared shape: a fixed size, a symbolic name, or unknown.</summary>
/// <param name="Value">The fixed size, or null.</param>
/// <param name="Parameter">The symbolic name, or null.</param>
internal sealed record OnnxDimension(long? Value, string? Parameter)
{
    /// <inheritdoc />
    public override string ToString() => Value?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? Parameter ?? "?";
}

/// <summary>A graph input or output declaration.</summary>
/// <param name="Name">Value name.</param>
/// <param name="ElementType">Tensor element type, or Undefined when the declaration has no tensor type.</param>
/// <param name="Shape">Declared dimensions, or null when no shape is declared.</param>
internal sealed record OnnxValueInfo(string Name, OnnxDataType ElementType, IReadOnlyList<OnnxDimension>? Shape);

/// <summary>An ONNX graph: nodes in file order, initializers, inputs and outputs, with lookups by value name.</summary>
internal sealed class OnnxGraph
{
    private readonly Dictionary<string, OnnxTensor> _initializers;
    private readonly Dictionary<string, OnnxNode> _producers;
    private readonly Dictionary<string, List<OnnxNode>> _consumers;

    internal OnnxGraph(string filePath, string name, IReadOnlyList<OnnxNode> nodes, IReadOnlyList<OnnxTensor> initializers,
        IReadOnlyList<OnnxValueInfo> inputs, IReadOnlyList<OnnxValueInfo> outputs)
    {
        FilePath = filePath;
        Name = name;
        Nodes = nodes;
        InitializerList = initializers;
        Inputs = inputs;
        Outputs = outputs;
        _initializers = new Dictionary<string, OnnxTensor>(StringComparer.Ordinal);
        foreach (OnnxTensor tensor in initializers)
        {
            if (tensor.Name.Length == 0) throw new ModelFormatException(filePath, "graph has an initializer without a name");
            if (!_initializers.TryAdd(tensor.Name, tensor))
                throw new ModelFormatException(filePath, $"graph has two initializers named '{tensor.Name}'");
        }
        _producers = new Dictionary<string, OnnxNode>(StringComparer.Ordinal);
        _consumers = new Dictionary<string, List<OnnxNode>>(StringComparer.Ordinal);
        foreach (OnnxNode node in nodes)
        {
            foreach (string output in node.Outputs)
            {
                if (output.Length == 0) continue;
                if (!_producers.TryAdd(output, node))
                    throw new ModelFormatException(filePath, $"value '{output}' is produced twice ({_producers[output].Describe()} and {node.Describe()})");
            }
            foreach (string input in node.Inputs)
            {
                if (input.Length == 0) continue;
                if (!_consumers.TryGetValue(input, out List<OnnxNode>? list)) _consumers[input] = list = [];
                if (!list.Contains(node)) list.Add(node);
            }
        }
    }

    /// <summary>The model file this graph was read from.</summary>
    public string FilePath { get; }

    /// <summary>Graph name.</summary>
    public string Name { get; }

    /// <summary>Nodes in file order (ONNX requires topological order).</summary>
    public IReadOnlyList<OnnxNode> Nodes { get; }

    /// <summary>Initializers in file order.</summary>
    public IReadOnlyList<OnnxTensor> InitializerList { get; }

    /// <summary>Initializers by name.</summary>
    public IReadOnlyDictionary<string, OnnxTensor> Initializers => _initializers;

    /// <summary>Declared graph inputs (may include initializers in old IR versions).</summary>
    public IReadOnlyList<OnnxValueInfo> Inputs { get; }

    /// <summary>Declared graph outputs.</summary>
    public IReadOnlyList<OnnxValueInfo> Outputs { get; }

    /// <summary>The node that produces <paramref name="valueName"/>, or null for inputs and initializers.</summary>
    public OnnxNode? ProducerOf(string valueName) => _producers.GetValueOrDefault(valueName);

    /// <summary>The nodes that read <paramref name="valueName"/>, in file order.</summary>
    public IReadOnlyList<OnnxNode> ConsumersOf(string valueName) =>
        _consumers.TryGetValue(valueName, out List<OnnxNode>? list) ? list : [];

    /// <summary>
    /// The constant value of <paramref name="valueName"/> when it is an initializer or the output of a
    /// Constant node; null otherwise.
    /// </summary>
    public OnnxTensor? TryGetConstant(string valueName)
    {
        if (_initializers.TryGetValue(valueName, out OnnxTensor? tensor)) return tensor;
        OnnxNode? producer = ProducerOf(valueName);
        if (producer is { OpType: "Constant", Domain: "" or "ai.onnx" } && producer.Attributes.TryGetValue("value", out OnnxAttribute? value))
            return value.Tensor;
        return null;
    }
}

/// <summary>An opset a model imports.</summary>
/// <param name="Domain">Operator domain; empty for the default ONNX domain.</param>
/// <param name="Version">Opset version.</param>
internal sealed record OnnxOpsetImport(string Domain, long Version);

/// <summary>
/// An ONNX model read with <see cref="OnnxReader"/>. Tensor data refers to <see cref="Bytes"/>,
/// which stays in memory as long as the model does.
/// </summary>
internal sealed class OnnxModel
{
    internal OnnxModel(string filePath, ReadOnlyMemory<byte> bytes, long irVersion, string producerName, string producerVersion,
        IReadOnlyList<OnnxOpsetImport> opsetImports, OnnxGraph graph)
    {
        FilePath = filePath;
        Bytes = bytes;
        IrVersion = irVersion;
        ProducerName = producerName;
        ProducerVersion = producerVersion;
        OpsetImports = opsetImports;
        Graph = graph;
    }

    /// <summary>The file the model was read from.</summary>
    public string FilePath { get; }

    /// <summary>The whole encoded model.</summary>
    public ReadOnlyMemory<byte> Bytes { get; }

    /// <summary>ONNX IR version.</summary>
    public long IrVersion { get; }

    /// <summary>The exporter's name, e.g. "pytorch".</summary>
    public string ProducerName { get; }

    /// <summary>The exporter's version.</summary>
    public string ProducerVersion { get; }

    /// <summary>Imported opsets.</summary>
    public IReadOnlyList<OnnxOpsetImport> OpsetImports { get; }

    /// <summary>The main graph.</summary>
    public OnnxGraph Graph { get; }
}
