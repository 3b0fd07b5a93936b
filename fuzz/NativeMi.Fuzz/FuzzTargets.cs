using System.Text;
using NativeMi.IO;
using NativeMi.IO.Onnx;
using NativeMi.Models;
using NativeMi.Text;

namespace NativeMi.Fuzz;

/// <summary>
/// The parsers that read untrusted bytes, each wrapped as a fuzz target. A target returns normally
/// or throws an <see cref="InputException"/> (a clear message about the input); any other exception
/// is a finding. The same targets replay the committed corpus in the test suite.
/// </summary>
internal static class FuzzTargets
{
    /// <summary>Target names, in the order the README lists them.</summary>
    public static readonly IReadOnlyList<string> Names = ["safetensors", "index", "configs", "onnx"];

    /// <summary>Runs target <paramref name="name"/> on <paramref name="input"/> inside <paramref name="workspace"/>.</summary>
    /// <exception cref="ArgumentException">Unknown target name.</exception>
    public static void Run(string name, byte[] input, FuzzWorkspace workspace)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(workspace);
        switch (name)
        {
            case "safetensors": Safetensors(input, workspace); break;
            case "index": ShardedIndex(input, workspace); break;
            case "configs": ConfigsAndTokenizers(input, workspace); break;
            case "onnx": Onnx(input); break;
            default: throw new ArgumentException($"unknown fuzz target '{name}'; expected one of {string.Join(", ", Names)}", nameof(name));
        }
    }

    /// <summary>Whether <paramref name="e"/> is the rejection a parser is allowed to produce for bad bytes.</summary>
    public static bool IsExpectedRejection(Exception e) => e is InputException;

    /// <summary>Opens the bytes as a safetensors file and reads every tensor through each accessor that accepts its dtype.</summary>
    private static void Safetensors(byte[] input, FuzzWorkspace workspace)
    {
        string path = workspace.Write("model.safetensors", input);
        using SafetensorsFile file = SafetensorsFile.Open(path);
        ReadEveryTensor(file);
    }

    private static void ReadEveryTensor(SafetensorsFile file)
    {
        foreach (SafetensorsTensorInfo info in file.TensorsInFileOrder)
        {
            ReadOnlySpan<byte> bytes = file.GetBytes(info.Name);
            if (bytes.Length != info.ByteLength) throw new InvalidOperationException($"'{info.Name}': span of {bytes.Length} bytes for {info.ByteLength}");
            switch (info.DType)
            {
                case SafetensorsDType.F32 or SafetensorsDType.F16 or SafetensorsDType.BF16 or SafetensorsDType.F64:
                    _ = file.ReadFloat32(info.Name);
                    break;
                case SafetensorsDType.Bool or SafetensorsDType.U8 or SafetensorsDType.I8 or SafetensorsDType.I16 or SafetensorsDType.U16
                    or SafetensorsDType.I32 or SafetensorsDType.U32 or SafetensorsDType.I64 or SafetensorsDType.U64:
                    _ = file.ReadInt64(info.Name);
                    break;
            }
        }
    }

    /// <summary>
    /// Uses the bytes as model.safetensors.index.json beside two valid shards and opens the sharded
    /// store; a successful open reads every tensor.
    /// </summary>
    private static void ShardedIndex(byte[] input, FuzzWorkspace workspace)
    {
        workspace.EnsureShards();
        string indexPath = workspace.Write("model.safetensors.index.json", input);
        using WeightStore store = WeightStore.OpenSharded(indexPath);
        foreach (SafetensorsFile file in store.Files) ReadEveryTensor(file);
    }

    /// <summary>
    /// The first byte picks which file of a small valid model folder the rest replaces (config.json,
    /// a tokenizer config, a vocabulary or merges file, for a BERT or a GPT-2 folder); the folder's
    /// config and tokenizer are then loaded and used to encode and decode a sentence.
    /// </summary>
    private static void ConfigsAndTokenizers(byte[] input, FuzzWorkspace workspace)
    {
        if (input.Length == 0) return;
        ModelFolderFiles.Variant variant = ModelFolderFiles.Variants[input[0] % ModelFolderFiles.Variants.Count];
        string folder = workspace.ModelFolder(variant.Family);
        ModelFolderFiles.WriteValid(folder, variant.Family);
        File.WriteAllBytes(Path.Combine(folder, variant.FileName), input.AsSpan(1).ToArray());

        TransformerConfig config = TransformerConfig.Load(Path.Combine(folder, "config.json"));
        TextTokenizer tokenizer = TextTokenizer.Load(folder, config);
        EncodedSentence encoded = tokenizer.Encode("The quick brown fox, naïvely 42 times: can't stop!", config.MaxSequenceLength);
        foreach (int id in encoded.Ids)
            if (id < 0 || id >= config.VocabSize)
                throw new InvalidOperationException($"tokenizer produced id {id} outside vocab_size {config.VocabSize}");
        _ = tokenizer.Decode(encoded.Ids);
    }

    /// <summary>Parses the bytes as ONNX, analyses them as a BERT export and maps every tensor to its Hugging Face layout.</summary>
    private static void Onnx(byte[] input)
    {
        OnnxModel model = OnnxReader.Parse("fuzz.onnx", input);
        OnnxBertGraph bert = OnnxBertGraph.Analyze(model);
        IReadOnlyList<SafetensorsEntry> entries = OnnxBertImporter.BuildEntries(model, bert);
        _ = SafetensorsWriter.ToBytes(entries);
    }
}

/// <summary>A private scratch folder for one fuzzing process, reused for every input.</summary>
internal sealed class FuzzWorkspace : IDisposable
{
    private bool _shardsWritten;

    /// <summary>Creates a fresh folder under <paramref name="parent"/> (the system temp folder by default).</summary>
    public FuzzWorkspace(string? parent = null)
    {
        Root = Path.Combine(parent ?? Path.GetTempPath(), $"nativemi-fuzz-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(Root);
    }

    /// <summary>The scratch folder.</summary>
    public string Root { get; }

    /// <summary>Writes <paramref name="bytes"/> to <paramref name="fileName"/> in the scratch folder; returns its path.</summary>
    public string Write(string fileName, byte[] bytes)
    {
        string path = Path.Combine(Root, fileName);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    /// <summary>A model folder for <paramref name="family"/> inside the scratch folder.</summary>
    public string ModelFolder(ArchitectureFamily family)
    {
        string folder = Path.Combine(Root, family == ArchitectureFamily.Bert ? "bert" : "gpt2");
        Directory.CreateDirectory(folder);
        return folder;
    }

    /// <summary>Writes the two shards that the index seeds name (once per workspace).</summary>
    public void EnsureShards()
    {
        if (_shardsWritten) return;
        SafetensorsWriter.Write(Path.Combine(Root, "model-00001-of-00002.safetensors"),
            [SafetensorsEntry.FromFloat32("a.weight", [2, 3], [1, 2, 3, 4, 5, 6]), SafetensorsEntry.FromFloat32("a.bias", [3], [0.5f, -1, 2])]);
        SafetensorsWriter.Write(Path.Combine(Root, "model-00002-of-00002.safetensors"),
            [SafetensorsEntry.FromInt64("b.ids", [4], [1, 2, 3, 4])]);
        _shardsWritten = true;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        try { Directory.Delete(Root, recursive: true); }
        catch (IOException) { }
    }
}

/// <summary>The files of a small valid BERT and GPT-2 model folder (config and tokenizer only).</summary>
internal static class ModelFolderFiles
{
    /// <summary>One file the configs target can replace.</summary>
    public sealed record Variant(ArchitectureFamily Family, string FileName);

    /// <summary>Indexed by the first input byte (modulo the count).</summary>
    public static readonly IReadOnlyList<Variant> Variants =
    [
        new(ArchitectureFamily.Bert, "config.json"),
        new(ArchitectureFamily.Bert, "tokenizer_config.json"),
        new(ArchitectureFamily.Bert, "vocab.txt"),
        new(ArchitectureFamily.Bert, "special_tokens_map.json"),
        new(ArchitectureFamily.Gpt2, "config.json"),
        new(ArchitectureFamily.Gpt2, "vocab.json"),
        new(ArchitectureFamily.Gpt2, "merges.txt"),
        new(ArchitectureFamily.Gpt2, "tokenizer_config.json"),
    ];

    /// <summary>The valid content of every file of the folder for <paramref name="family"/>.</summary>
    public static IReadOnlyDictionary<string, string> ValidFiles(ArchitectureFamily family) =>
        family == ArchitectureFamily.Bert ? BertFiles : Gpt2Files;

    /// <summary>Writes the valid files of <paramref name="family"/> into <paramref name="folder"/>.</summary>
    public static void WriteValid(string folder, ArchitectureFamily family)
    {
        foreach (var (name, content) in ValidFiles(family))
            File.WriteAllText(Path.Combine(folder, name), content, new UTF8Encoding(false));
    }

    private static readonly string BertVocab = string.Join('\n',
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "quick", "brown", "fox", "can", "'", "t", "stop", "!", ",", ":",
        "4", "##2", "na", "##ive", "##ly", "time", "##s") + "\n";

    private static readonly Dictionary<string, string> BertFiles = new()
    {
        ["config.json"] = """
            {"architectures": ["BertModel"], "model_type": "bert", "hidden_act": "gelu", "hidden_size": 8, "intermediate_size": 16,
             "layer_norm_eps": 1e-12, "max_position_embeddings": 16, "num_attention_heads": 2, "num_hidden_layers": 1,
             "pad_token_id": 0, "type_vocab_size": 2, "vocab_size": 23, "position_embedding_type": "absolute"}
            """,
        ["tokenizer_config.json"] = """
            {"cls_token": "[CLS]", "do_lower_case": true, "mask_token": "[MASK]", "model_max_length": 16, "pad_token": "[PAD]",
             "sep_token": "[SEP]", "strip_accents": null, "tokenize_chinese_chars": true, "tokenizer_class": "BertTokenizer", "unk_token": "[UNK]"}
            """,
        ["special_tokens_map.json"] = """
            {"cls_token": "[CLS]", "mask_token": "[MASK]", "pad_token": "[PAD]", "sep_token": "[SEP]", "unk_token": "[UNK]"}
            """,
        ["vocab.txt"] = BertVocab,
    };

    private static readonly Dictionary<string, string> Gpt2Files = new()
    {
        ["config.json"] = """
            {"architectures": ["GPT2Model"], "model_type": "gpt2", "activation_function": "gelu_new", "n_ctx": 16, "n_embd": 8,
             "n_head": 2, "n_layer": 1, "n_positions": 16, "layer_norm_epsilon": 1e-05, "vocab_size": 20, "bos_token_id": 19, "eos_token_id": 19}
            """,
        ["vocab.json"] = """
            {"T": 0, "h": 1, "e": 2, "Ġ": 3, "q": 4, "u": 5, "i": 6, "c": 7, "k": 8, "o": 9, "x": 10, "!": 11, "t": 12,
             "Th": 13, "The": 14, "Ġq": 15, "qu": 16, "ck": 17, "ox": 18, "<|endoftext|>": 19}
            """,
        ["merges.txt"] = "#version: 0.2\nT h\nTh e\nĠ q\nq u\nc k\no x\n",
        ["tokenizer_config.json"] = """
            {"add_prefix_space": false, "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "model_max_length": 16,
             "tokenizer_class": "GPT2Tokenizer", "unk_token": "<|endoftext|>"}
            """,
    };
}
