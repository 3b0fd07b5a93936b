using System.Diagnostics;

namespace NativeMi.Compute;

/// <summary>The published peak rates of a device, for the fraction-of-peak column of `nativemi bench --ops`.</summary>
/// <param name="Name">The device family ("NVIDIA H200").</param>
/// <param name="Fp32FlopsPerSecond">Dense fp32 FLOP/s without tensor cores.</param>
/// <param name="Tf32FlopsPerSecond">Dense TF32 tensor-core FLOP/s.</param>
/// <param name="BytesPerSecond">Memory bandwidth.</param>
internal sealed record DevicePeak(string Name, double Fp32FlopsPerSecond, double Tf32FlopsPerSecond, double BytesPerSecond)
{
    // Dense figures from NVIDIA's data sheets (SXM parts); the sparse tensor-core figures are twice the dense ones.
    private static readonly (string Match, DevicePeak Peak)[] Table =
    [
        ("H200", new DevicePeak("NVIDIA H200 SXM", 67e12, 494.7e12, 4.8e12)),
        ("H100", new DevicePeak("NVIDIA H100 SXM", 67e12, 494.7e12, 3.35e12)),
        ("A100", new DevicePeak("NVIDIA A100 SXM 80 GB", 19.5e12, 156e12, 2.039e12)),
    ];

    /// <summary>The peaks of the device a backend description names, or null when the table does not know it.</summary>
    public static DevicePeak? For(string deviceDescription)
    {
        ArgumentNullException.ThrowIfNull(deviceDescription);
        foreach (var (match, peak) in Table)
            if (deviceDescription.Contains(match, StringComparison.OrdinalIgnoreCase)) return peak;
        return null;
    }
}

/// <summary>One op's timing at one shape.</summary>
/// <param name="Op">The backend op.</param>
/// <param name="Role">What it does in the model ("QKV projection").</param>
/// <param name="Shape">Its shape.</param>
/// <param name="MedianMilliseconds">Median wall time of one call, synchronised.</param>
/// <param name="Flops">Floating-point operations of one call.</param>
/// <param name="Bytes">Bytes one call moves at least.</param>
internal sealed record OpTiming(string Op, string Role, string Shape, double MedianMilliseconds, double Flops, double Bytes)
{
    /// <summary>GFLOP/s at the median.</summary>
    public double GigaflopsPerSecond => Flops / (MedianMilliseconds * 1e6);

    /// <summary>GB/s at the median.</summary>
    public double GigabytesPerSecond => Bytes / (MedianMilliseconds * 1e6);

    /// <summary>True for the ops whose work is products (GEMMs, attention): judged against the FLOP peak, the rest against bandwidth.</summary>
    public bool ComputeBound => Op is "Gemm" or "GemmEx" or "Attention";

    /// <summary>The fraction of <paramref name="peak"/> reached: FLOP/s for compute-bound ops, bytes/s for the rest.</summary>
    public double? FractionOfPeak(DevicePeak? peak, bool tf32) => peak is null ? null
        : ComputeBound ? Flops / (MedianMilliseconds * 1e-3) / (tf32 && Op != "Attention" ? peak.Tf32FlopsPerSecond : peak.Fp32FlopsPerSecond)
        : Bytes / (MedianMilliseconds * 1e-3) / peak.BytesPerSecond;
}

/// <summary>
/// The perf mode of the op cases (as ggml's test-backend-ops has one): every op of <see cref="IComputeBackend"/> at a
/// model's shapes, timed on a backend (median of synchronised calls after warm-up), with its GFLOP/s and GB/s.
/// </summary>
internal static class OpBenchmark
{
    /// <summary>Times every op of <see cref="ParityCases.Perf"/> at <paramref name="shapes"/> on <paramref name="backend"/>.</summary>
    public static IReadOnlyList<OpTiming> Run(IComputeBackend backend, OpShapes shapes, int warmup = 2, int runs = 10, int seed = 20_261_201,
        IProgress<OpTiming>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentOutOfRangeException.ThrowIfLessThan(runs, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(warmup);
        var timings = new List<OpTiming>();
        foreach (ParityCase c in ParityCases.Perf(new Random(seed), shapes))
        {
            var floats = new List<DeviceBuffer<float>>();
            var ints = new List<DeviceBuffer<int>>();
            try
            {
                foreach (HostArray<float> array in c.Floats) floats.Add(backend.Upload<float>(array.Values));
                foreach (HostArray<int> array in c.Ints) ints.Add(backend.Upload<int>(array.Values));
                var buffers = new ParityBuffers(floats, ints);
                for (int i = 0; i < warmup; i++) c.Body(backend, buffers);
                backend.Synchronize();
                var times = new double[runs];
                for (int i = 0; i < runs; i++)
                {
                    long start = Stopwatch.GetTimestamp();
                    c.Body(backend, buffers);
                    backend.Synchronize();
                    times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                }
                Array.Sort(times);
                double median = runs % 2 == 1 ? times[runs / 2] : (times[runs / 2 - 1] + times[runs / 2]) / 2;
                var timing = new OpTiming(c.Op, c.Role, c.Shape, median, c.Flops, c.Bytes);
                timings.Add(timing);
                progress?.Report(timing);
            }
            finally
            {
                foreach (var buffer in floats) buffer.Dispose();
                foreach (var buffer in ints) buffer.Dispose();
            }
        }
        return timings;
    }
}
