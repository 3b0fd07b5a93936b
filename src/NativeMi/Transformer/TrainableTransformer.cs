using NativeMi.Compute;
using NativeMi.IO;
using NativeMi.Models;
using NativeMi.Pooling;
using NativeMi.Text;

namespace NativeMi.Transformer;

/// <summary>Hyper-parameters of <see cref="TrainableTransformer.Step"/>.</summary>
/// <param name="LearningRate">lr.</param>
/// <param name="WeightDecay">Decoupled weight decay λ (p -= lr·λ·p), applied to the matrices and embedding tables.</param>
/// <param name="Beta1">First-moment decay.</param>
/// <param name="Beta2">Second-moment decay.</param>
/// <param name="Epsilon">Denominator guard.</param>
/// <param name="DecayNormsAndBiases">Decay the biases and norm weights too (off, as Hugging Face's fine-tuning recipes leave them).</param>
internal sealed record AdamWSettings(float LearningRate = 1e-5f, float WeightDecay = 0.01f, float Beta1 = 0.9f, float Beta2 = 0.999f, float Epsilon = 1e-8f,
    bool DecayNormsAndBiases = false);

/// <summary>
/// A model loaded for fine-tuning: every weight a plain fp32 buffer on the backend (16-bit checkpoints are refused unless widened),
/// a training forward pass that keeps what the backward pass needs (<see cref="Forward"/>), the backward pass from the gradient of one
/// layer's pooled sentence vectors to the gradient of every parameter (<see cref="Backward"/>), the global gradient norm and its
/// clipping, and AdamW (<see cref="Step"/>). Gradients and parameters are exchanged under their checkpoint names and shapes.
/// </summary>
/// <remarks>
/// The forward and backward are written once against <see cref="IComputeBackend"/>, as <see cref="TransformerModel"/>'s forward is,
/// and compute what it computes (a test holds the pooled vectors of both equal). Every parameter is read once per forward pass, so
/// <see cref="Backward"/> overwrites the gradients; blocks above the pooled layer get zero gradients. On CUDA the embedding tables'
/// gradients come from ScatterAddRows, whose atomic adds let their last bits vary from run to run where a token repeats; every other
/// gradient is summed in a fixed order.
/// </remarks>
internal sealed class TrainableTransformer : IDisposable
{
    private readonly TransformerWeights _weights, _gradients;
    private TransformerWeights? _firstMoments, _secondMoments;
    private readonly (DeviceBuffer<float> Value, DeviceBuffer<float> Gradient, bool IsMatrix)[] _parameters;
    private readonly Dictionary<string, TensorSlot> _slots;
    private DeviceBuffer<float>? _squareSums;
    private bool _disposed;

    private TrainableTransformer(string directory, TransformerConfig config, TextTokenizer tokenizer, TransformerWeights weights, IComputeBackend backend)
    {
        Directory = directory;
        Config = config;
        Tokenizer = tokenizer;
        Backend = backend;
        _weights = weights;
        _gradients = weights.AllocateLike(backend);
        _parameters = weights.Parameters().Zip(_gradients.Parameters(), (v, g) => (v.Buffer, g.Buffer, v.IsMatrix)).ToArray();
        _slots = weights.Tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
    }

    /// <summary>The folder the model was read from.</summary>
    public string Directory { get; }
    /// <summary>Architecture.</summary>
    public TransformerConfig Config { get; }
    /// <summary>Tokenizer of the folder.</summary>
    public TextTokenizer Tokenizer { get; }
    /// <summary>The backend the weights, gradients and activations live on.</summary>
    public IComputeBackend Backend { get; }
    /// <summary>AdamW steps taken.</summary>
    public int StepCount { get; private set; }

    /// <summary>The checkpoint names of every parameter tensor the forward pass reads, in the order they were loaded.</summary>
    public IReadOnlyList<string> ParameterNames => _weights.Tensors.Select(t => t.Name).ToArray();

    /// <summary>The checkpoint shape of parameter <paramref name="name"/>.</summary>
    /// <exception cref="KeyNotFoundException">The forward pass reads no tensor of that name.</exception>
    public IReadOnlyList<long> ParameterShape(string name) => Slot(name).Shape;

    /// <summary>Reads config.json, the tokenizer and the weights of <paramref name="directory"/> as trainable fp32 buffers.</summary>
    /// <param name="directory">A Hugging Face model folder.</param>
    /// <param name="backend">Where to train; the CPU backend when null.</param>
    /// <param name="options">Load choices: <see cref="ModelLoadOptions.WidenSixteenBitWeights"/> lets a 16-bit checkpoint be trained as an fp32 copy.</param>
    /// <exception cref="NotSupportedException">A weight is stored F16 or BF16 and is not to be widened.</exception>
    /// <exception cref="ModelFormatException">A file is missing, malformed or contradicts the config.</exception>
    public static TrainableTransformer Load(string directory, IComputeBackend? backend = null, ModelLoadOptions? options = null)
    {
        options ??= new ModelLoadOptions();
        string full = Path.GetFullPath(directory);
        if (!System.IO.Directory.Exists(full)) throw new ModelFormatException(full, "model folder not found");
        backend ??= new Compute.Cpu.CpuBackend();
        TransformerConfig config = TransformerConfig.Load(Path.Combine(full, "config.json"));
        TextTokenizer tokenizer = TextTokenizer.Load(full, config);
        WeightStore store;
        try { store = WeightStore.OpenDirectory(full); }
        catch (FileNotFoundException e) { throw new ModelFormatException(full, e.Message, e); }
        using (store)
        {
            TransformerWeights weights = TransformerWeights.Load(store, config, backend, options.AllowNonFiniteWeights, options.WidenSixteenBitWeights, trainable: true);
            return new TrainableTransformer(full, config, tokenizer, weights, backend);
        }
    }

    /// <summary>Tokenizes and pads <paramref name="sentences"/> into one batch, truncating each to the model's context (as <see cref="TransformerModel.Encode"/>).</summary>
    public EncodedBatch Encode(IReadOnlyList<string> sentences, int? maxLength = null, bool padLeft = false)
    {
        ArgumentNullException.ThrowIfNull(sentences);
        int limit = Math.Min(maxLength ?? Config.MaxSequenceLength, Config.MaxSequenceLength);
        return EncodedBatch.Pad(sentences.Select(s => Tokenizer.Encode(s, limit)).ToArray(), Tokenizer.PadId, padLeft);
    }

    private TensorSlot Slot(string name) =>
        _slots.TryGetValue(name, out TensorSlot? slot) ? slot : throw new KeyNotFoundException($"the forward pass reads no tensor '{name}'");

    /// <summary>
    /// The training forward pass up to hidden-state entry <paramref name="layer"/> (0 the embeddings, l the output of block l, and
    /// <see cref="TransformerConfig.NumLayers"/> + 1 the final norm's output where there is one), pooled with <paramref name="mode"/>.
    /// The pass keeps the activations the backward pass reads; dispose it when done.
    /// </summary>
    /// <exception cref="ArgumentException">A sentence has nothing to pool, the batch is longer than the model's context, or an id is outside the vocabulary.</exception>
    public TrainingPass Forward(EncodedBatch batch, int layer, PoolingMode mode)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(batch);
        if ((uint)layer >= (uint)Config.HiddenStateEntries)
            throw new ArgumentOutOfRangeException(nameof(layer), $"layer {layer} is outside the model's {Config.HiddenStateEntries} hidden-state entries");
        if (batch.SequenceLength > Config.MaxSequenceLength)
            throw new ArgumentException($"sequence length {batch.SequenceLength} exceeds the model's {Config.MaxSequenceLength} positions", nameof(batch));
        SentencePooling.CheckPoolable(batch, mode);
        TransformerForward.CheckIds(Config, batch);
        var pass = new TrainingPass(this, batch, layer, mode, TransformerForward.PositionIds(Config, batch), _weights.TypeEmbeddings is not null);
        try
        {
            new Steps(this, pass).Forward();
        }
        catch
        {
            pass.Dispose();
            throw;
        }
        return pass;
    }

    /// <summary>
    /// The backward pass of <paramref name="pass"/>: from <paramref name="pooledGradient"/> = ∂L/∂(pooled vectors) [batch, d] to
    /// ∂L/∂(every parameter), which replaces the previous gradients (<see cref="DownloadGradients"/>, <see cref="ClipGradients"/>,
    /// <see cref="Step"/> read them).
    /// </summary>
    public void Backward(TrainingPass pass, DeviceBuffer<float> pooledGradient)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(pass);
        ArgumentNullException.ThrowIfNull(pooledGradient);
        if (!ReferenceEquals(pass.Owner, this)) throw new ArgumentException("the pass belongs to another model", nameof(pass));
        pass.ThrowIfDisposed();
        long needed = (long)pass.Batch.BatchSize * Config.HiddenSize;
        if (pooledGradient.Length < needed) throw new ArgumentException($"the pooled gradient holds {pooledGradient.Length} elements; {needed} needed", nameof(pooledGradient));
        foreach (var p in _parameters) Backend.Zero(p.Gradient, p.Gradient.Length);
        new Steps(this, pass).Backward(pooledGradient);
    }

    /// <summary>The gradient of every parameter under its checkpoint name, in the checkpoint's layout.</summary>
    public IReadOnlyDictionary<string, float[]> DownloadGradients() => Named(_gradients);

    /// <summary>Every parameter under its checkpoint name, in the checkpoint's layout.</summary>
    public IReadOnlyDictionary<string, float[]> DownloadParameters() => Named(_weights);

    private Dictionary<string, float[]> Named(TransformerWeights set)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var hosts = new Dictionary<DeviceBuffer<float>, float[]>(ReferenceEqualityComparer.Instance);
        var named = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (TensorSlot slot in set.Tensors)
        {
            DeviceBuffer<float> buffer = slot.Select(set) ?? throw new InvalidOperationException($"no buffer holds '{slot.Name}'");
            if (!hosts.TryGetValue(buffer, out float[]? host))
            {
                host = new float[buffer.Length];
                Backend.Download(buffer, host);
                hosts[buffer] = host;
            }
            named[slot.Name] = slot.Extract(host);
        }
        return named;
    }

    /// <summary>AdamW's first and second moments of every parameter under its checkpoint name (empty before the first step).</summary>
    public (IReadOnlyDictionary<string, float[]> First, IReadOnlyDictionary<string, float[]> Second) DownloadMoments() =>
        _firstMoments is null || _secondMoments is null
            ? (new Dictionary<string, float[]>(), new Dictionary<string, float[]>())
            : (Named(_firstMoments), Named(_secondMoments));

    /// <summary>
    /// Puts a checkpoint back: every parameter, AdamW's moments (none before the first step) and the step count, so training goes on
    /// as if it had not stopped.
    /// </summary>
    public void RestoreState(IReadOnlyDictionary<string, float[]> parameters, IReadOnlyDictionary<string, float[]> first,
        IReadOnlyDictionary<string, float[]> second, int stepCount)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(first);
        ArgumentNullException.ThrowIfNull(second);
        Fill(_weights, parameters, "parameter");
        if (stepCount > 0)
        {
            _firstMoments ??= _weights.AllocateLike(Backend);
            _secondMoments ??= _weights.AllocateLike(Backend);
            Fill(_firstMoments, first, "first moment");
            Fill(_secondMoments, second, "second moment");
        }
        StepCount = stepCount;
    }

    // One download, every slot inserted, one upload per buffer: fused buffers (q/k/v, gate/up) hold several tensors.
    private void Fill(TransformerWeights set, IReadOnlyDictionary<string, float[]> values, string what)
    {
        foreach (var group in set.Tensors.GroupBy(t => t.Select(set)!, ReferenceEqualityComparer.Instance))
        {
            var buffer = (DeviceBuffer<float>)group.Key!;
            var host = new float[buffer.Length];
            Backend.Download(buffer, host);
            foreach (TensorSlot slot in group)
            {
                if (!values.TryGetValue(slot.Name, out float[]? value)) throw new ArgumentException($"the checkpoint has no {what} '{slot.Name}'", nameof(values));
                slot.Insert(value, host);
            }
            Backend.CopyFromHost<float>(host, buffer);
        }
    }

    /// <summary>Overwrites parameter <paramref name="name"/> with <paramref name="values"/> (the checkpoint's layout).</summary>
    /// <exception cref="KeyNotFoundException">The forward pass reads no tensor of that name.</exception>
    public void SetParameter(string name, ReadOnlySpan<float> values)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        TensorSlot slot = Slot(name);
        DeviceBuffer<float> buffer = slot.Select(_weights)!;
        var host = new float[buffer.Length];
        Backend.Download(buffer, host);
        slot.Insert(values, host);
        Backend.CopyFromHost<float>(host, buffer);
    }

    /// <summary>‖∇‖₂ over every parameter's gradient (each tensor's sum of squares in double on the backend; one download).</summary>
    public double GradientNorm()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _squareSums ??= Backend.Allocate<float>(_parameters.Length);
        for (int i = 0; i < _parameters.Length; i++) Backend.SumOfSquares(_parameters[i].Gradient, _parameters[i].Gradient.Length, _squareSums, i);
        var sums = new float[_parameters.Length];
        Backend.Download(_squareSums, sums);
        double total = 0;
        foreach (float s in sums) total += s;
        return Math.Sqrt(total);
    }

    /// <summary>
    /// Scales every gradient by <paramref name="maxNorm"/> / (‖∇‖ + 1e-6) when ‖∇‖ exceeds <paramref name="maxNorm"/> (PyTorch's
    /// clip_grad_norm_); returns ‖∇‖ before clipping.
    /// </summary>
    public double ClipGradients(double maxNorm)
    {
        if (!(maxNorm > 0)) throw new ArgumentOutOfRangeException(nameof(maxNorm), "the largest gradient norm must be positive");
        double norm = GradientNorm();
        if (norm > maxNorm)
        {
            float factor = (float)(maxNorm / (norm + 1e-6));
            foreach (var p in _parameters) Backend.ScaleInPlace(p.Gradient, factor, p.Gradient.Length);
        }
        return norm;
    }

    /// <summary>
    /// Keeps the token, position and token-type embedding tables as they are in <see cref="Step"/> (fine-tuning's
    /// --freeze-embeddings); their gradients are still computed.
    /// </summary>
    public bool FreezeEmbeddings { get; set; }

    /// <summary>One AdamW step over every parameter with the current gradients (the moments are allocated at the first step).</summary>
    public void Step(AdamWSettings settings)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(settings);
        _firstMoments ??= _weights.AllocateLike(Backend);
        _secondMoments ??= _weights.AllocateLike(Backend);
        StepCount++;
        var moments = _firstMoments.Parameters().Zip(_secondMoments.Parameters(), (m, v) => (M: m.Buffer, V: v.Buffer)).ToArray();
        for (int i = 0; i < _parameters.Length; i++)
        {
            var (value, gradient, isMatrix) = _parameters[i];
            if (FreezeEmbeddings && (ReferenceEquals(value, _weights.WordEmbeddings) || ReferenceEquals(value, _weights.PositionEmbeddings) ||
                                     ReferenceEquals(value, _weights.TypeEmbeddings)))
                continue;
            float decay = isMatrix || settings.DecayNormsAndBiases ? settings.WeightDecay : 0f;
            Backend.AdamW(value, gradient, moments[i].M, moments[i].V, value.Length,
                new Compute.AdamWStep(settings.LearningRate, settings.Beta1, settings.Beta2, settings.Epsilon, decay, StepCount));
        }
    }

    /// <summary>Releases the weights, gradients, moments and scratch.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _weights.Dispose();
        _gradients.Dispose();
        _firstMoments?.Dispose();
        _secondMoments?.Dispose();
        _squareSums?.Dispose();
    }

    /// <summary>What one block's forward keeps for its backward.</summary>
    internal sealed class BlockActivations
    {
        /// <summary>Pre-LN: norm1's output, the QKV projection's input (post-LN: the block input itself, not kept twice).</summary>
        public DeviceBuffer<float>? Normed1;
        /// <summary>The QKV projection's output before the q/k norms (only when the layout has them).</summary>
        public DeviceBuffer<float>? QkvBeforeNorm;
        /// <summary>Attention's input: queries and keys normed and rotated, expanded to every query head when grouped.</summary>
        public required DeviceBuffer<float> AttentionInput;
        /// <summary>Attention's output, the output projection's input.</summary>
        public required DeviceBuffer<float> Context;
        /// <summary>Post-LN: the output projection (norm1 reads it plus the block input).</summary>
        public DeviceBuffer<float>? AttentionOutput;
        /// <summary>Pre-LN: the residual stream after attention; post-LN: norm1's output. Either way the feed-forward branch's residual.</summary>
        public required DeviceBuffer<float> Middle;
        /// <summary>Pre-LN: norm2's output, the feed-forward input (post-LN: <see cref="Middle"/>).</summary>
        public DeviceBuffer<float>? Normed2;
        /// <summary>The up projection before its activation ([rows, ff]; gate and up side by side, [rows, 2·ff], when gated).</summary>
        public required DeviceBuffer<float> FeedForwardPre;
        /// <summary>The activation, the down projection's input.</summary>
        public required DeviceBuffer<float> FeedForwardActivation;
        /// <summary>Post-LN: the down projection (norm2 reads it plus <see cref="Middle"/>).</summary>
        public DeviceBuffer<float>? FeedForwardOutput;
    }

    /// <summary>The forward and backward of one pass, written once against the backend.</summary>
    private sealed class Steps(TrainableTransformer model, TrainingPass pass)
    {
        private readonly IComputeBackend _b = model.Backend;
        private readonly TransformerConfig _config = model.Config;
        private readonly TransformerWeights _w = model._weights, _g = model._gradients;
        private BlockLayout Layout => _config.Layout;
        private AttentionSpec Attention => Layout.Attention;
        private int Rows => pass.Rows;
        private int Width => _config.HiddenSize;
        private int Inner => _config.IntermediateSize;
        private bool Gated => Layout.FeedForward.Kind != FeedForwardKind.Gelu;
        private bool Grouped => Attention.KeyValueHeads != Attention.Heads;
        private int QkvWidth => Attention.QueryWidth + 2 * Attention.KeyValueWidth;
        private int FeedForwardInWidth => Gated ? 2 * Inner : Inner;
        private Activation GeluActivation => Layout.FeedForward.Gelu == GeluKind.Exact ? Activation.GeluExact : Activation.GeluTanh;
        private GateActivation GateKind => Layout.FeedForward.Kind == FeedForwardKind.SwiGlu ? GateActivation.Silu
            : Layout.FeedForward.Gelu == GeluKind.Exact ? GateActivation.GeluExact : GateActivation.GeluTanh;

        private DeviceBuffer<float> Keep(long length) => pass.Keep(_b.Allocate<float>(length));

        // A device copy from ops the backend has (0 + x is x exactly); the training forward needs one only for Qwen3's q/k norms,
        // which normalise in place what their backward must still read.
        private void Copy(DeviceBuffer<float> source, DeviceBuffer<float> destination, long count)
        {
            _b.Zero(destination, count);
            _b.AddInPlace(destination, source, count);
        }

        public void Forward()
        {
            int d = Width;
            DeviceBuffer<float> h0 = Keep((long)Rows * d);
            if (Layout.Positions == PositionEncoding.Learned)
            {
                if (Layout.EmbeddingScale != 1) throw new NotSupportedException($"{_config.ModelType}: a learned position table with scaled token embeddings has no backend op");
                if (Layout.EmbeddingNorm)
                {
                    pass.EmbeddingSum = Keep((long)Rows * d);
                    _b.EmbeddingGather(pass.Ids, pass.Positions, pass.Types, _w.WordEmbeddings, _w.PositionEmbeddings!, _w.TypeEmbeddings, pass.EmbeddingSum, Rows, d);
                    Norm(pass.EmbeddingSum, null, _w.EmbeddingNormGamma!, _w.EmbeddingNormBeta, h0);
                }
                else _b.EmbeddingGather(pass.Ids, pass.Positions, pass.Types, _w.WordEmbeddings, _w.PositionEmbeddings!, _w.TypeEmbeddings, h0, Rows, d);
            }
            else
            {
                if (Layout.EmbeddingNorm) throw new NotSupportedException($"{_config.ModelType}: an embedding norm without a learned position table is not implemented");
                _b.GatherRows(_w.WordEmbeddings, pass.Ids, h0, Rows, d);
                if (Layout.EmbeddingScale != 1) _b.ScaleInPlace(h0, Layout.EmbeddingScale, (long)Rows * d);
            }
            pass.Hidden.Add(h0);
            int blocks = Math.Min(pass.Layer, _config.NumLayers);
            for (int l = 0; l < blocks; l++)
            {
                DeviceBuffer<float> output = Keep((long)Rows * d);
                pass.Blocks.Add(BlockForward(_w.Blocks[l], pass.Hidden[l], output));
                pass.Hidden.Add(output);
            }
            DeviceBuffer<float> state = pass.Hidden[^1];
            if (pass.Layer == _config.NumLayers + 1)
            {
                pass.Final = Keep((long)Rows * d);
                Norm(state, null, _w.FinalNormGamma!, _w.FinalNormBeta, pass.Final);
                state = pass.Final;
            }
            _b.PoolSentences(state, pass.Mask, pass.Targets, pass.Pooled, pass.Batch.BatchSize, pass.Batch.SequenceLength, d, pass.Mode);
        }

        private void Norm(DeviceBuffer<float> input, DeviceBuffer<float>? residual, DeviceBuffer<float> gamma, DeviceBuffer<float>? beta, DeviceBuffer<float> output)
        {
            if (Layout.Norm == NormKind.LayerNorm)
            {
                _b.LayerNorm(input, residual, gamma, beta ?? throw new InvalidOperationException("a LayerNorm needs its bias"), output, Rows, Width, Layout.NormEpsilon);
                return;
            }
            if (residual is not null) throw new NotSupportedException($"{_config.ModelType}: RMSNorm after a residual (post-norm) is not implemented");
            _b.RmsNorm(input, gamma, output, Rows, Width, Layout.NormEpsilon, addOneToGamma: Layout.Norm == NormKind.RmsNormPlusOne);
        }

        private BlockActivations BlockForward(BlockWeights w, DeviceBuffer<float> input, DeviceBuffer<float> output)
        {
            long cells = (long)Rows * Width;
            if (Layout.Placement == NormPlacement.Pre)
            {
                // h_mid = h + attn(norm1(h)); out = h_mid + ffn(norm2(h_mid)), each sum added in the inference forward's order.
                DeviceBuffer<float> normed1 = Keep(cells);
                Norm(input, null, w.Norm1Gamma, w.Norm1Beta, normed1);
                var (qkvBeforeNorm, attentionInput, context) = AttentionForward(normed1, w);
                DeviceBuffer<float> middle = Keep(cells);
                _b.Gemm(context, w.AttentionOutWeight, w.AttentionOutBias, middle, Rows, Attention.QueryWidth, Width, Activation.None);
                _b.AddInPlace(middle, input, cells);
                DeviceBuffer<float> normed2 = Keep(cells);
                Norm(middle, null, w.Norm2Gamma, w.Norm2Beta, normed2);
                var (pre, activation) = FeedForwardForward(normed2, w);
                _b.Gemm(activation, w.FeedForwardOutWeight, w.FeedForwardOutBias, output, Rows, Inner, Width, Activation.None);
                _b.AddInPlace(output, middle, cells);
                return new BlockActivations
                {
                    Normed1 = normed1, QkvBeforeNorm = qkvBeforeNorm, AttentionInput = attentionInput, Context = context, Middle = middle, Normed2 = normed2,
                    FeedForwardPre = pre, FeedForwardActivation = activation,
                };
            }
            else
            {
                // h1 = norm1(attn(h) + h); out = norm2(ffn(h1) + h1).
                var (qkvBeforeNorm, attentionInput, context) = AttentionForward(input, w);
                DeviceBuffer<float> attentionOutput = Keep(cells);
                _b.Gemm(context, w.AttentionOutWeight, w.AttentionOutBias, attentionOutput, Rows, Attention.QueryWidth, Width, Activation.None);
                DeviceBuffer<float> middle = Keep(cells);
                Norm(attentionOutput, input, w.Norm1Gamma, w.Norm1Beta, middle);
                var (pre, activation) = FeedForwardForward(middle, w);
                DeviceBuffer<float> feedForwardOutput = Keep(cells);
                _b.Gemm(activation, w.FeedForwardOutWeight, w.FeedForwardOutBias, feedForwardOutput, Rows, Inner, Width, Activation.None);
                Norm(feedForwardOutput, middle, w.Norm2Gamma, w.Norm2Beta, output);
                return new BlockActivations
                {
                    QkvBeforeNorm = qkvBeforeNorm, AttentionInput = attentionInput, Context = context, AttentionOutput = attentionOutput, Middle = middle,
                    FeedForwardPre = pre, FeedForwardActivation = activation, FeedForwardOutput = feedForwardOutput,
                };
            }
        }

        private (DeviceBuffer<float>? QkvBeforeNorm, DeviceBuffer<float> AttentionInput, DeviceBuffer<float> Context) AttentionForward(DeviceBuffer<float> input, BlockWeights w)
        {
            AttentionSpec a = Attention;
            long compactCells = (long)Rows * QkvWidth;
            DeviceBuffer<float> qkv = Keep(compactCells);
            DeviceBuffer<float>? beforeNorm = null;
            _b.Gemm(input, w.QkvWeight, w.QkvBias, qkv, Rows, Width, QkvWidth, Activation.None);
            if (a.QkNorm)
            {
                beforeNorm = qkv;
                qkv = Keep(compactCells);
                Copy(beforeNorm, qkv, compactCells);
                _b.HeadRmsNorm(qkv, w.QueryNorm!, w.KeyNorm!, Rows, a.Heads, a.KeyValueHeads, a.HeadDim, Layout.NormEpsilon);
            }
            if (Layout.Positions == PositionEncoding.Rotary)
                _b.Rotary(qkv, pass.Positions, _w.InverseFrequencies!, Rows, a.Heads, a.KeyValueHeads, a.HeadDim);
            DeviceBuffer<float> attentionInput = qkv;
            if (Grouped)
            {
                attentionInput = Keep((long)Rows * 3 * a.QueryWidth);
                _b.ExpandKeyValueHeads(qkv, attentionInput, Rows, a.Heads, a.KeyValueHeads, a.HeadDim);
            }
            DeviceBuffer<float> context = Keep((long)Rows * a.QueryWidth);
            _b.Attention(attentionInput, pass.Mask, context, pass.Batch.BatchSize, pass.Batch.SequenceLength, a.Heads, a.HeadDim, a.Causal);
            return (beforeNorm, attentionInput, context);
        }

        private (DeviceBuffer<float> Pre, DeviceBuffer<float> Activation) FeedForwardForward(DeviceBuffer<float> input, BlockWeights w)
        {
            DeviceBuffer<float> pre = Keep((long)Rows * FeedForwardInWidth), activation = Keep((long)Rows * Inner);
            _b.Gemm(input, w.FeedForwardInWeight, w.FeedForwardInBias, pre, Rows, Width, FeedForwardInWidth, Activation.None);
            if (Gated) _b.GatedActivation(pre, activation, Rows, Inner, GateKind);
            else _b.ApplyActivation(pre, activation, (long)Rows * Inner, GeluActivation);
            return (pre, activation);
        }

        /// <summary>Scratch of one backward pass, shared by every block.</summary>
        private sealed class Scratch(IComputeBackend b, int rows, int width, int query, int attention, int qkv, int inner, int innerIn, bool grouped) : IDisposable
        {
            public readonly DeviceBuffer<float> Residual = b.Allocate<float>((long)rows * width);
            public readonly DeviceBuffer<float> Input = b.Allocate<float>((long)rows * width);
            public readonly DeviceBuffer<float> Context = b.Allocate<float>((long)rows * query);
            public readonly DeviceBuffer<float> AttentionInput = b.Allocate<float>((long)rows * attention);
            public readonly DeviceBuffer<float>? Qkv = grouped ? b.Allocate<float>((long)rows * qkv) : null;
            public readonly DeviceBuffer<float> Activation = b.Allocate<float>((long)rows * inner);
            public readonly DeviceBuffer<float> Pre = b.Allocate<float>((long)rows * innerIn);

            public void Dispose()
            {
                Residual.Dispose();
                Input.Dispose();
                Context.Dispose();
                AttentionInput.Dispose();
                Qkv?.Dispose();
                Activation.Dispose();
                Pre.Dispose();
            }
        }

        public void Backward(DeviceBuffer<float> pooledGradient)
        {
            int batch = pass.Batch.BatchSize, seq = pass.Batch.SequenceLength, d = Width;
            using DeviceBuffer<float> g = _b.Allocate<float>((long)Rows * d);
            using var s = new Scratch(_b, Rows, d, Attention.QueryWidth, Grouped ? 3 * Attention.QueryWidth : QkvWidth, QkvWidth, Inner, FeedForwardInWidth, Grouped);
            // g is ∂L/∂(the hidden state being walked back through) from here on.
            if (pass.Final is { } final)
            {
                _b.PoolSentencesBackward(final, pass.Mask, pass.Targets, pooledGradient, s.Residual, batch, seq, d, pass.Mode);
                NormBackward(pass.Hidden[^1], null, _w.FinalNormGamma!, _g.FinalNormGamma!, _g.FinalNormBeta, s.Residual, g);
            }
            else _b.PoolSentencesBackward(pass.Hidden[^1], pass.Mask, pass.Targets, pooledGradient, g, batch, seq, d, pass.Mode);
            for (int l = pass.Blocks.Count - 1; l >= 0; l--) BlockBackward(l, g, s);
            EmbeddingBackward(g, s.Residual);
        }

        private void NormBackward(DeviceBuffer<float> input, DeviceBuffer<float>? residual, DeviceBuffer<float> gamma, DeviceBuffer<float> gammaGradient,
            DeviceBuffer<float>? betaGradient, DeviceBuffer<float> upstream, DeviceBuffer<float> inputGradient)
        {
            if (Layout.Norm == NormKind.LayerNorm)
            {
                _b.LayerNormBackward(input, residual, gamma, upstream, inputGradient, gammaGradient,
                    betaGradient ?? throw new InvalidOperationException("a LayerNorm needs its bias"), Rows, Width, Layout.NormEpsilon);
                return;
            }
            if (residual is not null) throw new NotSupportedException($"{_config.ModelType}: RMSNorm after a residual (post-norm) is not implemented");
            _b.RmsNormBackward(input, gamma, upstream, inputGradient, gammaGradient, Rows, Width, Layout.NormEpsilon, addOneToGamma: Layout.Norm == NormKind.RmsNormPlusOne);
        }

        private void BlockBackward(int l, DeviceBuffer<float> g, Scratch s)
        {
            BlockWeights w = _w.Blocks[l], gw = _g.Blocks[l];
            BlockActivations a = pass.Blocks[l];
            DeviceBuffer<float> input = pass.Hidden[l];
            long cells = (long)Rows * Width;
            if (Layout.Placement == NormPlacement.Pre)
            {
                // g = ∂L/∂out: through the feed-forward branch and norm2 into ∂L/∂h_mid, then attention and norm1 into ∂L/∂h.
                FeedForwardBackward(w, gw, a, a.Normed2!, g, s.Input, accumulate: false, s);
                NormBackward(a.Middle, null, w.Norm2Gamma, gw.Norm2Gamma, gw.Norm2Beta, s.Input, s.Residual);
                _b.AddInPlace(g, s.Residual, cells);
                AttentionBackward(w, gw, a, a.Normed1!, g, s.Input, accumulate: false, s);
                NormBackward(input, null, w.Norm1Gamma, gw.Norm1Gamma, gw.Norm1Beta, s.Input, s.Residual);
                _b.AddInPlace(g, s.Residual, cells);
            }
            else
            {
                // out = norm2(ffn(h1) + h1): s.Residual becomes ∂L/∂h1, both paths; h1 = norm1(attn(h) + h): g becomes ∂L/∂h.
                NormBackward(a.FeedForwardOutput!, a.Middle, w.Norm2Gamma, gw.Norm2Gamma, gw.Norm2Beta, g, s.Residual);
                FeedForwardBackward(w, gw, a, a.Middle, s.Residual, s.Residual, accumulate: true, s);
                NormBackward(a.AttentionOutput!, input, w.Norm1Gamma, gw.Norm1Gamma, gw.Norm1Beta, s.Residual, g);
                AttentionBackward(w, gw, a, input, g, g, accumulate: true, s);
            }
        }

        /// <summary>
        /// The feed-forward branch from ∂L/∂(its output) <paramref name="upstream"/>: its parameters' gradients, and ∂L/∂(its input) written
        /// to (or, with <paramref name="accumulate"/>, added to) <paramref name="inputGradient"/>, which may be <paramref name="upstream"/>:
        /// the upstream is read for the last time before the input gradient is written.
        /// </summary>
        private void FeedForwardBackward(BlockWeights w, BlockWeights gw, BlockActivations a, DeviceBuffer<float> input, DeviceBuffer<float> upstream,
            DeviceBuffer<float> inputGradient, bool accumulate, Scratch s)
        {
            int inWidth = FeedForwardInWidth;
            _b.GemmEx(a.FeedForwardActivation, true, upstream, false, gw.FeedForwardOutWeight, Inner, Rows, Width, accumulate: false);
            if (gw.FeedForwardOutBias is { } outBias) _b.ColumnSums(upstream, outBias, Rows, Width);
            _b.GemmEx(upstream, false, w.FeedForwardOutWeight, true, s.Activation, Rows, Width, Inner, accumulate: false);
            if (Gated) _b.GatedActivationBackward(a.FeedForwardPre, s.Activation, s.Pre, Rows, Inner, GateKind);
            else _b.ActivationBackward(a.FeedForwardPre, s.Activation, s.Pre, (long)Rows * Inner, GeluActivation);
            _b.GemmEx(input, true, s.Pre, false, gw.FeedForwardInWeight, Width, Rows, inWidth, accumulate: false);
            if (gw.FeedForwardInBias is { } inBias) _b.ColumnSums(s.Pre, inBias, Rows, inWidth);
            _b.GemmEx(s.Pre, false, w.FeedForwardInWeight, true, inputGradient, Rows, inWidth, Width, accumulate);
        }

        /// <summary>The attention branch, as <see cref="FeedForwardBackward"/> for the feed-forward one.</summary>
        private void AttentionBackward(BlockWeights w, BlockWeights gw, BlockActivations a, DeviceBuffer<float> input, DeviceBuffer<float> upstream,
            DeviceBuffer<float> inputGradient, bool accumulate, Scratch s)
        {
            AttentionSpec spec = Attention;
            _b.GemmEx(a.Context, true, upstream, false, gw.AttentionOutWeight, spec.QueryWidth, Rows, Width, accumulate: false);
            if (gw.AttentionOutBias is { } outBias) _b.ColumnSums(upstream, outBias, Rows, Width);
            _b.GemmEx(upstream, false, w.AttentionOutWeight, true, s.Context, Rows, Width, spec.QueryWidth, accumulate: false);
            _b.AttentionBackward(a.AttentionInput, pass.Mask, s.Context, s.AttentionInput, pass.Batch.BatchSize, pass.Batch.SequenceLength, spec.Heads, spec.HeadDim, spec.Causal);
            DeviceBuffer<float> qkv = s.AttentionInput;
            if (s.Qkv is { } compact)
            {
                _b.ReduceKeyValueHeads(s.AttentionInput, compact, Rows, spec.Heads, spec.KeyValueHeads, spec.HeadDim);
                qkv = compact;
            }
            if (Layout.Positions == PositionEncoding.Rotary)
                _b.RotaryBackward(qkv, pass.Positions, _w.InverseFrequencies!, Rows, spec.Heads, spec.KeyValueHeads, spec.HeadDim);
            if (spec.QkNorm)
                _b.HeadRmsNormBackward(a.QkvBeforeNorm!, w.QueryNorm!, w.KeyNorm!, qkv, gw.QueryNorm!, gw.KeyNorm!, Rows, spec.Heads, spec.KeyValueHeads, spec.HeadDim, Layout.NormEpsilon);
            _b.GemmEx(input, true, qkv, false, gw.QkvWeight, Width, Rows, QkvWidth, accumulate: false);
            if (gw.QkvBias is { } qkvBias)
            {
                _b.ColumnSums(qkv, qkvBias, Rows, QkvWidth);
                // Without rotary positions or a key norm, the key bias adds q·b to every score of a query alike, which the softmax
                // cancels: its gradient is exactly zero. Computed, it is rounding noise (~1e-7), which AdamW's normalisation would
                // turn into steps of nearly the full learning rate; so it is set to the zero it is.
                if (Layout.Positions != PositionEncoding.Rotary && !spec.QkNorm)
                {
                    var host = new float[QkvWidth];
                    _b.Download(qkvBias, host);
                    host.AsSpan(Attention.QueryWidth, Attention.KeyValueWidth).Clear();
                    _b.CopyFromHost<float>(host, qkvBias);
                }
            }
            _b.GemmEx(qkv, false, w.QkvWeight, true, inputGradient, Rows, QkvWidth, Width, accumulate);
        }

        private void EmbeddingBackward(DeviceBuffer<float> g, DeviceBuffer<float> scratch)
        {
            int d = Width;
            if (Layout.Positions == PositionEncoding.Learned)
            {
                DeviceBuffer<float> rows = g;
                if (pass.EmbeddingSum is { } sum)
                {
                    NormBackward(sum, null, _w.EmbeddingNormGamma!, _g.EmbeddingNormGamma!, _g.EmbeddingNormBeta, g, scratch);
                    rows = scratch;
                }
                _b.ScatterAddRows(rows, pass.Ids, _g.WordEmbeddings, Rows, d);
                _b.ScatterAddRows(rows, pass.Positions, _g.PositionEmbeddings!, Rows, d);
                if (pass.Types is { } types && _g.TypeEmbeddings is { } typeTable) _b.ScatterAddRows(rows, types, typeTable, Rows, d);
                return;
            }
            if (Layout.EmbeddingScale != 1) _b.ScaleInPlace(g, Layout.EmbeddingScale, (long)Rows * d);
            _b.ScatterAddRows(g, pass.Ids, _g.WordEmbeddings, Rows, d);
        }
    }
}

/// <summary>
/// One training forward pass of a <see cref="TrainableTransformer"/>: its batch, the pooled sentence vectors of its layer, and the
/// activations its backward pass reads (on the model's backend). Dispose it when the backward is done.
/// </summary>
internal sealed class TrainingPass : IDisposable
{
    private readonly List<IDisposable> _owned = [];
    private readonly IComputeBackend _backend;
    private bool _disposed;

    internal TrainingPass(TrainableTransformer owner, EncodedBatch batch, int layer, PoolingMode mode, int[] positions, bool withTypes)
    {
        Owner = owner;
        _backend = owner.Backend;
        Batch = batch;
        Layer = layer;
        Mode = mode;
        try
        {
            Ids = Keep(_backend.Upload<int>(batch.InputIds));
            Mask = Keep(_backend.Upload<int>(batch.AttentionMask));
            Positions = Keep(_backend.Upload<int>(positions));
            Types = withTypes ? Keep(_backend.Upload<int>(batch.TokenTypeIds)) : null;
            Targets = Keep(_backend.Upload<int>(SentencePooling.TargetFlags(batch)));
            Pooled = Keep(_backend.Allocate<float>((long)batch.BatchSize * owner.Config.HiddenSize));
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    internal TrainableTransformer Owner { get; }

    /// <summary>The batch the pass ran.</summary>
    public EncodedBatch Batch { get; }
    /// <summary>The hidden-state entry pooled.</summary>
    public int Layer { get; }
    /// <summary>How it was pooled.</summary>
    public PoolingMode Mode { get; }
    /// <summary>The sentence vectors [batch, d] on the model's backend (a probe's input; the backward starts from their gradient).</summary>
    public DeviceBuffer<float> Pooled { get; }

    internal int Rows => Batch.BatchSize * Batch.SequenceLength;
    internal DeviceBuffer<int> Ids { get; }
    internal DeviceBuffer<int> Mask { get; }
    internal DeviceBuffer<int> Positions { get; }
    internal DeviceBuffer<int>? Types { get; }
    internal DeviceBuffer<int> Targets { get; }
    /// <summary>BERT's embedding sum before its norm.</summary>
    internal DeviceBuffer<float>? EmbeddingSum { get; set; }
    /// <summary>Entry l is the residual stream entering block l (entry 0 the embeddings; the last the output of the last block run).</summary>
    internal List<DeviceBuffer<float>> Hidden { get; } = [];
    internal List<TrainableTransformer.BlockActivations> Blocks { get; } = [];
    /// <summary>The final norm's output, when the pooled entry is "final".</summary>
    internal DeviceBuffer<float>? Final { get; set; }

    /// <summary>The pooled sentence vectors copied to the host, [batch·d].</summary>
    public float[] DownloadPooled()
    {
        ThrowIfDisposed();
        var host = new float[Pooled.Length];
        _backend.Download(Pooled, host);
        return host;
    }

    internal T Keep<T>(T buffer) where T : IDisposable
    {
        _owned.Add(buffer);
        return buffer;
    }

    internal void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    /// <summary>Releases the activations.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (IDisposable buffer in _owned) buffer.Dispose();
        _owned.Clear();
    }
}
