using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using NativeMi.IO.Onnx;

namespace NativeMi.Tests.Onnx;

/// <summary>Hidden states computed by ONNX Runtime for one batch.</summary>
/// <param name="Batch">N.</param>
/// <param name="Sequence">T.</param>
/// <param name="Hidden">H.</param>
/// <param name="HiddenStates">
/// num_hidden_layers + 1 row-major [N, T, H] arrays: index 0 is the embedding LayerNorm output,
/// index i the output of encoder layer i-1 (HF's <c>output_hidden_states</c> convention).
/// </param>
/// <param name="LastHiddenState">The model's own <c>last_hidden_state</c> output, [N, T, H].</param>
public sealed record OnnxOracleResult(int Batch, int Sequence, int Hidden, IReadOnlyList<float[]> HiddenStates, float[] LastHiddenState)
{
    /// <summary>The hidden vector of one token at one layer.</summary>
    public ReadOnlySpan<float> At(int layer, int sequenceIndex, int token) =>
        HiddenStates[layer].AsSpan((sequenceIndex * Sequence + token) * Hidden, Hidden);
}

/// <summary>
/// Runs an ORIGINAL ONNX BERT export with ONNX Runtime and returns every layer's hidden state, as a
/// reference for NativeMi's own forward pass. The intermediate values (found by
/// <see cref="OnnxBertGraph"/>) are exposed by appending them to the graph's outputs; graph
/// optimisations are disabled so ORT evaluates the graph as written (no fusions that would make
/// the intermediate and final outputs come from differently rounded kernels).
/// </summary>
internal sealed class OnnxOracle : IDisposable
{
    private readonly InferenceSession _session;

    /// <summary>Loads and prepares <paramref name="onnxPath"/>.</summary>
    public OnnxOracle(string onnxPath)
    {
        OnnxPath = Path.GetFullPath(onnxPath);
        byte[] original = File.ReadAllBytes(OnnxPath);
        OnnxModel model = OnnxReader.Parse(OnnxPath, original);
        Graph = OnnxBertGraph.Analyze(model);
        byte[] rewritten = OnnxGraphEditor.AddGraphOutputs(OnnxPath, original, Graph.HiddenStateValueNames);
        _session = new InferenceSession(rewritten, CreateOptions());
        InputNames = _session.InputMetadata.Keys.ToArray();
    }

    /// <summary>The model file.</summary>
    public string OnnxPath { get; }

    /// <summary>What the graph analysis found (layer count, hidden size, value names).</summary>
    public OnnxBertGraph Graph { get; }

    /// <summary>The inputs the model declares (some exports omit token_type_ids).</summary>
    public IReadOnlyList<string> InputNames { get; }

    /// <summary>Session options the oracle uses: graph as written, deterministic.</summary>
    public static SessionOptions CreateOptions() => new()
    {
        GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL,
        IntraOpNumThreads = 1,
        InterOpNumThreads = 1,
        ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
    };

    /// <summary>Runs a batch given as row-major [N, T] arrays.</summary>
    public OnnxOracleResult Run(long[] inputIds, long[] attentionMask, long[] tokenTypeIds, int batch, int sequence)
    {
        int count = checked(batch * sequence);
        if (inputIds.Length != count || attentionMask.Length != count || tokenTypeIds.Length != count)
            throw new ArgumentException($"expected {batch} x {sequence} = {count} values in input_ids, attention_mask and token_type_ids");
        var feeds = new List<NamedOnnxValue>();
        int[] dims = [batch, sequence];
        foreach (string name in InputNames)
        {
            long[] values = name switch
            {
                "input_ids" => inputIds,
                "attention_mask" => attentionMask,
                "token_type_ids" => tokenTypeIds,
                _ => throw new InvalidOperationException($"{OnnxPath}: unexpected model input '{name}'"),
            };
            feeds.Add(NamedOnnxValue.CreateFromTensor(name, new DenseTensor<long>(values, dims)));
        }

        var outputNames = Graph.HiddenStateValueNames.Append("last_hidden_state").Distinct().ToArray();
        using IDisposableReadOnlyCollection<DisposableNamedOnnxValue> results = _session.Run(feeds, outputNames);
        var byName = results.ToDictionary(r => r.Name, r => r.AsTensor<float>());
        float[] Flatten(string name)
        {
            Tensor<float> tensor = byName[name];
            if (tensor.Dimensions.Length != 3 || tensor.Dimensions[0] != batch || tensor.Dimensions[1] != sequence || tensor.Dimensions[2] != Graph.HiddenSize)
                throw new InvalidOperationException($"{OnnxPath}: output '{name}' has shape [{string.Join(", ", tensor.Dimensions.ToArray())}]; expected [{batch}, {sequence}, {Graph.HiddenSize}]");
            return tensor.ToArray();
        }
        return new OnnxOracleResult(batch, sequence, Graph.HiddenSize,
            Graph.HiddenStateValueNames.Select(Flatten).ToArray(), Flatten("last_hidden_state"));
    }

    /// <summary>
    /// Runs token-id sequences of different lengths: pads with 0 to the longest, attention mask 1 on
    /// real tokens, token types 0.
    /// </summary>
    public OnnxOracleResult RunPadded(IReadOnlyList<long[]> sequences)
    {
        int batch = sequences.Count;
        int length = sequences.Max(s => s.Length);
        var ids = new long[batch * length];
        var mask = new long[batch * length];
        for (int b = 0; b < batch; b++)
        {
            sequences[b].CopyTo(ids, b * length);
            mask.AsSpan(b * length, sequences[b].Length).Fill(1);
        }
        return Run(ids, mask, new long[batch * length], batch, length);
    }

    /// <inheritdoc />
    public void Dispose() => _session.Dispose();
}
