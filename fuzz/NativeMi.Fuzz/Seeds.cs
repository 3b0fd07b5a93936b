using System.Text;
using NativeMi.IO;
using NativeMi.Models;

namespace NativeMi.Fuzz;

/// <summary>Small valid inputs that start each target's corpus: a fuzzer mutates them toward the edges.</summary>
public static class Seeds
{
    /// <summary>Writes FOLDER/TARGET/seed-* for the safetensors, index and configs targets.</summary>
    public static int Write(string folder)
    {
        string safetensors = Directory.CreateDirectory(Path.Combine(folder, "safetensors")).FullName;
        Save(safetensors, "f32", SafetensorsWriter.ToBytes([SafetensorsEntry.FromFloat32("w", [2, 2], [1, -2, 3.5f, 0])]));
        Save(safetensors, "mixed-metadata", SafetensorsWriter.ToBytes(
            [
                SafetensorsEntry.FromFloat32("embeddings.weight", [3, 2], [1, 2, 3, 4, 5, 6]),
                SafetensorsEntry.FromInt64("position_ids", [1, 3], [0, 1, 2]),
                new SafetensorsEntry("half", SafetensorsDType.F16, [2], new byte[] { 0x00, 0x3c, 0x00, 0xc0 }),
                new SafetensorsEntry("brain", SafetensorsDType.BF16, [2], new byte[] { 0x80, 0x3f, 0x00, 0x40 }),
                new SafetensorsEntry("mask", SafetensorsDType.Bool, [3], new byte[] { 1, 0, 1 }),
                new SafetensorsEntry("scalar", SafetensorsDType.F64, [], BitConverter.GetBytes(2.5)),
                new SafetensorsEntry("empty", SafetensorsDType.I32, [0, 4], Array.Empty<byte>()),
            ],
            new Dictionary<string, string> { ["format"] = "pt" }));

        string index = Directory.CreateDirectory(Path.Combine(folder, "index")).FullName;
        Save(index, "two-shards", Encoding.UTF8.GetBytes("""
            {"metadata": {"total_size": 44}, "weight_map": {"a.weight": "model-00001-of-00002.safetensors",
             "a.bias": "model-00001-of-00002.safetensors", "b.ids": "model-00002-of-00002.safetensors"}}
            """));

        string configs = Directory.CreateDirectory(Path.Combine(folder, "configs")).FullName;
        for (int i = 0; i < ModelFolderFiles.Variants.Count; i++)
        {
            ModelFolderFiles.Variant variant = ModelFolderFiles.Variants[i];
            byte[] content = Encoding.UTF8.GetBytes(ModelFolderFiles.ValidFiles(variant.Family)[variant.FileName]);
            string family = variant.Family == ArchitectureFamily.Bert ? "bert" : "gpt2";
            Save(configs, $"{i}-{family}-{variant.FileName}", [(byte)i, .. content]);
        }
        return 0;
    }

    private static void Save(string folder, string name, byte[] bytes) => File.WriteAllBytes(Path.Combine(folder, "seed-" + name), bytes);
}
