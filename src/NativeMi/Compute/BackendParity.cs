using System.Globalization;
using System.Text;
using NativeMi.Compute.Cpu;

namespace NativeMi.Compute;

/// <summary>Settings for <see cref="BackendParity"/>.</summary>
/// <param name="Seed">Seed of the random inputs (the same seed gives the same inputs).</param>
/// <param name="Tolerance">Largest relative L2 error ‖candidate − reference‖ / ‖reference‖ accepted for a float output.</param>
/// <param name="GuardLength">Elements appended after every buffer and filled with a sentinel; any change there is a write outside the output.</param>
internal sealed record ParityOptions(int Seed = 20_240_531, double Tolerance = 1e-4, int GuardLength = 61);

/// <summary>The outcome of one op on one shape.</summary>
/// <param name="Op">The op ("Gemm", "Attention").</param>
/// <param name="Shape">The shape and flags it ran with.</param>
/// <param name="RelativeError">Largest relative L2 error over the op's float buffers (0 when it has none).</param>
/// <param name="Failures">What went wrong; empty when the op matched.</param>
internal sealed record ParityResult(string Op, string Shape, double RelativeError, IReadOnlyList<string> Failures)
{
    /// <summary>Whether the op matched the reference.</summary>
    public bool Passed => Failures.Count == 0;
}

/// <summary>Every op of a candidate backend compared with a reference backend.</summary>
/// <param name="Candidate">The candidate's description.</param>
/// <param name="Reference">The reference's description.</param>
/// <param name="Tolerance">The relative L2 error threshold used.</param>
/// <param name="Results">One entry per op and shape.</param>
internal sealed record ParityReport(string Candidate, string Reference, double Tolerance, IReadOnlyList<ParityResult> Results)
{
    /// <summary>Whether every op matched.</summary>
    public bool Passed => Results.All(r => r.Passed);

    /// <summary>A plain-text table: op, shape, error, and the failures under the row that has them.</summary>
    public string Format()
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"parity: {Candidate}");
        text.AppendLine(CultureInfo.InvariantCulture, $"  against {Reference}, relative L2 tolerance {Tolerance:G3}");
        foreach (ParityResult result in Results)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"  {(result.Passed ? "ok  " : "FAIL")} {result.Op,-20} {result.Shape,-44} {result.RelativeError:E2}");
            foreach (string failure in result.Failures) text.AppendLine(CultureInfo.InvariantCulture, $"       {failure}");
        }
        int failed = Results.Count(r => !r.Passed);
        text.Append(CultureInfo.InvariantCulture, $"  {Results.Count - failed} of {Results.Count} cases match");
        return text.ToString();
    }
}

/// <summary>
/// One harness for every op (after ggml's test-backend-ops): each op runs on the candidate and on the reference
/// (the CPU backend) with the same random inputs of awkward shapes. A case fails on a relative L2 error above the
/// tolerance, on NaN or infinity where the reference is finite, on any integer output that differs, on any change
/// in the guard region after a buffer (a write outside it), and on an exception.
/// </summary>
internal static class BackendParity
{
    private const float FloatSentinel = -1.2345678e30f;
    private const int IntSentinel = 0x5EED_BEEF;

    /// <summary>Compares <paramref name="candidate"/> with a fresh <see cref="CpuBackend"/>.</summary>
    public static ParityReport Run(IComputeBackend candidate, ParityOptions? options = null)
    {
        using var reference = new CpuBackend();
        return Run(candidate, reference, options);
    }

    /// <summary>Compares <paramref name="candidate"/> with <paramref name="reference"/>.</summary>
    public static ParityReport Run(IComputeBackend candidate, IComputeBackend reference, ParityOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(candidate);
        ArgumentNullException.ThrowIfNull(reference);
        options ??= new ParityOptions();
        var results = new List<ParityResult>();
        foreach (ParityCase parityCase in ParityCases.All(new Random(options.Seed)))
            results.Add(Compare(parityCase, candidate, reference, options));
        return new ParityReport(candidate.Description, reference.Description, options.Tolerance, results);
    }

    private static ParityResult Compare(ParityCase parityCase, IComputeBackend candidate, IComputeBackend reference, ParityOptions options)
    {
        var failures = new List<string>();
        Outputs expected;
        try
        {
            expected = Execute(parityCase, reference, options.GuardLength);
        }
        catch (Exception e)
        {
            return new ParityResult(parityCase.Op, parityCase.Shape, double.NaN, [$"the reference threw {e.GetType().Name}: {e.Message}"]);
        }
        Outputs actual;
        try
        {
            actual = Execute(parityCase, candidate, options.GuardLength);
        }
        // A full device is the environment, not a disagreement between backends: it reaches the user as itself.
        catch (Exception e) when (e is not Cuda.DeviceOutOfMemoryException)
        {
            return new ParityResult(parityCase.Op, parityCase.Shape, double.NaN, [$"threw {e.GetType().Name}: {e.Message.Split('\n')[0]}"]);
        }

        double worst = 0;
        for (int i = 0; i < parityCase.Floats.Count; i++)
        {
            HostArray<float> array = parityCase.Floats[i];
            float[] c = actual.Floats[i], r = expected.Floats[i];
            int guardHit = FirstGuardChange(c, array.Used, v => BitConverter.SingleToInt32Bits(v) == BitConverter.SingleToInt32Bits(FloatSentinel));
            if (guardHit >= 0) failures.Add($"{array.Name}: wrote outside the buffer's {array.Used} elements (guard element {guardHit - array.Used} changed)");

            double differenceSquares = 0, referenceSquares = 0;
            int firstNonFinite = -1;
            for (int j = 0; j < array.Used; j++)
            {
                if (!float.IsFinite(c[j]) && float.IsFinite(r[j]))
                {
                    if (firstNonFinite < 0) firstNonFinite = j;
                    continue;
                }
                if (float.IsNaN(r[j]) && !float.IsNaN(c[j]))
                {
                    failures.Add(string.Create(CultureInfo.InvariantCulture, $"{array.Name}: {c[j]} at element {j} where the reference has NaN"));
                    break;
                }
                if (!float.IsFinite(r[j])) continue;
                double d = (double)c[j] - r[j];
                differenceSquares += d * d;
                referenceSquares += (double)r[j] * r[j];
            }
            if (firstNonFinite >= 0) failures.Add(string.Create(CultureInfo.InvariantCulture, $"{array.Name}: {c[firstNonFinite]} at element {firstNonFinite} where the reference has {r[firstNonFinite]}"));
            double error = differenceSquares == 0 ? 0 : Math.Sqrt(differenceSquares) / Math.Max(Math.Sqrt(referenceSquares), 1e-30);
            worst = Math.Max(worst, error);
            double tolerance = Math.Max(options.Tolerance, parityCase.ToleranceFloor);
            if (error > tolerance)
                failures.Add(string.Create(CultureInfo.InvariantCulture, $"{array.Name}: relative L2 error {error:E2} above {tolerance:G3}"));
        }
        for (int i = 0; i < parityCase.Ints.Count; i++)
        {
            HostArray<int> array = parityCase.Ints[i];
            int[] c = actual.Ints[i], r = expected.Ints[i];
            int guardHit = FirstGuardChange(c, array.Used, v => v == IntSentinel);
            if (guardHit >= 0) failures.Add($"{array.Name}: wrote outside the buffer's {array.Used} elements (guard element {guardHit - array.Used} changed)");
            int differing = 0, first = -1;
            for (int j = 0; j < array.Used; j++)
            {
                if (c[j] == r[j]) continue;
                differing++;
                if (first < 0) first = j;
            }
            if (differing > 0) failures.Add($"{array.Name}: {differing} of {array.Used} elements differ (first at {first}: {c[first]}, reference {r[first]})");
        }
        return new ParityResult(parityCase.Op, parityCase.Shape, worst, failures);
    }

    private static int FirstGuardChange<T>(T[] values, int used, Func<T, bool> isSentinel)
    {
        for (int j = used; j < values.Length; j++)
            if (!isSentinel(values[j])) return j;
        return -1;
    }

    private sealed record Outputs(float[][] Floats, int[][] Ints);

    private static Outputs Execute(ParityCase parityCase, IComputeBackend backend, int guard)
    {
        var floats = new List<DeviceBuffer<float>>();
        var ints = new List<DeviceBuffer<int>>();
        try
        {
            foreach (HostArray<float> array in parityCase.Floats) floats.Add(backend.Upload<float>(WithGuard(array.Values, guard, FloatSentinel)));
            foreach (HostArray<int> array in parityCase.Ints) ints.Add(backend.Upload<int>(WithGuard(array.Values, guard, IntSentinel)));
            parityCase.Body(backend, new ParityBuffers(floats, ints));
            var floatResults = floats.Select(b => { var host = new float[b.Length]; backend.Download(b, host); return host; }).ToArray();
            var intResults = ints.Select(b => { var host = new int[b.Length]; backend.Download(b, host); return host; }).ToArray();
            return new Outputs(floatResults, intResults);
        }
        finally
        {
            foreach (var buffer in floats) buffer.Dispose();
            foreach (var buffer in ints) buffer.Dispose();
        }
    }

    private static T[] WithGuard<T>(T[] values, int guard, T sentinel)
    {
        var result = new T[values.Length + guard];
        values.CopyTo(result, 0);
        Array.Fill(result, sentinel, values.Length, guard);
        return result;
    }
}

/// <summary>A host array that one case uploads; <see cref="Used"/> elements are the op's, the rest is guard.</summary>
internal sealed record HostArray<T>(string Name, T[] Values)
{
    public int Used => Values.Length;
}

/// <summary>The buffers of one case on one backend, in the order the case declared them.</summary>
internal sealed class ParityBuffers(IReadOnlyList<DeviceBuffer<float>> floats, IReadOnlyList<DeviceBuffer<int>> ints)
{
    public DeviceBuffer<float> F(int index) => floats[index];
    public DeviceBuffer<int> I(int index) => ints[index];
}

/// <summary>One op on one shape: its inputs and outputs, and how to call the op.</summary>
internal sealed class ParityCase(string op, string shape)
{
    public string Op { get; } = op;
    public string Shape { get; } = shape;
    public List<HostArray<float>> Floats { get; } = [];
    public List<HostArray<int>> Ints { get; } = [];
    public Action<IComputeBackend, ParityBuffers> Body { get; set; } = (_, _) => { };
    /// <summary>What the op is for at a model's shapes ("QKV projection"); empty for the awkward parity shapes.</summary>
    public string Role { get; set; } = "";
    /// <summary>Floating-point operations of one call (a model of the work, for GFLOP/s).</summary>
    public double Flops { get; init; }
    /// <summary>Bytes one call must move at least (each input read and each output written once), for GB/s.</summary>
    public double Bytes { get; init; }
    /// <summary>
    /// The least relative L2 error this case tolerates whatever the run's tolerance: a 16-bit GEMM on CUDA rounds its
    /// activations to the weight's format (bf16: 8 significant bits), which the fp32 CPU reference does not.
    /// </summary>
    public double ToleranceFloor { get; init; }

    public int Float(string name, float[] values)
    {
        Floats.Add(new HostArray<float>(name, values));
        return Floats.Count - 1;
    }

    public int Int(string name, int[] values)
    {
        Ints.Add(new HostArray<int>(name, values));
        return Ints.Count - 1;
    }
}
