using System.Diagnostics;
using System.Globalization;
using System.Text;
using NativeMi.Compute;
using NativeMi.Compute.Cpu;
using NativeMi.Pooling;
using NativeMi.Probing;

namespace NativeMi.Benchmarks;

/// <summary>
/// Where the default probe's training time goes: ProbeTrainer.Train on data the shape of the default <c>nativemi measure</c>
/// (5594 training and 764 validation sentences of ~7.6 targets, d = 384, 1000 classes + other over a Zipf vocabulary,
/// hidden 256, batches of 32 sentences), a fixed number of epochs per stage, through a backend that times every op.
/// Reported per stage and per phase (training steps, validation passes): each op kind's time per epoch, its calls per
/// epoch and its share, with the host time between ops as its own line, and the wall time of each epoch.
/// </summary>
internal static class ProbeProfile
{
    private const int TrainSentences = 5594, ValidationSentences = 764, Width = 384, Vocabulary = 30522, Classes = 1000;

    /// <summary>Trains <paramref name="epochs"/> epochs per stage (after one untimed warm-up run of one epoch per stage) and returns the report.</summary>
    public static string Run(int epochs)
    {
        var train = Split(TrainSentences, 11);
        var validation = Split(ValidationSentences, 12);
        var classes = ClassMap.Build(train.Targets, validation.Targets, Classes, Vocabulary);
        var inner = new CpuBackend();
        var options = new ProbeOptions { MaxEpochs = 1, Patience = 1000 };
        using (ProbeTrainer.Train(inner, train, validation, classes, options)) { }

        var timed = new TimedBackend(inner);
        var progress = new SynchronousProgress<ProbeEpoch>(e => timed.CloseEpoch(e.Stage));
        var total = Stopwatch.StartNew();
        using (ProbeTrainer.Train(timed, train, validation, classes, options with { MaxEpochs = epochs }, progress)) { }
        double totalSeconds = total.Elapsed.TotalSeconds;

        var report = new StringBuilder();
        report.AppendLine("# Probe training profile");
        report.AppendLine();
        report.AppendLine(CultureInfo.InvariantCulture, $"- date (UTC): {DateTime.UtcNow:yyyy-MM-dd HH:mm}; {Environment.ProcessorCount} cores; {inner.Description}; load average {LoadAverage()}");
        report.AppendLine(CultureInfo.InvariantCulture, $"- synthetic data: {train.Count} training sentences / {train.TargetCount} targets, {validation.Count} validation sentences / {validation.TargetCount} targets, d = {Width}, {classes.Count} classes, positions {train.Targets.Max(t => t.Length)}, hidden {options.Hidden}, batches of {options.BatchSentences} sentences");
        report.AppendLine(CultureInfo.InvariantCulture, $"- {epochs} epochs per stage after one warm-up run; whole training {totalSeconds:F2} s");
        timed.AppendReport(report);
        return report.ToString();
    }

    /// <summary>What the default measure computed, counted by the timing backend over one run.</summary>
    /// <param name="Seconds">The run's wall time.</param>
    /// <param name="Timings">The run's own phase timings (results.json's timings_s).</param>
    /// <param name="WeightProductFlops">2·m·k·n over the forward pass's products with model weights (zero with the embeddings cached).</param>
    /// <param name="AttentionFlops">The attention op's products over padded queries and keys.</param>
    /// <param name="ProbeProductFlops">2·m·k·n over the probes' and the control's products, forward and backward.</param>
    /// <param name="FirstStageEpochs">Epochs of the linear stage over every probe.</param>
    /// <param name="SecondStageEpochs">Epochs of the MLP stage over every probe.</param>
    public sealed record MeasureWork(double Seconds, IReadOnlyDictionary<string, double> Timings, double WeightProductFlops, double AttentionFlops,
        double ProbeProductFlops, int FirstStageEpochs, int SecondStageEpochs)
    {
        /// <summary>Every counted product.</summary>
        public double TotalFlops => WeightProductFlops + AttentionFlops + ProbeProductFlops;
    }

    /// <summary>
    /// The default <c>nativemi measure</c> with its cache under <paramref name="cacheDirectory"/> (embeddings cached there by
    /// a CLI run are reused; an empty folder runs the forward pass too), every op through the timing backend: how many epochs
    /// each stage of each probe ran, their wall times, and the ops over all probes.
    /// </summary>
    public static string RunMeasure(string cacheDirectory) => RunMeasure(cacheDirectory, out _);

    /// <summary>As <see cref="RunMeasure(string)"/>, also returning the counted work.</summary>
    public static string RunMeasure(string cacheDirectory, out MeasureWork work)
    {
        var inner = new CpuBackend();
        var timed = new TimedBackend(inner);
        var probes = new List<(string Probe, List<int> Stages)>();
        string? current = null;
        var progress = new SynchronousProgress<Measurement.MeasureEvent>(e =>
        {
            // Import, tokenising and the forward pass are not probe training: the clocks start again after each of their
            // events, so the first epoch's wall time and host share begin with the first probe (the forward's last batch).
            if (probes.Count == 0 && e.Phase is "import" or "sample" or "pooling" or "tokenise" or "forward")
            {
                timed.Restart();
                return;
            }
            if (e.Message is not { } message || !message.Contains("val CE", StringComparison.Ordinal)) return;
            int colon = message.IndexOf(": val CE", StringComparison.Ordinal);
            string probe = colon < 0 ? e.Phase : e.Phase + " " + message[..colon];
            if (probe != current) probes.Add((current = probe, []));
            probes[^1].Stages.Add(timed.CloseEpoch(null));
        });
        var total = Stopwatch.StartNew();
        var result = Measurement.MeasurementRunner.Run(new Measurement.MeasureOptions { CacheDirectory = cacheDirectory }, progress, timed);
        double totalSeconds = total.Elapsed.TotalSeconds;
        work = new MeasureWork(totalSeconds, result.TimingsSeconds, timed.WeightProductFlops, timed.AttentionFlops, timed.ProbeProductFlops,
            probes.Sum(p => p.Stages.Count(s => s == 1)), probes.Sum(p => p.Stages.Count(s => s == 2)));
        var report = new StringBuilder();
        report.AppendLine("# Probe training profile of the default measure");
        report.AppendLine();
        report.AppendLine(CultureInfo.InvariantCulture, $"- date (UTC): {DateTime.UtcNow:yyyy-MM-dd HH:mm}; {Environment.ProcessorCount} cores; {inner.Description}; load average {LoadAverage()}");
        report.AppendLine(CultureInfo.InvariantCulture, $"- the whole run {totalSeconds:F1} s; its timings: {string.Join(", ", result.TimingsSeconds.Select(t => $"{t.Key} {t.Value:F1} s"))}");
        report.AppendLine(CultureInfo.InvariantCulture, $"- products counted: forward linear layers {work.WeightProductFlops / 1e12:F3} TFLOP, attention {work.AttentionFlops / 1e12:F3} TFLOP, probes and control {work.ProbeProductFlops / 1e12:F3} TFLOP");
        report.AppendLine();
        report.AppendLine("| probe | stage 1 epochs | stage 2 epochs |");
        report.AppendLine("|---|---:|---:|");
        foreach (var (probe, stages) in probes)
            report.AppendLine(CultureInfo.InvariantCulture, $"| {probe} | {stages.Count(s => s == 1)} | {stages.Count(s => s == 2)} |");
        timed.AppendReport(report);
        return report.ToString();
    }

    private sealed record Case(string Name, double Flops, Action Body);

    /// <summary>
    /// The probe's heavy ops at the default measure's sizes (a batch of 32 sentences and 245 targets), timed in
    /// interleaved rounds (every case once per round) so that load on a shared machine hits all alike; medians.
    /// </summary>
    public static string RunKernels(int rounds, string? filter)
    {
        const int S = 32, T = 245, D = Width, H = 256, C = Classes + 1;
        var rng = new Random(5);
        float[] Fill(long length)
        {
            var x = new float[length];
            for (long i = 0; i < length; i++) x[i] = (float)(rng.NextDouble() - 0.5);
            return x;
        }
        var cases = new List<Case>
        {
            new("FMA peak 256, 1 thread", 12.0 * 8 * 2 * 2_000_000, () => FmaPeakBenchmarks.Chains256(2_000_000)),
            new($"FMA peak 256, {Environment.ProcessorCount} threads", Environment.ProcessorCount * 12.0 * 8 * 2 * 2_000_000,
                () => FmaPeakBenchmarks.AllThreads(() => FmaPeakBenchmarks.Chains256(2_000_000))),
        };
        void Gemm(string name, int m, int k, int n, bool transposeA, bool transposeB)
        {
            float[] a = Fill((long)m * k), b = Fill((long)k * n), c = new float[(long)m * n];
            string shape = $"GEMM {name} {m}x{k}x{n}{(transposeA ? " At" : "")}{(transposeB ? " Bt" : "")}";
            cases.Add(new Case(shape, 2.0 * m * k * n,
                () => CpuGemm.Multiply(a, b, default, c, m, k, n, Activation.None, transposeA, transposeB, accumulate: false)));
        }
        Gemm("VZ = Z V", S, D, C, false, false);
        Gemm("dV = Zt dVZ", D, S, C, true, false);
        Gemm("logits = A W2", T, H, C, false, false);
        Gemm("dW2 = At G", H, T, C, true, false);
        Gemm("dA = G W2t", T, C, H, false, true);
        Gemm("H = Z W1", S, D, H, false, false);
        Gemm("dW1 = Zt dH", D, S, H, true, false);
        Gemm("raw", 1024, 384, 1152, false, false);
        var backend = new CpuBackend();
        {
            // Logits as a probe's look early in training: the unigram's log probabilities (a Zipf law over classes in
            // scrambled order) plus a little noise, so the maximum settles early in a row as it does in practice.
            var logits = new CpuBuffer<float>(Fill((long)T * C));
            for (int r = 0; r < T; r++)
                for (int j = 0; j < C; j++) logits.Data[r * C + j] = (float)(-1.05 * Math.Log(1 + (j * 7919L % C))) + 0.5f * logits.Data[r * C + j];
            float[] pristine = (float[])logits.Data.Clone();
            var targets = new CpuBuffer<int>(Enumerable.Range(0, T).Select(i => i * 37 % C).ToArray());
            var loss = new CpuBuffer<float>(new float[T]);
            var argmax = new CpuBuffer<int>(new int[T]);
            cases.Add(new Case("SoftmaxCrossEntropy + gradient t x c", 0, () =>
            {
                pristine.CopyTo(logits.Data, 0);
                backend.SoftmaxCrossEntropy(logits, targets, loss, argmax, T, C, 1f / T, writeGradient: true);
            }));
            cases.Add(new Case("SoftmaxCrossEntropy t x c", 0, () => backend.SoftmaxCrossEntropy(logits, targets, loss, argmax, T, C, 1f, writeGradient: false)));
        }
        {
            var p = new CpuBuffer<float>(Fill((long)D * C));
            var g = new CpuBuffer<float>(Fill((long)D * C));
            var m1 = new CpuBuffer<float>(new float[(long)D * C]);
            var m2 = new CpuBuffer<float>(new float[(long)D * C]);
            int step = 0;
            cases.Add(new Case("AdamW d x c", 0, () => backend.AdamW(p, g, m1, m2, p.Length, new AdamWStep(1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, ++step))));
        }
        if (filter is not null)
        {
            string[] parts = filter.Split('|');
            cases = cases.Where(c => parts.Any(p => c.Name.Contains(p, StringComparison.OrdinalIgnoreCase))).ToList();
        }
        for (int w = 0; w < 3; w++)
            foreach (Case c in cases) c.Body();
        var times = cases.ToDictionary(c => c, _ => new List<double>());
        var cpuTimes = cases.ToDictionary(c => c, _ => new List<double>());
        for (int r = 0; r < rounds; r++)
            foreach (Case c in cases)
            {
                double cpu = ProcessCpuMilliseconds();
                long start = Stopwatch.GetTimestamp();
                c.Body();
                times[c].Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                cpuTimes[c].Add(ProcessCpuMilliseconds() - cpu);
            }
        var report = new StringBuilder();
        report.AppendLine(CultureInfo.InvariantCulture, $"path {CpuGemm.ActivePath}, {Environment.ProcessorCount} threads, {rounds} rounds, load average {LoadAverage()}");
        report.AppendLine("| case | median ms | min ms | GFLOP/s (median) | CPU ms (median, all threads) |");
        report.AppendLine("|---|---:|---:|---:|---:|");
        foreach (Case c in cases)
        {
            var sorted = times[c].Order().ToList();
            double median = Median(sorted), min = sorted[0];
            report.AppendLine(CultureInfo.InvariantCulture, $"| {c.Name} | {median:F3} | {min:F3} | {(c.Flops > 0 ? (c.Flops / median / 1e6).ToString("F1", CultureInfo.InvariantCulture) : "")} | {Median(cpuTimes[c]):F3} |");
        }
        return report.ToString();
    }

    /// <summary>Sentences of 1 + ⌊6.6·Exp(1)⌋ targets (at most 45; mean ~7.6), tokens Zipf-distributed over the vocabulary, Gaussian vectors.</summary>
    private static ProbeDataset Split(int count, int seed)
    {
        var random = new Random(seed);
        // Zipf(1.05) over the vocabulary by inverse-CDF lookup: the top 1000 tokens cover about two thirds of the targets.
        var cumulative = new double[Vocabulary];
        double sum = 0;
        for (int r = 0; r < Vocabulary; r++) cumulative[r] = sum += Math.Pow(r + 1, -1.05);
        var targets = new int[count][];
        for (int s = 0; s < count; s++)
        {
            int length = Math.Min(45, 1 + (int)(-6.6 * Math.Log(1 - random.NextDouble())));
            targets[s] = new int[length];
            for (int i = 0; i < length; i++)
            {
                int rank = Array.BinarySearch(cumulative, random.NextDouble() * sum);
                // The rank's token id is scrambled so frequent classes are not adjacent ids.
                targets[s][i] = (int)(Math.Min(rank < 0 ? ~rank : rank, Vocabulary - 1) * 7919L % Vocabulary);
            }
        }
        var vectors = new float[count * Width];
        for (int i = 0; i < vectors.Length; i++) vectors[i] = (float)(Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()));
        return new ProbeDataset(Width, vectors, targets);
    }

    /// <summary>User + system CPU time of the whole process so far (getrusage): on a loaded machine it moves far less than wall time.</summary>
    private static unsafe double ProcessCpuMilliseconds()
    {
        if (!OperatingSystem.IsLinux()) return double.NaN;
        long* usage = stackalloc long[18];
        return GetResourceUsage(0, usage) != 0 ? double.NaN : (usage[0] + usage[2]) * 1e3 + (usage[1] + usage[3]) * 1e-3;
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "getrusage")]
    private static extern unsafe int GetResourceUsage(int who, long* usage);

    private static string LoadAverage()
    {
        try { return File.ReadAllText("/proc/loadavg").Split(' ')[0]; }
        catch (IOException) { return "?"; }
        catch (UnauthorizedAccessException) { return "?"; }
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }

    internal enum Phase { Train, Validation }

    /// <summary>
    /// Forwards every op to the CPU backend and times it (and counts the products' FLOPs). An op belongs to the phase of the softmax-CE that follows it
    /// (with or without gradient) until then; every op after a softmax-CE belongs to its phase until the next upload
    /// (a new batch). Host time between ops is booked the same way.
    /// </summary>
    private sealed class TimedBackend(CpuBackend inner) : IComputeBackend, IFusedProbeOps
    {
        private readonly Dictionary<(int Stage, Phase Phase, string Op), (long Calls, long Ticks)> _closed = [];
        private readonly Dictionary<(Phase Phase, string Op), (long Calls, long Ticks)> _epoch = [];
        private readonly List<(string Op, long Ticks)> _pending = [];
        private readonly Dictionary<int, int> _epochs = [];
        private readonly List<(int Stage, double Seconds)> _walls = [];
        private Phase? _phase;
        private long _weightProductFlops, _attentionFlops, _probeProductFlops;
        private long _lastEnd = Stopwatch.GetTimestamp(), _epochStart = Stopwatch.GetTimestamp();

        public int Epochs(int stage) => _epochs.GetValueOrDefault(stage);

        /// <summary>Forgets the ops booked so far and starts the epoch clock and the host gap now.</summary>
        public void Restart()
        {
            _pending.Clear();
            _epoch.Clear();
            _phase = null;
            _lastEnd = _epochStart = Stopwatch.GetTimestamp();
        }

        /// <summary>2·m·k·n summed over every product with a model weight (<see cref="Gemm"/>: the forward pass's linear layers).</summary>
        public double WeightProductFlops => Interlocked.Read(ref _weightProductFlops);

        /// <summary>The attention op's two products over every padded query and key.</summary>
        public double AttentionFlops => Interlocked.Read(ref _attentionFlops);

        /// <summary>2·m·k·n summed over every general product (<see cref="GemmEx"/>: the probes' forward and backward).</summary>
        public double ProbeProductFlops => Interlocked.Read(ref _probeProductFlops);

        public double PhaseSeconds(int stage, Phase phase) =>
            _closed.Where(p => p.Key.Stage == stage && p.Key.Phase == phase).Sum(p => p.Value.Ticks) / (double)Stopwatch.Frequency;

        public IEnumerable<(string Op, long Calls, double Seconds)> Ops(int stage, Phase phase) =>
            _closed.Where(p => p.Key.Stage == stage && p.Key.Phase == phase).Select(p => (p.Key.Op, p.Value.Calls, p.Value.Ticks / (double)Stopwatch.Frequency));

        /// <summary>Closes the epoch's bin under <paramref name="stage"/> (null: stage 2 when its training ran the MLP's output product) and returns the stage.</summary>
        public int CloseEpoch(int? stage)
        {
            Flush(_phase ?? Phase.Validation);
            int s = stage ?? (_epoch.Keys.Any(k => k.Phase == Phase.Train && k.Op.StartsWith("GemmEx t×h×c", StringComparison.Ordinal)) ? 2 : 1);
            long now = Stopwatch.GetTimestamp();
            _walls.Add((s, (now - _epochStart) / (double)Stopwatch.Frequency));
            _epochStart = now;
            CloseBin(s);
            return s;
        }

        private void CloseBin(int stage)
        {
            foreach (var (key, value) in _epoch)
            {
                var old = _closed.GetValueOrDefault((stage, key.Phase, key.Op));
                _closed[(stage, key.Phase, key.Op)] = (old.Calls + value.Calls, old.Ticks + value.Ticks);
            }
            _epoch.Clear();
            _epochs[stage] = Epochs(stage) + 1;
        }

        public void AppendReport(StringBuilder report)
        {
            report.AppendLine();
            report.AppendLine("| stage | epochs | epoch wall s: median | min | max | train s / epoch | validation s / epoch |");
            report.AppendLine("|---|---:|---:|---:|---:|---:|---:|");
            foreach (int stage in new[] { 1, 2 })
            {
                var walls = _walls.Where(w => w.Stage == stage).Select(w => w.Seconds).ToList();
                if (walls.Count == 0) continue;
                int count = Epochs(stage);
                report.AppendLine(CultureInfo.InvariantCulture,
                    $"| {stage} | {count} | {Median(walls):F3} | {walls.Min():F3} | {walls.Max():F3} | {PhaseSeconds(stage, Phase.Train) / count:F3} | {PhaseSeconds(stage, Phase.Validation) / count:F3} |");
            }
            foreach (int stage in new[] { 1, 2 })
                foreach (Phase phase in new[] { Phase.Train, Phase.Validation })
                {
                    int count = Epochs(stage);
                    if (count == 0) continue;
                    double phaseSeconds = PhaseSeconds(stage, phase);
                    report.AppendLine();
                    report.AppendLine(CultureInfo.InvariantCulture, $"## Stage {stage}, {(phase == Phase.Train ? "training steps" : "validation passes")}: {phaseSeconds / count:F3} s / epoch");
                    report.AppendLine();
                    report.AppendLine("| op | calls / epoch | ms / epoch | share |");
                    report.AppendLine("|---|---:|---:|---:|");
                    foreach (var (op, calls, seconds) in Ops(stage, phase).OrderByDescending(o => o.Seconds))
                        report.AppendLine(CultureInfo.InvariantCulture, $"| {op} | {(double)calls / count:F0} | {1000 * seconds / count:F1} | {100 * seconds / phaseSeconds:F1} % |");
                }
            report.AppendLine();
            report.AppendLine("Shapes: s sentences of a batch, t its targets, d the vector width, h the hidden width, c the classes; Aᵀ/Bᵀ a transposed operand, += accumulate. \"host\" is the time between ops (batch preparation, ProbeNetwork's own loops). An op before a batch's softmax-CE counts in the phase that softmax-CE shows (training with gradient, validation without); the held-out scoring after training counts as validation of the next epoch.");
        }

        private void Flush(Phase phase)
        {
            foreach (var (op, ticks) in _pending) Add(phase, op, ticks);
            _pending.Clear();
        }

        private void Add(Phase phase, string op, long ticks)
        {
            var old = _epoch.GetValueOrDefault((phase, op));
            _epoch[(phase, op)] = (old.Calls + 1, old.Ticks + ticks);
        }

        private long Begin()
        {
            long now = Stopwatch.GetTimestamp();
            Book("host", now - _lastEnd, isCall: false);
            return now;
        }

        private void End(string op, long start)
        {
            _lastEnd = Stopwatch.GetTimestamp();
            Book(op, _lastEnd - start, isCall: true);
        }

        private void Book(string op, long ticks, bool isCall)
        {
            if (_phase is { } phase)
            {
                if (isCall || ticks > 0) Add(phase, op, ticks);
            }
            else _pending.Add((op, ticks));
        }

        private static string Dim(int v) => v switch
        {
            Width => "d",
            256 => "h",
            Classes + 1 => "c",
            <= 32 => "s",
            _ => "t",
        };

        private static string Dim(long v) => v <= int.MaxValue ? Dim((int)v) : "n";

        public string Name => inner.Name;
        public string Description => inner.Description;
        public void Dispose() => inner.Dispose();
        public void Synchronize() => inner.Synchronize();

        public DeviceBuffer<T> Allocate<T>(long length) where T : unmanaged
        {
            long start = Begin();
            var result = inner.Allocate<T>(length);
            End("Allocate", start);
            return result;
        }

        public DeviceBuffer<T> Upload<T>(ReadOnlySpan<T> data) where T : unmanaged
        {
            // A new batch: what follows belongs to the phase its softmax-CE will show.
            if (_phase is not null) _phase = null;
            long start = Begin();
            var result = inner.Upload(data);
            End("Upload", start);
            return result;
        }

        public DeviceBuffer<float> UploadMatrix(ReadOnlySpan<float> data, int rows, int columns) => inner.UploadMatrix(data, rows, columns);
        public DeviceBuffer<float> UploadMatrix(ReadOnlySpan<ushort> data, int rows, int columns, WeightFormat format, bool transposed) => inner.UploadMatrix(data, rows, columns, format, transposed);
        public DeviceBuffer<float> UploadTable(ReadOnlySpan<ushort> data, int rows, int width, WeightFormat format) => inner.UploadTable(data, rows, width, format);

        public void CopyFromHost<T>(ReadOnlySpan<T> source, DeviceBuffer<T> destination) where T : unmanaged
        {
            long start = Begin();
            inner.CopyFromHost(source, destination);
            End("CopyFromHost", start);
        }

        public void Download<T>(DeviceBuffer<T> source, Span<T> destination) where T : unmanaged
        {
            long start = Begin();
            inner.Download(source, destination);
            End("Download", start);
        }

        public void Gemm(DeviceBuffer<float> input, DeviceBuffer<float> weight, DeviceBuffer<float>? bias, DeviceBuffer<float> output, int m, int k, int n, Activation activation)
        {
            Interlocked.Add(ref _weightProductFlops, 2L * m * k * n);
            inner.Gemm(input, weight, bias, output, m, k, n, activation);
        }

        public void LayerNorm(DeviceBuffer<float> input, DeviceBuffer<float>? residual, DeviceBuffer<float> gamma, DeviceBuffer<float> beta, DeviceBuffer<float> output, int rows, int width, float epsilon) =>
            inner.LayerNorm(input, residual, gamma, beta, output, rows, width, epsilon);

        public void RmsNorm(DeviceBuffer<float> input, DeviceBuffer<float> gamma, DeviceBuffer<float> output, int rows, int width, float epsilon, bool addOneToGamma) =>
            inner.RmsNorm(input, gamma, output, rows, width, epsilon, addOneToGamma);

        public void HeadRmsNorm(DeviceBuffer<float> qkv, DeviceBuffer<float> queryGamma, DeviceBuffer<float> keyGamma, int rows, int heads, int keyValueHeads, int headDim, float epsilon) =>
            inner.HeadRmsNorm(qkv, queryGamma, keyGamma, rows, heads, keyValueHeads, headDim, epsilon);

        public void Rotary(DeviceBuffer<float> qkv, DeviceBuffer<int> positions, DeviceBuffer<float> inverseFrequencies, int rows, int heads, int keyValueHeads, int headDim) =>
            inner.Rotary(qkv, positions, inverseFrequencies, rows, heads, keyValueHeads, headDim);

        public void ExpandKeyValueHeads(DeviceBuffer<float> compact, DeviceBuffer<float> expanded, int rows, int heads, int keyValueHeads, int headDim) =>
            inner.ExpandKeyValueHeads(compact, expanded, rows, heads, keyValueHeads, headDim);

        public void GatedActivation(DeviceBuffer<float> gateUp, DeviceBuffer<float> output, int rows, int width, GateActivation activation) =>
            inner.GatedActivation(gateUp, output, rows, width, activation);

        public void ScaleInPlace(DeviceBuffer<float> buffer, float factor, long count) => inner.ScaleInPlace(buffer, factor, count);

        public void AddInPlace(DeviceBuffer<float> accumulator, DeviceBuffer<float> addend, long count)
        {
            long start = Begin();
            inner.AddInPlace(accumulator, addend, count);
            End("AddInPlace", start);
        }

        public void EmbeddingGather(DeviceBuffer<int> ids, DeviceBuffer<int> positionIds, DeviceBuffer<int>? typeIds, DeviceBuffer<float> words, DeviceBuffer<float> positions,
            DeviceBuffer<float>? types, DeviceBuffer<float> output, int rows, int width) =>
            inner.EmbeddingGather(ids, positionIds, typeIds, words, positions, types, output, rows, width);

        public void Attention(DeviceBuffer<float> qkv, DeviceBuffer<int> mask, DeviceBuffer<float> output, int batch, int seq, int heads, int headDim, bool causal)
        {
            // Q·Kᵀ and P·V over every (padded) query and key, as the kernel computes them.
            Interlocked.Add(ref _attentionFlops, 4L * batch * heads * seq * seq * headDim);
            inner.Attention(qkv, mask, output, batch, seq, heads, headDim, causal);
        }

        public void GemmEx(DeviceBuffer<float> a, bool transposeA, DeviceBuffer<float> b, bool transposeB, DeviceBuffer<float> c, int m, int k, int n, bool accumulate)
        {
            Interlocked.Add(ref _probeProductFlops, 2L * m * k * n);
            long start = Begin();
            inner.GemmEx(a, transposeA, b, transposeB, c, m, k, n, accumulate);
            End($"GemmEx {Dim(m)}×{Dim(k)}×{Dim(n)}{(transposeA ? " Aᵀ" : "")}{(transposeB ? " Bᵀ" : "")}{(accumulate ? " +=" : "")}", start);
        }

        public void GatherRows(DeviceBuffer<float> source, DeviceBuffer<int> indices, DeviceBuffer<float> output, int rows, int width)
        {
            long start = Begin();
            inner.GatherRows(source, indices, output, rows, width);
            End($"GatherRows {Dim(rows)}×{Dim(width)}", start);
        }

        public void ScatterAddRows(DeviceBuffer<float> source, DeviceBuffer<int> indices, DeviceBuffer<float> target, int rows, int width)
        {
            long start = Begin();
            inner.ScatterAddRows(source, indices, target, rows, width);
            End($"ScatterAddRows {Dim(rows)}×{Dim(width)} into {target.Length / Math.Max(width, 1)} rows", start);
        }

        public void BiasActivation(DeviceBuffer<float> input, DeviceBuffer<float> bias, DeviceBuffer<float> preActivation, DeviceBuffer<float> output, int rows, int width, bool gelu)
        {
            long start = Begin();
            inner.BiasActivation(input, bias, preActivation, output, rows, width, gelu);
            End($"BiasActivation {Dim(rows)}×{Dim(width)}{(gelu ? " gelu" : "")}", start);
        }

        public void GatherSum(DeviceBuffer<float> first, DeviceBuffer<int> firstIndices, DeviceBuffer<float> second, DeviceBuffer<int> secondIndices,
            DeviceBuffer<float> bias, DeviceBuffer<float> output, DeviceBuffer<float>? activated, int rows, int width, bool accumulate)
        {
            long start = Begin();
            inner.GatherSum(first, firstIndices, second, secondIndices, bias, output, activated, rows, width, accumulate);
            End($"GatherSum {Dim(rows)}×{Dim(width)}{(activated is null ? "" : " gelu")}{(accumulate ? " +=" : "")}", start);
        }

        public void ReduceRows(DeviceBuffer<float> source, DeviceBuffer<float> columnSums, DeviceBuffer<int> firstIndices, DeviceBuffer<float> first, int firstRows,
            DeviceBuffer<int> secondIndices, DeviceBuffer<float> second, int secondRows, int rows, int width)
        {
            long start = Begin();
            inner.ReduceRows(source, columnSums, firstIndices, first, firstRows, secondIndices, second, secondRows, rows, width);
            End($"ReduceRows {Dim(rows)}×{Dim(width)}", start);
        }

        public void GeluBackward(DeviceBuffer<float> preActivation, DeviceBuffer<float> upstream, DeviceBuffer<float> gradient, long count)
        {
            long start = Begin();
            inner.GeluBackward(preActivation, upstream, gradient, count);
            End("GeluBackward", start);
        }

        public void ColumnSums(DeviceBuffer<float> matrix, DeviceBuffer<float> columnSums, int rows, int width)
        {
            long start = Begin();
            inner.ColumnSums(matrix, columnSums, rows, width);
            End($"ColumnSums {Dim(rows)}×{Dim(width)}", start);
        }

        public void SoftmaxCrossEntropy(DeviceBuffer<float> logits, DeviceBuffer<int> targets, DeviceBuffer<float> lossNats, DeviceBuffer<int> argmax, int rows, int classes, float gradientScale, bool writeGradient)
        {
            Phase phase = writeGradient ? Phase.Train : Phase.Validation;
            Flush(phase);
            _phase = phase;
            long start = Begin();
            inner.SoftmaxCrossEntropy(logits, targets, lossNats, argmax, rows, classes, gradientScale, writeGradient);
            End($"SoftmaxCrossEntropy{(writeGradient ? " + gradient" : "")}", start);
        }

        public void AdamW(DeviceBuffer<float> parameters, DeviceBuffer<float> gradients, DeviceBuffer<float> firstMoment, DeviceBuffer<float> secondMoment, long count, AdamWStep step)
        {
            long start = Begin();
            inner.AdamW(parameters, gradients, firstMoment, secondMoment, count, step);
            End($"AdamW {count}", start);
        }

        public void Zero(DeviceBuffer<float> buffer, long count)
        {
            long start = Begin();
            inner.Zero(buffer, count);
            End($"Zero {count}", start);
        }

        public void PoolSentences(DeviceBuffer<float> layer, DeviceBuffer<int> attentionMask, DeviceBuffer<int> isTarget, DeviceBuffer<float> output, int batch, int seq, int width, PoolingMode mode) =>
            inner.PoolSentences(layer, attentionMask, isTarget, output, batch, seq, width, mode);

        public PredictionCounts CountPredictions(DeviceBuffer<int> predictions, DeviceBuffer<int> targets, DeviceBuffer<int> positions, long count, int classes, int positionCount) =>
            inner.CountPredictions(predictions, targets, positions, count, classes, positionCount);

        public void ApplyActivation(DeviceBuffer<float> input, DeviceBuffer<float> output, long count, Activation activation) => inner.ApplyActivation(input, output, count, activation);

        public void ActivationBackward(DeviceBuffer<float> preActivation, DeviceBuffer<float> upstream, DeviceBuffer<float> gradient, long count, Activation activation) =>
            inner.ActivationBackward(preActivation, upstream, gradient, count, activation);

        public void GatedActivationBackward(DeviceBuffer<float> gateUp, DeviceBuffer<float> upstream, DeviceBuffer<float> gateUpGradient, int rows, int width, GateActivation activation) =>
            inner.GatedActivationBackward(gateUp, upstream, gateUpGradient, rows, width, activation);

        public void LayerNormBackward(DeviceBuffer<float> input, DeviceBuffer<float>? residual, DeviceBuffer<float> gamma, DeviceBuffer<float> outputGradient, DeviceBuffer<float> inputGradient,
            DeviceBuffer<float> gammaGradient, DeviceBuffer<float> betaGradient, int rows, int width, float epsilon) =>
            inner.LayerNormBackward(input, residual, gamma, outputGradient, inputGradient, gammaGradient, betaGradient, rows, width, epsilon);

        public void RmsNormBackward(DeviceBuffer<float> input, DeviceBuffer<float> gamma, DeviceBuffer<float> outputGradient, DeviceBuffer<float> inputGradient, DeviceBuffer<float> gammaGradient,
            int rows, int width, float epsilon, bool addOneToGamma) =>
            inner.RmsNormBackward(input, gamma, outputGradient, inputGradient, gammaGradient, rows, width, epsilon, addOneToGamma);

        public void HeadRmsNormBackward(DeviceBuffer<float> qkv, DeviceBuffer<float> queryGamma, DeviceBuffer<float> keyGamma, DeviceBuffer<float> qkvGradient, DeviceBuffer<float> queryGammaGradient,
            DeviceBuffer<float> keyGammaGradient, int rows, int heads, int keyValueHeads, int headDim, float epsilon) =>
            inner.HeadRmsNormBackward(qkv, queryGamma, keyGamma, qkvGradient, queryGammaGradient, keyGammaGradient, rows, heads, keyValueHeads, headDim, epsilon);

        public void RotaryBackward(DeviceBuffer<float> qkvGradient, DeviceBuffer<int> positions, DeviceBuffer<float> inverseFrequencies, int rows, int heads, int keyValueHeads, int headDim) =>
            inner.RotaryBackward(qkvGradient, positions, inverseFrequencies, rows, heads, keyValueHeads, headDim);

        public void ReduceKeyValueHeads(DeviceBuffer<float> expanded, DeviceBuffer<float> compact, int rows, int heads, int keyValueHeads, int headDim) =>
            inner.ReduceKeyValueHeads(expanded, compact, rows, heads, keyValueHeads, headDim);

        public void AttentionBackward(DeviceBuffer<float> qkv, DeviceBuffer<int> mask, DeviceBuffer<float> outputGradient, DeviceBuffer<float> qkvGradient, int batch, int seq, int heads, int headDim, bool causal) =>
            inner.AttentionBackward(qkv, mask, outputGradient, qkvGradient, batch, seq, heads, headDim, causal);

        public void PoolSentencesBackward(DeviceBuffer<float> layer, DeviceBuffer<int> attentionMask, DeviceBuffer<int> isTarget, DeviceBuffer<float> pooledGradient, DeviceBuffer<float> layerGradient,
            int batch, int seq, int width, PoolingMode mode) =>
            inner.PoolSentencesBackward(layer, attentionMask, isTarget, pooledGradient, layerGradient, batch, seq, width, mode);

        public void SumOfSquares(DeviceBuffer<float> buffer, long count, DeviceBuffer<float> sums, int index) => inner.SumOfSquares(buffer, count, sums, index);
    }
}
