using NativeMi.Pooling;
namespace NativeMi.Compute;

/// <summary>Element-wise function applied in a GEMM epilogue.</summary>
internal enum Activation
{
    /// <summary>Identity.</summary>
    None,
    /// <summary>Exact GELU, 0.5 x (1 + erf(x / sqrt 2)).</summary>
    GeluExact,
    /// <summary>Tanh-approximated GELU as GPT-2 defines it.</summary>
    GeluTanh,
}

/// <summary>The activation of a gated feed-forward layer's gate (SwiGLU: SiLU; GeGLU: a GELU).</summary>
internal enum GateActivation
{
    /// <summary>x · sigmoid(x) (SwiGLU: Llama, Mistral, Qwen).</summary>
    Silu,
    /// <summary>Exact GELU (GeGLU).</summary>
    GeluExact,
    /// <summary>Tanh GELU (GeGLU as Gemma uses it).</summary>
    GeluTanh,
}

/// <summary>A buffer of elements owned by a backend (host memory for the CPU, device memory for CUDA).</summary>
/// <typeparam name="T">float for activations and weights, int for ids and masks.</typeparam>
internal abstract class DeviceBuffer<T> : IDisposable where T : unmanaged
{
    /// <summary>Number of elements.</summary>
    public abstract long Length { get; }

    /// <summary>Releases the memory.</summary>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases the memory; override in backends that own unmanaged memory.</summary>
    protected virtual void Dispose(bool disposing) { }
}

/// <summary>
/// The op set every backend implements. The transformer forward pass and the probe trainer are written
/// once against it. Shapes are row-major; a "row" is one token of one sentence.
/// </summary>
internal interface IComputeBackend : IDisposable
{
    /// <summary>Short name ("cpu", "cuda").</summary>
    string Name { get; }

    /// <summary>Human-readable description of what runs (instruction set, device, thread count).</summary>
    string Description { get; }

    /// <summary>Waits until every op issued so far has finished (a no-op where ops run at the call); for timing.</summary>
    void Synchronize();

    /// <summary>A zero-filled buffer.</summary>
    DeviceBuffer<T> Allocate<T>(long length) where T : unmanaged;

    /// <summary>A buffer holding a copy of <paramref name="data"/>.</summary>
    DeviceBuffer<T> Upload<T>(ReadOnlySpan<T> data) where T : unmanaged;

    /// <summary>
    /// A constant matrix [rows, columns] used as the right operand of <see cref="Gemm"/> (model weights).
    /// The backend may keep it in a layout of its own (the CPU packs it once for its GEMM kernel); it must
    /// not be written afterwards.
    /// </summary>
    DeviceBuffer<float> UploadMatrix(ReadOnlySpan<float> data, int rows, int columns);

    /// <summary>
    /// <see cref="UploadMatrix(ReadOnlySpan{float}, int, int)"/> for a matrix of 16-bit values (F16 or BF16), which the backend
    /// keeps 16-bit: the CPU widens a slab of it to fp32 inside the GEMM (exactly, so products equal those over the widened
    /// matrix); CUDA runs cuBLAS's GemmEx with 16-bit inputs (the activations rounded to the format) and fp32 accumulation.
    /// </summary>
    /// <param name="data">The matrix [rows, columns], or its transpose [columns, rows] when <paramref name="transposed"/>
    /// (a Hugging Face nn.Linear weight, [out, in]).</param>
    /// <param name="rows">Rows of the matrix (the GEMM's inner dimension).</param>
    /// <param name="columns">Columns of the matrix (the GEMM's outputs).</param>
    /// <param name="format">Float16 or BFloat16.</param>
    /// <param name="transposed">The data is stored transposed.</param>
    DeviceBuffer<float> UploadMatrix(ReadOnlySpan<ushort> data, int rows, int columns, WeightFormat format, bool transposed);

    /// <summary>
    /// A constant table [rows, width] of 16-bit values (an F16 or BF16 embedding table), kept 16-bit. Only
    /// <see cref="EmbeddingGather"/> (as its word table), <see cref="GatherRows"/> (as its source) and
    /// <see cref="Download{T}"/> read it; each widens the values to fp32 exactly.
    /// </summary>
    DeviceBuffer<float> UploadTable(ReadOnlySpan<ushort> data, int rows, int width, WeightFormat format);

    /// <summary>Overwrites the first elements of <paramref name="destination"/> with <paramref name="source"/>.</summary>
    void CopyFromHost<T>(ReadOnlySpan<T> source, DeviceBuffer<T> destination) where T : unmanaged;

    /// <summary>Copies a buffer (or its first elements) back to host memory.</summary>
    void Download<T>(DeviceBuffer<T> source, Span<T> destination) where T : unmanaged;

    /// <summary>
    /// output[m, n] = activation(input[m, k] · weight[k, n] + bias[n]). The weight is stored [in, out],
    /// row-major.
    /// </summary>
    void Gemm(DeviceBuffer<float> input, DeviceBuffer<float> weight, DeviceBuffer<float>? bias, DeviceBuffer<float> output,
        int m, int k, int n, Activation activation);

    /// <summary>output[r] = LayerNorm(input[r] + residual[r]) · gamma + beta for each of <paramref name="rows"/> rows.</summary>
    void LayerNorm(DeviceBuffer<float> input, DeviceBuffer<float>? residual, DeviceBuffer<float> gamma, DeviceBuffer<float> beta,
        DeviceBuffer<float> output, int rows, int width, float epsilon);

    /// <summary>
    /// output[r] = input[r] / sqrt(mean(input[r]²) + ε) · γ for each of <paramref name="rows"/> rows (RMSNorm); with
    /// <paramref name="addOneToGamma"/>, · (1 + γ) as Gemma stores it.
    /// </summary>
    void RmsNorm(DeviceBuffer<float> input, DeviceBuffer<float> gamma, DeviceBuffer<float> output, int rows, int width, float epsilon, bool addOneToGamma);

    /// <summary>
    /// In place on a fused [rows, (heads + 2·keyValueHeads)·headDim] buffer: RMSNorm over the width of every query head with
    /// <paramref name="queryGamma"/> and of every key head with <paramref name="keyGamma"/> (Qwen3's q/k norms); values untouched.
    /// </summary>
    void HeadRmsNorm(DeviceBuffer<float> qkv, DeviceBuffer<float> queryGamma, DeviceBuffer<float> keyGamma, int rows, int heads, int keyValueHeads,
        int headDim, float epsilon);

    /// <summary>
    /// In place on a fused [rows, (heads + 2·keyValueHeads)·headDim] buffer: rotary position embeddings on every query and key
    /// head of row r at position positions[r], with Hugging Face's rotate-half convention: x' = x·cos + rotate_half(x)·sin,
    /// rotate_half(x) = (−x₂, x₁) for the two halves of the head, angle_i = position · inverseFrequencies[i mod headDim/2].
    /// </summary>
    void Rotary(DeviceBuffer<float> qkv, DeviceBuffer<int> positions, DeviceBuffer<float> inverseFrequencies, int rows, int heads, int keyValueHeads, int headDim);

    /// <summary>
    /// Grouped-query attention's key and value sharing made explicit: <paramref name="compact"/> [rows, (heads + 2·kv)·headDim]
    /// becomes <paramref name="expanded"/> [rows, 3·heads·headDim], query head h reading key-value head h / (heads / kv)
    /// (Hugging Face's repeat_kv), so that <see cref="Attention"/> runs on it.
    /// </summary>
    void ExpandKeyValueHeads(DeviceBuffer<float> compact, DeviceBuffer<float> expanded, int rows, int heads, int keyValueHeads, int headDim);

    /// <summary>
    /// The middle of a gated feed-forward layer: output[r, j] = act(gateUp[r, j]) · gateUp[r, width + j], with gateUp
    /// [rows, 2·width] holding the gate and the up projections side by side.
    /// </summary>
    void GatedActivation(DeviceBuffer<float> gateUp, DeviceBuffer<float> output, int rows, int width, GateActivation activation);

    /// <summary>buffer *= factor over the first <paramref name="count"/> elements (Gemma's embedding scale).</summary>
    void ScaleInPlace(DeviceBuffer<float> buffer, float factor, long count);

    /// <summary>accumulator += addend, element-wise over the first <paramref name="count"/> elements.</summary>
    void AddInPlace(DeviceBuffer<float> accumulator, DeviceBuffer<float> addend, long count);

    /// <summary>
    /// Embedding sum: output[row] = words[ids[row]] + positions[positionIds[row]] (+ types[typeIds[row]]).
    /// </summary>
    void EmbeddingGather(DeviceBuffer<int> ids, DeviceBuffer<int> positionIds, DeviceBuffer<int>? typeIds,
        DeviceBuffer<float> words, DeviceBuffer<float> positions, DeviceBuffer<float>? types, DeviceBuffer<float> output,
        int rows, int width);

    /// <summary>
    /// Multi-head scaled dot-product attention. <paramref name="qkv"/> is [batch·seq, 3·heads·headDim]
    /// (queries, keys, values side by side); <paramref name="mask"/> is [batch, seq] with 1 for real tokens.
    /// Keys that are masked (or, when <paramref name="causal"/>, later than the query) get no weight.
    /// A query with no visible key outputs zeros. Writes [batch·seq, heads·headDim].
    /// </summary>
    void Attention(DeviceBuffer<float> qkv, DeviceBuffer<int> mask, DeviceBuffer<float> output,
        int batch, int seq, int heads, int headDim, bool causal);

    /// <summary>
    /// General GEMM: C = op(A) · op(B) (+ C when <paramref name="accumulate"/>), with op(A) [m, k] and
    /// op(B) [k, n]. A transposed operand is stored as its transpose ([k, m] or [n, k]).
    /// </summary>
    void GemmEx(DeviceBuffer<float> a, bool transposeA, DeviceBuffer<float> b, bool transposeB, DeviceBuffer<float> c,
        int m, int k, int n, bool accumulate);

    /// <summary>output[r] = source[indices[r]] for <paramref name="rows"/> rows of <paramref name="width"/>.</summary>
    void GatherRows(DeviceBuffer<float> source, DeviceBuffer<int> indices, DeviceBuffer<float> output, int rows, int width);

    /// <summary>target[indices[r]] += source[r] for <paramref name="rows"/> rows (several rows may share a target row).</summary>
    void ScatterAddRows(DeviceBuffer<float> source, DeviceBuffer<int> indices, DeviceBuffer<float> target, int rows, int width);

    /// <summary>Adds <paramref name="bias"/> to every row; when <paramref name="gelu"/>, keeps the sum in
    /// <paramref name="preActivation"/> and writes gelu of it to <paramref name="output"/>.</summary>
    void BiasActivation(DeviceBuffer<float> input, DeviceBuffer<float> bias, DeviceBuffer<float> preActivation, DeviceBuffer<float> output,
        int rows, int width, bool gelu);

    /// <summary>gradient = upstream · GELU'(preActivation), element-wise (exact GELU).</summary>
    void GeluBackward(DeviceBuffer<float> preActivation, DeviceBuffer<float> upstream, DeviceBuffer<float> gradient, long count);

    /// <summary>columnSums[j] = Σ_r matrix[r, j].</summary>
    void ColumnSums(DeviceBuffer<float> matrix, DeviceBuffer<float> columnSums, int rows, int width);

    /// <summary>
    /// The fused probe step: for each row of <paramref name="logits"/> [rows, classes], in one pass computes
    /// the log-sum-exp, the loss -ln softmax(row)[target], the argmax, and overwrites the row with the gradient
    /// (softmax - onehot) · <paramref name="gradientScale"/>. No probability matrix is stored.
    /// </summary>
    void SoftmaxCrossEntropy(DeviceBuffer<float> logits, DeviceBuffer<int> targets, DeviceBuffer<float> lossNats, DeviceBuffer<int> argmax,
        int rows, int classes, float gradientScale, bool writeGradient);

    /// <summary>One AdamW step (decoupled weight decay) over <paramref name="count"/> parameters, in one loop.</summary>
    void AdamW(DeviceBuffer<float> parameters, DeviceBuffer<float> gradients, DeviceBuffer<float> firstMoment, DeviceBuffer<float> secondMoment,
        long count, AdamWStep step);

    /// <summary>Sets the first <paramref name="count"/> elements to zero.</summary>
    void Zero(DeviceBuffer<float> buffer, long count);

    /// <summary>
    /// Mask-aware pooling of one layer [batch·seq, width] into sentence vectors [batch, width]: mean or max over the
    /// real target tokens, or the first or last real token. Positions come from <paramref name="attentionMask"/> and
    /// <paramref name="isTarget"/> (1 at text tokens, 0 at special tokens and padding), never from the padding side.
    /// A sentence with nothing to pool (no real token; for mean and max, no target) gets NaN in every element.
    /// </summary>
    void PoolSentences(DeviceBuffer<float> layer, DeviceBuffer<int> attentionMask, DeviceBuffer<int> isTarget, DeviceBuffer<float> output,
        int batch, int seq, int width, Pooling.PoolingMode mode);

    /// <summary>
    /// The integer counts behind the Fano bounds over <paramref name="count"/> predictions: how many differ from their
    /// target, the histogram of the targets over [0, <paramref name="classes"/>) (targets outside it are counted
    /// apart), and per position p in [0, <paramref name="positionCount"/>) the trials and errors (items whose
    /// position is outside that range are left out of the per-position counts). Exact whatever the scheduling.
    /// </summary>
    PredictionCounts CountPredictions(DeviceBuffer<int> predictions, DeviceBuffer<int> targets, DeviceBuffer<int> positions,
        long count, int classes, int positionCount);

    // The backward pass through the transformer (fine-tuning). Each op is the exact derivative of its forward op; a
    // parameter gradient is overwritten, never accumulated, because every parameter is used once per forward pass (the
    // embedding tables, read once per row, take ScatterAddRows). Sums over rows run in a fixed order, so these ops give
    // the same bits from run to run on one device.

    /// <summary>output = activation(input), element-wise over <paramref name="count"/> elements (the training forward keeps
    /// the pre-activation that <see cref="Gemm"/>'s fused epilogue would discard). <paramref name="output"/> may be <paramref name="input"/>.</summary>
    void ApplyActivation(DeviceBuffer<float> input, DeviceBuffer<float> output, long count, Activation activation);

    /// <summary>gradient = upstream · activation'(preActivation), element-wise; <paramref name="gradient"/> may be <paramref name="upstream"/>.</summary>
    void ActivationBackward(DeviceBuffer<float> preActivation, DeviceBuffer<float> upstream, DeviceBuffer<float> gradient, long count, Activation activation);

    /// <summary>
    /// The backward of <see cref="GatedActivation"/>: with gateUp [rows, 2·width] the forward's input and upstream [rows, width]
    /// the gradient of its output, gateUpGradient[r, j] = upstream · up · act'(gate) and gateUpGradient[r, width + j] = upstream · act(gate).
    /// </summary>
    void GatedActivationBackward(DeviceBuffer<float> gateUp, DeviceBuffer<float> upstream, DeviceBuffer<float> gateUpGradient, int rows, int width, GateActivation activation);

    /// <summary>
    /// The backward of <see cref="LayerNorm"/> at x = input + residual (residual optional): inputGradient = ∂L/∂x,
    /// gammaGradient[j] = Σ_r outputGradient · x̂ and betaGradient[j] = Σ_r outputGradient (overwritten). <paramref name="inputGradient"/>
    /// may be <paramref name="outputGradient"/>.
    /// </summary>
    void LayerNormBackward(DeviceBuffer<float> input, DeviceBuffer<float>? residual, DeviceBuffer<float> gamma, DeviceBuffer<float> outputGradient,
        DeviceBuffer<float> inputGradient, DeviceBuffer<float> gammaGradient, DeviceBuffer<float> betaGradient, int rows, int width, float epsilon);

    /// <summary>
    /// The backward of <see cref="RmsNorm"/> (with <paramref name="addOneToGamma"/>, Gemma's (1 + γ)): inputGradient = ∂L/∂input and
    /// gammaGradient[j] = Σ_r outputGradient · input / rms (overwritten). <paramref name="inputGradient"/> may be <paramref name="outputGradient"/>.
    /// </summary>
    void RmsNormBackward(DeviceBuffer<float> input, DeviceBuffer<float> gamma, DeviceBuffer<float> outputGradient, DeviceBuffer<float> inputGradient,
        DeviceBuffer<float> gammaGradient, int rows, int width, float epsilon, bool addOneToGamma);

    /// <summary>
    /// The backward of <see cref="HeadRmsNorm"/>, in place on <paramref name="qkvGradient"/> (the gradient of the normed fused buffer
    /// becomes that of <paramref name="qkv"/>, the buffer before the norm; the value heads pass through), with the query and key
    /// gammas' gradients summed over rows and heads (overwritten).
    /// </summary>
    void HeadRmsNormBackward(DeviceBuffer<float> qkv, DeviceBuffer<float> queryGamma, DeviceBuffer<float> keyGamma, DeviceBuffer<float> qkvGradient,
        DeviceBuffer<float> queryGammaGradient, DeviceBuffer<float> keyGammaGradient, int rows, int heads, int keyValueHeads, int headDim, float epsilon);

    /// <summary>The backward of <see cref="Rotary"/>, in place on a fused gradient buffer: every query and key head rotated back by its angle
    /// (the transpose of a rotation is its inverse); values untouched.</summary>
    void RotaryBackward(DeviceBuffer<float> qkvGradient, DeviceBuffer<int> positions, DeviceBuffer<float> inverseFrequencies, int rows, int heads, int keyValueHeads, int headDim);

    /// <summary>
    /// The backward of <see cref="ExpandKeyValueHeads"/>: <paramref name="expanded"/> [rows, 3·heads·headDim] (a gradient) becomes
    /// <paramref name="compact"/> [rows, (heads + 2·kv)·headDim], each key-value head the sum, in head order, of the query heads that read it.
    /// </summary>
    void ReduceKeyValueHeads(DeviceBuffer<float> expanded, DeviceBuffer<float> compact, int rows, int heads, int keyValueHeads, int headDim);

    /// <summary>
    /// The backward of <see cref="Attention"/>: from the forward's <paramref name="qkv"/> and <paramref name="mask"/> and the gradient of its
    /// output [batch·seq, heads·headDim], writes the gradient of every query, key and value, [batch·seq, 3·heads·headDim] (all of it: rows
    /// that no real query reads get zeros). The probabilities are recomputed, not stored.
    /// </summary>
    void AttentionBackward(DeviceBuffer<float> qkv, DeviceBuffer<int> mask, DeviceBuffer<float> outputGradient, DeviceBuffer<float> qkvGradient,
        int batch, int seq, int heads, int headDim, bool causal);

    /// <summary>
    /// The backward of <see cref="PoolSentences"/>: writes all of <paramref name="layerGradient"/> [batch·seq, width] from the gradient of the
    /// sentence vectors [batch, width]: mean spreads it evenly over the target tokens, cls and last give it to their token, max to the first
    /// target token holding the maximum. Every other cell gets 0; a sentence with nothing to pool gets NaN, as its vector did.
    /// </summary>
    void PoolSentencesBackward(DeviceBuffer<float> layer, DeviceBuffer<int> attentionMask, DeviceBuffer<int> isTarget, DeviceBuffer<float> pooledGradient,
        DeviceBuffer<float> layerGradient, int batch, int seq, int width, Pooling.PoolingMode mode);

    /// <summary>sums[index] = Σ buffer[i]² over the first <paramref name="count"/> elements, accumulated in double (a gradient's share of the
    /// global norm that clipping needs; one slot per tensor, so the norm costs one download, not one per tensor).</summary>
    void SumOfSquares(DeviceBuffer<float> buffer, long count, DeviceBuffer<float> sums, int index);
}

/// <summary>What <see cref="IComputeBackend.CountPredictions"/> returns.</summary>
/// <param name="Errors">Predictions that differ from their target.</param>
/// <param name="TargetHistogram">Entry c: targets equal to c.</param>
/// <param name="TargetsOutOfRange">Targets outside [0, classes).</param>
/// <param name="PositionTrials">Entry p: items at position p.</param>
/// <param name="PositionErrors">Entry p: wrong predictions at position p.</param>
internal sealed record PredictionCounts(long Errors, long[] TargetHistogram, long TargetsOutOfRange, long[] PositionTrials, long[] PositionErrors);

/// <summary>Hyper-parameters of one AdamW step.</summary>
/// <param name="LearningRate">lr.</param>
/// <param name="Beta1">First-moment decay.</param>
/// <param name="Beta2">Second-moment decay.</param>
/// <param name="Epsilon">Denominator guard.</param>
/// <param name="WeightDecay">Decoupled weight decay λ (applied as p -= lr·λ·p).</param>
/// <param name="Step">1-based step number, for bias correction.</param>
internal readonly record struct AdamWStep(float LearningRate, float Beta1, float Beta2, float Epsilon, float WeightDecay, int Step);
