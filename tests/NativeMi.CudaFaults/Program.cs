using NativeMi.Compute.Cuda.Native;

namespace NativeMi.CudaFaults;

/// <summary>
/// Runs one CUDA operation through the engine's own bindings, correctly ("control") or with one mistake injected
/// ("fault"), and says how the result compares with a CPU reference. Meant for the emulated device (emulator/):
/// tests/NativeMi.Tests/Cuda/InjectedFaultTests.cs starts it with NATIVEMI_CUDA_PATH pointing there and expects each
/// control to match and each fault to be caught.
/// </summary>
internal static unsafe class Program
{
    public const int Matched = 0, Mismatched = 1, CudaFailed = 2, NvrtcMissing = 77, Usage = 64, Crashed = 70;

    private static readonly Dictionary<string, Func<FaultDevice, bool, int[], Outcome>> Cases = new(StringComparer.Ordinal)
    {
        ["grid-short"] = GridShort,
        ["transposed-operand"] = TransposedOperand,
        ["missing-sync"] = MissingSync,
        ["partial-warp"] = PartialWarp,
    };

    private static int Main(string[] args)
    {
        if (args.Length < 2 || !Cases.TryGetValue(args[0], out var run) || args[1] is not ("control" or "fault") ||
            !args[2..].All(a => int.TryParse(a, out int v) && v > 0))
        {
            Console.Error.WriteLine($"usage: NativeMi.CudaFaults {{{string.Join('|', Cases.Keys)}}} {{control|fault}} [sizes]");
            return Usage;
        }
        if (!CudaLibraries.Get(CudaLibrary.Nvrtc).Found)
        {
            Console.WriteLine(CudaLibraries.Get(CudaLibrary.Nvrtc).Describe());
            return NvrtcMissing;
        }
        try
        {
            using var device = new FaultDevice();
            Outcome outcome = run(device, args[1] == "fault", [.. args[2..].Select(int.Parse)]);
            string verdict = outcome.Compare(out bool matched);
            Console.WriteLine($"{(matched ? "match" : "mismatch")}: {args[0]} {args[1]}: {verdict}");
            return matched ? Matched : Mismatched;
        }
        catch (CudaException e)
        {
            Console.WriteLine($"cuda-error: {args[0]} {args[1]}: {e.StatusName} from {e.Call}");
            Console.WriteLine(e.Message);
            return CudaFailed;
        }
        catch (Exception e)
        {
            Console.WriteLine($"crashed: {args[0]} {args[1]}: {e}");
            return Crashed;
        }
    }

    private static int Size(int[] sizes, int index, int fallback) => index < sizes.Length ? sizes[index] : fallback;

    // gather_rows runs one block per row (no grid-stride loop), so a grid one block short never writes the last row,
    // which keeps the NaN the emulator fills fresh memory with.
    private static Outcome GridShort(FaultDevice device, bool fault, int[] sizes)
    {
        int rows = 5, width = 40;
        long sourceRows = 9;
        float[] source = Random(sourceRows * width, seed: 1);
        int[] indices = [3, 0, 8, 3, 5];
        nint kernel = device.Kernel("probe.cu", "gather_rows");
        ulong src = device.Upload<float>(source), index = device.Upload<int>(indices), dst = device.Allocate<float>((long)rows * width);
        ulong error = device.Zeroed<long>(3);   // nativemi::IndexError: four ints and a long long
        void** arguments = stackalloc void*[] { &src, &index, &dst, &rows, &width, &sourceRows, &error };
        device.Launch(kernel, "gather_rows", (uint)(fault ? rows - 1 : rows), BlockFor(width), arguments);
        float[] expected = new float[rows * width];
        for (int r = 0; r < rows; r++) source.AsSpan(indices[r] * width, width).CopyTo(expected.AsSpan(r * width));
        return new Outcome(expected, device.Download<float>(dst, rows * width), width);
    }

    // Row-major C[m,n] = A[m,k]·B[k,n] through cublasSgemm as CudaBackend.RowMajorGemm makes it (the column-major
    // Cᵀ = Bᵀ·Aᵀ); the fault flips A's transpose flag and keeps its leading dimension. With k < m that leading dimension
    // is too small (an argument error), with k > m the operand reaches past A's allocation (an extent error), and with
    // k = m it is a valid call on the wrong elements.
    private static Outcome TransposedOperand(FaultDevice device, bool fault, int[] sizes)
    {
        int m = Size(sizes, 0, 12), k = Size(sizes, 1, 5), n = Size(sizes, 2, 7);
        float[] a = Random((long)m * k, seed: 2), b = Random((long)k * n, seed: 3);
        ulong left = device.Upload<float>(a), right = device.Upload<float>(b), product = device.Allocate<float>((long)m * n);
        float alpha = 1f, beta = 0f;
        int operationA = fault ? CublasApi.OperationTranspose : CublasApi.OperationNone;
        CublasApi.Check(CublasApi.Sgemm(device.Cublas.DangerousGetHandle(), CublasApi.OperationNone, operationA, n, m, k,
            &alpha, right, n, left, k, &beta, product, n), "cublasSgemm");
        float[] expected = new float[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double sum = 0;
                for (int p = 0; p < k; p++) sum += (double)a[i * k + p] * b[p * n + j];
                expected[i * n + j] = (float)sum;
            }
        return new Outcome(expected, device.Download<float>(product, m * n), n);
    }

    // An asynchronous copy into pinned memory has landed only once the stream says so. The emulator shows this only with
    // NATIVEMI_EMU_DEFERRED=1, which holds queued work until a synchronisation point; read before it, the buffer is stale.
    private static Outcome MissingSync(FaultDevice device, bool fault, int[] sizes)
    {
        long count = 1000;
        float[] x = Random(count, seed: 4), y = Random(count, seed: 5);
        nint kernel = device.Kernel("activation.cu", "add_inplace");
        ulong accumulator = device.Upload<float>(x), addend = device.Upload<float>(y);
        void** arguments = stackalloc void*[] { &accumulator, &addend, &count };
        device.Launch(kernel, "add_inplace", (uint)((count + 255) / 256), 256, arguments);
        var pinned = device.Pinned<float>((int)count);
        pinned.AsSpan<float>().Clear();
        CudaDriverApi.Check(CudaDriverApi.CopyDeviceToHostAsync((void*)pinned.DangerousGetHandle(), accumulator, (nuint)(count * sizeof(float)),
            device.Stream.DangerousGetHandle()), "cuMemcpyDtoHAsync");
        if (!fault) device.Stream.Synchronize();
        float[] actual = pinned.AsSpan<float>().ToArray();
        return new Outcome([.. x.Zip(y, (p, q) => p + q)], actual, (int)count);
    }

    // block_sum (kernels/common.cuh) shuffles across full warps; CudaBackend.BlockFor rounds the block up to a multiple of
    // 32 for it. The fault launches one thread per column instead, leaving a partial warp whose missing lanes the
    // shuffle's full mask still names.
    private static Outcome PartialWarp(FaultDevice device, bool fault, int[] sizes)
    {
        int rows = 3, width = 48;
        float epsilon = 1e-5f;
        float[] x = Random((long)rows * width, seed: 6), gamma = Random(width, seed: 7), betaValues = Random(width, seed: 8);
        nint kernel = device.Kernel("layernorm.cu", "layernorm_residual");
        ulong input = device.Upload<float>(x), residual = 0, g = device.Upload<float>(gamma), bt = device.Upload<float>(betaValues);
        ulong output = device.Allocate<float>((long)rows * width);
        void** arguments = stackalloc void*[] { &input, &residual, &g, &bt, &output, &rows, &width, &epsilon };
        device.Launch(kernel, "layernorm_residual", (uint)rows, fault ? (uint)width : BlockFor(width), arguments);
        float[] expected = new float[rows * width];
        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<float> row = x.AsSpan(r * width, width);
            double mean = 0, variance = 0;
            foreach (float v in row) mean += v;
            mean /= width;
            foreach (float v in row) variance += (v - mean) * (v - mean);
            double scale = 1 / Math.Sqrt(variance / width + epsilon);
            for (int j = 0; j < width; j++) expected[r * width + j] = (float)((row[j] - mean) * scale * gamma[j] + betaValues[j]);
        }
        return new Outcome(expected, device.Download<float>(output, rows * width), width);
    }

    // The engine's own launch shape, so a change to it is followed here.
    private static uint BlockFor(int width) => NativeMi.Compute.Cuda.CudaBackend.BlockFor(width);

    private static float[] Random(long count, int seed)
    {
        var random = new Random(seed);
        var values = new float[count];
        for (long i = 0; i < count; i++) values[i] = (float)(random.NextDouble() * 2 - 1);
        return values;
    }

    private sealed record Outcome(float[] Expected, float[] Actual, int Width)
    {
        public string Compare(out bool matched)
        {
            int differing = 0, first = -1;
            for (int i = 0; i < Expected.Length; i++)
            {
                float e = Expected[i], a = Actual[i];
                if (Math.Abs(a - e) <= 1e-4f * (1 + Math.Abs(e))) continue;   // false for NaN, which is what a missed write leaves
                differing++;
                if (first < 0) first = i;
            }
            matched = differing == 0;
            if (matched) return $"all {Expected.Length} values agree with the CPU reference";
            return $"{differing} of {Expected.Length} values differ from the CPU reference; first at row {first / Width}, column {first % Width}: " +
                   $"expected {Expected[first]:R}, got {Actual[first]:R}";
        }
    }
}
