using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

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
            if (tensor.Transposed)
            {
                var transposed = new byte[bytes.Length];
                Transpose(bytes.Span, transposed, (int)source.Dims[0], (int)source.Dims[1]);
                bytes = transposed;
            }
            entries.Add(new SafetensorsEntry(tensor.HfName, SafetensorsDType.F32, tensor.HfShape.ToArray(), bytes));
        }
        return entries;
    }

    /// <summary>
    /// Writes the file <see cref="BuildEntries"/> describes, byte for byte, streaming: each tensor is written from the ONNX
    /// bytes, a transposed one through one reused buffer, so the import holds the ONNX file and one matrix rather than a
    /// transposed copy of every matrix (a third of the model) until the file is written.
    /// </summary>
    private static void WriteWeights(OnnxModel model, OnnxBertGraph bert, string path)
    {
        var layout = new List<(OnnxTensor Source, OnnxBertTensor Tensor)>(bert.Tensors.Count);
        var placeholders = new List<SafetensorsEntry>(bert.Tensors.Count);
        foreach (OnnxBertTensor tensor in bert.Tensors)
        {
            OnnxTensor source = model.Graph.Initializers[tensor.OnnxName];
            long needed = tensor.HfShape.Aggregate(4L, (product, d) => checked(product * d)), held = source.GetFloat32Bytes().Length;
            // The check SafetensorsWriter makes of whole entries, made before anything is written.
            if (needed != held)
                throw new ArgumentException($"tensor '{tensor.HfName}': shape [{string.Join(", ", tensor.HfShape)}] x F32 needs {needed} bytes, got {held}", nameof(bert));
            layout.Add((source, tensor));
            placeholders.Add(new SafetensorsEntry(tensor.HfName, SafetensorsDType.F32, tensor.HfShape.ToArray(), ReadOnlyMemory<byte>.Empty));
        }
        byte[] header = SafetensorsWriter.BuildHeaderForLayout(placeholders, new Dictionary<string, string> { ["format"] = "pt" });
        AtomicFile.Write(path, stream =>
        {
            SafetensorsWriter.WritePrefix(stream, header);
            byte[] transposed = [];
            foreach (var (source, tensor) in layout)
            {
                ReadOnlySpan<byte> bytes = source.GetFloat32Bytes().Span;
                if (tensor.Transposed)
                {
                    if (transposed.Length < bytes.Length) transposed = new byte[bytes.Length];
                    Transpose(bytes, transposed, (int)source.Dims[0], (int)source.Dims[1]);
                    bytes = transposed.AsSpan(0, bytes.Length);
                }
                stream.Write(bytes);
            }
        });
    }

    /// <summary>Transposes a row-major [rows, columns] F32 matrix into [columns, rows] (<paramref name="destination"/> at least as long).</summary>
    private static void Transpose(ReadOnlySpan<byte> source, Span<byte> destination, int rows, int columns)
    {
        ReadOnlySpan<float> input = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(source);
        Span<float> output = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(destination);
        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<float> row = input.Slice(r * columns, columns);
            for (int c = 0; c < columns; c++) output[c * rows + r] = row[c];
        }
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

    /// <summary>Indented JSON with a final newline, as transformers' save_pretrained writes these files.</summary>
    private static string Json<T>(T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type) => JsonSerializer.Serialize(value, type) + "\n";

    private static string ConfigJson(OnnxBertGraph bert, Vocabulary vocab) => Json(new BertConfigJson(
        Architectures: ["BertModel"],
        AttentionProbsDropoutProb: 0.1,
        ClassifierDropout: null,
        HiddenAct: bert.HiddenAct,
        HiddenDropoutProb: 0.1,
        HiddenSize: bert.HiddenSize,
        InitializerRange: 0.02,
        IntermediateSize: bert.IntermediateSize,
        LayerNormEps: bert.LayerNormEps,
        MaxPositionEmbeddings: bert.MaxPositionEmbeddings,
        ModelType: "bert",
        NumAttentionHeads: bert.NumAttentionHeads,
        NumHiddenLayers: bert.NumHiddenLayers,
        PadTokenId: vocab.Tokens.ToList().IndexOf("[PAD]"),
        PositionEmbeddingType: "absolute",
        TorchDtype: "float32",
        TypeVocabSize: bert.TypeVocabSize,
        UseCache: true,
        VocabSize: bert.VocabSize), ImportJsonContext.Default.BertConfigJson);

    private static string TokenizerConfigJson(OnnxBertGraph bert, Vocabulary vocab) => Json(new BertTokenizerConfigJson(
        CleanUpTokenizationSpaces: true,
        ClsToken: "[CLS]",
        DoBasicTokenize: true,
        DoLowerCase: vocab.Lowercase,
        MaskToken: "[MASK]",
        ModelMaxLength: bert.MaxPositionEmbeddings,
        NeverSplit: null,
        PadToken: "[PAD]",
        SepToken: "[SEP]",
        StripAccents: null,
        TokenizeChineseChars: true,
        TokenizerClass: "BertTokenizer",
        UnkToken: "[UNK]"), ImportJsonContext.Default.BertTokenizerConfigJson);

    private static string SpecialTokensMapJson()
    {
        var map = new OrderedDictionary<string, string>(StringComparer.Ordinal);
        foreach ((string role, string token) in SpecialTokens) map.Add(role, token);
        return Json(map, ImportJsonContext.Default.OrderedDictionaryStringString);
    }

    private static string ImportRecordJson(OnnxModel model, OnnxBertGraph bert, string onnxSha256, string vocabPath, Vocabulary vocab)
    {
        var opsets = new OrderedDictionary<string, long>(StringComparer.Ordinal);
        // A domain imported twice (which ONNX does not allow) keeps its first place and its last version.
        foreach (OnnxOpsetImport opset in model.OpsetImports) opsets[opset.Domain.Length == 0 ? "ai.onnx" : opset.Domain] = opset.Version;
        var mapping = new OrderedDictionary<string, string>(StringComparer.Ordinal);
        foreach (OnnxBertTensor tensor in bert.Tensors) mapping.Add(tensor.OnnxName, tensor.HfName); // each initializer serves one HF tensor (OnnxBertGraph checks)
        // Initializers the HF model has no place for (e.g. the position_ids buffer), listed so nothing is dropped silently.
        var mapped = bert.Tensors.Select(t => t.OnnxName).ToHashSet(StringComparer.Ordinal);
        return Json(new ImportRecordJson(
            Importer: "NativeMi.IO.Onnx.OnnxBertImporter",
            FormatVersion: 1,
            Source: model.FilePath,
            SourceSha256: onnxSha256,
            SourceProducer: $"{model.ProducerName} {model.ProducerVersion}".Trim(),
            SourceIrVersion: model.IrVersion,
            SourceOpsets: opsets,
            VocabSource: vocabPath,
            VocabSha256: vocab.Sha256,
            VocabLineEndingsNormalized: vocab.HadCarriageReturns,
            NumAttentionHeadsFrom: bert.HeadsEvidence,
            LayerNormEpsFrom: bert.EpsEvidence,
            DoLowerCaseFromVocab: vocab.Lowercase,
            HiddenStateValues: bert.HiddenStateValueNames,
            Mapping: mapping,
            UnmappedInitializers: [.. model.Graph.InitializerList.Where(t => !mapped.Contains(t.Name)).Select(t => $"{t.Name} {t.DataType} {t.ShapeText}")],
            Transposed: [.. bert.Tensors.Where(t => t.Transposed).Select(t => t.HfName)]), ImportJsonContext.Default.ImportRecordJson);
    }

    private static void TryDeleteFolder(string path)
    {
        try { if (Directory.Exists(path)) Directory.Delete(path, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}

/// <summary>config.json of an imported model, in the key order transformers writes.</summary>
internal sealed record BertConfigJson(IReadOnlyList<string> Architectures, double AttentionProbsDropoutProb, double? ClassifierDropout, string HiddenAct,
    double HiddenDropoutProb, int HiddenSize, double InitializerRange, int IntermediateSize, double LayerNormEps, int MaxPositionEmbeddings, string ModelType,
    int NumAttentionHeads, int NumHiddenLayers, int PadTokenId, string PositionEmbeddingType, string TorchDtype, int TypeVocabSize, bool UseCache, int VocabSize);

/// <summary>tokenizer_config.json of an imported model.</summary>
internal sealed record BertTokenizerConfigJson(bool CleanUpTokenizationSpaces, string ClsToken, bool DoBasicTokenize, bool DoLowerCase, string MaskToken,
    int ModelMaxLength, IReadOnlyList<string>? NeverSplit, string PadToken, string SepToken, bool? StripAccents, bool TokenizeChineseChars, string TokenizerClass,
    string UnkToken);

/// <summary>import.json: where every file and tensor of an imported model came from.</summary>
internal sealed record ImportRecordJson(string Importer, int FormatVersion, string Source, [property: JsonPropertyName("source_sha256")] string SourceSha256,
    string SourceProducer, long SourceIrVersion, OrderedDictionary<string, long> SourceOpsets, string VocabSource,
    [property: JsonPropertyName("vocab_sha256")] string VocabSha256, bool VocabLineEndingsNormalized, string NumAttentionHeadsFrom, string LayerNormEpsFrom,
    bool DoLowerCaseFromVocab, IReadOnlyList<string> HiddenStateValues, OrderedDictionary<string, string> Mapping, IReadOnlyList<string> UnmappedInitializers,
    IReadOnlyList<string> Transposed);

/// <summary>Source-generated serialisation of the imported model's JSON files (indented, the default encoder's escaping).</summary>
[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(BertConfigJson))]
[JsonSerializable(typeof(BertTokenizerConfigJson))]
[JsonSerializable(typeof(ImportRecordJson))]
[JsonSerializable(typeof(OrderedDictionary<string, string>))]
internal sealed partial class ImportJsonContext : JsonSerializerContext;
