using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace NativeMi.IO.Onnx;

/// <summary>
/// Turns an ONNX export of a Hugging Face BertModel plus its vocab.txt into a Hugging Face model
/// folder (config.json, model.safetensors, vocab.txt, tokenizer_config.json,
/// special_tokens_map.json) and an import.json recording where every tensor came from.
/// </summary>
internal static class OnnxBertImporter
{
    /// <summary>The special tokens a BERT WordPiece vocabulary must contain.</summary>
    public static readonly IReadOnlyList<(string Role, string Token)> SpecialTokens =
        [("cls_token", "[CLS]"), ("mask_token", "[MASK]"), ("pad_token", "[PAD]"), ("sep_token", "[SEP]"), ("unk_token", "[UNK]")];

    /// <summary>
    /// Imports <paramref name="onnxPath"/> and <paramref name="vocabPath"/> into
    /// <paramref name="outputDirectory"/>. Everything is written into a temporary sibling folder that
    /// is renamed into place at the end, so the output folder is either complete or absent.
    /// </summary>
    /// <param name="onnxPath">The ONNX model.</param>
    /// <param name="vocabPath">The WordPiece vocabulary, one token per line.</param>
    /// <param name="outputDirectory">The folder to create; it must not exist, or be empty.</param>
    /// <param name="log">Receives progress lines.</param>
    /// <returns>The analysis of the ONNX graph (hyper-parameters, tensor mapping, hidden-state values).</returns>
    /// <exception cref="ModelFormatException">The model or vocabulary is malformed or not a BERT export.</exception>
    /// <exception cref="OutputWriteException">The output folder exists with content, or cannot be written.</exception>
    public static OnnxBertGraph Import(string onnxPath, string vocabPath, string outputDirectory, IProgress<string>? log = null)
    {
        string onnxFullPath = Path.GetFullPath(onnxPath);
        string vocabFullPath = Path.GetFullPath(vocabPath);
        string outputFullPath = Path.TrimEndingDirectorySeparator(Path.GetFullPath(outputDirectory));
        if (Directory.Exists(outputFullPath) && Directory.EnumerateFileSystemEntries(outputFullPath).Any())
            throw new OutputWriteException(outputFullPath, "the folder already exists and is not empty; choose a new folder or remove it");

        log?.Report($"reading {onnxFullPath}");
        if (!File.Exists(onnxFullPath)) throw new FileNotFoundException($"{onnxFullPath}: ONNX model not found", onnxFullPath);
        byte[] onnxBytes = File.ReadAllBytes(onnxFullPath);
        string onnxSha256 = Convert.ToHexStringLower(SHA256.HashData(onnxBytes));
        OnnxModel model = OnnxReader.Parse(onnxFullPath, onnxBytes);
        OnnxBertGraph bert = OnnxBertGraph.Analyze(model);
        log?.Report($"found BERT: {bert.NumHiddenLayers} layers, hidden {bert.HiddenSize}, {bert.NumAttentionHeads} heads, " +
                    $"intermediate {bert.IntermediateSize}, vocab {bert.VocabSize}, eps {bert.LayerNormEps:R}");

        Vocabulary vocab = ReadVocabulary(vocabFullPath, bert.VocabSize);

        string parent = Path.GetDirectoryName(outputFullPath) ?? ".";
        string temporary = Path.Combine(parent, $".{Path.GetFileName(outputFullPath)}.importing-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(temporary);
            log?.Report("writing model.safetensors");
            WriteWeights(model, bert, Path.Combine(temporary, "model.safetensors"));
            AtomicFile.WriteAllBytes(Path.Combine(temporary, "vocab.txt"), vocab.NormalizedBytes);
            AtomicFile.WriteAllText(Path.Combine(temporary, "config.json"), ConfigJson(bert, vocab));
            AtomicFile.WriteAllText(Path.Combine(temporary, "tokenizer_config.json"), TokenizerConfigJson(bert, vocab));
            AtomicFile.WriteAllText(Path.Combine(temporary, "special_tokens_map.json"), SpecialTokensMapJson());
            AtomicFile.WriteAllText(Path.Combine(temporary, "import.json"), ImportRecordJson(model, bert, onnxSha256, vocabFullPath, vocab));
            if (Directory.Exists(outputFullPath)) Directory.Delete(outputFullPath); // empty, checked above
            Directory.Move(temporary, outputFullPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException && e is not OutputWriteException)
        {
            TryDeleteFolder(temporary);
            throw new OutputWriteException(outputFullPath, e.Message, e);
        }
        catch
        {
            TryDeleteFolder(temporary);
            throw;
        }
        log?.Report($"imported into {outputFullPath}");
        return bert;
    }

    /// <summary>The HF tensors in HF layout, as F32 little-endian bytes, keyed by HF name (tests compare them with the ONNX initializers).</summary>
    internal static IReadOnlyList<SafetensorsEntry> BuildEntries(OnnxModel model, OnnxBertGraph bert)
    {
        var entries = new List<SafetensorsEntry>(bert.Tensors.Count);
        foreach (OnnxBertTensor tensor in bert.Tensors)
        {
            OnnxTensor source = model.Graph.Initializers[tensor.OnnxName];
            ReadOnlyMemory<byte> bytes = source.GetFloat32Bytes();
            if (tensor.Transposed) bytes = Transpose(bytes.Span, (int)source.Dims[0], (int)source.Dims[1]);
            entries.Add(new SafetensorsEntry(tensor.HfName, SafetensorsDType.F32, tensor.HfShape.ToArray(), bytes));
        }
        return entries;
    }

    private static void WriteWeights(OnnxModel model, OnnxBertGraph bert, string path) =>
        SafetensorsWriter.Write(path, BuildEntries(model, bert), new Dictionary<string, string> { ["format"] = "pt" });

    /// <summary>Transposes a row-major [rows, columns] F32 matrix into [columns, rows].</summary>
    private static byte[] Transpose(ReadOnlySpan<byte> source, int rows, int columns)
    {
        ReadOnlySpan<float> input = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(source);
        var output = new float[input.Length];
        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<float> row = input.Slice(r * columns, columns);
            for (int c = 0; c < columns; c++) output[c * rows + r] = row[c];
        }
        return System.Runtime.InteropServices.MemoryMarshal.AsBytes(output.AsSpan()).ToArray();
    }

    private sealed record Vocabulary(IReadOnlyList<string> Tokens, byte[] NormalizedBytes, string Sha256, bool HadCarriageReturns, bool Lowercase);

    /// <summary>
    /// Reads vocab.txt. Line endings are normalised to "\n" because packaged vocabularies use
    /// "\r\n", which tokenizers that split on "\n" alone would keep as part of every token.
    /// </summary>
    private static Vocabulary ReadVocabulary(string path, int vocabSize)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: vocabulary not found", path);
        byte[] bytes = File.ReadAllBytes(path);
        string text;
        try
        {
            text = new UTF8Encoding(false, true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw new ModelFormatException(path, "vocabulary is not valid UTF-8");
        }
        if (text.StartsWith('\uFEFF')) text = text[1..];
        bool hadCarriageReturns = text.Contains('\r');
        var tokens = text.Split('\n').Select(line => line.TrimEnd('\r')).ToList();
        if (tokens.Count > 0 && tokens[^1].Length == 0) tokens.RemoveAt(tokens.Count - 1);
        if (tokens.Count == 0) throw new ModelFormatException(path, "vocabulary is empty");
        if (tokens.Count > vocabSize)
            throw new ModelFormatException(path, $"vocabulary has {tokens.Count} tokens but the model's word embedding has only {vocabSize} rows");
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < tokens.Count; i++) index.TryAdd(tokens[i], i);
        foreach ((string role, string token) in SpecialTokens)
            if (!index.ContainsKey(token)) throw new ModelFormatException(path, $"vocabulary lacks the {role} '{token}'");
        // Uncased BERT vocabularies hold no ASCII capitals outside the bracketed special tokens.
        bool lowercase = !tokens.Any(t => !(t.StartsWith('[') && t.EndsWith(']')) && t.Any(char.IsAsciiLetterUpper));
        byte[] normalized = new UTF8Encoding(false).GetBytes(string.Concat(tokens.Select(t => t + "\n")));
        return new Vocabulary(tokens, normalized, Convert.ToHexStringLower(SHA256.HashData(bytes)), hadCarriageReturns, lowercase);
    }

    private static string Json(Action<Utf8JsonWriter> write)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            write(json);
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray()) + "\n";
    }

    private static string ConfigJson(OnnxBertGraph bert, Vocabulary vocab) => Json(json =>
    {
        json.WriteStartArray("architectures");
        json.WriteStringValue("BertModel");
        json.WriteEndArray();
        json.WriteNumber("attention_probs_dropout_prob", 0.1);
        json.WriteNull("classifier_dropout");
        json.WriteString("hidden_act", bert.HiddenAct);
        json.WriteNumber("hidden_dropout_prob", 0.1);
        json.WriteNumber("hidden_size", bert.HiddenSize);
        json.WriteNumber("initializer_range", 0.02);
        json.WriteNumber("intermediate_size", bert.IntermediateSize);
        json.WriteNumber("layer_norm_eps", bert.LayerNormEps);
        json.WriteNumber("max_position_embeddings", bert.MaxPositionEmbeddings);
        json.WriteString("model_type", "bert");
        json.WriteNumber("num_attention_heads", bert.NumAttentionHeads);
        json.WriteNumber("num_hidden_layers", bert.NumHiddenLayers);
        json.WriteNumber("pad_token_id", vocab.Tokens.ToList().IndexOf("[PAD]"));
        json.WriteString("position_embedding_type", "absolute");
        json.WriteString("torch_dtype", "float32");
        json.WriteNumber("type_vocab_size", bert.TypeVocabSize);
        json.WriteBoolean("use_cache", true);
        json.WriteNumber("vocab_size", bert.VocabSize);
    });

    private static string TokenizerConfigJson(OnnxBertGraph bert, Vocabulary vocab) => Json(json =>
    {
        json.WriteBoolean("clean_up_tokenization_spaces", true);
        json.WriteString("cls_token", "[CLS]");
        json.WriteBoolean("do_basic_tokenize", true);
        json.WriteBoolean("do_lower_case", vocab.Lowercase);
        json.WriteString("mask_token", "[MASK]");
        json.WriteNumber("model_max_length", bert.MaxPositionEmbeddings);
        json.WriteNull("never_split");
        json.WriteString("pad_token", "[PAD]");
        json.WriteString("sep_token", "[SEP]");
        json.WriteNull("strip_accents");
        json.WriteBoolean("tokenize_chinese_chars", true);
        json.WriteString("tokenizer_class", "BertTokenizer");
        json.WriteString("unk_token", "[UNK]");
    });

    private static string SpecialTokensMapJson() => Json(json =>
    {
        foreach ((string role, string token) in SpecialTokens) json.WriteString(role, token);
    });

    private static string ImportRecordJson(OnnxModel model, OnnxBertGraph bert, string onnxSha256, string vocabPath, Vocabulary vocab) => Json(json =>
    {
        json.WriteString("importer", "NativeMi.IO.Onnx.OnnxBertImporter");
        json.WriteNumber("format_version", 1);
        json.WriteString("source", model.FilePath);
        json.WriteString("source_sha256", onnxSha256);
        json.WriteString("source_producer", $"{model.ProducerName} {model.ProducerVersion}".Trim());
        json.WriteNumber("source_ir_version", model.IrVersion);
        json.WriteStartObject("source_opsets");
        foreach (OnnxOpsetImport opset in model.OpsetImports) json.WriteNumber(opset.Domain.Length == 0 ? "ai.onnx" : opset.Domain, opset.Version);
        json.WriteEndObject();
        json.WriteString("vocab_source", vocabPath);
        json.WriteString("vocab_sha256", vocab.Sha256);
        json.WriteBoolean("vocab_line_endings_normalized", vocab.HadCarriageReturns);
        json.WriteString("num_attention_heads_from", bert.HeadsEvidence);
        json.WriteString("layer_norm_eps_from", bert.EpsEvidence);
        json.WriteBoolean("do_lower_case_from_vocab", vocab.Lowercase);
        json.WriteStartArray("hidden_state_values");
        foreach (string name in bert.HiddenStateValueNames) json.WriteStringValue(name);
        json.WriteEndArray();
        json.WriteStartObject("mapping");
        foreach (OnnxBertTensor tensor in bert.Tensors) json.WriteString(tensor.OnnxName, tensor.HfName);
        json.WriteEndObject();
        // Initializers the HF model has no place for (e.g. the position_ids buffer), listed so nothing is dropped silently.
        var mapped = bert.Tensors.Select(t => t.OnnxName).ToHashSet(StringComparer.Ordinal);
        json.WriteStartArray("unmapped_initializers");
        foreach (OnnxTensor tensor in model.Graph.InitializerList.Where(t => !mapped.Contains(t.Name)))
            json.WriteStringValue($"{tensor.Name} {tensor.DataType} {tensor.ShapeText}");
        json.WriteEndArray();
        json.WriteStartArray("transposed");
        foreach (OnnxBertTensor tensor in bert.Tensors.Where(t => t.Transposed)) json.WriteStringValue(tensor.HfName);
        json.WriteEndArray();
    });

    private static void TryDeleteFolder(string path)
    {
        try { if (Directory.Exists(path)) Directory.Delete(path, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
