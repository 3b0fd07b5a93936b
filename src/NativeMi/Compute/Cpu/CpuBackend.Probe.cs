using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace NativeMi.Compute.Cpu;

// The probe's fused ops (IFusedProbeOps): element by element the additions of the GatherRows, AddInPlace, BiasActivation,
// ColumnSums and ScatterAddRows sequences they replace, in the same order, so the bits are those of the sequences.
internal sealed partial class CpuBackend : IFusedProbeOps
{
    // Columns per work item of ReduceRows: every item sums all rows of its columns in order, so the split changes no sum.
    private const int ReduceBlock = 128;

    /// <inheritdoc />
    public void GatherSum(DeviceBuffer<float> first, DeviceBuffer<int> firstIndices, DeviceBuffer<float> second, DeviceBuffer<int> secondIndices,
        DeviceBuffer<float> bias, DeviceBuffer<float> output, DeviceBuffer<float>? activated, int rows, int width, bool accumulate)
    {
        float[] x = Array(first), y = Array(second), b = Array(bias), o = Array(output);
        float[]? a = ArrayOrNull(activated);
        int[] xi = Array(firstIndices), yi = Array(secondIndices);
        long cells = (long)rows * width;
        if (o.LongLength < cells || (a is not null && a.LongLength < cells)) throw new ArgumentException($"GatherSum: the output holds fewer than {rows}×{width} elements", nameof(output));
        if (b.Length < width) throw new ArgumentException($"GatherSum: the bias holds {b.Length} elements; needs {width}", nameof(bias));
        CheckIndices(xi, rows, x.LongLength, width, nameof(firstIndices));
        CheckIndices(yi, rows, y.LongLength, width, nameof(secondIndices));
        ParallelRows(rows, width, r =>
        {
            unsafe
            {
                fixed (float* po = &o[(long)r * width], px = &x[(long)xi[r] * width], py = &y[(long)yi[r] * width], pb = b)
                    SumRow(po, px, py, pb, width, accumulate);
            }
            if (a is not null) CpuProbeKernels.Gelu(o.AsSpan(r * width, width), a.AsSpan(r * width, width));
        });
    }

    /// <summary>o = ((accumulate ? o + x : x) + y) + bias.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void SumRow(float* o, float* x, float* y, float* bias, int width, bool accumulate)
    {
        int j = 0;
        for (; j + 8 <= width; j += 8)
        {
            Vector256<float> v = accumulate ? Vector256.Load(o + j) + Vector256.Load(x + j) : Vector256.Load(x + j);
            ((v + Vector256.Load(y + j)) + Vector256.Load(bias + j)).Store(o + j);
        }
        for (; j < width; j++) o[j] = ((accumulate ? o[j] + x[j] : x[j]) + y[j]) + bias[j];
    }

    /// <inheritdoc />
    public void ReduceRows(DeviceBuffer<float> source, DeviceBuffer<float> columnSums, DeviceBuffer<int> firstIndices, DeviceBuffer<float> first, int firstRows,
        DeviceBuffer<int> secondIndices, DeviceBuffer<float> second, int secondRows, int rows, int width)
    {
        float[] s = Array(source), sums = Array(columnSums), f = Array(first), g = Array(second);
        int[] fi = Array(firstIndices), gi = Array(secondIndices);
        if (s.LongLength < (long)rows * width) throw new ArgumentException($"ReduceRows: the source holds {s.LongLength} elements; needs {(long)rows * width}", nameof(source));
        if (sums.Length < width) throw new ArgumentException($"ReduceRows: the column sums hold {sums.Length} elements; needs {width}", nameof(columnSums));
        if (f.LongLength < (long)firstRows * width || g.LongLength < (long)secondRows * width)
            throw new ArgumentException($"ReduceRows: a target holds fewer than its {firstRows} or {secondRows} rows of {width}", nameof(first));
        CheckIndices(fi, rows, (long)firstRows * width, width, nameof(firstIndices));
        CheckIndices(gi, rows, (long)secondRows * width, width, nameof(secondIndices));
        int blocks = (width + ReduceBlock - 1) / ReduceBlock;
        void Block(int block)
        {
            int j0 = block * ReduceBlock, length = Math.Min(ReduceBlock, width - j0);
            sums.AsSpan(j0, length).Clear();
            for (int r = 0; r < firstRows; r++) f.AsSpan(r * width + j0, length).Clear();
            for (int r = 0; r < secondRows; r++) g.AsSpan(r * width + j0, length).Clear();
            unsafe
            {
                fixed (float* ps = s, psum = sums, pf = f, pg = g)
                    for (int r = 0; r < rows; r++)
                    {
                        float* row = ps + (long)r * width + j0;
                        AddTo(psum + j0, row, length);
                        AddTo(pf + (long)fi[r] * width + j0, row, length);
                        AddTo(pg + (long)gi[r] * width + j0, row, length);
                    }
            }
        }
        if ((long)rows * width < 65_536 || blocks < 2) for (int block = 0; block < blocks; block++) Block(block);
        else CpuWorkers.For(blocks, Block);
    }

    /// <summary>target += addend, element by element.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void AddTo(float* target, float* addend, int length)
    {
        int j = 0;
        for (; j + 8 <= length; j += 8) (Vector256.Load(target + j) + Vector256.Load(addend + j)).Store(target + j);
        for (; j < length; j++) target[j] += addend[j];
    }

    private static void CheckIndices(int[] indices, int rows, long tableLength, int width, string name)
    {
        long tableRows = width == 0 ? 0 : tableLength / width;
        if (indices.LongLength < rows) throw new ArgumentException($"indices hold {indices.LongLength} elements; {rows} rows requested", name);
        for (int r = 0; r < rows; r++)
            if ((ulong)indices[r] >= (ulong)tableRows)
                throw new ArgumentOutOfRangeException(name, $"index {indices[r]} at row {r} is outside the table ({tableRows} rows of {width})");
    }
}
