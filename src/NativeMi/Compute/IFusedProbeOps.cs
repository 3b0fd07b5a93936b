namespace NativeMi.Compute;

/// <summary>
/// Fused forms of op sequences the probe runs on every batch, for a backend that has them (the CPU backend). Each
/// does the float operations of the sequence it replaces in the same order, so it gives the same bits, in one pass
/// over the [targets, classes] rows instead of three or four. ProbeNetwork runs the sequences on backends without it.
/// </summary>
internal interface IFusedProbeOps
{
    /// <summary>
    /// output[r] = ((output[r] if <paramref name="accumulate"/>) + first[firstIndices[r]] + second[secondIndices[r]]) + bias,
    /// added left to right, and activated[r] = GELU(output[r]) when <paramref name="activated"/> is given: GatherRows,
    /// AddInPlace and BiasActivation in one pass.
    /// </summary>
    void GatherSum(DeviceBuffer<float> first, DeviceBuffer<int> firstIndices, DeviceBuffer<float> second, DeviceBuffer<int> secondIndices,
        DeviceBuffer<float> bias, DeviceBuffer<float> output, DeviceBuffer<float>? activated, int rows, int width, bool accumulate);

    /// <summary>
    /// The row reductions of a gradient [rows, width] in one pass: columnSums = Σ_r source[r], and two zeroed tables
    /// ([firstRows, width] and [secondRows, width]) with source[r] added to row firstIndices[r] of the first and row
    /// secondIndices[r] of the second, rows in order: ColumnSums and two Zero + ScatterAddRows in one pass.
    /// </summary>
    void ReduceRows(DeviceBuffer<float> source, DeviceBuffer<float> columnSums, DeviceBuffer<int> firstIndices, DeviceBuffer<float> first, int firstRows,
        DeviceBuffer<int> secondIndices, DeviceBuffer<float> second, int secondRows, int rows, int width);
}
