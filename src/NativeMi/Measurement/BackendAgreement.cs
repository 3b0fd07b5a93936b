using System.Globalization;
using System.Text;
using NativeMi.Compute;
using NativeMi.Information;
using NativeMi.Models;
using NativeMi.Transformer;

namespace NativeMi.Measurement;

/// <summary>One layer's hidden states on a candidate backend against a reference backend.</summary>
/// <param name="Layer">"0".."L", or "final" (GPT-2's ln_f output).</param>
/// <param name="RelativeError">‖candidate − reference‖ / ‖reference‖ over every real token of every batch.</param>
/// <param name="Passed">Whether the error is within the tolerance (and finite).</param>
internal sealed record LayerAgreement(string Layer, double RelativeError, bool Passed);

/// <summary>The forward pass of one model run on two backends over the same sentences.</summary>
/// <param name="Model">The model folder.</param>
/// <param name="Candidate">The candidate backend's description.</param>
/// <param name="Reference">The reference backend's description.</param>
/// <param name="Sentences">Sentences compared (padding excluded from the errors).</param>
/// <param name="Tolerance">Largest relative L2 error accepted per layer.</param>
/// <param name="Layers">One entry per hidden-state entry.</param>
internal sealed record ForwardAgreementReport(string Model, string Candidate, string Reference, int Sentences, double Tolerance, IReadOnlyList<LayerAgreement> Layers)
{
    /// <summary>Whether every layer agrees.</summary>
    public bool Passed => Layers.Count > 0 && Layers.All(l => l.Passed);

    /// <summary>A plain-text table, one row per layer.</summary>
    public string Format()
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"forward pass: {Model}, {Sentences} sentences");
        text.AppendLine(CultureInfo.InvariantCulture, $"  {Candidate}");
        text.AppendLine(CultureInfo.InvariantCulture, $"  against {Reference}, relative L2 tolerance {Tolerance:G3} per layer");
        foreach (LayerAgreement layer in Layers)
            text.AppendLine(CultureInfo.InvariantCulture, $"  {(layer.Passed ? "ok  " : "FAIL")} layer {layer.Layer,-6} {layer.RelativeError:E2}");
        text.Append(CultureInfo.InvariantCulture, $"  {Layers.Count(l => l.Passed)} of {Layers.Count} layers agree");
        return text.ToString();
    }
}

/// <summary>One figure of one layer measured on the candidate, checked against the reference run's bootstrap interval.</summary>
/// <param name="Layer">The layer's name.</param>
/// <param name="Figure">"accuracy", "I_F" or "I_BA".</param>
/// <param name="Candidate">The candidate's value.</param>
/// <param name="Reference">The reference's value.</param>
/// <param name="Interval">The reference's bootstrap interval.</param>
internal sealed record FigureAgreement(string Layer, string Figure, double Candidate, double Reference, Interval Interval)
{
    /// <summary>Whether the candidate's value lies inside the reference's interval.</summary>
    public bool Passed => Interval.Contains(Candidate);
}

/// <summary>A whole measurement (forward pass, pooling, probe training, figures) run on two backends.</summary>
/// <param name="Candidate">The candidate backend's description.</param>
/// <param name="Reference">The reference backend's description.</param>
/// <param name="Options">The measurement both ran.</param>
/// <param name="Figures">Accuracy, I_F and I_BA (headline target) and the token I_BA of every measured layer.</param>
/// <param name="CandidateSeconds">Wall time of the candidate's run.</param>
/// <param name="ReferenceSeconds">Wall time of the reference's run.</param>
internal sealed record ProbeAgreementReport(string Candidate, string Reference, MeasureOptions Options, IReadOnlyList<FigureAgreement> Figures,
    double CandidateSeconds, double ReferenceSeconds)
{
    /// <summary>Whether every figure lies inside the reference's interval.</summary>
    public bool Passed => Figures.Count > 0 && Figures.All(f => f.Passed);

    /// <summary>A plain-text table, one row per layer and figure.</summary>
    public string Format()
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"probe: {Options.Model}, {Options.MaxSentences} sentences, {Options.Probe.ToString().ToLowerInvariant()} probe, layers {(Options.Layers is null ? "all" : string.Join(",", Options.Layers))}");
        text.AppendLine(CultureInfo.InvariantCulture, $"  {Candidate} ({CandidateSeconds:F1} s)");
        text.AppendLine(CultureInfo.InvariantCulture, $"  inside the bootstrap intervals of {Reference} ({ReferenceSeconds:F1} s)");
        foreach (FigureAgreement figure in Figures)
            text.AppendLine(CultureInfo.InvariantCulture,
                $"  {(figure.Passed ? "ok  " : "FAIL")} layer {figure.Layer,-6} {figure.Figure,-9} {figure.Candidate,9:F4}  reference {figure.Reference,9:F4} [{figure.Interval.Lower:F4}, {figure.Interval.Upper:F4}]");
        text.Append(CultureInfo.InvariantCulture, $"  {Figures.Count(f => f.Passed)} of {Figures.Count} figures inside");
        return text.ToString();
    }
}

/// <summary>One parameter tensor's gradient on a candidate backend against a reference backend.</summary>
/// <param name="Tensor">The checkpoint's name.</param>
/// <param name="RelativeError">‖candidate − reference‖ / ‖reference‖; for a tensor whose exact gradient is zero, the larger of the two
/// norms over the whole gradient's (see <see cref="BackendAgreement.Backward"/>).</param>
/// <param name="Passed">Whether the error is within the tolerance (and finite).</param>
/// <param name="ZeroInExactArithmetic">The reference holds only rounding (below 1e-7 of the whole gradient's norm).</param>
internal sealed record TensorAgreement(string Tensor, double RelativeError, bool Passed, bool ZeroInExactArithmetic = false);

/// <summary>The training forward and backward pass of one model run on two backends over the same batch.</summary>
/// <param name="Model">The model folder.</param>
/// <param name="Candidate">The candidate backend's description.</param>
/// <param name="Reference">The reference backend's description.</param>
/// <param name="Sentences">Sentences in the batch.</param>
/// <param name="Layer">The pooled hidden-state entry ("0".."L", or "final").</param>
/// <param name="Pooling">How it was pooled.</param>
/// <param name="Tolerance">Largest relative L2 error accepted per tensor.</param>
/// <param name="PooledError">Relative L2 error of the pooled sentence vectors.</param>
/// <param name="Tensors">One entry per parameter tensor.</param>
internal sealed record BackwardAgreementReport(string Model, string Candidate, string Reference, int Sentences, string Layer, Pooling.PoolingMode Pooling,
    double Tolerance, double PooledError, IReadOnlyList<TensorAgreement> Tensors)
{
    /// <summary>Whether the pooled vectors and every parameter's gradient agree.</summary>
    public bool Passed => Tensors.Count > 0 && PooledError <= Tolerance && Tensors.All(t => t.Passed);

    /// <summary>A plain-text summary: the largest error, and a row for every tensor that disagrees.</summary>
    public string Format()
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"backward pass: {Model}, {Sentences} sentences, layer {Layer} pooled by {Pooling.ToString().ToLowerInvariant()}, gradient of Σ c·z");
        text.AppendLine(CultureInfo.InvariantCulture, $"  {Candidate}");
        text.AppendLine(CultureInfo.InvariantCulture, $"  against {Reference}, relative L2 tolerance {Tolerance:G3} per tensor");
        text.AppendLine(CultureInfo.InvariantCulture, $"  {(PooledError <= Tolerance ? "ok  " : "FAIL")} pooled vectors {PooledError:E2}");
        foreach (TensorAgreement tensor in Tensors.Where(t => !t.Passed))
            text.AppendLine(CultureInfo.InvariantCulture, $"  FAIL {tensor.Tensor} {tensor.RelativeError:E2}");
        int zero = Tensors.Count(t => t.ZeroInExactArithmetic);
        if (zero > 0) text.AppendLine(CultureInfo.InvariantCulture, $"  {zero} zero in exact arithmetic (key biases), rounding on both: largest {Tensors.Where(t => t.ZeroInExactArithmetic).Max(t => t.RelativeError):E2} of the whole gradient's norm");
        TensorAgreement? worst = Tensors.Where(t => !t.ZeroInExactArithmetic).MaxBy(t => double.IsNaN(t.RelativeError) ? double.PositiveInfinity : t.RelativeError);
        if (worst is not null) text.AppendLine(CultureInfo.InvariantCulture, $"  largest: {worst.Tensor} {worst.RelativeError:E2}");
        text.Append(CultureInfo.InvariantCulture, $"  {Tensors.Count(t => t.Passed)} of {Tensors.Count} parameter gradients agree");
        return text.ToString();
    }
}

/// <summary>
/// Checks that a backend gives the same science as the reference (the CPU): the forward pass of a real model layer
/// by layer, and a whole measurement whose figures must fall inside the reference run's bootstrap intervals (a probe
/// trained on another backend follows a different rounding path, so its figures may differ by noise, not by more).
/// </summary>
internal static class BackendAgreement
{
    /// <summary>Runs <paramref name="model"/> on both backends over <paramref name="sentences"/> and compares every layer.</summary>
    /// <param name="model">Built-in model name or model folder.</param>
    /// <param name="candidate">The backend under test.</param>
    /// <param name="reference">The reference backend.</param>
    /// <param name="sentences">Sentences to encode; batches are right-padded, so padding is exercised.</param>
    /// <param name="batchSize">Sentences per forward batch.</param>
    /// <param name="tolerance">Largest relative L2 error accepted per layer.</param>
    public static ForwardAgreementReport Forward(string model, IComputeBackend candidate, IComputeBackend reference,
        IReadOnlyList<string> sentences, int batchSize, double tolerance)
    {
        ArgumentNullException.ThrowIfNull(candidate);
        ArgumentNullException.ThrowIfNull(reference);
        ArgumentNullException.ThrowIfNull(sentences);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        if (sentences.Count == 0) throw new ArgumentException("no sentences to compare", nameof(sentences));
        string folder = ModelResolver.Resolve(model);
        using TransformerModel onCandidate = TransformerModel.Load(folder, candidate);
        using TransformerModel onReference = TransformerModel.Load(folder, reference);
        int entries = onReference.Config.HiddenStateEntries;
        var differenceSquares = new double[entries];
        var referenceSquares = new double[entries];
        var nonFinite = new bool[entries];
        for (int start = 0; start < sentences.Count; start += batchSize)
        {
            EncodedBatch batch = onReference.Encode(sentences.Skip(start).Take(batchSize).ToArray());
            HiddenStates expected = onReference.Forward(batch), actual = onCandidate.Forward(batch);
            for (int l = 0; l < entries; l++)
            {
                float[] r = l < expected.Layers.Count ? expected.Layers[l] : expected.Final!;
                float[] c = l < actual.Layers.Count ? actual.Layers[l] : actual.Final!;
                int width = expected.Width;
                for (int cell = 0; cell < batch.AttentionMask.Length; cell++)
                {
                    if (batch.AttentionMask[cell] == 0) continue;
                    for (int j = cell * width; j < (cell + 1) * width; j++)
                    {
                        if (!float.IsFinite(c[j])) nonFinite[l] = true;
                        double d = (double)c[j] - r[j];
                        differenceSquares[l] += d * d;
                        referenceSquares[l] += (double)r[j] * r[j];
                    }
                }
            }
        }
        var layers = new LayerAgreement[entries];
        for (int l = 0; l < entries; l++)
        {
            double error = nonFinite[l] ? double.NaN : Math.Sqrt(differenceSquares[l]) / Math.Max(Math.Sqrt(referenceSquares[l]), 1e-30);
            layers[l] = new LayerAgreement(l < onReference.LayerCount ? l.ToString(CultureInfo.InvariantCulture) : "final", error, error <= tolerance);
        }
        return new ForwardAgreementReport(folder, candidate.Description, reference.Description, sentences.Count, tolerance, layers);
    }

    /// <summary>
    /// Runs <see cref="TrainableTransformer"/>'s forward and backward pass of <paramref name="model"/> on both backends over one batch
    /// of <paramref name="sentences"/>: the last hidden-state entry pooled as a measurement pools it by default, and the gradient of
    /// Σ c·z for a seeded c, compared tensor by tensor. 16-bit weights are widened (training runs fp32).
    /// </summary>
    /// <remarks>
    /// A tensor whose exact gradient is zero (a key bias: softmax does not move when a row's scores all shift by q·b) holds only
    /// rounding on either backend, which no relative error can compare; it is recognised by a reference norm below 1e-7 of the whole
    /// gradient's, and passes when the candidate's is rounding too: both norms, over the whole gradient's, within the tolerance.
    /// </remarks>
    public static BackwardAgreementReport Backward(string model, IComputeBackend candidate, IComputeBackend reference, IReadOnlyList<string> sentences, double tolerance)
    {
        ArgumentNullException.ThrowIfNull(candidate);
        ArgumentNullException.ThrowIfNull(reference);
        ArgumentNullException.ThrowIfNull(sentences);
        if (sentences.Count == 0) throw new ArgumentException("no sentences to compare", nameof(sentences));
        string folder = ModelResolver.Resolve(model);
        var load = new ModelLoadOptions { WidenSixteenBitWeights = true };
        using TrainableTransformer onCandidate = TrainableTransformer.Load(folder, candidate, load);
        using TrainableTransformer onReference = TrainableTransformer.Load(folder, reference, load);
        TransformerConfig config = onReference.Config;
        EncodedBatch batch = onReference.Encode(sentences);
        int layer = config.HiddenStateEntries - 1;
        Pooling.PoolingMode pooling = config.Layout.Attention.Causal ? Pooling.PoolingMode.Last : Pooling.PoolingMode.Mean;
        var random = new SplitMix64(20_240_601);
        float[] c = new float[batch.BatchSize * config.HiddenSize];
        for (int i = 0; i < c.Length; i++) c[i] = (float)(2 * random.NextDouble() - 1);
        var (expectedPooled, expected) = RunBackward(onReference, batch, layer, pooling, c);
        var (actualPooled, actual) = RunBackward(onCandidate, batch, layer, pooling, c);
        double global = Math.Sqrt(expected.Values.Sum(g => SumOfSquares(g)));
        var tensors = new List<TensorAgreement>();
        foreach (string name in onReference.ParameterNames)
        {
            double difference = 0;
            float[] r = expected[name], a = actual[name];
            for (int i = 0; i < r.Length; i++) difference += ((double)a[i] - r[i]) * ((double)a[i] - r[i]);
            double norm = Math.Sqrt(SumOfSquares(r));
            if (norm <= 1e-7 * global)
            {
                double rounding = Math.Max(norm, Math.Sqrt(SumOfSquares(a))) / Math.Max(global, 1e-30);
                tensors.Add(new TensorAgreement(name, rounding, rounding <= tolerance, ZeroInExactArithmetic: true));
                continue;
            }
            double error = Math.Sqrt(difference) / norm;
            tensors.Add(new TensorAgreement(name, error, error <= tolerance));
        }
        double pooledDifference = 0;
        for (int i = 0; i < expectedPooled.Length; i++) pooledDifference += ((double)actualPooled[i] - expectedPooled[i]) * ((double)actualPooled[i] - expectedPooled[i]);
        double pooledError = Math.Sqrt(pooledDifference) / Math.Max(Math.Sqrt(SumOfSquares(expectedPooled)), 1e-30);
        string layerName = config.HasFinalEntry && layer == config.NumLayers + 1 ? "final" : layer.ToString(CultureInfo.InvariantCulture);
        return new BackwardAgreementReport(folder, candidate.Description, reference.Description, sentences.Count, layerName, pooling, tolerance,
            double.IsFinite(pooledError) ? pooledError : double.NaN, tensors);
    }

    private static (float[] Pooled, IReadOnlyDictionary<string, float[]> Gradients) RunBackward(TrainableTransformer model, EncodedBatch batch, int layer,
        Pooling.PoolingMode pooling, float[] pooledGradient)
    {
        using TrainingPass pass = model.Forward(batch, layer, pooling);
        using DeviceBuffer<float> upstream = model.Backend.Upload<float>(pooledGradient);
        model.Backward(pass, upstream);
        return (pass.DownloadPooled(), model.DownloadGradients());
    }

    private static double SumOfSquares(float[] values)
    {
        double sum = 0;
        foreach (float v in values) sum += (double)v * v;
        return sum;
    }

    /// <summary>
    /// Runs the measurement <paramref name="options"/> on both backends, each with a fresh embedding cache (so each runs
    /// its own forward pass), and checks the candidate's accuracy, I_F and I_BA of every layer against the reference's
    /// bootstrap intervals. <paramref name="options"/> must ask for bootstrap resamples.
    /// </summary>
    public static ProbeAgreementReport Probe(MeasureOptions options, IComputeBackend candidate, IComputeBackend reference,
        IProgress<MeasureEvent>? progress = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(candidate);
        ArgumentNullException.ThrowIfNull(reference);
        if (options.Bootstrap < 1) throw new ArgumentException("the check needs bootstrap intervals: set Bootstrap to at least 1", nameof(options));
        string cacheRoot = Path.Combine(Path.GetTempPath(), $"nativemi-agreement-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            MeasurementResult expected = MeasurementRunner.Run(options with { CacheDirectory = Path.Combine(cacheRoot, "reference") }, progress, reference, cancellation);
            double referenceSeconds = clock.Elapsed.TotalSeconds;
            clock.Restart();
            MeasurementResult actual = MeasurementRunner.Run(options with { CacheDirectory = Path.Combine(cacheRoot, "candidate") }, progress, candidate, cancellation);
            double candidateSeconds = clock.Elapsed.TotalSeconds;

            var figures = new List<FigureAgreement>();
            foreach (LayerResult r in expected.Layers)
            {
                LayerResult c = actual.Layers.Single(l => l.Layer == r.Layer && l.Name == r.Name);
                LayerFigures rf = r.For(expected.HeadlineTarget), cf = c.For(expected.HeadlineTarget);
                figures.Add(new FigureAgreement(r.Name, "accuracy", cf.Accuracy, rf.Accuracy, rf.AccuracyInterval!.Value));
                figures.Add(new FigureAgreement(r.Name, "I_F", cf.FanoBits, rf.FanoBits, rf.FanoInterval!.Value));
                figures.Add(new FigureAgreement(r.Name, "I_BA", cf.BarberAgakovBits, rf.BarberAgakovBits, rf.BarberAgakovInterval!.Value));
                figures.Add(new FigureAgreement(r.Name, "I_BA token", c.Token.BarberAgakovBits, r.Token.BarberAgakovBits, r.Token.BarberAgakovInterval!.Value));
            }
            return new ProbeAgreementReport(candidate.Description, reference.Description, options, figures, candidateSeconds, referenceSeconds);
        }
        finally
        {
            try { if (Directory.Exists(cacheRoot)) Directory.Delete(cacheRoot, recursive: true); }
            catch (IOException) { /* a leftover temporary cache costs disk space, never the result */ }
        }
    }
}
