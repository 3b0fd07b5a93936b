using System.Text.Json;

namespace NativeMi.IO;

/// <summary>
/// The weights of a model folder: a single <c>model.safetensors</c>, or shards listed by
/// <c>model.safetensors.index.json</c>. Tensors are looked up by name across all files.
/// </summary>
internal sealed class WeightStore : IDisposable
{
    private readonly List<SafetensorsFile> _files;
    private readonly Dictionary<string, SafetensorsFile> _byName;

    private WeightStore(string description, List<SafetensorsFile> files, Dictionary<string, SafetensorsFile> byName)
    {
        Description = description;
        _files = files;
        _byName = byName;
    }

    /// <summary>The file or index the weights came from.</summary>
    public string Description { get; }

    /// <summary>Every tensor name.</summary>
    public IEnumerable<string> Names => _byName.Keys;

    /// <summary>The open files.</summary>
    public IReadOnlyList<SafetensorsFile> Files => _files;

    /// <summary>Opens the weights of the model folder <paramref name="directory"/>.</summary>
    /// <exception cref="SafetensorsException">A file or the index is malformed.</exception>
    /// <exception cref="FileNotFoundException">The folder holds neither model.safetensors nor an index.</exception>
    public static WeightStore OpenDirectory(string directory)
    {
        string single = Path.Combine(directory, "model.safetensors");
        string index = Path.Combine(directory, "model.safetensors.index.json");
        if (File.Exists(single)) return OpenSingle(single);
        if (File.Exists(index)) return OpenSharded(index);
        throw new FileNotFoundException($"{Path.GetFullPath(directory)}: no model.safetensors or model.safetensors.index.json in this folder", single);
    }

    /// <summary>Opens one safetensors file.</summary>
    public static WeightStore OpenSingle(string path)
    {
        SafetensorsFile file = SafetensorsFile.Open(path);
        var byName = file.Tensors.Keys.ToDictionary(n => n, _ => file, StringComparer.Ordinal);
        return new WeightStore(file.FilePath, [file], byName);
    }

    /// <summary>Opens the shards named by a <c>model.safetensors.index.json</c>.</summary>
    public static WeightStore OpenSharded(string indexPath)
    {
        string fullIndex = Path.GetFullPath(indexPath);
        string folder = Path.GetDirectoryName(fullIndex)!;
        Dictionary<string, string> weightMap = ReadIndex(fullIndex);
        var files = new List<SafetensorsFile>();
        var byShard = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        var byName = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        try
        {
            foreach (var (tensor, shard) in weightMap)
            {
                if (!byShard.TryGetValue(shard, out SafetensorsFile? file))
                {
                    string shardPath = Path.GetFullPath(Path.Combine(folder, shard));
                    if (!File.Exists(shardPath))
                        throw new SafetensorsException(fullIndex, tensor, $"weight_map names shard '{shard}', which does not exist");
                    file = SafetensorsFile.Open(shardPath);
                    files.Add(file);
                    byShard.Add(shard, file);
                }
                if (!file.Tensors.ContainsKey(tensor))
                    throw new SafetensorsException(fullIndex, tensor, $"weight_map places it in '{shard}', which does not contain it");
                byName.Add(tensor, file);
            }
            foreach (SafetensorsFile file in files)
                foreach (string name in file.Tensors.Keys)
                    if (!byName.ContainsKey(name))
                        throw new SafetensorsException(fullIndex, name, $"is in shard '{Path.GetFileName(file.FilePath)}' but missing from weight_map");
        }
        catch
        {
            foreach (SafetensorsFile file in files) file.Dispose();
            throw;
        }
        return new WeightStore(fullIndex, files, byName);
    }

    private static Dictionary<string, string> ReadIndex(string indexPath)
    {
        using (JsonDocument document = JsonInput.ParseFile(indexPath, maxDepth: 16))
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object ||
                !document.RootElement.TryGetProperty("weight_map", out JsonElement map) || map.ValueKind != JsonValueKind.Object)
                throw new SafetensorsException(indexPath, null, "expected an object with a 'weight_map' object of tensor name -> shard file");
            var result = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (JsonProperty entry in map.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.String)
                    throw new SafetensorsException(indexPath, entry.Name, $"weight_map value must be a shard file name, found {entry.Value.ValueKind}");
                string shard = entry.Value.GetString()!;
                if (shard.Length == 0 || Path.IsPathRooted(shard) || shard.Contains("..", StringComparison.Ordinal) || shard.Contains('/') || shard.Contains('\\'))
                    throw new SafetensorsException(indexPath, entry.Name, $"shard '{shard}' must be a plain file name in the same folder");
                if (!result.TryAdd(entry.Name, shard))
                    throw new SafetensorsException(indexPath, entry.Name, "appears twice in weight_map");
            }
            if (result.Count == 0) throw new SafetensorsException(indexPath, null, "weight_map is empty");
            return result;
        }
    }

    /// <summary>True when a tensor of that name exists.</summary>
    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <summary>Info of a tensor, or null.</summary>
    public SafetensorsTensorInfo? TryGetInfo(string name) =>
        _byName.TryGetValue(name, out SafetensorsFile? file) ? file.Tensors[name] : null;

    /// <summary>The file holding <paramref name="name"/>; throws naming the store when absent.</summary>
    public SafetensorsFile FileOf(string name) =>
        _byName.TryGetValue(name, out SafetensorsFile? file) ? file : throw new SafetensorsException(Description, name, "not found");

    /// <summary>Reads a tensor as F32 (converting F16/BF16/F64).</summary>
    public float[] ReadFloat32(string name) => FileOf(name).ReadFloat32(name);

    /// <summary>Copies an F16 or BF16 tensor's raw values (see <see cref="SafetensorsFile.CopySixteenBit"/>).</summary>
    public Compute.WeightFormat CopySixteenBit(string name, Span<ushort> destination) => FileOf(name).CopySixteenBit(name, destination);

    /// <summary>Releases every file.</summary>
    public void Dispose()
    {
        foreach (SafetensorsFile file in _files) file.Dispose();
    }
}
