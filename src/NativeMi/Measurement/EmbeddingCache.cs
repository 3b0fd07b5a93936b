using System.Security.Cryptography;
using System.Text;
using NativeMi.IO;
using NativeMi.Pooling;

namespace NativeMi.Measurement;

/// <summary>
/// On-disk cache of pooled sentence vectors, in chunks of sentences so that a run killed midway resumes
/// from the chunks already written. Each chunk is a safetensors file written atomically whose metadata
/// carries the SHA-256 of its tensor bytes; a chunk that fails the check is rebuilt, never trusted.
/// </summary>
internal sealed class EmbeddingCache
{
    /// <summary>Sentences per chunk.</summary>
    public const int ChunkSize = 256;
    private const string FormatVersion = "nativemi.embeddings/1";
    // Bump when a kernel change alters the bits of the forward pass (2: vectorised CPU attention and fused LayerNorm),
    // so vectors cached by an older engine are recomputed rather than mixed into a run of the new one.
    private const string ForwardNumericsVersion = "forward-numerics/2";

    /// <summary>Opens (creating) the cache folder for <paramref name="key"/> under <paramref name="root"/>.</summary>
    public EmbeddingCache(string root, string key, int layerEntries, int width)
    {
        Folder = Path.Combine(root, "embeddings", key);
        // A run killed while writing a chunk leaves its temporary file behind; it is never read, only wasted space.
        AtomicFile.RemoveStaleTemporaries(Folder);
        Key = key;
        LayerEntries = layerEntries;
        Width = width;
    }

    // Per chunk, the SHA-256 of each layer entry's bytes, taken from bytes that passed the chunk's checksum or that this
    // instance wrote: what ReadLayer checks a layer against without hashing the whole chunk again.
    private readonly Dictionary<int, byte[][]> _layerChecksums = [];

    /// <summary>Folder of this key's chunks.</summary>
    public string Folder { get; }
    /// <summary>The cache key.</summary>
    public string Key { get; }
    /// <summary>Hidden-state entries per sentence (L + 1, plus "final" for GPT-2).</summary>
    public int LayerEntries { get; }
    /// <summary>Vector width.</summary>
    public int Width { get; }

    /// <summary>
    /// A sentence as the cache keys it: its text, and the ids and target flags the tokenizer gave it, so vectors cached
    /// under another tokenizer (a library upgrade, an edited tokenizer.json) are recomputed rather than reused.
    /// </summary>
    public static string SentenceKey(string text, Text.EncodedSentence encoded) =>
        text + "\u0000" + string.Join(",", encoded.Ids) + "\u0000" + string.Concat(encoded.IsTarget.Select(t => t ? '1' : '0'));

    /// <summary>The key of a run's embeddings: everything that changes the pooled vectors goes in.</summary>
    public static string ComputeKey(string modelIdentity, IEnumerable<string> sentences, PoolingMode pool, int maxTokens, string variant)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        void Add(string s)
        {
            byte[] bytes = Encoding.UTF8.GetBytes(s);
            hash.AppendData(BitConverter.GetBytes(bytes.Length));
            hash.AppendData(bytes);
        }
        Add(FormatVersion);
        Add(ForwardNumericsVersion);
        Add(modelIdentity);
        Add(pool.ToString());
        Add(maxTokens.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Add(variant);
        foreach (string s in sentences) Add(s);
        return Convert.ToHexStringLower(hash.GetHashAndReset())[..24];
    }

    private string ChunkPath(int chunk) => Path.Combine(Folder, $"chunk-{chunk:D5}.safetensors");

    /// <summary>
    /// Whether the chunk is present and sound (its checksum, format and shapes hold); a corrupt file is deleted and counted
    /// in <see cref="CorruptChunksRebuilt"/>. Nothing is kept but a checksum of each layer entry's bytes: the vectors are
    /// read one layer entry at a time by <see cref="ReadLayer"/>, once the model's weights are released, so that a run
    /// holds neither the weights and the vectors together nor every layer's vectors at once.
    /// </summary>
    public bool IsSound(int chunk, int sentences)
    {
        string path = ChunkPath(chunk);
        if (!File.Exists(path)) return false;
        try
        {
            using var file = SafetensorsFile.Open(path);
            Verify(file, chunk, sentences);
            return true;
        }
        catch (Exception e) when (e is InvalidDataException or InputException or IOException)
        {
            CorruptChunksRebuilt++;
            try { File.Delete(path); } catch (IOException) { }
            return false;
        }
    }

    /// <summary>Called with a chunk's vectors of one layer entry ([sentences·d], in the chunk's file) and the index of its first sentence.</summary>
    public delegate void LayerChunkReader(int firstSentence, ReadOnlySpan<float> vectors);

    /// <summary>
    /// Passes every chunk's vectors of layer entry <paramref name="layer"/> to <paramref name="read"/>, in sentence order,
    /// for a run of <paramref name="sentences"/> sentences whose chunks are all present. Each chunk's bytes of that entry are
    /// checked against the checksum taken when the chunk was verified (<see cref="IsSound"/>) or written by this instance,
    /// so a layer costs one pass over its own vectors, not over the whole chunk.
    /// </summary>
    /// <exception cref="EnvironmentException">A chunk is missing or no longer what was verified or written: the cache folder changed under the run.</exception>
    public void ReadLayer(int layer, int sentences, LayerChunkReader read)
    {
        ArgumentNullException.ThrowIfNull(read);
        ArgumentOutOfRangeException.ThrowIfNegative(layer);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(layer, LayerEntries);
        for (int chunk = 0, start = 0; start < sentences; chunk++, start += ChunkSize)
        {
            string path = ChunkPath(chunk);
            int count = Math.Min(ChunkSize, sentences - start);
            try
            {
                using var file = SafetensorsFile.Open(path);
                if (!_layerChecksums.TryGetValue(chunk, out byte[][]? checksums) || checksums.Length != LayerEntries) checksums = Verify(file, chunk, count);
                string name = $"pooled.{layer}";
                CheckShape(file, name, count);
                if (!SHA256.HashData(file.GetBytes(name)).AsSpan().SequenceEqual(checksums[layer])) throw new InvalidDataException($"tensor {name} changed since it was checked");
                read(start, file.GetFloat32Span(name));
            }
            catch (Exception e) when (e is InvalidDataException or InputException or IOException)
            {
                throw new EnvironmentException($"{path}: embedding-cache chunk changed while this run used it ({e.Message}); is another program writing {Folder}?", e);
            }
        }
    }

    /// <summary>Checks a chunk's format, shapes and checksum, and remembers the checksum of each layer entry's bytes.</summary>
    private byte[][] Verify(SafetensorsFile file, int chunk, int sentences)
    {
        if (!file.Metadata.TryGetValue("sha256", out string? expected) || file.Metadata.GetValueOrDefault("format") != FormatVersion)
            throw new InvalidDataException("missing checksum or format");
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var checksums = new byte[LayerEntries][];
        for (int l = 0; l < LayerEntries; l++)
        {
            string name = $"pooled.{l}";
            CheckShape(file, name, sentences);
            ReadOnlySpan<byte> bytes = file.GetBytes(name);
            hash.AppendData(bytes);
            checksums[l] = SHA256.HashData(bytes);
        }
        if (Convert.ToHexStringLower(hash.GetHashAndReset()) != expected) throw new InvalidDataException("checksum mismatch");
        _layerChecksums[chunk] = checksums;
        return checksums;
    }

    private void CheckShape(SafetensorsFile file, string name, int sentences)
    {
        SafetensorsTensorInfo info = file.GetInfo(name);
        if (info.DType != SafetensorsDType.F32 || info.Shape.Length != 2 || info.Shape[0] != sentences || info.Shape[1] != Width)
            throw new InvalidDataException($"tensor {name} has the wrong shape");
    }

    /// <summary>Number of chunks found corrupt and deleted by <see cref="IsSound"/>.</summary>
    public int CorruptChunksRebuilt { get; private set; }

    /// <summary>
    /// Writes a chunk atomically with its checksum: layer entry l's vectors are the first <paramref name="sentences"/>·d
    /// floats of <paramref name="layers"/>[l], given as their bytes so that a caller can reuse one set of arrays for every
    /// chunk and nothing is copied on the way to the file.
    /// </summary>
    public void Write(int chunk, int sentences, byte[][] layers)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var entries = new List<SafetensorsEntry>();
        var checksums = new byte[layers.Length][];
        for (int l = 0; l < layers.Length; l++)
        {
            var entry = new SafetensorsEntry($"pooled.{l}", SafetensorsDType.F32, [sentences, Width], layers[l].AsMemory(0, checked(sentences * Width * sizeof(float))));
            hash.AppendData(entry.Data.Span);
            checksums[l] = SHA256.HashData(entry.Data.Span);
            entries.Add(entry);
        }
        var metadata = new Dictionary<string, string> { ["format"] = FormatVersion, ["sha256"] = Convert.ToHexStringLower(hash.GetHashAndReset()), ["key"] = Key };
        SafetensorsWriter.Write(ChunkPath(chunk), entries, metadata);
        _layerChecksums[chunk] = checksums;
        if (TestPausePoint.Armed) TestPausePoint.Reach($"cache-chunk-written:{chunk}");
    }
}
