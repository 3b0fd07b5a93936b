using System.Text.Json;
using System.Text.Json.Serialization;
using NativeMi.IO;

namespace NativeMi.Training;

/// <summary>
/// A resumable point of a fine-tuning run: the model's parameters and AdamW moments, the probe's, where in which epoch the run
/// was, and the curves so far. A checkpoint is a folder written whole beside the live one and swapped in (new, then the live one
/// moved aside, then the new one renamed, then the old one removed), so a kill at any moment leaves one complete checkpoint.
/// </summary>
internal sealed record Checkpoint(string Fingerprint, int Step, int Epoch, int NextStart, double EpochNats, long EpochTargets, double InitialValidationBits,
    IReadOnlyList<FinetuneEpoch> Epochs, IReadOnlyList<(int Step, double CrossEntropyBits, double GradientNorm)> Steps,
    IReadOnlyDictionary<string, float[]> Parameters, IReadOnlyDictionary<string, float[]> FirstMoments, IReadOnlyDictionary<string, float[]> SecondMoments,
    IReadOnlyList<(string Name, float[] Value, float[] FirstMoment, float[] SecondMoment)> Probe)
{
    private const string StateFile = "state.json";

    /// <summary>Writes <paramref name="c"/> as the checkpoint in <paramref name="folder"/>, replacing the previous one.</summary>
    public static void Save(string folder, Checkpoint c)
    {
        string fresh = folder + ".new", old = folder + ".old";
        if (Directory.Exists(fresh)) Directory.Delete(fresh, recursive: true);
        Directory.CreateDirectory(fresh);
        SafetensorsWriter.Write(Path.Combine(fresh, "model.safetensors"), Entries(c.Parameters, "").ToArray());
        SafetensorsWriter.Write(Path.Combine(fresh, "moments.safetensors"), [.. Entries(c.FirstMoments, "m."), .. Entries(c.SecondMoments, "v.")]);
        var probe = new List<SafetensorsEntry>();
        for (int i = 0; i < c.Probe.Count; i++)
        {
            var (name, value, m, v) = c.Probe[i];
            probe.Add(SafetensorsEntry.FromFloat32($"{i:D2}.{name}.value", [value.Length], value));
            probe.Add(SafetensorsEntry.FromFloat32($"{i:D2}.{name}.m", [m.Length], m));
            probe.Add(SafetensorsEntry.FromFloat32($"{i:D2}.{name}.v", [v.Length], v));
        }
        SafetensorsWriter.Write(Path.Combine(fresh, "probe.safetensors"), probe);
        var state = new CheckpointStateJson(c.Fingerprint, c.Step, c.Epoch, c.NextStart, c.EpochNats, c.EpochTargets, c.InitialValidationBits,
            [.. c.Epochs.Select(e => new double[] { e.Epoch, e.Steps, e.TrainCrossEntropyBits, e.ValidationCrossEntropyBits })],
            [.. c.Steps.Select(s => new double[] { s.Step, s.CrossEntropyBits, s.GradientNorm })]);
        // Written last: a folder with state.json is complete.
        AtomicFile.WriteAllBytes(Path.Combine(fresh, StateFile), JsonSerializer.SerializeToUtf8Bytes(state, CheckpointJsonContext.Default.CheckpointStateJson));
        if (Directory.Exists(old)) Directory.Delete(old, recursive: true);
        if (Directory.Exists(folder)) Directory.Move(folder, old);
        Directory.Move(fresh, folder);
        if (Directory.Exists(old)) Directory.Delete(old, recursive: true);
    }

    /// <summary>The checkpoint in <paramref name="folder"/> (or the one a kill left moved aside), or null when there is none.</summary>
    /// <exception cref="InputException">The checkpoint belongs to other settings, a model or a corpus.</exception>
    public static Checkpoint? Load(string folder, string fingerprint)
    {
        string? source = new[] { folder, folder + ".old" }.FirstOrDefault(f => File.Exists(Path.Combine(f, StateFile)));
        if (source is null) return null;
        CheckpointStateJson state = JsonSerializer.Deserialize(File.ReadAllBytes(Path.Combine(source, StateFile)), CheckpointJsonContext.Default.CheckpointStateJson)
            ?? throw new JsonException($"{Path.Combine(source, StateFile)}: null instead of a checkpoint state");
        if (state.Fingerprint != fingerprint)
            throw new InputException($"{source}: a checkpoint of another fine-tuning run (other settings, model or corpus); remove it to start afresh, or rerun with the settings it was made with");
        using var model = SafetensorsFile.Open(Path.Combine(source, "model.safetensors"));
        using var moments = SafetensorsFile.Open(Path.Combine(source, "moments.safetensors"));
        using var probeFile = SafetensorsFile.Open(Path.Combine(source, "probe.safetensors"));
        var parameters = model.Tensors.Keys.ToDictionary(k => k, model.ReadFloat32, StringComparer.Ordinal);
        var first = moments.Tensors.Keys.Where(k => k.StartsWith("m.", StringComparison.Ordinal)).ToDictionary(k => k[2..], moments.ReadFloat32, StringComparer.Ordinal);
        var second = moments.Tensors.Keys.Where(k => k.StartsWith("v.", StringComparison.Ordinal)).ToDictionary(k => k[2..], moments.ReadFloat32, StringComparer.Ordinal);
        var probe = probeFile.Tensors.Keys.Where(k => k.EndsWith(".value", StringComparison.Ordinal)).Order(StringComparer.Ordinal).Select(k =>
        {
            string stem = k[..^".value".Length];
            return (stem[3..], probeFile.ReadFloat32(k), probeFile.ReadFloat32(stem + ".m"), probeFile.ReadFloat32(stem + ".v"));
        }).ToArray();
        var epochs = state.Epochs.Select(e => new FinetuneEpoch((int)e[0], (int)e[1], e[2], e[3])).ToArray();
        var steps = state.Steps.Select(e => ((int)e[0], e[1], e[2])).ToArray();
        return new Checkpoint(fingerprint, state.Step, state.Epoch, state.NextStart, state.EpochNats, state.EpochTargets, state.InitialValidationBits,
            epochs, steps, parameters, first, second, probe);
    }

    /// <summary>Removes the checkpoint once the run's outputs are in place.</summary>
    public static void Remove(string folder)
    {
        foreach (string f in new[] { folder, folder + ".old", folder + ".new" })
            if (Directory.Exists(f)) Directory.Delete(f, recursive: true);
    }

    private static IEnumerable<SafetensorsEntry> Entries(IReadOnlyDictionary<string, float[]> tensors, string prefix) =>
        tensors.OrderBy(t => t.Key, StringComparer.Ordinal).Select(t => SafetensorsEntry.FromFloat32(prefix + t.Key, [t.Value.Length], t.Value));
}

/// <summary>
/// state.json of a checkpoint: where the run was and the curves so far, their rows as number arrays ([epoch, steps, train CE
/// bits, validation CE bits] and [step, CE bits, gradient norm]; the counts are whole numbers).
/// </summary>
internal sealed record CheckpointStateJson(string Fingerprint, int Step, int Epoch, int NextStart, double EpochNats, long EpochTargets,
    double InitialValidationBits, IReadOnlyList<double[]> Epochs, IReadOnlyList<double[]> Steps);

/// <summary>Source-generated serialisation of state.json (compact); reading it back requires every field.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, RespectRequiredConstructorParameters = true,
    RespectNullableAnnotations = true)]
[JsonSerializable(typeof(CheckpointStateJson))]
internal sealed partial class CheckpointJsonContext : JsonSerializerContext;
