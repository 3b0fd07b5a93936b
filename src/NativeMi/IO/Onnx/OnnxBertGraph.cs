using System.Globalization;
using System.Text.RegularExpressions;

namespace NativeMi.IO.Onnx;

/// <summary>One Hugging Face BertModel tensor and the ONNX initializer that holds its values.</summary>
/// <param name="HfName">The Hugging Face state-dict name, e.g. "encoder.layer.0.attention.self.query.weight".</param>
/// <param name="OnnxName">The ONNX initializer name, e.g. "onnx::MatMul_788".</param>
/// <param name="Transposed">True when the ONNX initializer is stored [in, out] and must be transposed to HF's [out, in].</param>
/// <param name="HfShape">The shape in Hugging Face layout.</param>
internal sealed record OnnxBertTensor(string HfName, string OnnxName, bool Transposed, IReadOnlyList<long> HfShape);

/// <summary>
/// What an ONNX export of a Hugging Face BertModel contains, recovered by walking its graph: the
/// hyper-parameters, the ONNX initializer behind every HF tensor (MatMul weights are unnamed in
/// exports, so they are found as the MatMul feeding the Add of the named bias), and the graph
/// values that hold the hidden state after the embeddings and after each layer.
/// </summary>
internal sealed class OnnxBertGraph
{
    private OnnxBertGraph(string filePath) => FilePath = filePath;

    /// <summary>The model file analysed.</summary>
    public string FilePath { get; }

    /// <summary>Rows of the word embedding table.</summary>
    public int VocabSize { get; private set; }

    /// <summary>Width of the hidden state.</summary>
    public int HiddenSize { get; private set; }

    /// <summary>Number of encoder layers.</summary>
    public int NumHiddenLayers { get; private set; }

    /// <summary>Attention heads per layer, read from the attention Reshape shape constants.</summary>
    public int NumAttentionHeads { get; private set; }

    /// <summary>Width of the feed-forward layer.</summary>
    public int IntermediateSize { get; private set; }

    /// <summary>Rows of the position embedding table.</summary>
    public int MaxPositionEmbeddings { get; private set; }

    /// <summary>Rows of the token type embedding table.</summary>
    public int TypeVocabSize { get; private set; }

    /// <summary>LayerNorm epsilon, as the float the graph uses, widened to its shortest decimal.</summary>
    public double LayerNormEps { get; private set; }

    /// <summary>The Hugging Face activation name ("gelu" for the exact, Erf-based GELU).</summary>
    public string HiddenAct { get; private set; } = "";

    /// <summary>True when the export carries the pooler (dense + tanh on the first token).</summary>
    public bool HasPooler { get; private set; }

    /// <summary>Every HF tensor found, embeddings first, then layer by layer, then the pooler.</summary>
    public IReadOnlyList<OnnxBertTensor> Tensors { get; private set; } = [];

    /// <summary>
    /// Graph values holding the hidden state [batch, sequence, hidden]: index 0 is the embedding
    /// LayerNorm output, index i the output of encoder layer i-1 (its final LayerNorm).
    /// </summary>
    public IReadOnlyList<string> HiddenStateValueNames { get; private set; } = [];

    /// <summary>How the head count was found, for the import record.</summary>
    public string HeadsEvidence { get; private set; } = "";

    /// <summary>How the LayerNorm epsilon was found, for the import record.</summary>
    public string EpsEvidence { get; private set; } = "";

    /// <summary>The sub-modules of an encoder layer that are Linear layers, in HF order.</summary>
    public static readonly IReadOnlyList<string> LayerLinears =
        ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense", "intermediate.dense", "output.dense"];

    /// <summary>The sub-modules of an encoder layer that are LayerNorms, in HF order.</summary>
    public static readonly IReadOnlyList<string> LayerNorms = ["attention.output.LayerNorm", "output.LayerNorm"];

    /// <summary>Analyses <paramref name="model"/>; raises <see cref="ModelFormatException"/> when it is not a BERT export this understands.</summary>
    public static OnnxBertGraph Analyze(OnnxModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var result = new OnnxBertGraph(model.FilePath);
        result.Run(model.Graph);
        return result;
    }

    private OnnxGraph _graph = null!;
    private readonly List<OnnxBertTensor> _tensors = [];
    private readonly HashSet<string> _usedInitializers = new(StringComparer.Ordinal);
    private readonly List<(string Where, float Eps)> _epsilons = [];

    private ModelFormatException Fail(string problem) => new(FilePath, $"not a BERT export this importer understands: {problem}");

    private void Run(OnnxGraph graph)
    {
        _graph = graph;
        OnnxTensor word = RequireNamed("embeddings.word_embeddings.weight", rank: 2);
        VocabSize = ToInt(word.Dims[0], word.Name);
        HiddenSize = ToInt(word.Dims[1], word.Name);
        OnnxTensor position = RequireNamed("embeddings.position_embeddings.weight", HiddenSize);
        MaxPositionEmbeddings = ToInt(position.Dims[0], position.Name);
        OnnxTensor tokenType = RequireNamed("embeddings.token_type_embeddings.weight", HiddenSize);
        TypeVocabSize = ToInt(tokenType.Dims[0], tokenType.Name);
        AddNamed(word);
        AddNamed(position);
        AddNamed(tokenType);

        var hiddenStates = new List<string> { LayerNorm("embeddings.LayerNorm") };

        NumHiddenLayers = CountLayers();
        var heads = new List<(string Where, int Heads)>();
        for (int layer = 0; layer < NumHiddenLayers; layer++)
        {
            string prefix = $"encoder.layer.{layer}.";
            var outputs = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (string linear in LayerLinears)
            {
                long expectedOut = linear == "intermediate.dense" ? (IntermediateSize > 0 ? IntermediateSize : -1) : HiddenSize;
                long expectedIn = linear == "output.dense" ? (IntermediateSize > 0 ? IntermediateSize : -1) : HiddenSize;
                (string output, long outFeatures) = Linear(prefix + linear, expectedOut, expectedIn);
                if (linear == "intermediate.dense" && IntermediateSize == 0) IntermediateSize = ToInt(outFeatures, prefix + linear);
                outputs[linear] = output;
            }
            foreach (string projection in (string[])["attention.self.query", "attention.self.key", "attention.self.value"])
                heads.Add((prefix + projection, HeadsFromReshape(prefix + projection, outputs[projection])));
            CheckActivation(prefix + "intermediate.dense", outputs["intermediate.dense"]);
            LayerNorm(prefix + "attention.output.LayerNorm");
            hiddenStates.Add(LayerNorm(prefix + "output.LayerNorm"));
        }

        int[] distinctHeads = heads.Select(h => h.Heads).Distinct().ToArray();
        if (distinctHeads.Length != 1)
            throw Fail("attention head counts differ between projections: " + string.Join(", ", heads.Select(h => $"{h.Where}={h.Heads}")));
        NumAttentionHeads = distinctHeads[0];
        HeadsEvidence = $"last two entries of the Reshape shape after every query/key/value projection ({heads.Count} Reshapes) give [{NumAttentionHeads}, {HiddenSize / NumAttentionHeads}]";

        float[] distinctEps = _epsilons.Select(e => e.Eps).Distinct().ToArray();
        if (distinctEps.Length != 1)
            throw Fail("LayerNorm epsilons differ: " + string.Join(", ", _epsilons.Select(e => $"{e.Where}={e.Eps.ToString("R", CultureInfo.InvariantCulture)}")));
        LayerNormEps = double.Parse(distinctEps[0].ToString("R", CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);

        if (_graph.Initializers.ContainsKey("pooler.dense.bias") || _graph.Initializers.ContainsKey("pooler.dense.weight"))
        {
            Linear("pooler.dense", HiddenSize, HiddenSize);
            HasPooler = true;
        }

        HiddenAct = "gelu";
        Tensors = _tensors.ToArray();
        HiddenStateValueNames = hiddenStates;
    }

    private int CountLayers()
    {
        var pattern = new Regex(@"^encoder\.layer\.(\d+)\.", RegexOptions.CultureInvariant);
        var layers = new SortedSet<int>();
        foreach (string name in _graph.Initializers.Keys)
        {
            Match match = pattern.Match(name);
            if (match.Success && int.TryParse(match.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out int index))
                layers.Add(index);
        }
        if (layers.Count == 0) throw Fail("no initializer is named encoder.layer.N.*");
        for (int i = 0; i < layers.Count; i++)
            if (!layers.Contains(i))
                throw Fail($"encoder layers are not numbered 0..{layers.Max}: layer {i} has no tensors");
        return layers.Count;
    }

    private OnnxTensor RequireNamed(string name, long width = -1, int rank = 2)
    {
        if (!_graph.Initializers.TryGetValue(name, out OnnxTensor? tensor))
            throw Fail($"initializer '{name}' is missing");
        RequireFloat(tensor, name);
        if (tensor.Dims.Count != rank || (width >= 0 && tensor.Dims[^1] != width))
            throw Fail($"'{name}' has shape {tensor.ShapeText}; expected rank {rank}{(width >= 0 ? $" with last dimension {width}" : "")}");
        return tensor;
    }

    private void RequireFloat(OnnxTensor tensor, string hfName)
    {
        if (tensor.DataType != OnnxDataType.Float)
            throw Fail($"'{hfName}' (initializer '{tensor.Name}') has type {tensor.DataType}; only float32 weights are supported");
    }

    private void AddNamed(OnnxTensor tensor) => Add(tensor.Name, tensor, transposed: false);

    private void Add(string hfName, OnnxTensor tensor, bool transposed)
    {
        if (!_usedInitializers.Add(tensor.Name))
            throw Fail($"initializer '{tensor.Name}' would serve two HF tensors (the second is '{hfName}')");
        long[] shape = transposed ? [tensor.Dims[1], tensor.Dims[0]] : tensor.Dims.ToArray();
        _tensors.Add(new OnnxBertTensor(hfName, tensor.Name, transposed, shape));
    }

    /// <summary>Finds the LayerNorm whose scale is <c>{prefix}.weight</c>; returns its output value.</summary>
    private string LayerNorm(string prefix)
    {
        OnnxTensor weight = RequireNamed(prefix + ".weight", HiddenSize, rank: 1);
        OnnxTensor bias = RequireNamed(prefix + ".bias", HiddenSize, rank: 1);
        AddNamed(weight);
        AddNamed(bias);
        foreach (OnnxNode node in _graph.ConsumersOf(weight.Name))
        {
            if (node.OpType == "LayerNormalization" && node.Inputs.Count >= 3 && node.Inputs[1] == weight.Name && node.Inputs[2] == bias.Name)
            {
                float eps = node.Attributes.TryGetValue("epsilon", out OnnxAttribute? attribute) ? attribute.Float : 1e-5f;
                _epsilons.Add((prefix, eps));
                EpsEvidence = "epsilon attribute of the LayerNormalization nodes";
                return node.Outputs[0];
            }
            if (node.OpType == "Mul" && node.Inputs.Count == 2)
            {
                OnnxNode? addBias = _graph.ConsumersOf(node.Outputs[0]).FirstOrDefault(n => n.OpType == "Add" && n.Inputs.Contains(bias.Name));
                if (addBias is null) continue;
                string normalized = node.Inputs[0] == weight.Name ? node.Inputs[1] : node.Inputs[0];
                _epsilons.Add((prefix, DecomposedEpsilon(prefix, normalized)));
                EpsEvidence = "constant added to the variance before Sqrt in the decomposed LayerNorms (ReduceMean, Sub, Pow, ReduceMean, Add eps, Sqrt, Div)";
                return addBias.Outputs[0];
            }
        }
        throw Fail($"no LayerNormalization node, and no Mul by '{weight.Name}' followed by an Add of '{bias.Name}'");
    }

    /// <summary>In (x - mean) / Sqrt(var + eps), walks from the quotient back to eps.</summary>
    private float DecomposedEpsilon(string prefix, string normalized)
    {
        OnnxNode? div = _graph.ProducerOf(normalized);
        if (div is not { OpType: "Div" } || div.Inputs.Count != 2)
            throw Fail($"{prefix}: expected the scaled value to come from Div(x - mean, Sqrt(var + eps)), found {div?.Describe() ?? "a graph input"}");
        OnnxNode? sqrt = _graph.ProducerOf(div.Inputs[1]);
        if (sqrt is not { OpType: "Sqrt", Inputs.Count: 1 })
            throw Fail($"{prefix}: expected the divisor of {div.Describe()} to be a Sqrt, found {sqrt?.Describe() ?? "no node"}");
        OnnxNode? add = _graph.ProducerOf(sqrt.Inputs[0]);
        if (add is not { OpType: "Add" } || add.Inputs.Count != 2)
            throw Fail($"{prefix}: expected the input of {sqrt.Describe()} to be an Add of eps, found {add?.Describe() ?? "no node"}");
        foreach (string input in add.Inputs)
        {
            OnnxTensor? constant = _graph.TryGetConstant(input);
            if (constant is { ElementCount: 1, DataType: OnnxDataType.Float }) return constant.ToFloatArray()[0];
        }
        throw Fail($"{prefix}: neither input of {add.Describe()} is a float scalar constant (the epsilon)");
    }

    /// <summary>
    /// Finds the Linear layer with bias <c>{prefix}.bias</c>: either Add(bias, MatMul(x, W)) with W
    /// stored [in, out] (possibly through a Transpose of an [out, in] constant), or Gemm(x, W, bias).
    /// Records weight and bias; returns the value holding the layer's output and its width.
    /// </summary>
    private (string Output, long OutFeatures) Linear(string prefix, long expectedOut, long expectedIn)
    {
        OnnxTensor bias = RequireNamed(prefix + ".bias", expectedOut, rank: 1);
        long outFeatures = bias.Dims[0];
        foreach (OnnxNode node in _graph.ConsumersOf(bias.Name))
        {
            OnnxTensor? weight = null;
            bool storedInOut = false;
            string? output = null;
            if (node.OpType == "Add" && node.Inputs.Count == 2)
            {
                string other = node.Inputs[0] == bias.Name ? node.Inputs[1] : node.Inputs[0];
                OnnxNode? matMul = _graph.ProducerOf(other);
                if (matMul is not { OpType: "MatMul" } || matMul.Inputs.Count != 2) continue;
                (weight, storedInOut) = WeightOperand(matMul.Inputs[1], transposedByGraph: false);
                output = node.Outputs[0];
            }
            else if (node.OpType == "Gemm" && node.Inputs.Count == 3 && node.Inputs[2] == bias.Name)
            {
                if (AttributeInt(node, "transA", 0) != 0 || AttributeFloat(node, "alpha", 1f) != 1f || AttributeFloat(node, "beta", 1f) != 1f)
                    throw Fail($"{prefix}: {node.Describe()} uses transA, alpha or beta, which a plain Linear layer never does");
                (weight, storedInOut) = WeightOperand(node.Inputs[1], transposedByGraph: AttributeInt(node, "transB", 0) != 0);
                output = node.Outputs[0];
            }
            if (weight is null || output is null) continue;

            RequireFloat(weight, prefix + ".weight");
            long[] hfShape = weight.Dims.Count == 2
                ? (storedInOut ? [weight.Dims[1], weight.Dims[0]] : [weight.Dims[0], weight.Dims[1]])
                : [];
            if (hfShape.Length != 2 || hfShape[0] != outFeatures || (expectedIn >= 0 && hfShape[1] != expectedIn))
                throw Fail($"{prefix}.weight (initializer '{weight.Name}', stored {weight.ShapeText}{(storedInOut ? " as [in, out]" : "")}) " +
                           $"does not fit a Linear layer with {outFeatures} outputs{(expectedIn >= 0 ? $" and {expectedIn} inputs" : "")}");
            Add(prefix + ".weight", weight, transposed: storedInOut);
            AddNamed(bias);
            return (output, outFeatures);
        }
        throw Fail($"found no MatMul + Add or Gemm that uses the bias '{bias.Name}', so the weight of '{prefix}' cannot be located");
    }

    /// <summary>The constant weight behind a MatMul/Gemm operand and whether it is stored [in, out].</summary>
    private (OnnxTensor? Weight, bool StoredInOut) WeightOperand(string valueName, bool transposedByGraph)
    {
        if (_graph.Initializers.TryGetValue(valueName, out OnnxTensor? direct)) return (direct, !transposedByGraph);
        OnnxNode? transpose = _graph.ProducerOf(valueName);
        if (transpose is { OpType: "Transpose", Inputs.Count: 1 } && _graph.Initializers.TryGetValue(transpose.Inputs[0], out OnnxTensor? inner)
            && (!transpose.Attributes.TryGetValue("perm", out OnnxAttribute? perm) || perm.Ints.SequenceEqual([1L, 0L])))
            return (inner, transposedByGraph);
        return (null, false);
    }

    /// <summary>
    /// Follows a projection's output to the Reshape that splits it into heads and reads the head
    /// count from the constant shape ([batch, seq, heads, head_dim], built by a Concat of runtime
    /// sizes and constants in PyTorch exports).
    /// </summary>
    private int HeadsFromReshape(string prefix, string projectionOutput)
    {
        var frontier = new List<string> { projectionOutput };
        for (int depth = 0; depth < 3 && frontier.Count > 0; depth++)
        {
            var next = new List<string>();
            foreach (string value in frontier)
            {
                foreach (OnnxNode node in _graph.ConsumersOf(value))
                {
                    if (node.OpType == "Reshape" && node.Inputs.Count >= 2 && node.Inputs[0] == value)
                    {
                        long?[] shape = ConstantShapeVector(node.Inputs[1])
                            ?? throw Fail($"{prefix}: the shape of {node.Describe()} is not built from constants");
                        if (shape.Length != 4 || shape[2] is not > 0 || shape[3] is not > 0)
                            throw Fail($"{prefix}: {node.Describe()} reshapes to [{string.Join(", ", shape.Select(s => s?.ToString(CultureInfo.InvariantCulture) ?? "?"))}]; expected [batch, sequence, heads, head_dim]");
                        long heads = shape[2]!.Value, headDim = shape[3]!.Value;
                        // Each factor is bounded first so that the product cannot wrap around to the hidden size.
                        if (heads > HiddenSize || headDim > HiddenSize || heads * headDim != HiddenSize)
                            throw Fail($"{prefix}: {node.Describe()} splits into {heads} heads of {headDim}, which does not multiply to hidden size {HiddenSize}");
                        return (int)heads;
                    }
                    if (node.OpType is "Mul" or "Div" or "Cast" or "Identity") next.AddRange(node.Outputs);
                }
            }
            frontier = next;
        }
        throw Fail($"{prefix}: found no Reshape of the projection output into heads, so the head count cannot be recovered");
    }

    /// <summary>The entries of a 1-D int shape value; null entries are sizes only known at run time.</summary>
    private long?[]? ConstantShapeVector(string valueName)
    {
        OnnxTensor? constant = _graph.TryGetConstant(valueName);
        if (constant is not null)
            return constant.DataType is OnnxDataType.Int64 or OnnxDataType.Int32 ? constant.ToInt64Array().Select(v => (long?)v).ToArray() : null;
        OnnxNode? concat = _graph.ProducerOf(valueName);
        if (concat is not { OpType: "Concat" }) return null;
        var entries = new List<long?>();
        foreach (string input in concat.Inputs)
        {
            OnnxTensor? piece = _graph.TryGetConstant(input);
            if (piece is not null && piece.DataType is OnnxDataType.Int64 or OnnxDataType.Int32)
                entries.AddRange(piece.ToInt64Array().Select(v => (long?)v));
            else if (_graph.ProducerOf(input) is { OpType: "Unsqueeze" })
                entries.Add(null); // a runtime scalar (batch or sequence length) made 1-D
            else
                return null;
        }
        return entries.ToArray();
    }

    /// <summary>Accepts only the exact GELU (x/2 (1 + erf(x/√2))), which HF calls "gelu".</summary>
    private void CheckActivation(string prefix, string denseOutput)
    {
        var frontier = new List<string> { denseOutput };
        var seen = new HashSet<OnnxNode>();
        for (int depth = 0; depth < 3 && frontier.Count > 0; depth++)
        {
            var next = new List<string>();
            foreach (string value in frontier)
            {
                foreach (OnnxNode node in _graph.ConsumersOf(value))
                {
                    if (!seen.Add(node)) continue;
                    if (node.OpType == "Erf") return;
                    if (node.OpType == "Gelu")
                    {
                        bool tanh = node.Attributes.TryGetValue("approximate", out OnnxAttribute? approximate)
                                    && System.Text.Encoding.UTF8.GetString(approximate.String.Span) == "tanh";
                        if (!tanh) return;
                    }
                    next.AddRange(node.Outputs);
                }
            }
            frontier = next;
        }
        throw Fail($"{prefix}: the activation after this layer is not the exact GELU (no Erf or Gelu node follows it)");
    }

    private static long AttributeInt(OnnxNode node, string name, long fallback) =>
        node.Attributes.TryGetValue(name, out OnnxAttribute? a) ? a.Int : fallback;

    private static float AttributeFloat(OnnxNode node, string name, float fallback) =>
        node.Attributes.TryGetValue(name, out OnnxAttribute? a) ? a.Float : fallback;

    private int ToInt(long value, string what)
    {
        if (value <= 0 || value > int.MaxValue) throw Fail($"'{what}' has dimension {value}; expected 1..{int.MaxValue}");
        return (int)value;
    }
}
