using NativeMi.Compute;
using NativeMi.Models;
using NativeMi.Pooling;
using NativeMi.Text;
using NativeMi.Transformer;

namespace NativeMi;

/// <summary>What <see cref="LanguageModel.Description"/> says about an open model.</summary>
/// <param name="Family">The config's model_type ("bert", "roberta", "gpt2", "llama", ...).</param>
/// <param name="Backend">"cpu", "cuda", or "cuda-emulated" for the CPU-emulated CUDA device.</param>
/// <param name="Layers">Transformer blocks L.</param>
/// <param name="Entries">Hidden-state entries: L + 1, or L + 2 for a family with a final-norm entry (GPT-2's ln_f).</param>
/// <param name="Width">Width of every hidden state.</param>
/// <param name="VocabularySize">Tokenizer vocabulary size.</param>
/// <param name="MaxSequenceLength">Longest token sequence the model accepts; longer sentences are truncated.</param>
/// <param name="IsCausal">True for decoders (causal attention).</param>
/// <param name="DefaultPool">The pooling a measurement uses by default: mean for encoders, last token for decoders.</param>
/// <param name="Directory">The model folder (for a built-in model, its folder in the cache).</param>
public sealed record LanguageModelDescription(string Family, string Backend, int Layers, int Entries, int Width, int VocabularySize,
    int MaxSequenceLength, bool IsCausal, PoolingMode DefaultPool, string Directory);

/// <summary>
/// A model opened for use from a program: tokens, pooled sentence vectors and hidden states of any sentences, computed
/// as <c>nativemi measure</c> and <c>nativemi hidden</c> compute them. Calls from several threads are safe and run one at
/// a time; use one instance per thread to run in parallel. The C ABI (include/nativemi.h) is a thin layer over this class.
/// </summary>
public sealed class LanguageModel : IDisposable
{
    /// <summary>Sentences per forward batch (the CLI's default --batch-size).</summary>
    public const int BatchSize = 32;

    private readonly Lock _gate = new();
    private readonly IComputeBackend _backend;
    private TransformerModel? _model;

    private LanguageModel(TransformerModel model, IComputeBackend backend)
    {
        _model = model;
        _backend = backend;
        TransformerConfig config = model.Config;
        bool causal = config.Layout.Attention.Causal;
        Description = new LanguageModelDescription(config.ModelType, BackendSelection.ShortName(backend), config.NumLayers, config.HiddenStateEntries,
            config.HiddenSize, model.Tokenizer.VocabularySize, config.MaxSequenceLength, causal, causal ? PoolingMode.Last : PoolingMode.Mean, model.Directory);
    }

    /// <summary>The model's shape and where it runs.</summary>
    public LanguageModelDescription Description { get; }

    /// <summary>
    /// Opens a built-in model ("minilm", "arctic-xs"; imported into the cache on first use) or a Hugging Face model
    /// folder on <paramref name="backend"/>.
    /// </summary>
    /// <param name="modelNameOrFolder">A built-in name or a model folder.</param>
    /// <param name="backend">
    /// "cpu", "cuda" or "auto". cuda is an error when no GPU is usable; auto falls back to the CPU. A CUDA device is used only
    /// after every op matched the CPU backend on small random inputs; what was chosen, and why auto fell back, goes to <paramref name="log"/>.
    /// </param>
    /// <param name="log">Receives the backend choice and a built-in model's import lines, on the calling thread; null for none.</param>
    /// <exception cref="UsageException">An empty model name or an unknown backend.</exception>
    /// <exception cref="InputException">Neither a built-in name nor a usable model folder; the message names the folder.</exception>
    /// <exception cref="EnvironmentException">cuda was asked for and no usable GPU is present.</exception>
    public static LanguageModel Open(string modelNameOrFolder, string backend = "cpu", IProgress<string>? log = null)
    {
        ArgumentNullException.ThrowIfNull(modelNameOrFolder);
        ArgumentNullException.ThrowIfNull(backend);
        if (string.IsNullOrWhiteSpace(modelNameOrFolder)) throw new UsageException("the model name or folder is empty");
        IComputeBackend compute = BackendSelection.Choose(backend, log: log);
        try
        {
            return new LanguageModel(ModelResolver.Load(modelNameOrFolder, compute, log), compute);
        }
        catch
        {
            compute.Dispose();
            throw;
        }
    }

    /// <summary>Token ids of <paramref name="text"/> exactly as the model sees them: special tokens included, truncated to the model's context.</summary>
    public int[] Tokenize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        lock (_gate) return Encode(Model, text).Ids;
    }

    /// <summary>The number of floats <see cref="Embed(IReadOnlyList{string}, IReadOnlyList{int}, Span{float}, PoolingMode?)"/> writes.</summary>
    public long EmbedLength(int sentenceCount, int layerCount) => (long)layerCount * sentenceCount * Description.Width;

    /// <summary>
    /// Pooled sentence vectors at the chosen entries, shape [layers][sentences][width], pooled as a measurement pools
    /// them (mean and max over the real text tokens, special tokens and padding excluded; cls and last at the first and
    /// last real token).
    /// </summary>
    /// <param name="sentences">The sentences; run in batches of <see cref="BatchSize"/>, shortest first.</param>
    /// <param name="layers">Entry numbers in any order, each 0..Entries − 1; the result's first axis follows this order.</param>
    /// <param name="pool">The pooling; null for <see cref="LanguageModelDescription.DefaultPool"/>.</param>
    /// <exception cref="UsageException">An entry number out of range.</exception>
    /// <exception cref="InputException">A sentence has nothing to pool (no text token, for mean and max).</exception>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("ApiDesign", "RS0026", Justification = "The overloads differ in a required parameter (the destination span), so no call can bind to either by its optional pool alone.")]
    public float[] Embed(IReadOnlyList<string> sentences, IReadOnlyList<int> layers, PoolingMode? pool = null)
    {
        ArgumentNullException.ThrowIfNull(sentences);
        ArgumentNullException.ThrowIfNull(layers);
        lock (_gate) return EmbedLocked(sentences, layers, pool);
    }

    /// <summary>
    /// <see cref="Embed(IReadOnlyList{string}, IReadOnlyList{int}, PoolingMode?)"/> into <paramref name="destination"/>,
    /// which must hold at least <see cref="EmbedLength"/> floats; nothing is written to it when the call fails.
    /// </summary>
    /// <exception cref="UsageException"><paramref name="destination"/> is too small (the message gives the size needed), or an entry number is out of range.</exception>
    /// <exception cref="InputException">A sentence has nothing to pool.</exception>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("ApiDesign", "RS0026", Justification = "As the other overload: the destination span is required.")]
    public void Embed(IReadOnlyList<string> sentences, IReadOnlyList<int> layers, Span<float> destination, PoolingMode? pool = null)
    {
        ArgumentNullException.ThrowIfNull(sentences);
        ArgumentNullException.ThrowIfNull(layers);
        long needed = EmbedLength(sentences.Count, layers.Count);
        if (destination.Length < needed)
            throw new UsageException($"the output holds {destination.Length} floats; {layers.Count} layer(s) x {sentences.Count} sentence(s) x width {Description.Width} need {needed}");
        float[] vectors;
        lock (_gate) vectors = EmbedLocked(sentences, layers, pool);
        vectors.CopyTo(destination);
    }

    /// <summary>The sequence length T of <see cref="Hidden"/> for these sentences: the longest one's token count (0 for none).</summary>
    public int HiddenLength(IReadOnlyList<string> sentences)
    {
        ArgumentNullException.ThrowIfNull(sentences);
        lock (_gate)
        {
            TransformerModel model = Model;
            return sentences.Count == 0 ? 0 : sentences.Max(s => Encode(model, s).Ids.Length);
        }
    }

    /// <summary>The number of floats <see cref="Hidden"/> writes for <paramref name="sentenceCount"/> sentences padded to <paramref name="sequenceLength"/>.</summary>
    public long HiddenStatesLength(int sentenceCount, int sequenceLength) => (long)Description.Entries * sentenceCount * sequenceLength * Description.Width;

    /// <summary>
    /// Every hidden state, shape [entries][sentences][T][width] with T = <see cref="HiddenLength"/>; positions past a
    /// sentence's length are 0. The same values <c>nativemi hidden</c> writes for these sentences (entry Entries − 1 of a
    /// family with a final norm is its hidden.final).
    /// </summary>
    /// <param name="sentences">The sentences; run in batches of <see cref="BatchSize"/>, shortest first.</param>
    /// <param name="destination">At least <see cref="HiddenStatesLength"/> floats.</param>
    /// <param name="lengths">Receives each sentence's token count: empty for none, else at least one element per sentence.</param>
    /// <exception cref="UsageException"><paramref name="destination"/> or <paramref name="lengths"/> is too small (nothing is written then).</exception>
    public void Hidden(IReadOnlyList<string> sentences, Span<float> destination, Span<int> lengths)
    {
        ArgumentNullException.ThrowIfNull(sentences);
        lock (_gate)
        {
            TransformerModel model = Model;
            EncodedSentence[] encoded = sentences.Select(s => Encode(model, s)).ToArray();
            int n = encoded.Length, t = n == 0 ? 0 : encoded.Max(e => e.Ids.Length), d = Description.Width, entries = Description.Entries;
            long needed = HiddenStatesLength(n, t);
            if (destination.Length < needed)
                throw new UsageException($"the output holds {destination.Length} floats; {entries} entries x {n} sentence(s) x T = {t} x width {d} need {needed}");
            if (lengths.Length != 0 && lengths.Length < n)
                throw new UsageException($"the lengths array holds {lengths.Length} elements; {n} sentence(s) need {n}");
            destination[..(int)needed].Clear();
            for (int s = 0; s < n && lengths.Length != 0; s++) lengths[s] = encoded[s].Ids.Length;
            foreach (int[] members in Batches(encoded))
            {
                // A batch of sentences without a single token (an empty line for a tokenizer that adds no special token) has nothing to write.
                if (members.All(i => encoded[i].Ids.Length == 0)) continue;
                EncodedBatch batch = EncodedBatch.Pad(members.Select(i => encoded[i]).ToArray(), model.Tokenizer.PadId);
                HiddenStates states = model.Forward(batch);
                for (int entry = 0; entry < entries; entry++)
                {
                    float[] layer = entry < states.Layers.Count ? states.Layers[entry] : states.Final!;
                    for (int b = 0; b < members.Length; b++)
                    {
                        int length = encoded[members[b]].Ids.Length;
                        layer.AsSpan(b * batch.SequenceLength * d, length * d).CopyTo(destination.Slice((int)(((long)entry * n + members[b]) * t * d), length * d));
                    }
                }
            }
        }
    }

    /// <summary>Releases the weights and the backend. Waits for a call in progress on another thread.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_model is null) return;
            _model.Dispose();
            _model = null;
            _backend.Dispose();
        }
    }

    private TransformerModel Model => _model ?? throw new ObjectDisposedException(nameof(LanguageModel), $"{Description.Directory}: the model was closed");

    private static EncodedSentence Encode(TransformerModel model, string text) => model.Tokenizer.Encode(text, model.Config.MaxSequenceLength);

    /// <summary>Sentence indices in batches of <see cref="BatchSize"/>, shortest first, as measure and hidden batch them (little padding).</summary>
    private static IEnumerable<int[]> Batches(EncodedSentence[] encoded)
    {
        int[] order = Enumerable.Range(0, encoded.Length).OrderBy(i => encoded[i].Ids.Length).ThenBy(i => i).ToArray();
        for (int start = 0; start < order.Length; start += BatchSize) yield return order.AsSpan(start, Math.Min(BatchSize, order.Length - start)).ToArray();
    }

    private float[] EmbedLocked(IReadOnlyList<string> sentences, IReadOnlyList<int> layers, PoolingMode? pool)
    {
        TransformerModel model = Model;
        int entries = Description.Entries, d = Description.Width, n = sentences.Count;
        for (int k = 0; k < layers.Count; k++)
            if (layers[k] < 0 || layers[k] >= entries)
                throw new UsageException($"layers[{k}] = {layers[k]} is outside 0..{entries - 1} (the entries of {Description.Family}: 0 the embeddings, 1..{Description.Layers} the blocks{(entries > Description.Layers + 1 ? $", {entries - 1} the final norm" : "")})");
        PoolingMode mode = pool ?? Description.DefaultPool;
        long needed = EmbedLength(n, layers.Count);
        if (needed > Array.MaxLength) throw new UsageException($"{needed} floats are too many for one call; pass fewer sentences");
        EncodedSentence[] encoded = sentences.Select(s => Encode(model, s ?? throw new ArgumentNullException(nameof(sentences), "a sentence is null"))).ToArray();
        for (int s = 0; s < n; s++)
        {
            bool anyTarget = encoded[s].IsTarget.Contains(true);
            if (encoded[s].Ids.Length == 0 || (!anyTarget && mode is PoolingMode.Mean or PoolingMode.Max))
                throw new InputException($"sentences[{s}] has no text token to pool ({mode.ToString().ToLowerInvariant()} pooling reads the text tokens, special tokens excluded): \"{Shorten(sentences[s])}\"");
        }
        var result = new float[needed];
        if (n == 0 || layers.Count == 0) return result;
        foreach (int[] members in Batches(encoded))
        {
            EncodedBatch batch = EncodedBatch.Pad(members.Select(i => encoded[i]).ToArray(), model.Tokenizer.PadId);
            float[][] pooled = model.ForwardPooled(batch, mode);
            for (int k = 0; k < layers.Count; k++)
                for (int b = 0; b < members.Length; b++)
                    pooled[layers[k]].AsSpan(b * d, d).CopyTo(result.AsSpan((int)(((long)k * n + members[b]) * d), d));
        }
        return result;
    }

    private static string Shorten(string text) => text.Length <= 40 ? text : text[..37] + "...";
}
