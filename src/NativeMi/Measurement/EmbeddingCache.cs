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

    /// <summary>The chunk's vectors per layer entry ([sentences·d] each), or null when missing or corrupt (a corrupt file is deleted).</summary>
    public float[][]? TryRead(int chunk, int sentences)
    {
        string path = ChunkPath(chunk);
        if (!File.Exists(path)) return null;
        try
        {
            using var file = SafetensorsFile.Open(path);
            if (!file.Metadata.TryGetValue("sha256", out string? expected) || file.Metadata.GetValueOrDefault("format") != FormatVersion)
                throw new InvalidDataException("missing checksum or format");
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var layers = new float[LayerEntries][];
            for (int l = 0; l < LayerEntries; l++)
            {
                string name = $"pooled.{l}";
                SafetensorsTensorInfo info = file.GetInfo(name);
                if (info.DType != SafetensorsDType.F32 || info.Shape.Length != 2 || info.Shape[0] != sentences || info.Shape[1] != Width)
                    throw new InvalidDataException($"tensor {name} has the wrong shape");
                hash.AppendData(file.GetBytes(name));
                layers[l] = file.ReadFloat32(name);
            }
            if (Convert.ToHexStringLower(hash.GetHashAndReset()) != expected) throw new InvalidDataException("checksum mismatch");
            return layers;
        }
        catch (Exception e) when (e is InvalidDataException or InputException or IOException)
        {
            CorruptChunksRebuilt++;
            try { File.Delete(path); } catch (IOException) { }
            return null;
        }
    }

    /// <summary>Number of chunks found corrupt and deleted by <see cref="TryRead"/>.</summary>
    public int CorruptChunksRebuilt { get; private set; }

    /// <summary>Writes a chunk atomically with its checksum.</summary>
    public void Write(int chunk, int sentences, float[][] layers)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var entries = new List<SafetensorsEntry>();
        for (int l = 0; l < layers.Length; l++)
        {
            var entry = SafetensorsEntry.FromFloat32($"pooled.{l}", [sentences, Width], layers[l]);
            hash.AppendData(entry.Data.Span);
            entries.Add(entry);
        }
        var metadata = new Dictionary<string, string> { ["format"] = FormatVersion, ["sha256"] = Convert.ToHexStringLower(hash.GetHashAndReset()), ["key"] = Key };
        SafetensorsWriter.Write(ChunkPath(chunk), entries, metadata);
        if (TestPausePoint.Armed) TestPausePoint.Reach($"cache-chunk-written:{chunk}");
    }
}
