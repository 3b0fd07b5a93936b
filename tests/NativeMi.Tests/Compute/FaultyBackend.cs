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
    /// <summary>LayerNormBackward without the −mean(dy·γ) term of the input gradient.</summary>
    LayerNormBackwardDropsMeanTerm,
    /// <summary>RmsNormBackward without the −x·r³·mean(dy·w·x) term of the input gradient.</summary>
    RmsNormBackwardDropsNormTerm,
    /// <summary>RotaryBackward rotates forward again instead of back.</summary>
    RotaryBackwardRotatesForward,
}

/// <summary>The CPU backend with one deliberate fault in Gemm, LayerNorm, SoftmaxCrossEntropy, pooling, the counts or a backward op.</summary>
internal sealed class FaultyBackend(FaultKind fault) : IComputeBackend
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

    public void ApplyActivation(DeviceBuffer<float> input, DeviceBuffer<float> output, long count, Activation activation) =>
        _inner.ApplyActivation(input, output, count, activation);
    public void ActivationBackward(DeviceBuffer<float> preActivation, DeviceBuffer<float> upstream, DeviceBuffer<float> gradient, long count, Activation activation) =>
        _inner.ActivationBackward(preActivation, upstream, gradient, count, activation);
    public void GatedActivationBackward(DeviceBuffer<float> gateUp, DeviceBuffer<float> upstream, DeviceBuffer<float> gateUpGradient, int rows, int width, GateActivation activation) =>
        _inner.GatedActivationBackward(gateUp, upstream, gateUpGradient, rows, width, activation);

    public void LayerNormBackward(DeviceBuffer<float> input, DeviceBuffer<float>? residual, DeviceBuffer<float> gamma, DeviceBuffer<float> outputGradient,
        DeviceBuffer<float> inputGradient, DeviceBuffer<float> gammaGradient, DeviceBuffer<float> betaGradient, int rows, int width, float epsilon)
    {
        if (fault != FaultKind.LayerNormBackwardDropsMeanTerm)
        {
            _inner.LayerNormBackward(input, residual, gamma, outputGradient, inputGradient, gammaGradient, betaGradient, rows, width, epsilon);
            return;
        }
        // The correct op, then the term it drops added back: dx + (1/σ)·mean(dy·γ) per row.
        float[] x = CpuBackend.Array(input), g = CpuBackend.Array(gamma), dy = CpuBackend.Array(outputGradient);
        float[]? r = residual is null ? null : CpuBackend.Array(residual);
        var inverse = new double[rows];
        var meanG = new double[rows];
        for (int row = 0; row < rows; row++)
        {
            double sum = 0, squares = 0, sg = 0;
            for (int j = 0; j < width; j++) sum += x[row * width + j] + (r?[row * width + j] ?? 0f);
            double mean = sum / width;
            for (int j = 0; j < width; j++) { double c = x[row * width + j] + (r?[row * width + j] ?? 0f) - mean; squares += c * c; }
            for (int j = 0; j < width; j++) sg += (double)dy[row * width + j] * g[j];
            inverse[row] = 1 / Math.Sqrt(squares / width + epsilon);
            meanG[row] = sg / width;
        }
        _inner.LayerNormBackward(input, residual, gamma, outputGradient, inputGradient, gammaGradient, betaGradient, rows, width, epsilon);
        float[] dx = CpuBackend.Array(inputGradient);
        for (int row = 0; row < rows; row++)
            for (int j = 0; j < width; j++) dx[row * width + j] += (float)(inverse[row] * meanG[row]);
    }

    public void RmsNormBackward(DeviceBuffer<float> input, DeviceBuffer<float> gamma, DeviceBuffer<float> outputGradient, DeviceBuffer<float> inputGradient,
        DeviceBuffer<float> gammaGradient, int rows, int width, float epsilon, bool addOneToGamma)
    {
        // dy is copied first: the op may be called in place.
        float[] dy = (float[])CpuBackend.Array(outputGradient).Clone();
        _inner.RmsNormBackward(input, gamma, outputGradient, inputGradient, gammaGradient, rows, width, epsilon, addOneToGamma);
        if (fault != FaultKind.RmsNormBackwardDropsNormTerm) return;
        float[] x = CpuBackend.Array(input), g = CpuBackend.Array(gamma), dx = CpuBackend.Array(inputGradient);
        for (int row = 0; row < rows; row++)
        {
            double squares = 0;
            for (int j = 0; j < width; j++) squares += (double)x[row * width + j] * x[row * width + j];
            double inverse = 1 / Math.Sqrt(squares / width + epsilon);
            for (int j = 0; j < width; j++) dx[row * width + j] = (float)(inverse * dy[row * width + j] * (addOneToGamma ? 1 + g[j] : g[j]));
        }
    }

    public void HeadRmsNormBackward(DeviceBuffer<float> qkv, DeviceBuffer<float> queryGamma, DeviceBuffer<float> keyGamma, DeviceBuffer<float> qkvGradient,
        DeviceBuffer<float> queryGammaGradient, DeviceBuffer<float> keyGammaGradient, int rows, int heads, int keyValueHeads, int headDim, float epsilon) =>
        _inner.HeadRmsNormBackward(qkv, queryGamma, keyGamma, qkvGradient, queryGammaGradient, keyGammaGradient, rows, heads, keyValueHeads, headDim, epsilon);

    public void RotaryBackward(DeviceBuffer<float> qkvGradient, DeviceBuffer<int> positions, DeviceBuffer<float> inverseFrequencies, int rows, int heads, int keyValueHeads, int headDim)
    {
        if (fault == FaultKind.RotaryBackwardRotatesForward) _inner.Rotary(qkvGradient, positions, inverseFrequencies, rows, heads, keyValueHeads, headDim);
        else _inner.RotaryBackward(qkvGradient, positions, inverseFrequencies, rows, heads, keyValueHeads, headDim);
    }

    public void ReduceKeyValueHeads(DeviceBuffer<float> expanded, DeviceBuffer<float> compact, int rows, int heads, int keyValueHeads, int headDim) =>
        _inner.ReduceKeyValueHeads(expanded, compact, rows, heads, keyValueHeads, headDim);
    public void AttentionBackward(DeviceBuffer<float> qkv, DeviceBuffer<int> mask, DeviceBuffer<float> outputGradient, DeviceBuffer<float> qkvGradient,
        int batch, int seq, int heads, int headDim, bool causal) =>
        _inner.AttentionBackward(qkv, mask, outputGradient, qkvGradient, batch, seq, heads, headDim, causal);
    public void PoolSentencesBackward(DeviceBuffer<float> layer, DeviceBuffer<int> attentionMask, DeviceBuffer<int> isTarget, DeviceBuffer<float> pooledGradient,
        DeviceBuffer<float> layerGradient, int batch, int seq, int width, NativeMi.Pooling.PoolingMode mode) =>
        _inner.PoolSentencesBackward(layer, attentionMask, isTarget, pooledGradient, layerGradient, batch, seq, width, mode);
    public void SumOfSquares(DeviceBuffer<float> buffer, long count, DeviceBuffer<float> sums, int index) => _inner.SumOfSquares(buffer, count, sums, index);

    public void Dispose() => _inner.Dispose();
}
