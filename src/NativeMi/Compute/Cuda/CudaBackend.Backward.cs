using NativeMi.Compute.Cuda.Native;
using NativeMi.Pooling;

namespace NativeMi.Compute.Cuda;

// The backward ops of fine-tuning (kernels/backward.cu), launched like the rest; their CPU references are in
// CpuBackend.Backward.cs. Attention's backward reuses the forward's cuBLAS layout: per head, strided-batched GEMMs over all
// the chunk's sentences around one softmax-backward launch.
internal sealed unsafe partial class CudaBackend
{
    private nint _activationForward, _activationBackward, _gatedActivationBackward, _normBackwardRows, _normBackwardColumns, _normBackwardInput;
    private nint _headRmsNormBackwardRows, _headRmsNormBackwardGamma, _headRmsNormBackwardInput, _rotaryBackward, _reduceKeyValueHeads;
    private nint _attentionSoftmaxBackward, _poolSentencesBackward, _sumOfSquaresPartial, _sumOfSquaresFinish;
    private CudaDeviceMemory? _backwardStatistics, _squarePartials, _attentionScoreGradients;

    private void InitialiseBackwardKernels(Dictionary<string, nint> functions)
    {
        _activationForward = functions["activation_forward"];
        _activationBackward = functions["activation_backward"];
        _gatedActivationBackward = functions["gated_activation_backward"];
        _normBackwardRows = functions["norm_backward_rows"];
        _normBackwardColumns = functions["norm_backward_columns"];
        _normBackwardInput = functions["norm_backward_input"];
        _headRmsNormBackwardRows = functions["head_rmsnorm_backward_rows"];
        _headRmsNormBackwardGamma = functions["head_rmsnorm_backward_gamma"];
        _headRmsNormBackwardInput = functions["head_rmsnorm_backward_input"];
        _rotaryBackward = functions["rotary_backward_inplace"];
        _reduceKeyValueHeads = functions["reduce_kv_heads"];
        _attentionSoftmaxBackward = functions["attention_softmax_backward"];
        _poolSentencesBackward = functions["pool_sentences_backward"];
        _sumOfSquaresPartial = functions["sum_of_squares_partial"];
        _sumOfSquaresFinish = functions["sum_of_squares_finish"];
    }

    private void DisposeBackwardScratch()
    {
        _backwardStatistics?.Dispose();
        _squarePartials?.Dispose();
        _attentionScoreGradients?.Dispose();
    }

    // Scratch that grows and is kept; queued work may still read the old one, so the stream is drained before it is freed.
    private ulong Scratch(ref CudaDeviceMemory? memory, long bytes)
    {
        if (memory is null || memory.Bytes < bytes)
        {
            _stream.Synchronize();
            memory?.Dispose();
            memory = null;
            memory = CudaDeviceMemory.Allocate(_context, bytes);
        }
        return memory.Pointer;
    }

    /// <inheritdoc />
    public void ApplyActivation(DeviceBuffer<float> input, DeviceBuffer<float> output, long count, Activation activation)
    {
        Enter();
        ulong x = Own(input, count, nameof(input)).Pointer, y = Own(output, count, nameof(output)).Pointer;
        if (count == 0) return;
        int code = (int)activation;
        void** arguments = stackalloc void*[] { &x, &y, &count, &code };
        CheckLaunch(CudaDriverApi.LaunchKernel(_activationForward, GridFor(count), 1, 1, ElementwiseBlock, 1, 1, 0, Stream, arguments, null), "activation_forward");
    }

    /// <inheritdoc />
    public void ActivationBackward(DeviceBuffer<float> preActivation, DeviceBuffer<float> upstream, DeviceBuffer<float> gradient, long count, Activation activation)
    {
        Enter();
        ulong pre = Own(preActivation, count, nameof(preActivation)).Pointer, up = Own(upstream, count, nameof(upstream)).Pointer;
        ulong grad = Own(gradient, count, nameof(gradient)).Pointer;
        if (count == 0) return;
        int code = (int)activation;
        void** arguments = stackalloc void*[] { &pre, &up, &grad, &count, &code };
        CheckLaunch(CudaDriverApi.LaunchKernel(_activationBackward, GridFor(count), 1, 1, ElementwiseBlock, 1, 1, 0, Stream, arguments, null), "activation_backward");
    }

    /// <inheritdoc />
    public void GatedActivationBackward(DeviceBuffer<float> gateUp, DeviceBuffer<float> upstream, DeviceBuffer<float> gateUpGradient, int rows, int width, GateActivation activation)
    {
        Enter();
        long cells = (long)rows * width;
        ulong x = Own(gateUp, 2 * cells, nameof(gateUp)).Pointer, up = Own(upstream, cells, nameof(upstream)).Pointer;
        ulong grad = Own(gateUpGradient, 2 * cells, nameof(gateUpGradient)).Pointer;
        if (cells == 0) return;
        int kind = (int)activation;
        void** arguments = stackalloc void*[] { &x, &up, &grad, &rows, &width, &kind };
        CheckLaunch(CudaDriverApi.LaunchKernel(_gatedActivationBackward, GridFor(cells), 1, 1, ElementwiseBlock, 1, 1, 0, Stream, arguments, null), "gated_activation_backward");
    }

    /// <inheritdoc />
    public void LayerNormBackward(DeviceBuffer<float> input, DeviceBuffer<float>? residual, DeviceBuffer<float> gamma, DeviceBuffer<float> outputGradient,
        DeviceBuffer<float> inputGradient, DeviceBuffer<float> gammaGradient, DeviceBuffer<float> betaGradient, int rows, int width, float epsilon) =>
        NormBackward(input, residual, gamma, outputGradient, inputGradient, gammaGradient, betaGradient, rows, width, epsilon, kind: 0);

    /// <inheritdoc />
    public void RmsNormBackward(DeviceBuffer<float> input, DeviceBuffer<float> gamma, DeviceBuffer<float> outputGradient, DeviceBuffer<float> inputGradient,
        DeviceBuffer<float> gammaGradient, int rows, int width, float epsilon, bool addOneToGamma) =>
        NormBackward(input, null, gamma, outputGradient, inputGradient, gammaGradient, null, rows, width, epsilon, kind: addOneToGamma ? 2 : 1);

    // kind 0: LayerNorm (with beta), 1: RMSNorm, 2: RMSNorm with (1 + gamma). Row statistics first, then the column sums of the
    // parameter gradients, then the input gradient, so that the last may overwrite the output gradient the others read.
    private void NormBackward(DeviceBuffer<float> input, DeviceBuffer<float>? residual, DeviceBuffer<float> gamma, DeviceBuffer<float> outputGradient,
        DeviceBuffer<float> inputGradient, DeviceBuffer<float> gammaGradient, DeviceBuffer<float>? betaGradient, int rows, int width, float epsilon, int kind)
    {
        Enter();
        long cells = (long)rows * width;
        ulong x = Own(input, cells, nameof(input)).Pointer, r = PointerOrZero(residual, cells, nameof(residual));
        ulong g = Own(gamma, width, nameof(gamma)).Pointer, dy = Own(outputGradient, cells, nameof(outputGradient)).Pointer;
        ulong dx = Own(inputGradient, cells, nameof(inputGradient)).Pointer, dg = Own(gammaGradient, width, nameof(gammaGradient)).Pointer;
        ulong db = PointerOrZero(betaGradient, width, nameof(betaGradient));
        if (cells == 0) return;
        ulong stats = Scratch(ref _backwardStatistics, 4L * rows * sizeof(double));
        void** rowArguments = stackalloc void*[] { &x, &r, &g, &dy, &stats, &rows, &width, &epsilon, &kind };
        CheckLaunch(CudaDriverApi.LaunchKernel(_normBackwardRows, (uint)rows, 1, 1, BlockFor(width), 1, 1, 0, Stream, rowArguments, null), "norm_backward_rows");
        void** columnArguments = stackalloc void*[] { &x, &r, &dy, &stats, &dg, &db, &rows, &width };
        CheckLaunch(CudaDriverApi.LaunchKernel(_normBackwardColumns, (uint)((width + 31) / 32), 1, 1, 32, 8, 1, 0, Stream, columnArguments, null), "norm_backward_columns");
        void** inputArguments = stackalloc void*[] { &x, &r, &g, &dy, &stats, &dx, &rows, &width, &kind };
        CheckLaunch(CudaDriverApi.LaunchKernel(_normBackwardInput, GridFor(cells), 1, 1, ElementwiseBlock, 1, 1, 0, Stream, inputArguments, null), "norm_backward_input");
    }

    /// <inheritdoc />
    public void HeadRmsNormBackward(DeviceBuffer<float> qkv, DeviceBuffer<float> queryGamma, DeviceBuffer<float> keyGamma, DeviceBuffer<float> qkvGradient,
        DeviceBuffer<float> queryGammaGradient, DeviceBuffer<float> keyGammaGradient, int rows, int heads, int keyValueHeads, int headDim, float epsilon)
    {
        Enter();
        long cells = (long)rows * (heads + 2 * keyValueHeads) * headDim;
        ulong x = Own(qkv, cells, nameof(qkv)).Pointer, d = Own(qkvGradient, cells, nameof(qkvGradient)).Pointer;
        ulong gq = Own(queryGamma, headDim, nameof(queryGamma)).Pointer, gk = Own(keyGamma, headDim, nameof(keyGamma)).Pointer;
        ulong dgq = Own(queryGammaGradient, headDim, nameof(queryGammaGradient)).Pointer, dgk = Own(keyGammaGradient, headDim, nameof(keyGammaGradient)).Pointer;
        if (rows == 0 || headDim == 0) return;
        if (heads + keyValueHeads > 65535) throw new ArgumentOutOfRangeException(nameof(heads), $"{heads} + {keyValueHeads} heads exceed the grid's 65,535 rows");
        ulong stats = Scratch(ref _backwardStatistics, 2L * rows * (heads + keyValueHeads) * sizeof(double));
        void** rowArguments = stackalloc void*[] { &x, &gq, &gk, &d, &stats, &rows, &heads, &keyValueHeads, &headDim, &epsilon };
        CheckLaunch(CudaDriverApi.LaunchKernel(_headRmsNormBackwardRows, (uint)rows, (uint)(heads + keyValueHeads), 1, BlockFor(headDim), 1, 1, 0, Stream, rowArguments, null),
            "head_rmsnorm_backward_rows");
        void** gammaArguments = stackalloc void*[] { &x, &d, &stats, &dgq, &dgk, &rows, &heads, &keyValueHeads, &headDim };
        CheckLaunch(CudaDriverApi.LaunchKernel(_headRmsNormBackwardGamma, (uint)((headDim + 31) / 32), 2, 1, 32, 8, 1, 0, Stream, gammaArguments, null),
            "head_rmsnorm_backward_gamma");
        long normed = (long)rows * (heads + keyValueHeads) * headDim;
        void** inputArguments = stackalloc void*[] { &x, &gq, &gk, &d, &stats, &rows, &heads, &keyValueHeads, &headDim };
        CheckLaunch(CudaDriverApi.LaunchKernel(_headRmsNormBackwardInput, GridFor(normed), 1, 1, ElementwiseBlock, 1, 1, 0, Stream, inputArguments, null),
            "head_rmsnorm_backward_input");
    }

    /// <inheritdoc />
    public void RotaryBackward(DeviceBuffer<float> qkvGradient, DeviceBuffer<int> positions, DeviceBuffer<float> inverseFrequencies, int rows, int heads, int keyValueHeads, int headDim)
    {
        Enter();
        if (headDim % 2 != 0) throw new ArgumentException($"rotary embeddings need an even head width, got {headDim}");
        ulong x = Own(qkvGradient, (long)rows * (heads + 2 * keyValueHeads) * headDim, nameof(qkvGradient)).Pointer;
        ulong p = Own(positions, rows, nameof(positions)).Pointer, f = Own(inverseFrequencies, headDim / 2, nameof(inverseFrequencies)).Pointer;
        if (rows == 0 || headDim == 0) return;
        void** arguments = stackalloc void*[] { &x, &p, &f, &rows, &heads, &keyValueHeads, &headDim };
        CheckLaunch(CudaDriverApi.LaunchKernel(_rotaryBackward, (uint)rows, 1, 1, BlockFor((heads + keyValueHeads) * headDim / 2), 1, 1, 0, Stream, arguments, null), "rotary_backward_inplace");
    }

    /// <inheritdoc />
    public void ReduceKeyValueHeads(DeviceBuffer<float> expanded, DeviceBuffer<float> compact, int rows, int heads, int keyValueHeads, int headDim)
    {
        Enter();
        if (keyValueHeads < 1 || heads % keyValueHeads != 0) throw new ArgumentException($"{heads} query heads cannot share {keyValueHeads} key-value heads evenly");
        ulong from = Own(expanded, (long)rows * 3 * heads * headDim, nameof(expanded)).Pointer;
        ulong to = Own(compact, (long)rows * (heads + 2 * keyValueHeads) * headDim, nameof(compact)).Pointer;
        if (rows == 0 || headDim == 0) return;
        void** arguments = stackalloc void*[] { &from, &to, &rows, &heads, &keyValueHeads, &headDim };
        CheckLaunch(CudaDriverApi.LaunchKernel(_reduceKeyValueHeads, (uint)rows, 1, 1, BlockFor((heads + 2 * keyValueHeads) * headDim), 1, 1, 0, Stream, arguments, null), "reduce_kv_heads");
    }

    /// <inheritdoc />
    public void AttentionBackward(DeviceBuffer<float> qkv, DeviceBuffer<int> mask, DeviceBuffer<float> outputGradient, DeviceBuffer<float> qkvGradient,
        int batch, int seq, int heads, int headDim, bool causal)
    {
        Enter();
        long rows = (long)batch * seq;
        int width = heads * headDim, stride = 3 * width;
        ulong x = Own(qkv, rows * stride, nameof(qkv)).Pointer, m = Own(mask, rows, nameof(mask)).Pointer;
        ulong dOut = Own(outputGradient, rows * width, nameof(outputGradient)).Pointer, dx = Own(qkvGradient, rows * stride, nameof(qkvGradient)).Pointer;
        if (rows == 0 || width == 0) return;
        float scale = 1f / MathF.Sqrt(headDim), zero = 0f, one = 1f;
        int causalFlag = causal ? 1 : 0;
        // Two score-shaped buffers (the probabilities and their gradient), each within half the forward's budget.
        long perSentenceScores = checked((long)heads * seq * seq * sizeof(float));
        int chunk = (int)Math.Clamp(AttentionScoreBudget / 2 / Math.Max(1, perSentenceScores), 1, Math.Min(batch, 65535));
        long scoreBytes = checked(perSentenceScores * chunk);
        ulong scores = Scratch(ref _attentionScores, scoreBytes), scoreGradients = Scratch(ref _attentionScoreGradients, scoreBytes);
        nint handle = _cublas.DangerousGetHandle();
        long qkvSentence = (long)seq * stride, outputSentence = (long)seq * width, scoreHead = (long)seq * seq, scoreSentence = (long)heads * seq * seq;
        ulong chunkMask = 0;
        void** softmaxArguments = stackalloc void*[] { &scores, &chunkMask, &seq, &causalFlag };
        void** backwardArguments = stackalloc void*[] { &scores, &scoreGradients, &seq, &scale };
        for (int first = 0; first < batch; first += chunk)
        {
            int sentences = Math.Min(chunk, batch - first);
            ulong chunkQkv = x + (ulong)(first * qkvSentence * sizeof(float)), chunkGradient = dx + (ulong)(first * qkvSentence * sizeof(float));
            ulong chunkOutput = dOut + (ulong)(first * outputSentence * sizeof(float));
            chunkMask = m + (ulong)((long)first * seq * sizeof(int));
            // P, recomputed exactly as the forward computes it.
            for (int h = 0; h < heads; h++)
            {
                ulong queries = chunkQkv + (ulong)((long)h * headDim * sizeof(float)), keys = queries + (ulong)(width * sizeof(float));
                StridedBatchedGemm(handle, CublasApi.OperationTranspose, CublasApi.OperationNone, seq, seq, headDim,
                    &scale, keys, stride, qkvSentence, queries, stride, qkvSentence, &zero, scores + (ulong)(h * scoreHead * sizeof(float)), seq, scoreSentence, sentences, "backward scores");
            }
            CheckLaunch(CudaDriverApi.LaunchKernel(_attentionMaskedSoftmax, (uint)seq, (uint)heads, (uint)sentences, 128, 1, 1, 0, Stream, softmaxArguments, null), "attention_masked_softmax");
            // Row-major products written as column-major cuBLAS calls: C[m, n] = op(A) op(B) is Cᵀ = op(B)ᵀ op(A)ᵀ.
            for (int h = 0; h < heads; h++)
            {
                ulong values = chunkQkv + (ulong)((2L * width + (long)h * headDim) * sizeof(float));
                ulong headOutput = chunkOutput + (ulong)((long)h * headDim * sizeof(float));
                ulong headScores = scores + (ulong)(h * scoreHead * sizeof(float)), headGradients = scoreGradients + (ulong)(h * scoreHead * sizeof(float));
                ulong valueGradient = chunkGradient + (ulong)((2L * width + (long)h * headDim) * sizeof(float));
                // dV = Pᵀ dO.
                StridedBatchedGemm(handle, CublasApi.OperationNone, CublasApi.OperationTranspose, headDim, seq, seq,
                    &one, headOutput, width, outputSentence, headScores, seq, scoreSentence, &zero, valueGradient, stride, qkvSentence, sentences, "dV");
                // dP = dO Vᵀ.
                StridedBatchedGemm(handle, CublasApi.OperationTranspose, CublasApi.OperationNone, seq, seq, headDim,
                    &one, values, stride, qkvSentence, headOutput, width, outputSentence, &zero, headGradients, seq, scoreSentence, sentences, "dP");
            }
            CheckLaunch(CudaDriverApi.LaunchKernel(_attentionSoftmaxBackward, (uint)seq, (uint)heads, (uint)sentences, 128, 1, 1, 0, Stream, backwardArguments, null), "attention_softmax_backward");
            for (int h = 0; h < heads; h++)
            {
                ulong queries = chunkQkv + (ulong)((long)h * headDim * sizeof(float)), keys = queries + (ulong)(width * sizeof(float));
                ulong headGradients = scoreGradients + (ulong)(h * scoreHead * sizeof(float));
                ulong queryGradient = chunkGradient + (ulong)((long)h * headDim * sizeof(float)), keyGradient = queryGradient + (ulong)(width * sizeof(float));
                // dQ = dS K.
                StridedBatchedGemm(handle, CublasApi.OperationNone, CublasApi.OperationNone, headDim, seq, seq,
                    &one, keys, stride, qkvSentence, headGradients, seq, scoreSentence, &zero, queryGradient, stride, qkvSentence, sentences, "dQ");
                // dK = dSᵀ Q.
                StridedBatchedGemm(handle, CublasApi.OperationNone, CublasApi.OperationTranspose, headDim, seq, seq,
                    &one, queries, stride, qkvSentence, headGradients, seq, scoreSentence, &zero, keyGradient, stride, qkvSentence, sentences, "dK");
            }
        }
    }

    /// <inheritdoc />
    public void PoolSentencesBackward(DeviceBuffer<float> layer, DeviceBuffer<int> attentionMask, DeviceBuffer<int> isTarget, DeviceBuffer<float> pooledGradient,
        DeviceBuffer<float> layerGradient, int batch, int seq, int width, PoolingMode mode)
    {
        Enter();
        long cells = (long)batch * seq;
        ulong states = Own(layer, cells * width, nameof(layer)).Pointer, mask = Own(attentionMask, cells, nameof(attentionMask)).Pointer;
        ulong targets = Own(isTarget, cells, nameof(isTarget)).Pointer, pooled = Own(pooledGradient, (long)batch * width, nameof(pooledGradient)).Pointer;
        ulong gradient = Own(layerGradient, cells * width, nameof(layerGradient)).Pointer;
        if (batch == 0 || width == 0) return;
        int modeCode = (int)mode;
        void** arguments = stackalloc void*[] { &states, &mask, &targets, &pooled, &gradient, &batch, &seq, &width, &modeCode };
        CheckLaunch(CudaDriverApi.LaunchKernel(_poolSentencesBackward, (uint)batch, 1, 1, BlockFor(width), 1, 1, 0, Stream, arguments, null), "pool_sentences_backward");
    }

    /// <inheritdoc />
    public void SumOfSquares(DeviceBuffer<float> buffer, long count, DeviceBuffer<float> sums, int index)
    {
        Enter();
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ulong x = Own(buffer, count, nameof(buffer)).Pointer;
        ulong target = Own(sums, (long)index + 1, nameof(sums)).Pointer;
        int blocks = (int)GridFor(count);
        ulong partials = Scratch(ref _squarePartials, (long)blocks * sizeof(double));
        void** partialArguments = stackalloc void*[] { &x, &count, &partials };
        CheckLaunch(CudaDriverApi.LaunchKernel(_sumOfSquaresPartial, (uint)blocks, 1, 1, ElementwiseBlock, 1, 1, 0, Stream, partialArguments, null), "sum_of_squares_partial");
        void** finishArguments = stackalloc void*[] { &partials, &blocks, &target, &index };
        CheckLaunch(CudaDriverApi.LaunchKernel(_sumOfSquaresFinish, 1, 1, 1, ElementwiseBlock, 1, 1, 0, Stream, finishArguments, null), "sum_of_squares_finish");
    }
}
