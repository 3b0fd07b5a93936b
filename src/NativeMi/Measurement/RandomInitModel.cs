using NativeMi.Information;
using NativeMi.IO;

namespace NativeMi.Measurement;

/// <summary>A seeded random-initialised copy of a model folder: same config, tokenizer and tensor names.</summary>
internal static class RandomInitModel
{
    /// <summary>
    /// Creates (once; cached by model identity and seed) a folder whose weights follow Hugging Face's
    /// initialisation: N(0, 0.02) for matrices and embeddings, zeros for biases, ones for every norm weight the family's
    /// tensor-name map names (and zeros for LayerNorm biases).
    /// </summary>
    public static string Create(string modelDirectory, string identity, ulong seed, string cacheRoot)
    {
        string target = Path.Combine(cacheRoot, "random-init", $"{identity[..16]}-{seed}");
        if (File.Exists(Path.Combine(target, "model.safetensors"))) return target;
        RemoveStaleStaging(target);
        string staging = target + $".{Environment.ProcessId}.tmp";
        if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        Directory.CreateDirectory(staging);
        foreach (string file in Directory.GetFiles(modelDirectory))
        {
            string name = Path.GetFileName(file);
            if (name.EndsWith(".safetensors", StringComparison.Ordinal) || name == "model.safetensors.index.json" || name == "import.json") continue;
            File.Copy(file, Path.Combine(staging, name));
        }
        var random = new SplitMix64(seed ^ 0x52414E44UL);
        Models.TransformerConfig config = Models.TransformerConfig.Load(Path.Combine(modelDirectory, "config.json"));
        Models.TensorNameMap names = config.Names;
        using (WeightStore store = WeightStore.OpenDirectory(modelDirectory))
        {
            // The family's name map says which tensors are norm weights (γ = 1), whatever the checkpoint's prefix.
            string prefix = names.Prefixes.FirstOrDefault(p => store.Contains(p + names.WordEmbeddings)) ?? "";
            var normWeights = names.NormWeights(config.NumLayers).Select(n => prefix + n).ToHashSet(StringComparer.Ordinal);
            var entries = new List<SafetensorsEntry>();
            foreach (string name in store.Names.Order(StringComparer.Ordinal))
            {
                SafetensorsTensorInfo info = store.TryGetInfo(name)!;
                if (info.DType is not (SafetensorsDType.F32 or SafetensorsDType.F16 or SafetensorsDType.BF16 or SafetensorsDType.F64)) continue;
                var values = new float[info.ElementCount];
                if (normWeights.Contains(name)) Array.Fill(values, 1f);
                else if (!name.EndsWith(".bias", StringComparison.Ordinal))
                    for (long i = 0; i < values.LongLength; i++)
                    {
                        double u1 = 1.0 - random.NextDouble(), u2 = random.NextDouble();
                        values[i] = (float)(0.02 * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
                    }
                entries.Add(SafetensorsEntry.FromFloat32(name, info.Shape, values));
            }
            SafetensorsWriter.Write(Path.Combine(staging, "model.safetensors"), entries, new Dictionary<string, string> { ["nativemi"] = $"random-init seed {seed} of {identity}" });
        }
        if (Directory.Exists(target)) Directory.Delete(target, recursive: true);
        Directory.Move(staging, target);
        return target;
    }

    /// <summary>Removes staging folders of runs killed before their move into place (a killed process cannot clean up itself).</summary>
    private static void RemoveStaleStaging(string target)
    {
        string parent = Path.GetDirectoryName(target)!;
        if (!Directory.Exists(parent)) return;
        string prefix = Path.GetFileName(target) + ".";
        foreach (string folder in Directory.EnumerateDirectories(parent, prefix + "*.tmp").ToArray())
        {
            string pid = Path.GetFileName(folder)[prefix.Length..^".tmp".Length];
            if (!int.TryParse(pid, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int id) || AtomicFile.IsAlive(id)) continue;
            try { Directory.Delete(folder, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}
