using System.Text.Json.Nodes;
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
        var epochs = new JsonArray();
        foreach (FinetuneEpoch e in c.Epochs) epochs.Add((JsonNode)new JsonArray(e.Epoch, e.Steps, e.TrainCrossEntropyBits, e.ValidationCrossEntropyBits));
        var steps = new JsonArray();
        foreach (var (step, bits, norm) in c.Steps) steps.Add((JsonNode)new JsonArray(step, bits, norm));
        var state = new JsonObject
        {
            ["fingerprint"] = c.Fingerprint, ["step"] = c.Step, ["epoch"] = c.Epoch, ["next_start"] = c.NextStart, ["epoch_nats"] = c.EpochNats,
            ["epoch_targets"] = c.EpochTargets, ["initial_validation_bits"] = c.InitialValidationBits, ["epochs"] = epochs, ["steps"] = steps,
        };
        // Written last: a folder with state.json is complete.
        AtomicFile.WriteAllText(Path.Combine(fresh, StateFile), state.ToJsonString());
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
        JsonNode state = JsonNode.Parse(File.ReadAllText(Path.Combine(source, StateFile)))!;
        if ((string?)state["fingerprint"] != fingerprint)
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
        var epochs = state["epochs"]!.AsArray().Select(e => new FinetuneEpoch((int)e![0]!, (int)e[1]!, (double)e[2]!, (double)e[3]!)).ToArray();
        var steps = state["steps"]!.AsArray().Select(e => ((int)e![0]!, (double)e[1]!, (double)e[2]!)).ToArray();
        return new Checkpoint(fingerprint, (int)state["step"]!, (int)state["epoch"]!, (int)state["next_start"]!, (double)state["epoch_nats"]!,
            (long)state["epoch_targets"]!, (double)state["initial_validation_bits"]!, epochs, steps, parameters, first, second, probe);
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
