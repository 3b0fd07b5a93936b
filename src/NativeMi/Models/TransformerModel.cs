using NativeMi.Compute;
using NativeMi.Compute.Cpu;
using NativeMi.IO;
using NativeMi.Text;
using NativeMi.Transformer;
using NativeMi.Pooling;

namespace NativeMi.Models;

/// <summary>Choices for <see cref="TransformerModel.Load(string, IComputeBackend?, ModelLoadOptions?)"/>.</summary>
internal sealed record ModelLoadOptions
{
    /// <summary>
    /// Load weights that hold NaN or infinite values instead of refusing them (the default refuses, naming the
    /// file, the tensor, how many there are and where the first is). The count is in
    /// <see cref="TransformerModel.NonFiniteWeightCount"/>. The CLI's --allow-nonfinite-weights sets this.
    /// </summary>
    public bool AllowNonFiniteWeights { get; init; }

    /// <summary>
    /// Widen F16 and BF16 weights to fp32 at load (twice the memory) instead of keeping the GEMM matrices and the word
    /// embeddings 16-bit. On the CPU both give identical hidden states (the kernels widen exactly); on CUDA 16-bit weights
    /// run GemmEx with 16-bit inputs, so widening buys fp32 products there. The CLI's --widen-16bit-weights sets this.
    /// </summary>
    public bool WidenSixteenBitWeights { get; init; }
}

/// <summary>
/// A Hugging Face model folder loaded onto a backend: its config, tokenizer and weights, ready to run
/// the forward pass.
/// </summary>
internal sealed class TransformerModel : IDisposable
{
    private TransformerWeights? _weights;
    private TransformerForward? _forward;

    private TransformerModel(string directory, TransformerConfig config, TextTokenizer tokenizer, TransformerWeights weights, IComputeBackend backend)
    {
        Directory = directory;
        Config = config;
        Tokenizer = tokenizer;
        _weights = weights;
        Backend = backend;
        _forward = new TransformerForward(config, weights, backend);
        ParameterCount = weights.ParameterCount;
        CheckpointDTypes = weights.DTypes.Keys.ToArray();
        WeightNamePrefix = weights.NamePrefix;
        NonFiniteWeightCount = weights.NonFiniteValueCount;
        ResidentWeightElements = weights.ResidentElements;
    }

    /// <summary>The folder the model was read from.</summary>
    public string Directory { get; }
    /// <summary>Architecture.</summary>
    public TransformerConfig Config { get; }
    /// <summary>Tokenizer of the folder.</summary>
    public TextTokenizer Tokenizer { get; }
    /// <summary>The backend the weights live on.</summary>
    public IComputeBackend Backend { get; }
    /// <summary>Number of parameters read.</summary>
    public long ParameterCount { get; }
    /// <summary>Element types found in the checkpoint.</summary>
    public IReadOnlyCollection<string> CheckpointDTypes { get; }
    /// <summary>Prefix the checkpoint's tensor names carry ("", "bert.", "transformer.", ...).</summary>
    public string WeightNamePrefix { get; }
    /// <summary>NaN and infinite values in the weights: 0 unless <see cref="ModelLoadOptions.AllowNonFiniteWeights"/> let them in.</summary>
    public long NonFiniteWeightCount { get; }
    /// <summary>Weight elements held on the backend per storage format ("F32", "BF16", "F16").</summary>
    public IReadOnlyDictionary<string, long> ResidentWeightElements { get; }
    /// <summary>Bytes the weights occupy on the backend (before the CPU's panel padding).</summary>
    public long ResidentWeightBytes => ResidentWeightElements.Sum(e => e.Value * (e.Key == "F32" ? 4L : 2L));
    /// <summary>Whether the weights are still held (<see cref="ReleaseWeights"/> not called yet).</summary>
    public bool HasWeights => _weights is not null;
    /// <summary>Number of hidden-state entries <see cref="Forward"/> returns in <see cref="HiddenStates.Layers"/> (L + 1).</summary>
    public int LayerCount => Config.NumLayers + 1;

    /// <summary>Reads config.json, the weights (single or sharded safetensors) and the tokenizer of <paramref name="directory"/>.</summary>
    /// <param name="directory">A Hugging Face model folder.</param>
    /// <param name="backend">Where to put the weights; the CPU backend when null.</param>
    /// <param name="options">Load choices; the defaults when null.</param>
    /// <exception cref="ModelFormatException">A file is missing, malformed or contradicts the config, or a weight is NaN or infinite
    /// and <see cref="ModelLoadOptions.AllowNonFiniteWeights"/> is off.</exception>
    /// <exception cref="SafetensorsException">A weight file is malformed.</exception>
    public static TransformerModel Load(string directory, IComputeBackend? backend = null, ModelLoadOptions? options = null) =>
        Load(directory, backend, options, configure: null);

    /// <summary>
    /// <see cref="Load(string, IComputeBackend?, ModelLoadOptions?)"/> with the parsed config passed through
    /// <paramref name="configure"/> first: the tests' way to show that a deliberately wrong layout (another GELU, another
    /// epsilon) fails the goldens.
    /// </summary>
    internal static TransformerModel Load(string directory, IComputeBackend? backend, ModelLoadOptions? options, Func<TransformerConfig, TransformerConfig>? configure)
    {
        options ??= new ModelLoadOptions();
        string full = Path.GetFullPath(directory);
        if (!System.IO.Directory.Exists(full)) throw new ModelFormatException(full, "model folder not found");
        backend ??= new CpuBackend();
        TransformerConfig config = TransformerConfig.Load(Path.Combine(full, "config.json"));
        if (configure is not null) config = configure(config);
        TextTokenizer tokenizer = TextTokenizer.Load(full, config);
        WeightStore store;
        try { store = WeightStore.OpenDirectory(full); }
        catch (FileNotFoundException e) { throw new ModelFormatException(full, e.Message, e); }
        using (store)
        {
            TransformerWeights weights = TransformerWeights.Load(store, config, backend, options.AllowNonFiniteWeights, options.WidenSixteenBitWeights);
            return new TransformerModel(full, config, tokenizer, weights, backend);
        }
    }

    /// <summary>Tokenizes and pads <paramref name="sentences"/> into one batch, truncating each to the model's context.</summary>
    public EncodedBatch Encode(IReadOnlyList<string> sentences, int? maxLength = null, bool padLeft = false)
    {
        int limit = Math.Min(maxLength ?? Config.MaxSequenceLength, Config.MaxSequenceLength);
        return EncodedBatch.Pad(sentences.Select(s => Tokenizer.Encode(s, limit)).ToArray(), Tokenizer.PadId, padLeft);
    }

    /// <summary>Runs the forward pass and returns the hidden states of every layer.</summary>
    /// <exception cref="ObjectDisposedException">The weights were released.</exception>
    public HiddenStates Forward(EncodedBatch batch) =>
        (_forward ?? throw new ObjectDisposedException(nameof(TransformerModel), $"{Directory}: the weights were released; load the model again to run it")).Run(batch);

    /// <summary>
    /// Runs the forward pass and pools every layer on the backend (<see cref="IComputeBackend.PoolSentences"/>):
    /// entry l is [batch·d] for l = 0..L, followed by GPT-2's final (after ln_f) entry. Equal to pooling
    /// <see cref="Forward"/>'s states with <see cref="SentencePooling.Pool"/>, without copying every token's state to the host.
    /// </summary>
    /// <exception cref="ArgumentException">A sentence has nothing to pool (no real token; for mean and max, no target).</exception>
    /// <exception cref="ObjectDisposedException">The weights were released.</exception>
    public float[][] ForwardPooled(EncodedBatch batch, Pooling.PoolingMode mode) =>
        (_forward ?? throw new ObjectDisposedException(nameof(TransformerModel), $"{Directory}: the weights were released; load the model again to run it")).RunPooled(batch, mode);

    /// <summary>Sizes the forward pass's reused scratch buffers for batches of up to <paramref name="rows"/> token rows (batch × padded length) at once.</summary>
    /// <exception cref="ObjectDisposedException">The weights were released.</exception>
    public void ReserveForwardRows(int rows) =>
        (_forward ?? throw new ObjectDisposedException(nameof(TransformerModel), $"{Directory}: the weights were released; load the model again to run it")).Reserve(rows);

    /// <summary>
    /// Frees the weights (and, on the CPU, lets the GC reclaim them) while keeping the config and
    /// tokenizer: a measurement needs the weights only until the sentence vectors are computed, and
    /// the probes that follow should not pay for them in memory.
    /// </summary>
    public void ReleaseWeights()
    {
        _forward?.Dispose();
        _weights?.Dispose();
        _weights = null;
        _forward = null;
    }

    /// <summary>Releases the weights.</summary>
    public void Dispose() => ReleaseWeights();
}
