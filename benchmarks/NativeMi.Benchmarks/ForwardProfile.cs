using System.Diagnostics;
using System.Globalization;
using System.Text;
using NativeMi.Compute;
using NativeMi.Compute.Cpu;
using NativeMi.Models;
using NativeMi.Transformer;
using NativeMi.Pooling;

namespace NativeMi.Benchmarks;

/// <summary>An <see cref="IComputeBackend"/> decorator that adds each op's wall time to a per-op total.</summary>
internal sealed class TimingBackend(IComputeBackend inner) : IComputeBackend
{
    private readonly Dictionary<string, double> _milliseconds = new(StringComparer.Ordinal);

    /// <summary>Milliseconds per op name since the last <see cref="Reset"/>.</summary>
    public IReadOnlyDictionary<string, double> Milliseconds => _milliseconds;

    /// <summary>Clears the totals.</summary>
    public void Reset() => _milliseconds.Clear();

    private void Time(string op, Action body)
    {
        long start = Stopwatch.GetTimestamp();
        body();
        _milliseconds[op] = _milliseconds.GetValueOrDefault(op) + Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }

    /// <inheritdoc />
    public string Name => inner.Name;
    /// <inheritdoc />
    public string Description => inner.Description;
    public void Synchronize() => inner.Synchronize();
    /// <inheritdoc />
    public DeviceBuffer<T> Allocate<T>(long length) where T : unmanaged { DeviceBuffer<T>? r = null; Time("Allocate", () => r = inner.Allocate<T>(length)); return r!; }
    /// <inheritdoc />
    public DeviceBuffer<T> Upload<T>(ReadOnlySpan<T> data) where T : unmanaged
    {
        long start = Stopwatch.GetTimestamp();
        var r = inner.Upload(data);
        _milliseconds["Upload"] = _milliseconds.GetValueOrDefault("Upload") + Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        return r;
    }
    /// <inheritdoc />
    public DeviceBuffer<float> UploadMatrix(ReadOnlySpan<float> data, int rows, int columns) => inner.UploadMatrix(data, rows, columns);
    /// <inheritdoc />
    public DeviceBuffer<float> UploadMatrix(ReadOnlySpan<ushort> data, int rows, int columns, WeightFormat format, bool transposed) => inner.UploadMatrix(data, rows, columns, format, transposed);
    /// <inheritdoc />
    public DeviceBuffer<float> UploadTable(ReadOnlySpan<ushort> data, int rows, int width, WeightFormat format) => inner.UploadTable(data, rows, width, format);
    /// <inheritdoc />
    public void CopyFromHost<T>(ReadOnlySpan<T> source, DeviceBuffer<T> destination) where T : unmanaged => inner.CopyFromHost(source, destination);
    /// <inheritdoc />
    public void Download<T>(DeviceBuffer<T> source, Span<T> destination) where T : unmanaged
    {
        long start = Stopwatch.GetTimestamp();
        inner.Download(source, destination);
        _milliseconds["Download"] = _milliseconds.GetValueOrDefault("Download") + Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }
    /// <inheritdoc />
    public void Gemm(DeviceBuffer<float> input, DeviceBuffer<float> weight, DeviceBuffer<float>? bias, DeviceBuffer<float> output, int m, int k, int n, Activation activation) =>
        Time(activation == Activation.None ? "Gemm" : "Gemm+GELU", () => inner.Gemm(input, weight, bias, output, m, k, n, activation));
    /// <inheritdoc />
    public void LayerNorm(DeviceBuffer<float> input, DeviceBuffer<float>? residual, DeviceBuffer<float> gamma, DeviceBuffer<float> beta, DeviceBuffer<float> output, int rows, int width, float epsilon) =>
        Time("LayerNorm", () => inner.LayerNorm(input, residual, gamma, beta, output, rows, width, epsilon));
    /// <inheritdoc />
    public void AddInPlace(DeviceBuffer<float> accumulator, DeviceBuffer<float> addend, long count) => Time("AddInPlace", () => inner.AddInPlace(accumulator, addend, count));
    /// <inheritdoc />
    public void EmbeddingGather(DeviceBuffer<int> ids, DeviceBuffer<int> positionIds, DeviceBuffer<int>? typeIds, DeviceBuffer<float> words, DeviceBuffer<float> positions, DeviceBuffer<float>? types, DeviceBuffer<float> output, int rows, int width) =>
        Time("EmbeddingGather", () => inner.EmbeddingGather(ids, positionIds, typeIds, words, positions, types, output, rows, width));
    /// <inheritdoc />
    public void Attention(DeviceBuffer<float> qkv, DeviceBuffer<int> mask, DeviceBuffer<float> output, int batch, int seq, int heads, int headDim, bool causal) =>
        Time("Attention", () => inner.Attention(qkv, mask, output, batch, seq, heads, headDim, causal));
    /// <inheritdoc />
    public void GemmEx(DeviceBuffer<float> a, bool transposeA, DeviceBuffer<float> b, bool transposeB, DeviceBuffer<float> c, int m, int k, int n, bool accumulate) =>
        Time("GemmEx", () => inner.GemmEx(a, transposeA, b, transposeB, c, m, k, n, accumulate));
    /// <inheritdoc />
    public void GatherRows(DeviceBuffer<float> source, DeviceBuffer<int> indices, DeviceBuffer<float> output, int rows, int width) => Time("GatherRows", () => inner.GatherRows(source, indices, output, rows, width));
    /// <inheritdoc />
    public void ScatterAddRows(DeviceBuffer<float> source, DeviceBuffer<int> indices, DeviceBuffer<float> target, int rows, int width) => Time("ScatterAddRows", () => inner.ScatterAddRows(source, indices, target, rows, width));
    /// <inheritdoc />
    public void BiasActivation(DeviceBuffer<float> input, DeviceBuffer<float> bias, DeviceBuffer<float> preActivation, DeviceBuffer<float> output, int rows, int width, bool gelu) =>
        Time("BiasActivation", () => inner.BiasActivation(input, bias, preActivation, output, rows, width, gelu));
    /// <inheritdoc />
    public void GeluBackward(DeviceBuffer<float> preActivation, DeviceBuffer<float> upstream, DeviceBuffer<float> gradient, long count) => Time("GeluBackward", () => inner.GeluBackward(preActivation, upstream, gradient, count));
    /// <inheritdoc />
    public void ColumnSums(DeviceBuffer<float> matrix, DeviceBuffer<float> columnSums, int rows, int width) => Time("ColumnSums", () => inner.ColumnSums(matrix, columnSums, rows, width));
    /// <inheritdoc />
    public void SoftmaxCrossEntropy(DeviceBuffer<float> logits, DeviceBuffer<int> targets, DeviceBuffer<float> lossNats, DeviceBuffer<int> argmax, int rows, int classes, float gradientScale, bool writeGradient) =>
        Time("SoftmaxCrossEntropy", () => inner.SoftmaxCrossEntropy(logits, targets, lossNats, argmax, rows, classes, gradientScale, writeGradient));
    /// <inheritdoc />
    public void AdamW(DeviceBuffer<float> parameters, DeviceBuffer<float> gradients, DeviceBuffer<float> firstMoment, DeviceBuffer<float> secondMoment, long count, AdamWStep step) =>
        Time("AdamW", () => inner.AdamW(parameters, gradients, firstMoment, secondMoment, count, step));
    /// <inheritdoc />
    public void Zero(DeviceBuffer<float> buffer, long count) => Time("Zero", () => inner.Zero(buffer, count));
    /// <inheritdoc />
    public void RmsNorm(DeviceBuffer<float> input, DeviceBuffer<float> gamma, DeviceBuffer<float> output, int rows, int width, float epsilon, bool addOneToGamma) =>
        Time("RmsNorm", () => inner.RmsNorm(input, gamma, output, rows, width, epsilon, addOneToGamma));
    /// <inheritdoc />
    public void HeadRmsNorm(DeviceBuffer<float> qkv, DeviceBuffer<float> queryGamma, DeviceBuffer<float> keyGamma, int rows, int heads, int keyValueHeads, int headDim, float epsilon) =>
        Time("HeadRmsNorm", () => inner.HeadRmsNorm(qkv, queryGamma, keyGamma, rows, heads, keyValueHeads, headDim, epsilon));
    /// <inheritdoc />
    public void Rotary(DeviceBuffer<float> qkv, DeviceBuffer<int> positions, DeviceBuffer<float> inverseFrequencies, int rows, int heads, int keyValueHeads, int headDim) =>
        Time("Rotary", () => inner.Rotary(qkv, positions, inverseFrequencies, rows, heads, keyValueHeads, headDim));
    /// <inheritdoc />
    public void ExpandKeyValueHeads(DeviceBuffer<float> compact, DeviceBuffer<float> expanded, int rows, int heads, int keyValueHeads, int headDim) =>
        Time("ExpandKeyValueHeads", () => inner.ExpandKeyValueHeads(compact, expanded, rows, heads, keyValueHeads, headDim));
    /// <inheritdoc />
    public void GatedActivation(DeviceBuffer<float> gateUp, DeviceBuffer<float> output, int rows, int width, GateActivation activation) =>
        Time("GatedActivation", () => inner.GatedActivation(gateUp, output, rows, width, activation));
    /// <inheritdoc />
    public void ScaleInPlace(DeviceBuffer<float> buffer, float factor, long count) => Time("ScaleInPlace", () => inner.ScaleInPlace(buffer, factor, count));
    /// <inheritdoc />
    public void PoolSentences(DeviceBuffer<float> layer, DeviceBuffer<int> attentionMask, DeviceBuffer<int> isTarget, DeviceBuffer<float> output,
        int batch, int seq, int width, NativeMi.Pooling.PoolingMode mode) =>
        Time("PoolSentences", () => inner.PoolSentences(layer, attentionMask, isTarget, output, batch, seq, width, mode));
    /// <inheritdoc />
    public PredictionCounts CountPredictions(DeviceBuffer<int> predictions, DeviceBuffer<int> targets, DeviceBuffer<int> positions,
        long count, int classes, int positionCount)
    {
        PredictionCounts? counts = null;
        Time("CountPredictions", () => counts = inner.CountPredictions(predictions, targets, positions, count, classes, positionCount));
        return counts!;
    }
    /// <inheritdoc />
    public void ApplyActivation(DeviceBuffer<float> input, DeviceBuffer<float> output, long count, Activation activation) =>
        Time("ApplyActivation", () => inner.ApplyActivation(input, output, count, activation));
    /// <inheritdoc />
    public void ActivationBackward(DeviceBuffer<float> preActivation, DeviceBuffer<float> upstream, DeviceBuffer<float> gradient, long count, Activation activation) =>
        Time("ActivationBackward", () => inner.ActivationBackward(preActivation, upstream, gradient, count, activation));
    /// <inheritdoc />
    public void GatedActivationBackward(DeviceBuffer<float> gateUp, DeviceBuffer<float> upstream, DeviceBuffer<float> gateUpGradient, int rows, int width, GateActivation activation) =>
        Time("GatedActivationBackward", () => inner.GatedActivationBackward(gateUp, upstream, gateUpGradient, rows, width, activation));
    /// <inheritdoc />
    public void LayerNormBackward(DeviceBuffer<float> input, DeviceBuffer<float>? residual, DeviceBuffer<float> gamma, DeviceBuffer<float> outputGradient,
        DeviceBuffer<float> inputGradient, DeviceBuffer<float> gammaGradient, DeviceBuffer<float> betaGradient, int rows, int width, float epsilon) =>
        Time("LayerNormBackward", () => inner.LayerNormBackward(input, residual, gamma, outputGradient, inputGradient, gammaGradient, betaGradient, rows, width, epsilon));
    /// <inheritdoc />
    public void RmsNormBackward(DeviceBuffer<float> input, DeviceBuffer<float> gamma, DeviceBuffer<float> outputGradient, DeviceBuffer<float> inputGradient,
        DeviceBuffer<float> gammaGradient, int rows, int width, float epsilon, bool addOneToGamma) =>
        Time("RmsNormBackward", () => inner.RmsNormBackward(input, gamma, outputGradient, inputGradient, gammaGradient, rows, width, epsilon, addOneToGamma));
    /// <inheritdoc />
    public void HeadRmsNormBackward(DeviceBuffer<float> qkv, DeviceBuffer<float> queryGamma, DeviceBuffer<float> keyGamma, DeviceBuffer<float> qkvGradient,
        DeviceBuffer<float> queryGammaGradient, DeviceBuffer<float> keyGammaGradient, int rows, int heads, int keyValueHeads, int headDim, float epsilon) =>
        Time("HeadRmsNormBackward", () => inner.HeadRmsNormBackward(qkv, queryGamma, keyGamma, qkvGradient, queryGammaGradient, keyGammaGradient, rows, heads, keyValueHeads, headDim, epsilon));
    /// <inheritdoc />
    public void RotaryBackward(DeviceBuffer<float> qkvGradient, DeviceBuffer<int> positions, DeviceBuffer<float> inverseFrequencies, int rows, int heads, int keyValueHeads, int headDim) =>
        Time("RotaryBackward", () => inner.RotaryBackward(qkvGradient, positions, inverseFrequencies, rows, heads, keyValueHeads, headDim));
    /// <inheritdoc />
    public void ReduceKeyValueHeads(DeviceBuffer<float> expanded, DeviceBuffer<float> compact, int rows, int heads, int keyValueHeads, int headDim) =>
        Time("ReduceKeyValueHeads", () => inner.ReduceKeyValueHeads(expanded, compact, rows, heads, keyValueHeads, headDim));
    /// <inheritdoc />
    public void AttentionBackward(DeviceBuffer<float> qkv, DeviceBuffer<int> mask, DeviceBuffer<float> outputGradient, DeviceBuffer<float> qkvGradient,
        int batch, int seq, int heads, int headDim, bool causal) =>
        Time("AttentionBackward", () => inner.AttentionBackward(qkv, mask, outputGradient, qkvGradient, batch, seq, heads, headDim, causal));
    /// <inheritdoc />
    public void PoolSentencesBackward(DeviceBuffer<float> layer, DeviceBuffer<int> attentionMask, DeviceBuffer<int> isTarget, DeviceBuffer<float> pooledGradient,
        DeviceBuffer<float> layerGradient, int batch, int seq, int width, NativeMi.Pooling.PoolingMode mode) =>
        Time("PoolSentencesBackward", () => inner.PoolSentencesBackward(layer, attentionMask, isTarget, pooledGradient, layerGradient, batch, seq, width, mode));
    /// <inheritdoc />
    public void SumOfSquares(DeviceBuffer<float> buffer, long count, DeviceBuffer<float> sums, int index) =>
        Time("SumOfSquares", () => inner.SumOfSquares(buffer, count, sums, index));
    /// <inheritdoc />
    public void Dispose() => inner.Dispose();
}

/// <summary>`forward-profile [runs]`: share of forward-pass time per op at several batch sizes, and of one probe epoch.</summary>
internal static class ForwardProfile
{
    /// <summary>Runs the profile and returns a Markdown report.</summary>
    public static string Run(int runs, int[] batchSizes)
    {
        var report = new StringBuilder();
        report.AppendLine("# Forward-pass profile (minilm, CPU backend, per-op wall time through a timing decorator)");
        report.AppendLine();
        var timing = new TimingBackend(new CpuBackend());
        using var model = ModelResolver.Load("minilm", timing);
        string[] sentences = File.ReadLines(Path.Combine(AppContext.BaseDirectory, "data", "wordnet-examples.txt"))
            .Where(l => l.Split(' ').Length >= 8).Take(batchSizes.Max()).ToArray();
        foreach (int batchSize in batchSizes)
        {
            EncodedBatch batch = model.Encode(sentences.Take(batchSize).ToArray());
            for (int i = 0; i < 10; i++) model.Forward(batch);
            var totals = new List<double>();
            var perOp = new List<Dictionary<string, double>>();
            for (int i = 0; i < runs; i++)
            {
                timing.Reset();
                long start = Stopwatch.GetTimestamp();
                model.Forward(batch);
                totals.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                perOp.Add(new Dictionary<string, double>(timing.Milliseconds));
            }
            // The run with the median total, so that the shares add up within one pass.
            int median = Enumerable.Range(0, runs).OrderBy(i => totals[i]).ElementAt(runs / 2);
            AppendShares(report, $"batch {batchSize} ({batch.SequenceLength} tokens padded)", totals[median], perOp[median]);
        }
        return report.ToString();
    }

    /// <summary>One table of op shares.</summary>
    public static void AppendShares(StringBuilder report, string title, double total, IReadOnlyDictionary<string, double> ops)
    {
        report.AppendLine(CultureInfo.InvariantCulture, $"## {title}: {total:F1} ms");
        report.AppendLine();
        report.AppendLine("| op | ms | share |");
        report.AppendLine("|---|---:|---:|");
        foreach (var (op, ms) in ops.OrderByDescending(p => p.Value))
            report.AppendLine(CultureInfo.InvariantCulture, $"| {op} | {ms:F2} | {100 * ms / total:F1}% |");
        double rest = total - ops.Values.Sum();
        report.AppendLine(CultureInfo.InvariantCulture, $"| (outside ops: host snapshots, batch set-up) | {rest:F2} | {100 * rest / total:F1}% |");
        report.AppendLine();
    }
}
