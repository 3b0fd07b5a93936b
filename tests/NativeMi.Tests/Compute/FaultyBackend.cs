using NativeMi.Compute;
using NativeMi.Compute.Cpu;
using NativeMi.Pooling;

namespace NativeMi.Tests.Compute;

/// <summary>The kinds of mistake a backend can make that the parity harness must catch.</summary>
public enum FaultKind
{
    /// <summary>Small relative error in every output element (1e-2).</summary>
    Imprecise,
    /// <summary>One NaN in the output.</summary>
    NotANumber,
    /// <summary>One infinity in the output.</summary>
    Infinity,
    /// <summary>Writes one element just past the output's end.</summary>
    WriteOutsideOutput,
    /// <summary>Changes an input it should only read.</summary>
    WriteToInput,
    /// <summary>An integer output off by one (argmax).</summary>
    WrongIndex,
    /// <summary>Throws, as a missing kernel would.</summary>
    Throws,
    /// <summary>Pools with a finite value where there is nothing to pool (NaN expected).</summary>
    PoolsNothingAsZero,
    /// <summary>Every pooled sentence vector is the same constant (the sentence is lost).</summary>
    PoolsConstant,
    /// <summary>One error too many in the Fano counts.</summary>
    MiscountsErrors,
}

/// <summary>The CPU backend with one deliberate fault in Gemm, LayerNorm or SoftmaxCrossEntropy.</summary>
public sealed class FaultyBackend(FaultKind fault) : IComputeBackend
{
    private readonly CpuBackend _inner = new();

    public string Name => "faulty";
    public string Description => $"faulty cpu ({fault})";

    public void Synchronize() => _inner.Synchronize();

    public DeviceBuffer<T> Allocate<T>(long length) where T : unmanaged => _inner.Allocate<T>(length);
    public DeviceBuffer<T> Upload<T>(ReadOnlySpan<T> data) where T : unmanaged => _inner.Upload(data);
    public DeviceBuffer<float> UploadMatrix(ReadOnlySpan<float> data, int rows, int columns) => _inner.UploadMatrix(data, rows, columns);
    public DeviceBuffer<float> UploadMatrix(ReadOnlySpan<ushort> data, int rows, int columns, WeightFormat format, bool transposed) => _inner.UploadMatrix(data, rows, columns, format, transposed);
    public DeviceBuffer<float> UploadTable(ReadOnlySpan<ushort> data, int rows, int width, WeightFormat format) => _inner.UploadTable(data, rows, width, format);
    public void CopyFromHost<T>(ReadOnlySpan<T> source, DeviceBuffer<T> destination) where T : unmanaged => _inner.CopyFromHost(source, destination);
    public void Download<T>(DeviceBuffer<T> source, Span<T> destination) where T : unmanaged => _inner.Download(source, destination);

    public void Gemm(DeviceBuffer<float> input, DeviceBuffer<float> weight, DeviceBuffer<float>? bias, DeviceBuffer<float> output,
        int m, int k, int n, Activation activation)
    {
        if (fault == FaultKind.Throws) throw new InvalidOperationException("kernel gemm missing");
        _inner.Gemm(input, weight, bias, output, m, k, n, activation);
        float[] o = CpuBackend.Array(output);
        int count = m * n;
        switch (fault)
        {
            case FaultKind.Imprecise:
                for (int i = 0; i < count; i++) o[i] *= 1.01f;
                break;
            case FaultKind.NotANumber:
                o[count / 2] = float.NaN;
                break;
            case FaultKind.Infinity:
                o[count - 1] = float.PositiveInfinity;
                break;
            case FaultKind.WriteOutsideOutput:
                o[count] = 0f;
                break;
        }
    }

    public void LayerNorm(DeviceBuffer<float> input, DeviceBuffer<float>? residual, DeviceBuffer<float> gamma, DeviceBuffer<float> beta,
        DeviceBuffer<float> output, int rows, int width, float epsilon)
    {
        _inner.LayerNorm(input, residual, gamma, beta, output, rows, width, epsilon);
        if (fault == FaultKind.WriteToInput) CpuBackend.Array(input)[0] += 1f;
    }

    public void SoftmaxCrossEntropy(DeviceBuffer<float> logits, DeviceBuffer<int> targets, DeviceBuffer<float> lossNats, DeviceBuffer<int> argmax,
        int rows, int classes, float gradientScale, bool writeGradient)
    {
        _inner.SoftmaxCrossEntropy(logits, targets, lossNats, argmax, rows, classes, gradientScale, writeGradient);
        if (fault == FaultKind.WrongIndex) CpuBackend.Array(argmax)[rows - 1] = (CpuBackend.Array(argmax)[rows - 1] + 1) % classes;
    }

    public void AddInPlace(DeviceBuffer<float> accumulator, DeviceBuffer<float> addend, long count) => _inner.AddInPlace(accumulator, addend, count);
    public void RmsNorm(DeviceBuffer<float> input, DeviceBuffer<float> gamma, DeviceBuffer<float> output, int rows, int width, float epsilon, bool addOneToGamma) =>
        _inner.RmsNorm(input, gamma, output, rows, width, epsilon, addOneToGamma);
    public void HeadRmsNorm(DeviceBuffer<float> qkv, DeviceBuffer<float> queryGamma, DeviceBuffer<float> keyGamma, int rows, int heads, int keyValueHeads, int headDim, float epsilon) =>
        _inner.HeadRmsNorm(qkv, queryGamma, keyGamma, rows, heads, keyValueHeads, headDim, epsilon);
    public void Rotary(DeviceBuffer<float> qkv, DeviceBuffer<int> positions, DeviceBuffer<float> inverseFrequencies, int rows, int heads, int keyValueHeads, int headDim) =>
        _inner.Rotary(qkv, positions, inverseFrequencies, rows, heads, keyValueHeads, headDim);
    public void ExpandKeyValueHeads(DeviceBuffer<float> compact, DeviceBuffer<float> expanded, int rows, int heads, int keyValueHeads, int headDim) =>
        _inner.ExpandKeyValueHeads(compact, expanded, rows, heads, keyValueHeads, headDim);
    public void GatedActivation(DeviceBuffer<float> gateUp, DeviceBuffer<float> output, int rows, int width, GateActivation activation) =>
        _inner.GatedActivation(gateUp, output, rows, width, activation);
    public void ScaleInPlace(DeviceBuffer<float> buffer, float factor, long count) => _inner.ScaleInPlace(buffer, factor, count);

    public void PoolSentences(DeviceBuffer<float> layer, DeviceBuffer<int> attentionMask, DeviceBuffer<int> isTarget, DeviceBuffer<float> output,
        int batch, int seq, int width, NativeMi.Pooling.PoolingMode mode)
    {
        _inner.PoolSentences(layer, attentionMask, isTarget, output, batch, seq, width, mode);
        if (fault == FaultKind.PoolsConstant) System.Array.Fill(CpuBackend.Array(output), 0.5f, 0, batch * width);
        if (fault != FaultKind.PoolsNothingAsZero) return;
        float[] pooled = CpuBackend.Array(output);
        for (int i = 0; i < batch * width; i++)
            if (float.IsNaN(pooled[i])) pooled[i] = 0f;
    }

    public PredictionCounts CountPredictions(DeviceBuffer<int> predictions, DeviceBuffer<int> targets, DeviceBuffer<int> positions,
        long count, int classes, int positionCount)
    {
        PredictionCounts counts = _inner.CountPredictions(predictions, targets, positions, count, classes, positionCount);
        return fault == FaultKind.MiscountsErrors ? counts with { Errors = counts.Errors + 1 } : counts;
    }

    public void EmbeddingGather(DeviceBuffer<int> ids, DeviceBuffer<int> positionIds, DeviceBuffer<int>? typeIds, DeviceBuffer<float> words,
        DeviceBuffer<float> positions, DeviceBuffer<float>? types, DeviceBuffer<float> output, int rows, int width) =>
        _inner.EmbeddingGather(ids, positionIds, typeIds, words, positions, types, output, rows, width);

    public void Attention(DeviceBuffer<float> qkv, DeviceBuffer<int> mask, DeviceBuffer<float> output, int batch, int seq, int heads, int headDim, bool causal) =>
        _inner.Attention(qkv, mask, output, batch, seq, heads, headDim, causal);

    public void GemmEx(DeviceBuffer<float> a, bool transposeA, DeviceBuffer<float> b, bool transposeB, DeviceBuffer<float> c, int m, int k, int n, bool accumulate) =>
        _inner.GemmEx(a, transposeA, b, transposeB, c, m, k, n, accumulate);

    public void GatherRows(DeviceBuffer<float> source, DeviceBuffer<int> indices, DeviceBuffer<float> output, int rows, int width) =>
        _inner.GatherRows(source, indices, output, rows, width);

    public void ScatterAddRows(DeviceBuffer<float> source, DeviceBuffer<int> indices, DeviceBuffer<float> target, int rows, int width) =>
        _inner.ScatterAddRows(source, indices, target, rows, width);

    public void BiasActivation(DeviceBuffer<float> input, DeviceBuffer<float> bias, DeviceBuffer<float> preActivation, DeviceBuffer<float> output, int rows, int width, bool gelu) =>
        _inner.BiasActivation(input, bias, preActivation, output, rows, width, gelu);

    public void GeluBackward(DeviceBuffer<float> preActivation, DeviceBuffer<float> upstream, DeviceBuffer<float> gradient, long count) =>
        _inner.GeluBackward(preActivation, upstream, gradient, count);

    public void ColumnSums(DeviceBuffer<float> matrix, DeviceBuffer<float> columnSums, int rows, int width) => _inner.ColumnSums(matrix, columnSums, rows, width);

    public void AdamW(DeviceBuffer<float> parameters, DeviceBuffer<float> gradients, DeviceBuffer<float> firstMoment, DeviceBuffer<float> secondMoment, long count, AdamWStep step) =>
        _inner.AdamW(parameters, gradients, firstMoment, secondMoment, count, step);

    public void Zero(DeviceBuffer<float> buffer, long count) => _inner.Zero(buffer, count);

    public void Dispose() => _inner.Dispose();
}
