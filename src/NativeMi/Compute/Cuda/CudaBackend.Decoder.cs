using NativeMi.Compute.Cuda.Native;

namespace NativeMi.Compute.Cuda;

// The decoder families' ops (kernels/decoder.cu), launched like the rest; their CPU references are in CpuBackend.Decoder.cs.
internal sealed unsafe partial class CudaBackend
{
    private nint _rmsNorm, _headRmsNorm, _rotary, _expandKeyValueHeads, _gatedActivation, _scaleInPlace;

    private void InitialiseDecoderKernels(Dictionary<string, nint> functions)
    {
        _rmsNorm = functions["rmsnorm_rows"];
        _headRmsNorm = functions["head_rmsnorm"];
        _rotary = functions["rotary_inplace"];
        _expandKeyValueHeads = functions["expand_kv_heads"];
        _gatedActivation = functions["gated_activation"];
        _scaleInPlace = functions["scale_inplace"];
    }

    /// <inheritdoc />
    public void RmsNorm(DeviceBuffer<float> input, DeviceBuffer<float> gamma, DeviceBuffer<float> output, int rows, int width, float epsilon, bool addOneToGamma)
    {
        Enter();
        long cells = (long)rows * width;
        ulong x = Own(input, cells, nameof(input)).Pointer, g = Own(gamma, width, nameof(gamma)).Pointer, y = Own(output, cells, nameof(output)).Pointer;
        if (cells == 0) return;
        int addOne = addOneToGamma ? 1 : 0;
        void** arguments = stackalloc void*[] { &x, &g, &y, &rows, &width, &epsilon, &addOne };
        CheckLaunch(CudaDriverApi.LaunchKernel(_rmsNorm, (uint)rows, 1, 1, BlockFor(width), 1, 1, 0, Stream, arguments, null), "rmsnorm_rows");
    }

    /// <inheritdoc />
    public void HeadRmsNorm(DeviceBuffer<float> qkv, DeviceBuffer<float> queryGamma, DeviceBuffer<float> keyGamma, int rows, int heads, int keyValueHeads,
        int headDim, float epsilon)
    {
        Enter();
        ulong x = Own(qkv, (long)rows * (heads + 2 * keyValueHeads) * headDim, nameof(qkv)).Pointer;
        ulong gq = Own(queryGamma, headDim, nameof(queryGamma)).Pointer, gk = Own(keyGamma, headDim, nameof(keyGamma)).Pointer;
        if (rows == 0 || headDim == 0) return;
        if (heads + keyValueHeads > 65535) throw new ArgumentOutOfRangeException(nameof(heads), $"{heads} + {keyValueHeads} heads exceed the grid's 65,535 rows");
        void** arguments = stackalloc void*[] { &x, &gq, &gk, &rows, &heads, &keyValueHeads, &headDim, &epsilon };
        CheckLaunch(CudaDriverApi.LaunchKernel(_headRmsNorm, (uint)rows, (uint)(heads + keyValueHeads), 1, BlockFor(headDim), 1, 1, 0, Stream, arguments, null), "head_rmsnorm");
    }

    /// <inheritdoc />
    public void Rotary(DeviceBuffer<float> qkv, DeviceBuffer<int> positions, DeviceBuffer<float> inverseFrequencies, int rows, int heads, int keyValueHeads, int headDim)
    {
        Enter();
        if (headDim % 2 != 0) throw new ArgumentException($"rotary embeddings need an even head width, got {headDim}");
        ulong x = Own(qkv, (long)rows * (heads + 2 * keyValueHeads) * headDim, nameof(qkv)).Pointer;
        ulong p = Own(positions, rows, nameof(positions)).Pointer, f = Own(inverseFrequencies, headDim / 2, nameof(inverseFrequencies)).Pointer;
        if (rows == 0 || headDim == 0) return;
        void** arguments = stackalloc void*[] { &x, &p, &f, &rows, &heads, &keyValueHeads, &headDim };
        CheckLaunch(CudaDriverApi.LaunchKernel(_rotary, (uint)rows, 1, 1, BlockFor((heads + keyValueHeads) * headDim / 2), 1, 1, 0, Stream, arguments, null), "rotary_inplace");
    }

    /// <inheritdoc />
    public void ExpandKeyValueHeads(DeviceBuffer<float> compact, DeviceBuffer<float> expanded, int rows, int heads, int keyValueHeads, int headDim)
    {
        Enter();
        if (keyValueHeads < 1 || heads % keyValueHeads != 0) throw new ArgumentException($"{heads} query heads cannot share {keyValueHeads} key-value heads evenly");
        ulong from = Own(compact, (long)rows * (heads + 2 * keyValueHeads) * headDim, nameof(compact)).Pointer;
        ulong to = Own(expanded, (long)rows * 3 * heads * headDim, nameof(expanded)).Pointer;
        if (rows == 0 || headDim == 0) return;
        void** arguments = stackalloc void*[] { &from, &to, &rows, &heads, &keyValueHeads, &headDim };
        CheckLaunch(CudaDriverApi.LaunchKernel(_expandKeyValueHeads, (uint)rows, 1, 1, BlockFor(3 * heads * headDim), 1, 1, 0, Stream, arguments, null), "expand_kv_heads");
    }

    /// <inheritdoc />
    public void GatedActivation(DeviceBuffer<float> gateUp, DeviceBuffer<float> output, int rows, int width, GateActivation activation)
    {
        Enter();
        long cells = (long)rows * width;
        ulong x = Own(gateUp, 2 * cells, nameof(gateUp)).Pointer, y = Own(output, cells, nameof(output)).Pointer;
        if (cells == 0) return;
        int kind = (int)activation;
        void** arguments = stackalloc void*[] { &x, &y, &rows, &width, &kind };
        CheckLaunch(CudaDriverApi.LaunchKernel(_gatedActivation, GridFor(cells), 1, 1, ElementwiseBlock, 1, 1, 0, Stream, arguments, null), "gated_activation");
    }

    /// <inheritdoc />
    public void ScaleInPlace(DeviceBuffer<float> buffer, float factor, long count)
    {
        Enter();
        ulong x = Own(buffer, count, nameof(buffer)).Pointer;
        if (count == 0) return;
        void** arguments = stackalloc void*[] { &x, &factor, &count };
        CheckLaunch(CudaDriverApi.LaunchKernel(_scaleInPlace, GridFor(count), 1, 1, ElementwiseBlock, 1, 1, 0, Stream, arguments, null), "scale_inplace");
    }
}
