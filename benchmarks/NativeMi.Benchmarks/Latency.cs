using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.ML.OnnxRuntime;
using NativeMi.Models;
using NativeMi.Pooling;
using NativeMi.Text;

namespace NativeMi.Benchmarks;

/// <summary>
/// `latency`: issue 12 item 5 in one rerunnable pass. One-sentence pooled embedding latency (minilm, mean pooling at the
/// last layer, text in, vector out) through the .NET facade <see cref="LanguageModel"/>, through the C ABI of
/// libnativemi.so loaded into this same process, and through ONNX Runtime (default session options, spinning disabled,
/// one intra-op thread) on the same sentences with our tokenizer, interleaved in rounds; then the cold start of the
/// library to its first pooled vector (C programs in fresh processes, benchmarks/latency/*.c) beside ORT's. Writes the
/// figures and the goals as Markdown.
/// </summary>
public static class Latency
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    // The goals of issue 12 item 5.
    private const double ColdStartGoalMs = 200;

    private const int BlockCalls = 10;

    /// <summary>One system's per-call latencies.</summary>
    private sealed class Contender(string name, Func<int, float[]> embed)
    {
        public string Name { get; } = name;
        /// <summary>Embeds sentence i (an index into the benchmark's sentences) and returns its vector.</summary>
        public Func<int, float[]> Embed { get; } = embed;
        public List<double> Milliseconds { get; } = [];
    }

    /// <summary>Runs the benchmark; <paramref name="args"/> are the options after "latency".</summary>
    public static int Run(string[] args)
    {
        int calls = IntOption(args, "--calls") ?? 1000;
        int warmupRounds = IntOption(args, "--warmup-rounds") ?? 10;
        int coldRuns = IntOption(args, "--cold-runs") ?? 7;
        string model = Option(args, "--model") ?? "minilm";
        string? outPath = Option(args, "--out");
        string native = Option(args, "--native") ?? FindNative();
        string loadBefore = LoadAverage();
        var clock = Stopwatch.StartNew();

        string[] sentences = Sentences(calls);
        string folder = ModelResolver.Resolve(model);
        TransformerConfig config = TransformerConfig.Load(Path.Combine(folder, "config.json"));
        TextTokenizer tokenizer = TextTokenizer.Load(folder, config);
        EncodedSentence[] encoded = sentences.Select(s => tokenizer.Encode(s, config.MaxSequenceLength)).ToArray();
        int lastLayer = config.NumLayers;

        Progress($"opening {model} through the .NET facade, the C ABI ({native}) and ONNX Runtime");
        using LanguageModel facade = LanguageModel.Open(model);
        int width = facade.Description.Width;
        int[] layers = [lastLayer];
        string[] one = new string[1];
        var facadeSystem = new Contender(".NET facade (LanguageModel.Embed)", i =>
        {
            var vector = new float[width];
            one[0] = sentences[i];
            facade.Embed(one, layers, vector, PoolingMode.Mean);
            return vector;
        });

        using var cAbi = CAbi.TryLoad(Path.Combine(native, "libnativemi.so"), model, out string cAbiNote);
        var systems = new List<Contender> { facadeSystem };
        byte[][] utf8 = sentences.Select(s => Encoding.UTF8.GetBytes(s + "\0")).ToArray();
        if (cAbi is not null) systems.Add(new Contender("C ABI (nativemi_embed, in process)", i => cAbi.Embed(utf8[i], lastLayer, width)));

        string onnx = BuiltinModels.GetOnnxPath(model);
        var ortDefault = new OrtSystem(onnx, "default", o => { });
        var ortNoSpin = new OrtSystem(onnx, "spinning disabled", o => o.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"));
        var ortOneThread = new OrtSystem(onnx, "1 intra-op thread", o => o.IntraOpNumThreads = 1);
        OrtSystem[] orts = [ortDefault, ortNoSpin, ortOneThread];
        foreach (OrtSystem ort in orts) systems.Add(new Contender($"ONNX Runtime, {ort.Label}", i => ort.Embed(encoded[i])));
        var tokenizeOnly = new Contender("(our tokenizer alone, text to ids)", i => { _ = tokenizer.Encode(sentences[i], config.MaxSequenceLength); return []; });
        systems.Add(tokenizeOnly);

        try
        {
            // Rounds: each system embeds the same block of consecutive sentences, in an order that rotates from round to round,
            // so that machine load and the previous system's lingering threads (ORT's spinning pool) fall on every system alike.
            int rounds = (calls + BlockCalls - 1) / BlockCalls;
            Progress($"{warmupRounds} warm-up rounds and {rounds} timed rounds of {BlockCalls} calls per system");
            for (int round = -warmupRounds; round < rounds; round++)
            {
                int first = ((round % rounds) + rounds) % rounds * BlockCalls;
                for (int s = 0; s < systems.Count; s++)
                {
                    Contender system = systems[(s + round + warmupRounds) % systems.Count];
                    for (int c = 0; c < BlockCalls && first + c < calls; c++)
                    {
                        long start = Stopwatch.GetTimestamp();
                        _ = system.Embed(first + c);
                        double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                        if (round >= 0) system.Milliseconds.Add(ms);
                    }
                }
            }

            Progress("comparing the vectors");
            var agreement = new StringBuilder();
            double facadeVsOrt = 0, facadeVsC = 0, ortVsOrt1 = 0;
            for (int i = 0; i < calls; i++)
            {
                float[] ours = facadeSystem.Embed(i), ort = ortDefault.Embed(encoded[i]), ort1 = ortOneThread.Embed(encoded[i]);
                facadeVsOrt = Math.Max(facadeVsOrt, MaxAbsDifference(ours, ort));
                ortVsOrt1 = Math.Max(ortVsOrt1, MaxAbsDifference(ort, ort1));
                if (cAbi is not null) facadeVsC = Math.Max(facadeVsC, MaxAbsDifference(ours, cAbi.Embed(utf8[i], lastLayer, width)));
            }
            agreement.AppendLine(CultureInfo.InvariantCulture, $"- NativeMi (.NET facade) vs ONNX Runtime (default), max |difference| over the {calls} pooled vectors: {facadeVsOrt:G3}");
            agreement.AppendLine(cAbi is not null
                ? string.Create(Invariant, $"- C ABI vs .NET facade: {facadeVsC:G3} (0 means bit-identical)")
                : "- C ABI vs .NET facade: not compared (the C ABI was not loaded in process)");
            agreement.AppendLine(CultureInfo.InvariantCulture, $"- ONNX Runtime 1 thread vs default: {ortVsOrt1:G3}");

            ColdStarts cold;
            if (coldRuns > 0)
            {
                Progress($"cold starts, {coldRuns} fresh processes each");
                cold = ColdStart.Run(native, model, onnx, sentences[0], encoded[0].Ids, coldRuns);
            }
            else cold = new ColdStarts(null, "--cold-runs 0", "Not run (--cold-runs 0).\n", 0);

            string report = Report(systems, facadeSystem, systems.FirstOrDefault(s => s.Name.StartsWith("C ABI", StringComparison.Ordinal)),
                systems.Where(s => s.Name.StartsWith("ONNX", StringComparison.Ordinal)).ToList(), encoded, calls, warmupRounds, cAbiNote, agreement.ToString(),
                cold, loadBefore, clock.Elapsed, model, lastLayer);
            if (outPath is not null) NativeMi.IO.AtomicFile.WriteAllText(outPath, report);
            Console.WriteLine(report);
            return 0;
        }
        finally
        {
            foreach (OrtSystem ort in orts) ort.Dispose();
        }
    }

    private static string Report(List<Contender> systems, Contender facade, Contender? cAbi, List<Contender> orts, EncodedSentence[] encoded, int calls,
        int warmupRounds, string cAbiNote, string agreement, ColdStarts cold, string loadBefore, TimeSpan elapsed, string model, int lastLayer)
    {
        var r = new StringBuilder();
        int[] lengths = encoded.Select(e => e.Ids.Length).Order().ToArray();
        r.AppendLine("# NativeMi embedding latency beside ONNX Runtime").AppendLine();
        r.AppendLine(CultureInfo.InvariantCulture, $"- date (UTC): {DateTime.UtcNow:yyyy-MM-dd HH:mm}; commit {Bar.Commit()}; `latency` took {elapsed.TotalMinutes:F1} min");
        r.AppendLine(CultureInfo.InvariantCulture, $"- machine: {OrtComparison.CpuName()}, {Environment.ProcessorCount} logical cores, {Environment.OSVersion}, .NET {Environment.Version}, ONNX Runtime {typeof(InferenceSession).Assembly.GetName().Version}");
        r.AppendLine(CultureInfo.InvariantCulture, $"- load average before: {loadBefore}; after: {LoadAverage()}");
        r.AppendLine(CultureInfo.InvariantCulture, $"- model: {model}, mean pooling at the last layer (entry {lastLayer}), one sentence per call, text in and vector out for every system (ORT is given our tokenizer's ids and its last_hidden_state is mean-pooled over the same text tokens, inside the timed call)");
        r.AppendLine(CultureInfo.InvariantCulture, $"- sentences: {calls} packaged WordNet sentences, {lengths[0]}-{lengths[^1]} tokens (median {lengths[lengths.Length / 2]}) with [CLS] and [SEP]; {warmupRounds} untimed warm-up rounds, then rounds in which every system embeds the same {BlockCalls} consecutive sentences, the order of the systems rotating each round; {calls} timed calls per system");
        r.AppendLine(CultureInfo.InvariantCulture, $"- C ABI: {cAbiNote}");
        r.AppendLine();
        r.AppendLine("## Goals").AppendLine();
        r.AppendLine("| goal | measured | met |").AppendLine("|---|---:|:---:|");
        double oursP50 = Percentile(facade.Milliseconds, 0.5);
        double? cP50 = cAbi is null ? null : Percentile(cAbi.Milliseconds, 0.5);
        double ortP50 = Percentile(orts[0].Milliseconds, 0.5);
        double bestOrtP50 = orts.Min(o => Percentile(o.Milliseconds, 0.5));
        string bestOrt = orts.MinBy(o => Percentile(o.Milliseconds, 0.5))!.Name;
        Goal(r, "one-sentence p50, .NET facade <= ONNX Runtime (default options)", $"{oursP50:F2} vs {ortP50:F2} ms ({oursP50 / ortP50:F2}x)", oursP50 <= ortP50);
        if (cP50 is double c) Goal(r, "one-sentence p50, C ABI <= ONNX Runtime (default options)", $"{c:F2} vs {ortP50:F2} ms ({c / ortP50:F2}x)", c <= ortP50);
        Goal(r, $"one-sentence p50, .NET facade <= the fastest ONNX Runtime setting ({bestOrt[14..]})", $"{oursP50:F2} vs {bestOrtP50:F2} ms ({oursP50 / bestOrtP50:F2}x)", oursP50 <= bestOrtP50);
        if (cold.NativeMi is { } n)
            Goal(r, $"cold start of libnativemi.so to the first pooled vector < {ColdStartGoalMs:F0} ms (model imported; median of {n.Runs} fresh processes)", $"{n.TotalMs:F0} ms", n.TotalMs < ColdStartGoalMs);
        else Goal(r, $"cold start < {ColdStartGoalMs:F0} ms", $"not run: {cold.NativeMiNote}", null);
        r.AppendLine();
        r.AppendLine("## One-sentence pooled embedding, per call").AppendLine();
        r.AppendLine("| system | p50 ms | p99 ms | mean ms | min ms | max ms |").AppendLine("|---|---:|---:|---:|---:|---:|");
        foreach (Contender s in systems)
            r.AppendLine(CultureInfo.InvariantCulture,
                $"| {s.Name} | {Percentile(s.Milliseconds, 0.5):F3} | {Percentile(s.Milliseconds, 0.99):F3} | {s.Milliseconds.Average():F3} | {s.Milliseconds.Min():F3} | {s.Milliseconds.Max():F3} |");
        r.AppendLine();
        r.AppendLine("Percentiles are nearest-rank over the timed calls. ORT's default options: ORT_ENABLE_ALL graph optimisations, an intra-op pool of one thread per physical core, spinning allowed.").AppendLine();
        r.AppendLine("## Agreement of the vectors").AppendLine().Append(agreement).AppendLine();
        r.AppendLine("## Cold start to the first pooled vector").AppendLine();
        r.AppendLine(CultureInfo.InvariantCulture, $"Fresh processes, the model already imported into the cache and its files in the page cache (one untimed run first); medians of {cold.Runs} runs; phases in ms. `total` runs from the program's main() to the first vector; `process` is the harness's fork-to-exit wall time (it includes the exec, a second warm call and the teardown).").AppendLine();
        r.Append(cold.Table);
        r.AppendLine();
        return r.ToString();
    }

    private static void Goal(StringBuilder r, string name, string measured, bool? met) =>
        r.AppendLine(CultureInfo.InvariantCulture, $"| {name} | {measured} | {(met is null ? "-" : met.Value ? "yes" : "**no**")} |");

    /// <summary>The benchmark's sentences: <paramref name="count"/> lines spread evenly over the packaged WordNet corpus.</summary>
    private static string[] Sentences(int count)
    {
        string[] all = File.ReadLines(Path.Combine(AppContext.BaseDirectory, "data", "wordnet-examples.txt")).Where(l => l.Trim().Length > 0).ToArray();
        int step = Math.Max(1, all.Length / count);
        return Enumerable.Range(0, count).Select(i => all[i * step % all.Length]).ToArray();
    }

    /// <summary>Nearest-rank percentile.</summary>
    internal static double Percentile(List<double> values, double p)
    {
        double[] sorted = values.Order().ToArray();
        int rank = (int)Math.Ceiling(p * sorted.Length);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)];
    }

    internal static double Median(IEnumerable<double> values)
    {
        double[] sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private static double MaxAbsDifference(float[] a, float[] b)
    {
        double max = 0;
        for (int j = 0; j < a.Length; j++) max = Math.Max(max, Math.Abs((double)a[j] - b[j]));
        return max;
    }

    /// <summary>ONNX Runtime on one sentence: our tokenizer's ids in, last_hidden_state mean-pooled over the text tokens out.</summary>
    private sealed class OrtSystem : IDisposable
    {
        private readonly SessionOptions _options;
        private readonly InferenceSession _session;
        private readonly RunOptions _run = new();
        private readonly string[] _inputNames;
        private readonly string[] _outputNames = ["last_hidden_state"];

        public OrtSystem(string onnx, string label, Action<SessionOptions> configure)
        {
            Label = label;
            _options = new SessionOptions();
            configure(_options);
            _session = new InferenceSession(onnx, _options);
            _inputNames = _session.InputMetadata.Keys.ToArray();
        }

        public string Label { get; }

        public float[] Embed(EncodedSentence sentence)
        {
            int t = sentence.Ids.Length;
            var ids = new long[t];
            var mask = new long[t];
            var types = new long[t];
            for (int i = 0; i < t; i++)
            {
                ids[i] = sentence.Ids[i];
                mask[i] = 1;
            }
            long[] shape = [1, t];
            var inputs = new OrtValue[_inputNames.Length];
            try
            {
                for (int i = 0; i < inputs.Length; i++)
                    inputs[i] = OrtValue.CreateTensorValueFromMemory(_inputNames[i] switch
                    {
                        "input_ids" => ids,
                        "attention_mask" => mask,
                        "token_type_ids" => types,
                        _ => throw new InvalidOperationException($"unexpected model input '{_inputNames[i]}'"),
                    }, shape);
                using IDisposableReadOnlyCollection<OrtValue> outputs = _session.Run(_run, _inputNames, inputs, _outputNames);
                ReadOnlySpan<float> states = outputs[0].GetTensorDataAsSpan<float>();
                int d = states.Length / t, count = 0;
                var pooled = new float[d];
                for (int i = 0; i < t; i++)
                {
                    if (!sentence.IsTarget[i]) continue;
                    count++;
                    for (int j = 0; j < d; j++) pooled[j] += states[i * d + j];
                }
                for (int j = 0; j < d; j++) pooled[j] /= count;
                return pooled;
            }
            finally
            {
                foreach (OrtValue? value in inputs) value?.Dispose();
            }
        }

        public void Dispose()
        {
            _session.Dispose();
            _options.Dispose();
            _run.Dispose();
        }
    }

    /// <summary>libnativemi.so loaded into this process (a NativeAOT library beside this process's CoreCLR), called through its exports.</summary>
    private sealed unsafe class CAbi : IDisposable
    {
        private readonly nint _library;
        private readonly nint _model;
        private readonly delegate* unmanaged<nint, byte**, nuint, int*, nuint, int, float*, nuint, int> _embed;
        private readonly delegate* unmanaged<nint, void> _close;
        private readonly delegate* unmanaged<byte*> _lastError;

        private CAbi(nint library, nint model, nint embed, nint close, nint lastError)
        {
            _library = library;
            _model = model;
            _embed = (delegate* unmanaged<nint, byte**, nuint, int*, nuint, int, float*, nuint, int>)embed;
            _close = (delegate* unmanaged<nint, void>)close;
            _lastError = (delegate* unmanaged<byte*>)lastError;
        }

        /// <summary>Loads the library and opens <paramref name="model"/> through nativemi_open; null (with the reason in <paramref name="note"/>) when it cannot.</summary>
        public static CAbi? TryLoad(string path, string model, out string note)
        {
            if (!File.Exists(path))
            {
                note = $"not measured: no {path} (scripts/build-native.sh builds it)";
                return null;
            }
            try
            {
                nint library = NativeLibrary.Load(path);
                var open = (delegate* unmanaged<byte*, byte*, nint*, int>)NativeLibrary.GetExport(library, "nativemi_open");
                var lastError = (delegate* unmanaged<byte*>)NativeLibrary.GetExport(library, "nativemi_last_error");
                nint handle = 0;
                byte[] name = Encoding.UTF8.GetBytes(model + "\0"), cpu = "cpu\0"u8.ToArray();
                int status;
                fixed (byte* n = name, b = cpu) status = open(n, b, &handle);
                if (status != 0)
                {
                    note = $"not measured: nativemi_open failed in process ({status}: {Marshal.PtrToStringUTF8((nint)lastError())})";
                    return null;
                }
                note = $"{path} loaded into this process with NativeLibrary.Load (its NativeAOT runtime beside this process's CoreCLR) and called through function pointers; each call passes a NUL-terminated UTF-8 sentence made before the timing";
                return new CAbi(library, handle, NativeLibrary.GetExport(library, "nativemi_embed"), NativeLibrary.GetExport(library, "nativemi_close"), (nint)lastError);
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException)
            {
                note = $"not measured in process: {e.Message}";
                return null;
            }
        }

        public float[] Embed(byte[] sentence, int layer, int width)
        {
            var vector = new float[width];
            fixed (byte* s = sentence)
            fixed (float* v = vector)
            {
                byte* text = s;
                int status = _embed(_model, &text, 1, &layer, 1, 1, v, (nuint)width);
                if (status != 0) throw new InvalidOperationException($"nativemi_embed: {status}: {Marshal.PtrToStringUTF8((nint)_lastError())}");
            }
            return vector;
        }

        public void Dispose()
        {
            _close(_model);
            // The library stays loaded: a NativeAOT library cannot be unloaded.
            _ = _library;
        }
    }

    private sealed record ColdRow(string System, int Runs, double TotalMs, string Phases, double ProcessMs);

    private sealed record ColdStarts(ColdRow? NativeMi, string NativeMiNote, string Table, int Runs);

    /// <summary>Cold starts in fresh processes: benchmarks/latency/cold_nativemi.c and cold_ort.c, compiled here with cc.</summary>
    private static class ColdStart
    {
        public static ColdStarts Run(string native, string model, string onnx, string sentence, int[] ids, int runs)
        {
            string sources = FindSources();
            string work = Directory.CreateTempSubdirectory("nativemi-latency-").FullName;
            var table = new StringBuilder();
            table.AppendLine("| system | total ms (median) | phases ms (medians) | process ms (median) | runs |").AppendLine("|---|---:|---|---:|---:|");
            ColdRow? ours = null;
            string oursNote = "";
            try
            {
                string library = Path.Combine(native, "libnativemi.so");
                if (!File.Exists(library)) oursNote = $"no {library}";
                else
                {
                    string exe = Path.Combine(work, "cold_nativemi");
                    Compile(Path.Combine(sources, "cold_nativemi.c"), exe, $"-I{Path.Combine(sources, "..", "..", "include")}");
                    ours = Measure("libnativemi.so (C, dlopen + nativemi_open + nativemi_embed)", exe, [library, model, sentence], runs,
                        ["dlopen_ms", "open_ms", "first_embed_ms"], "second_embed_ms");
                    table.AppendLine(Row(ours));
                }
                string ortLibrary = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libonnxruntime.so");
                string? include = OrtInclude();
                if (include is null || !File.Exists(ortLibrary))
                    table.AppendLine(CultureInfo.InvariantCulture, $"| ONNX Runtime (C API) | not run: no onnxruntime_c_api.h or {ortLibrary} | | | |");
                else
                {
                    string exe = Path.Combine(work, "cold_ort");
                    Compile(Path.Combine(sources, "cold_ort.c"), exe, $"-I{include}");
                    ColdRow ort = Measure("ONNX Runtime (C API, dlopen + env + session + run; ids given)", exe,
                        [ortLibrary, onnx, .. ids.Select(i => i.ToString(Invariant))], runs, ["dlopen_ms", "env_ms", "session_ms", "first_run_ms"], "second_run_ms");
                    table.AppendLine(Row(ort));
                }
                // The .NET facade in a fresh .NET process: the runtime's own start and the JIT are part of it.
                // Run as `dotnet NativeMi.Benchmarks.dll`, the process is the host, which needs the assembly named first.
                string self = Environment.ProcessPath ?? "dotnet";
                string[] selfArguments = Path.GetFileNameWithoutExtension(self) == "dotnet"
                    ? [typeof(Latency).Assembly.Location, "latency-cold-dotnet", model, sentence]
                    : ["latency-cold-dotnet", model, sentence];
                try
                {
                    ColdRow dotnet = Measure(".NET facade (fresh `dotnet` process: LanguageModel.Open + Embed)", self, selfArguments, runs,
                        ["runtime_ms", "open_ms", "first_embed_ms"], "second_embed_ms");
                    table.AppendLine(Row(dotnet));
                }
                catch (InvalidOperationException e)
                {
                    // A failed fresh process costs its row only, not the figures measured before it.
                    table.AppendLine(CultureInfo.InvariantCulture, $"| .NET facade (fresh process) | failed: {e.Message.ReplaceLineEndings(" ")} | | | |");
                }
            }
            finally
            {
                Directory.Delete(work, recursive: true);
            }
            return new ColdStarts(ours, oursNote, table.ToString(), runs);
        }

        private static string Row(ColdRow row) => string.Create(Invariant, $"| {row.System} | {row.TotalMs:F1} | {row.Phases} | {row.ProcessMs:F0} | {row.Runs} |");

        private static ColdRow Measure(string name, string exe, string[] arguments, int runs, string[] phases, string warm)
        {
            var values = new Dictionary<string, List<double>>(StringComparer.Ordinal);
            var process = new List<double>();
            for (int run = -1; run < runs; run++)
            {
                var start = new ProcessStartInfo(exe) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
                foreach (string a in arguments) start.ArgumentList.Add(a);
                long t0 = Stopwatch.GetTimestamp();
                using var child = Process.Start(start) ?? throw new InvalidOperationException($"could not start {exe}");
                Task<string> stderr = child.StandardError.ReadToEndAsync();
                string stdout = child.StandardOutput.ReadToEnd();
                child.WaitForExit();
                double wall = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                if (child.ExitCode != 0) throw new InvalidOperationException($"{exe} exited {child.ExitCode}: {stderr.Result.Trim()}");
                if (run < 0) continue; // untimed: fills the page cache
                process.Add(wall);
                string line = stdout.Split('\n').Last(l => l.Contains("total_ms=", StringComparison.Ordinal));
                foreach (string field in line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                {
                    string[] kv = field.Split('=', 2);
                    if (kv.Length == 2 && double.TryParse(kv[1], NumberStyles.Float, Invariant, out double v)) (values.TryGetValue(kv[0], out var list) ? list : values[kv[0]] = []).Add(v);
                }
            }
            string phaseText = string.Join(", ", phases.Concat([warm]).Select(p => string.Create(Invariant, $"{p[..^3]} {Median(values[p]):F1}")));
            return new ColdRow(name, runs, Median(values["total_ms"]), phaseText, Median(process));
        }

        private static void Compile(string source, string output, string include)
        {
            var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("CC") ?? "cc") { UseShellExecute = false, RedirectStandardError = true };
            foreach (string a in new[] { "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", include, source, "-o", output, "-ldl" }) start.ArgumentList.Add(a);
            using var cc = Process.Start(start) ?? throw new InvalidOperationException("could not start cc");
            string errors = cc.StandardError.ReadToEnd();
            cc.WaitForExit();
            if (cc.ExitCode != 0) throw new InvalidOperationException($"cc {source} failed: {errors.Trim()}");
        }

        private static string FindSources()
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                string candidate = Path.Combine(dir.FullName, "benchmarks", "latency");
                if (File.Exists(Path.Combine(candidate, "cold_nativemi.c"))) return candidate;
            }
            throw new InvalidOperationException("benchmarks/latency/cold_nativemi.c not found above " + AppContext.BaseDirectory);
        }

        /// <summary>The C API headers of the ORT NuGet package this benchmark runs.</summary>
        private static string? OrtInclude()
        {
            string? packages = Environment.GetEnvironmentVariable("NUGET_PACKAGES");
            if (string.IsNullOrEmpty(packages)) packages = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
            string version = typeof(InferenceSession).Assembly.GetName().Version is { } v ? $"{v.Major}.{v.Minor}.{v.Build}" : "";
            string include = Path.Combine(packages, "microsoft.ml.onnxruntime", version, "build", "native", "include");
            return File.Exists(Path.Combine(include, "onnxruntime_c_api.h")) ? include : null;
        }
    }

    /// <summary>
    /// `latency-cold-dotnet MODEL SENTENCE` (hidden): the .NET facade's cold start in this fresh process; prints the phases as
    /// cold_nativemi.c does. runtime_ms is from the process's start time to Main.
    /// </summary>
    public static int ColdDotnet(string[] args)
    {
        long main = Stopwatch.GetTimestamp();
        double runtime = (DateTime.Now - Process.GetCurrentProcess().StartTime).TotalMilliseconds;
        using LanguageModel model = LanguageModel.Open(args[0]);
        double open = Stopwatch.GetElapsedTime(main).TotalMilliseconds;
        long before = Stopwatch.GetTimestamp();
        float[] vector = model.Embed([args[1]], [model.Description.Layers], PoolingMode.Mean);
        double first = Stopwatch.GetElapsedTime(before).TotalMilliseconds;
        before = Stopwatch.GetTimestamp();
        _ = model.Embed([args[1]], [model.Description.Layers], PoolingMode.Mean);
        double second = Stopwatch.GetElapsedTime(before).TotalMilliseconds;
        Console.WriteLine(string.Create(Invariant,
            $"runtime_ms={runtime:F3} open_ms={open:F3} first_embed_ms={first:F3} second_embed_ms={second:F3} total_ms={runtime + open + first:F3} vector0={vector[0]:F6}"));
        return 0;
    }

    private static string FindNative()
    {
        string? fromEnv = Environment.GetEnvironmentVariable("NATIVEMI_NATIVE_BUILD");
        if (!string.IsNullOrEmpty(fromEnv)) return fromEnv;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "build", "native");
            if (File.Exists(Path.Combine(candidate, "libnativemi.so"))) return candidate;
        }
        return Path.Combine(Environment.CurrentDirectory, "build", "native");
    }

    private static string? Option(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    private static int? IntOption(string[] args, string name) => Option(args, name) is string v ? int.Parse(v, Invariant) : null;

    private static void Progress(string step) => Console.Error.WriteLine($"latency: {step}");

    private static string LoadAverage()
    {
        try
        {
            return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return "unknown";
        }
    }
}
