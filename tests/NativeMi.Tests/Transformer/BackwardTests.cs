using System.Globalization;
using System.Text.RegularExpressions;
using NativeMi.Compute;
using NativeMi.Compute.Cpu;
using NativeMi.IO;
using NativeMi.Models;
using NativeMi.Pooling;
using NativeMi.Tests.Compute;
using NativeMi.Transformer;
using Xunit;
using Xunit.Abstractions;

namespace NativeMi.Tests.Transformer;

/// <summary>A fixture's gradient_golden.safetensors (scripts/make_gradient_goldens.py): torch autograd in float64 of Σ c·z.</summary>
internal sealed class GradientGolden
{
    public required EncodedBatch Batch;
    public required int Layer;
    public required PoolingMode Pooling;
    public required float[] Pooled, PooledGradient;
    public required Dictionary<string, float[]> Gradients;

    public static GradientGolden Load(string name)
    {
        using var file = SafetensorsFile.Open(Path.Combine(Fixtures.Folder(name), "gradient_golden.safetensors"));
        long[] shape = file.GetInfo("input_ids").Shape;
        int[] Ints(string tensor) => file.ReadInt64(tensor).Select(v => (int)v).ToArray();
        int[] ids = Ints("input_ids"), mask = Ints("attention_mask"), types = Ints("token_type_ids"), targets = Ints("is_target");
        return new GradientGolden
        {
            Batch = new EncodedBatch((int)shape[0], (int)shape[1], ids, mask, types, targets.Select(t => t != 0).ToArray()),
            Layer = int.Parse(file.Metadata["layer"], CultureInfo.InvariantCulture),
            Pooling = Enum.Parse<PoolingMode>(file.Metadata["pooling"], ignoreCase: true),
            Pooled = file.ReadFloat32("pooled"),
            PooledGradient = file.ReadFloat32("pooled_gradient"),
            Gradients = file.Tensors.Keys.Where(k => k.StartsWith("grad.", StringComparison.Ordinal)).ToDictionary(k => k[5..], file.ReadFloat32, StringComparer.Ordinal),
        };
    }
}

internal static partial class GradientCheck
{
    /// <summary>‖a − b‖₂ / ‖b‖₂ (0 when both are zero, infinity when only the reference is).</summary>
    public static double RelativeError(ReadOnlySpan<float> candidate, ReadOnlySpan<float> reference)
    {
        double difference = 0, norm = 0;
        for (int i = 0; i < reference.Length; i++)
        {
            double d = (double)candidate[i] - reference[i];
            difference += d * d;
            norm += (double)reference[i] * reference[i];
        }
        if (norm == 0) return difference == 0 ? 0 : double.PositiveInfinity;
        return Math.Sqrt(difference / norm);
    }

    [GeneratedRegex(@"\.\d+\.")]
    private static partial Regex LayerIndex();

    /// <summary>The tensor's kind, its block index removed ("layers.N.self_attn.q_proj.weight"), for the per-kind figures.</summary>
    public static string Kind(string name) => LayerIndex().Replace(name, ".N.");

    /// <summary>Runs the training forward and the backward of Σ c·z on <paramref name="model"/>; returns the pooled z and the named gradients.</summary>
    public static (float[] Pooled, IReadOnlyDictionary<string, float[]> Gradients) Run(TrainableTransformer model, EncodedBatch batch, int layer, PoolingMode mode, float[] pooledGradient)
    {
        using TrainingPass pass = model.Forward(batch, layer, mode);
        using DeviceBuffer<float> upstream = model.Backend.Upload<float>(pooledGradient);
        model.Backward(pass, upstream);
        return (pass.DownloadPooled(), model.DownloadGradients());
    }

    /// <summary>L = Σ c·z in double, from one training forward pass.</summary>
    public static double Loss(TrainableTransformer model, EncodedBatch batch, int layer, PoolingMode mode, float[] c)
    {
        using TrainingPass pass = model.Forward(batch, layer, mode);
        float[] z = pass.DownloadPooled();
        double loss = 0;
        for (int i = 0; i < z.Length; i++) loss += (double)c[i] * z[i];
        return loss;
    }
}

/// <summary>
/// The backward pass against torch autograd in float64 (scripts/make_gradient_goldens.py) on the reference checkpoints: the gradient of
/// every parameter tensor within 1e-4 relative L2 error, the pooled vectors of the training forward as well.
/// </summary>
public class GradientGoldenTests(ITestOutputHelper output)
{
    public static TheoryData<string> Models => new(["bert-tiny", "gpt2-tiny", "llama-tiny", "qwen3-tiny", "gemma-tiny"]);

    /// <summary>The issue's bound: fp32 gradients against a float64 reference.</summary>
    internal const double Tolerance = 1e-4;

    [Theory]
    [MemberData(nameof(Models))]
    public void EveryParameterGradientMatchesTorchAutograd(string name)
    {
        GradientGolden golden = GradientGolden.Load(name);
        using var model = TrainableTransformer.Load(Fixtures.Folder(name));
        var (pooled, gradients) = GradientCheck.Run(model, golden.Batch, golden.Layer, golden.Pooling, golden.PooledGradient);

        double pooledError = GradientCheck.RelativeError(pooled, golden.Pooled);
        Assert.True(pooledError < 1e-5, $"{name}: pooled vectors {pooledError:E2} from the reference");
        Assert.Equal(golden.Gradients.Keys.Order(StringComparer.Ordinal), gradients.Keys.Order(StringComparer.Ordinal));
        double global = Math.Sqrt(golden.Gradients.Values.Sum(g => Norm(g) * Norm(g)));
        var errors = new List<(string Name, double Error)>();
        foreach (var (tensor, reference) in golden.Gradients)
        {
            if (Norm(reference) <= 1e-12 * global)
            {
                // Zero in exact arithmetic (a key bias: softmax does not move when a row's scores all move by q·b): both sides are
                // rounding, so the engine's must be rounding too, measured against the whole gradient.
                output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name} {tensor}: zero in exact arithmetic; torch {Norm(reference):E1}, engine {Norm(gradients[tensor]):E1} (‖∇‖ {global:G3})"));
                Assert.True(Norm(gradients[tensor]) <= 1e-6 * global, $"{name} {tensor}: ‖∇‖ {Norm(gradients[tensor]):E2} where the exact gradient is 0");
                continue;
            }
            errors.Add((tensor, GradientCheck.RelativeError(gradients[tensor], reference)));
        }
        foreach (var kind in errors.GroupBy(e => GradientCheck.Kind(e.Name)).OrderBy(g => g.Key, StringComparer.Ordinal))
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name} {kind.Key,-52} {kind.Max(e => e.Error):E2} ({kind.Count()} tensors)"));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name}: pooled {pooledError:E2}; largest gradient error {errors.Max(e => e.Error):E2} over {errors.Count} tensors"));
        Assert.All(errors, e => Assert.True(e.Error <= Tolerance, $"{name} {e.Name}: relative L2 error {e.Error:E2} above {Tolerance:E0}"));
    }

    private static double Norm(float[] values) => Math.Sqrt(values.Sum(v => (double)v * v));

    [Theory]
    [InlineData("bert-tiny", FaultKind.LayerNormBackwardDropsMeanTerm, "embeddings.word_embeddings.weight")]
    [InlineData("gpt2-tiny", FaultKind.LayerNormBackwardDropsMeanTerm, "wte.weight")]
    [InlineData("llama-tiny", FaultKind.RmsNormBackwardDropsNormTerm, "embed_tokens.weight")]
    [InlineData("llama-tiny", FaultKind.RotaryBackwardRotatesForward, "layers.0.self_attn.q_proj.weight")]
    public void ABrokenBackwardOpFailsTheCheck(string name, FaultKind fault, string brokenTensor)
    {
        GradientGolden golden = GradientGolden.Load(name);
        using var model = TrainableTransformer.Load(Fixtures.Folder(name), new FaultyBackend(fault));
        var (_, gradients) = GradientCheck.Run(model, golden.Batch, golden.Layer, golden.Pooling, golden.PooledGradient);

        var errors = golden.Gradients.ToDictionary(g => g.Key, g => GradientCheck.RelativeError(gradients[g.Key], g.Value));
        int failing = errors.Count(e => e.Value > Tolerance);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name} with {fault}: {failing} of {errors.Count} tensors above {Tolerance:E0}, {brokenTensor} at {errors[brokenTensor]:E2}"));
        Assert.True(errors[brokenTensor] > 100 * Tolerance, $"{brokenTensor}: {errors[brokenTensor]:E2}");
    }
}

/// <summary>
/// Central finite differences on every F32 fixture. The engine has no float64 path, so each check is directional: for every parameter
/// tensor P and a direction D (a random one, and the analytic gradient's own), the derivative of L(P + hD) at h = 0 from Richardson's
/// extrapolation of two central differences, (4·Δ(h/2) − Δ(h)) / 3 with Δ(h) = (L(h) − L(−h)) / 2h, against ⟨∇P, D⟩.
/// </summary>
/// <remarks>
/// Why the tolerance is what it is: D has the tensor's own RMS per element (<see cref="Scale"/>) and h = 0.01, so an element moves by about 1 % and the
/// extrapolation's truncation error (order h⁴) sits below fp32's rounding. What is left is rounding, which does not shrink with the
/// derivative: L = Σ c·z is computed from fp32 states, each term off by about 1e-6 of its size after a few blocks, so the bound is
/// 2e-3 of |⟨∇P, D⟩| plus <see cref="Noise"/>, that rounding carried through the difference quotients. A dropped term moves a
/// derivative by a relative amount of order 1 (<see cref="ABrokenBackwardOpFailsFiniteDifferences"/>), far outside it.
/// </remarks>
public class FiniteDifferenceTests(ITestOutputHelper output)
{
    public static TheoryData<string, int, PoolingMode> Cases => new()
    {
        { "bert-tiny", 3, PoolingMode.Mean },
        { "bert-tiny-mlm", 1, PoolingMode.Cls },
        { "roberta-tiny", 2, PoolingMode.Last },
        { "gpt2-tiny", 4, PoolingMode.Last },
        { "gpt2-tiny-lmhead", 2, PoolingMode.Mean },
        { "llama-tiny", 4, PoolingMode.Mean },
        { "mistral-tiny", 2, PoolingMode.Last },
        { "qwen2-tiny", 3, PoolingMode.Mean },
        { "qwen3-tiny", 3, PoolingMode.Mean },
        { "gemma-tiny", 3, PoolingMode.Mean },
    };

    private const float Step = 0.01f;

    /// <summary>
    /// The rounding noise of one Richardson estimate: each of L's terms c·z off by up to ~1e-6 of its size after a few fp32 blocks, so
    /// L by 1e-6·Σ|c·z|; a central difference divides that by 2h, and the extrapolation (4Δ(h/2) − Δ(h))/3 weighs it by (4·2 + 1)/3 = 3.
    /// </summary>
    internal static double Noise(float[] pooled, float[] c)
    {
        double magnitude = 0;
        for (int i = 0; i < pooled.Length; i++) magnitude += Math.Abs((double)c[i] * pooled[i]);
        return 3 * 1e-6 * magnitude / (2 * Step);
    }

    /// <summary>A padded batch of three sentences (full, right-padded, left-padded), every real token but the first a target.</summary>
    internal static EncodedBatch Batch(TransformerConfig config, int seed)
    {
        const int T = 8;
        var random = new Random(seed);
        int[] lengths = [8, 5, 6];
        var ids = new int[3 * T];
        var mask = new int[3 * T];
        var targets = new bool[3 * T];
        var types = new int[3 * T];
        for (int s = 0; s < 3; s++)
        {
            int start = s == 2 ? T - lengths[s] : 0;
            for (int i = 0; i < T; i++) ids[s * T + i] = config.PadTokenId;
            for (int i = 0; i < lengths[s]; i++)
            {
                int cell = s * T + start + i;
                ids[cell] = 5 + random.Next(config.VocabSize - 6);
                mask[cell] = 1;
                targets[cell] = i > 0;
                types[cell] = config.TypeVocabSize > 1 && s == 0 && i >= 4 ? 1 : 0;
            }
        }
        return new EncodedBatch(3, T, ids, mask, types, targets);
    }

    internal static (double Numeric, double Analytic) Directional(TrainableTransformer model, EncodedBatch batch, int layer, PoolingMode mode,
        float[] c, string tensor, float[] gradient, float[] direction)
    {
        float[] original = model.DownloadParameters()[tensor];
        double Loss(double h)
        {
            var moved = new float[original.Length];
            for (int i = 0; i < moved.Length; i++) moved[i] = (float)(original[i] + h * direction[i]);
            model.SetParameter(tensor, moved);
            return GradientCheck.Loss(model, batch, layer, mode, c);
        }
        // The step actually taken is what the fp32 values moved by; with |direction| of the tensor's scale that is h to ~1e-7.
        double Difference(double h) => (Loss(h) - Loss(-h)) / (2 * h);
        double numeric = (4 * Difference(Step / 2) - Difference(Step)) / 3;
        model.SetParameter(tensor, original);
        double analytic = 0;
        for (int i = 0; i < gradient.Length; i++) analytic += (double)gradient[i] * direction[i];
        return (numeric, analytic);
    }

    /// <summary>
    /// The size of one element's move: the tensor's RMS, and at least 0.1 for a vector (biases are drawn N(0, 0.02) while the
    /// activations they shift are of order 1, so their own size would make the derivative vanish into rounding).
    /// </summary>
    internal static double Scale(float[] values, bool vector)
    {
        double squares = 0;
        foreach (float v in values) squares += (double)v * v;
        return Math.Max(Math.Sqrt(squares / values.Length), vector ? 0.1 : 1e-2);
    }

    internal static float[] RandomDirection(float[] values, bool vector, Random random)
    {
        double scale = Scale(values, vector);
        var direction = new float[values.Length];
        for (int i = 0; i < direction.Length; i++)
        {
            double u1 = 1 - random.NextDouble(), u2 = random.NextDouble();
            direction[i] = (float)(scale * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        return direction;
    }

    /// <summary>
    /// The gradient's own direction, scaled so that its largest element is the tensor's RMS: a gradient concentrated on a few rows (an
    /// embedding table's used tokens) then moves those rows no further than a random direction moves any element.
    /// </summary>
    internal static float[] GradientDirection(float[] values, bool vector, float[] gradient)
    {
        double largest = 0;
        foreach (float g in gradient) largest = Math.Max(largest, Math.Abs(g));
        double scale = Scale(values, vector) / Math.Max(largest, 1e-300);
        return gradient.Select(g => (float)(g * scale)).ToArray();
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void EveryParameterTensorAgreesWithCentralDifferences(string name, int layer, PoolingMode mode)
    {
        using var model = TrainableTransformer.Load(Fixtures.Folder(name));
        EncodedBatch batch = Batch(model.Config, seed: name.Length);
        var random = new Random(17);
        float[] c = Enumerable.Range(0, 3 * model.Config.HiddenSize).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        var (pooled, gradients) = GradientCheck.Run(model, batch, layer, mode, c);
        IReadOnlyDictionary<string, float[]> parameters = model.DownloadParameters();
        double noise = Noise(pooled, c);
        var worst = new Dictionary<string, double>(StringComparer.Ordinal);
        var atRounding = new SortedSet<string>(StringComparer.Ordinal);
        var failures = new List<string>();
        foreach (string tensor in model.ParameterNames)
        {
            float[] gradient = gradients[tensor];
            bool vector = model.ParameterShape(tensor).Count == 1;
            if (gradient.All(g => g == 0))
            {
                // Nothing reads it (blocks above the pooled layer), or its gradient is zero in exact arithmetic (a key bias without
                // rotary positions, set to zero by the backward): L moves by rounding at most.
                var (numericZero, _) = Directional(model, batch, layer, mode, c, tensor, gradient, RandomDirection(parameters[tensor], vector, random));
                if (Math.Abs(numericZero) > noise) failures.Add($"{tensor}: zero gradient, but L moves ({numericZero:E2}, rounding bound {noise:E2})");
                continue;
            }
            foreach (var (label, direction) in new[] { ("random", RandomDirection(parameters[tensor], vector, random)), ("gradient", GradientDirection(parameters[tensor], vector, gradient)) })
            {
                var (numeric, analytic) = Directional(model, batch, layer, mode, c, tensor, gradient, direction);
                double error = Math.Abs(numeric - analytic), bound = 2e-3 * Math.Abs(analytic) + noise;
                string kind = GradientCheck.Kind(tensor);
                // A derivative at rounding level (a key bias's, zero in exact arithmetic) has no meaningful relative error.
                if (label == "gradient" && Math.Abs(analytic) > 10 * noise)
                    worst[kind] = Math.Max(worst.GetValueOrDefault(kind), error / Math.Abs(analytic));
                else if (label == "gradient") atRounding.Add(kind);
                if (error > bound) failures.Add(string.Create(CultureInfo.InvariantCulture, $"{tensor} ({label} direction): numeric {numeric:E6}, analytic {analytic:E6}, |Δ| {error:E2} > {bound:E2}"));
            }
        }
        foreach (var (kind, error) in worst.OrderBy(w => w.Key, StringComparer.Ordinal))
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name} {kind,-52} {error:E2}"));
        foreach (string kind in atRounding.Except(worst.Keys))
            output.WriteLine($"{name} {kind,-52} derivative at rounding level (zero in exact arithmetic)");
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name}: largest relative error along the gradient {worst.Values.Max():E2}; rounding bound {noise:E2}"));
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Fact]
    public void ABrokenBackwardOpFailsFiniteDifferences()
    {
        using var model = TrainableTransformer.Load(Fixtures.Folder("gpt2-tiny"), new FaultyBackend(FaultKind.LayerNormBackwardDropsMeanTerm));
        EncodedBatch batch = Batch(model.Config, seed: 3);
        var random = new Random(5);
        float[] c = Enumerable.Range(0, 3 * model.Config.HiddenSize).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        var (_, gradients) = GradientCheck.Run(model, batch, 4, PoolingMode.Last, c);
        float[] values = model.DownloadParameters()["wte.weight"];
        var (numeric, analytic) = Directional(model, batch, 4, PoolingMode.Last, c, "wte.weight", gradients["wte.weight"], GradientDirection(values, vector: false, gradients["wte.weight"]));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"wte.weight with the mean term dropped: numeric {numeric:E4}, analytic {analytic:E4}"));
        Assert.True(Math.Abs(numeric - analytic) > 0.05 * Math.Abs(numeric), $"numeric {numeric}, analytic {analytic}");
    }
}

/// <summary>The training forward, the tensor-name map, the refusal of 16-bit weights, clipping and AdamW.</summary>
public class TrainableTransformerTests(ITestOutputHelper output)
{
    public static TheoryData<string> F32Models => new(["bert-tiny", "bert-tiny-mlm", "roberta-tiny", "gpt2-tiny", "gpt2-tiny-lmhead", "llama-tiny", "mistral-tiny", "qwen2-tiny", "qwen3-tiny", "gemma-tiny"]);

    [Theory]
    [MemberData(nameof(F32Models))]
    public void TheTrainingForwardPoolsWhatTheInferenceForwardPools(string name)
    {
        using var inference = TransformerModel.Load(Fixtures.Folder(name));
        using var training = TrainableTransformer.Load(Fixtures.Folder(name));
        EncodedBatch batch = FiniteDifferenceTests.Batch(training.Config, seed: 11);
        foreach (PoolingMode mode in Enum.GetValues<PoolingMode>())
        {
            float[][] expected = inference.ForwardPooled(batch, mode);
            for (int layer = 0; layer < training.Config.HiddenStateEntries; layer++)
            {
                using TrainingPass pass = training.Forward(batch, layer, mode);
                double error = GradientCheck.RelativeError(pass.DownloadPooled(), expected[layer]);
                Assert.True(error < 1e-6, $"{name} layer {layer} {mode}: {error:E2}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(F32Models))]
    public void ParametersComeBackUnderTheirCheckpointNamesAndLayouts(string name)
    {
        using var model = TrainableTransformer.Load(Fixtures.Folder(name));
        using var store = WeightStore.OpenDirectory(Fixtures.Folder(name));
        IReadOnlyDictionary<string, float[]> parameters = model.DownloadParameters();
        Assert.Equal(model.ParameterNames.Count, parameters.Count);
        foreach (string tensor in model.ParameterNames)
        {
            Assert.Equal(store.ReadFloat32(tensor), parameters[tensor]);
            Assert.Equal(store.TryGetInfo(tensor)!.Shape, model.ParameterShape(tensor));
        }
        // Round trip through SetParameter: one fused part changed, its neighbours untouched.
        string first = model.ParameterNames.First(n => n.Contains("proj", StringComparison.Ordinal) || n.Contains("query", StringComparison.Ordinal) || n.Contains("c_attn", StringComparison.Ordinal));
        float[] changed = parameters[first].Select(v => v + 1f).ToArray();
        model.SetParameter(first, changed);
        IReadOnlyDictionary<string, float[]> after = model.DownloadParameters();
        Assert.Equal(changed, after[first]);
        Assert.All(model.ParameterNames.Where(n => n != first), n => Assert.Equal(parameters[n], after[n]));
    }

    [Fact]
    public void BlocksAboveThePooledLayerGetZeroGradients()
    {
        using var model = TrainableTransformer.Load(Fixtures.Folder("gpt2-tiny"));
        EncodedBatch batch = FiniteDifferenceTests.Batch(model.Config, seed: 2);
        float[] c = Enumerable.Repeat(1f, 3 * model.Config.HiddenSize).ToArray();
        var (_, gradients) = GradientCheck.Run(model, batch, 1, PoolingMode.Mean, c);
        foreach (var (tensor, gradient) in gradients)
        {
            bool read = tensor.StartsWith("h.0.", StringComparison.Ordinal) || tensor is "wte.weight" or "wpe.weight";
            Assert.True(read == gradient.Any(g => g != 0), $"{tensor}: {(read ? "zero" : "nonzero")} gradient");
        }
    }

    [Fact]
    public void SixteenBitWeightsAreRefusedUnlessWidened()
    {
        var refused = Assert.Throws<NotSupportedException>(() => TrainableTransformer.Load(Fixtures.Folder("llama-tiny-bf16")));
        Assert.Contains("BF16", refused.Message, StringComparison.Ordinal);
        Assert.Contains("WidenSixteenBitWeights", refused.Message, StringComparison.Ordinal);
        Assert.Throws<NotSupportedException>(() => TrainableTransformer.Load(Fixtures.Folder("qwen2-tiny-f16"))).Message.Contains("F16", StringComparison.Ordinal);
        using var widened = TrainableTransformer.Load(Fixtures.Folder("llama-tiny-bf16"), options: new ModelLoadOptions { WidenSixteenBitWeights = true });
        using TrainingPass pass = widened.Forward(FiniteDifferenceTests.Batch(widened.Config, 1), widened.Config.HiddenStateEntries - 1, PoolingMode.Last);
        Assert.All(pass.DownloadPooled(), v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void ClippingScalesToTheLargestNormAndAdamWTakesItsKnownFirstStep()
    {
        GradientGolden golden = GradientGolden.Load("bert-tiny");
        using var model = TrainableTransformer.Load(Fixtures.Folder("bert-tiny"));
        var (_, gradients) = GradientCheck.Run(model, golden.Batch, golden.Layer, golden.Pooling, golden.PooledGradient);
        double squares = gradients.Values.Sum(g => g.Sum(v => (double)v * v));
        double norm = Math.Sqrt(squares);
        Assert.Equal(norm, model.GradientNorm(), norm * 1e-6);

        // Above the limit: every gradient scaled by limit / (norm + 1e-6); below it, untouched.
        double limit = norm / 4;
        Assert.Equal(norm, model.ClipGradients(limit), norm * 1e-6);
        IReadOnlyDictionary<string, float[]> clipped = model.DownloadGradients();
        double factor = limit / (norm + 1e-6);
        foreach (var (tensor, gradient) in gradients)
            for (int i = 0; i < gradient.Length; i++) Assert.Equal(gradient[i] * factor, clipped[tensor][i], Math.Abs(gradient[i] * factor) * 1e-6 + 1e-12);
        Assert.Equal(limit, model.GradientNorm(), limit * 1e-6);
        Assert.Equal(limit, model.ClipGradients(limit * 2), limit * 1e-6);
        Assert.Equal(clipped["encoder.layer.0.attention.self.query.weight"], model.DownloadGradients()["encoder.layer.0.attention.self.query.weight"]);

        // AdamW's first step from zero moments moves every parameter by lr · g / (|g| + ε) after the decoupled decay, which only the
        // matrices and tables take: m̂ = g and v̂ = g² once the bias corrections divide out.
        IReadOnlyDictionary<string, float[]> before = model.DownloadParameters();
        var settings = new AdamWSettings(LearningRate: 1e-3f, WeightDecay: 0.1f);
        model.Step(settings);
        Assert.Equal(1, model.StepCount);
        IReadOnlyDictionary<string, float[]> after = model.DownloadParameters();
        foreach (string tensor in model.ParameterNames)
        {
            bool decayed = model.ParameterShape(tensor).Count == 2;
            float[] p = before[tensor], g = clipped[tensor], q = after[tensor];
            for (int i = 0; i < p.Length; i++)
            {
                double expected = p[i] * (decayed ? 1 - 1e-3 * 0.1 : 1) - 1e-3 * g[i] / (Math.Abs(g[i]) + 1e-8);
                Assert.True(Math.Abs(q[i] - expected) <= 1e-6 * Math.Abs(p[i]) + 2e-9, $"{tensor}[{i}]: {q[i]} after AdamW, {expected} expected (p {p[i]}, g {g[i]})");
            }
        }
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"bert-tiny: ‖∇‖ {norm:G6}, clipped to {limit:G6}; AdamW step 1 as lr·sign(g) on {model.ParameterNames.Count} tensors"));
    }

    [Fact]
    public void AdamWsSecondStepFollowsTheMomentsOfBothGradients()
    {
        GradientGolden golden = GradientGolden.Load("gpt2-tiny");
        using var model = TrainableTransformer.Load(Fixtures.Folder("gpt2-tiny"));
        var settings = new AdamWSettings(LearningRate: 2e-3f, WeightDecay: 0.05f, DecayNormsAndBiases: true);
        var m = new Dictionary<string, double[]>();
        var v = new Dictionary<string, double[]>();
        IReadOnlyDictionary<string, float[]> p = model.DownloadParameters();
        var expected = p.ToDictionary(e => e.Key, e => e.Value.Select(x => (double)x).ToArray());
        for (int step = 1; step <= 2; step++)
        {
            var (_, gradients) = GradientCheck.Run(model, golden.Batch, golden.Layer, golden.Pooling, golden.PooledGradient);
            model.Step(settings);
            p = model.DownloadParameters();
            foreach (string tensor in model.ParameterNames)
            {
                float[] g = gradients[tensor];
                double[] mt = m.TryGetValue(tensor, out var m0) ? m0 : m[tensor] = new double[g.Length];
                double[] vt = v.TryGetValue(tensor, out var v0) ? v0 : v[tensor] = new double[g.Length];
                for (int i = 0; i < g.Length; i++)
                {
                    mt[i] = 0.9 * mt[i] + 0.1 * g[i];
                    vt[i] = 0.999 * vt[i] + 0.001 * (double)g[i] * g[i];
                    double mHat = mt[i] / (1 - Math.Pow(0.9, step)), vHat = vt[i] / (1 - Math.Pow(0.999, step));
                    double next = expected[tensor][i] * (1 - 2e-3 * 0.05) - 2e-3 * mHat / (Math.Sqrt(vHat) + 1e-8);
                    Assert.True(Math.Abs(p[tensor][i] - next) <= 1e-5 * Math.Abs(next) + 1e-8, $"step {step} {tensor}[{i}]: {p[tensor][i]}, expected {next}");
                    // The next step starts from the engine's own value, so that fp32 rounding does not accumulate across steps.
                    expected[tensor][i] = p[tensor][i];
                }
            }
        }
        Assert.Equal(2, model.StepCount);
    }
}
