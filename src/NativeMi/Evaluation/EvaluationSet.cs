using System.Security.Cryptography;
using System.Text;

namespace NativeMi.Evaluation;

/// <summary>A held-out synset: its definition is a retrieval query.</summary>
/// <param name="Id">WordNet offset and data-file letter, e.g. <c>02084071-n</c>.</param>
/// <param name="Lemmas">The synset's lemmas in WordNet spelling (<c>_</c> between words), lower case.</param>
/// <param name="Definition">The gloss before its first example.</param>
public sealed record EvaluationGloss(string Id, IReadOnlyList<string> Lemmas, string Definition);

/// <summary>A held-out example sentence: a retrieval candidate, and a member of same-sense pairs.</summary>
/// <param name="Id">The synset id, a dot and the example's place among the gloss's quoted texts.</param>
/// <param name="Synset">Index of its synset in <see cref="EvaluationSet.Glosses"/>.</param>
/// <param name="Lemmas">Those of the synset's lemmas the sentence uses (possibly none).</param>
/// <param name="Sentence">The sentence, as the corpus spells it.</param>
public sealed record EvaluationExample(string Id, int Synset, IReadOnlyList<string> Lemmas, string Sentence);

/// <summary>Two example sentences that use one lemma, of the same synset or of two of its synsets.</summary>
/// <param name="Id">The pair's id.</param>
/// <param name="Lemma">The shared lemma and its part of speech, <c>bank-n</c>.</param>
/// <param name="First">Index of one example in <see cref="EvaluationSet.Examples"/>.</param>
/// <param name="Second">Index of the other example.</param>
/// <param name="SameSynset">Whether both sentences come from one synset (the positive class).</param>
public sealed record EvaluationPair(string Id, string Lemma, int First, int Second, bool SameSynset);

/// <summary>
/// The evaluation of understanding without task supervision (data/README.md, "Evaluation without task supervision"): the
/// held-out glosses, their example sentences and the same-sense pairs, read from the tab-separated files
/// scripts/build_evaluation.py writes.
/// </summary>
public sealed class EvaluationSet
{
    /// <summary>File of the glosses, inside the evaluation folder.</summary>
    internal const string GlossesFile = "glosses.tsv";
    /// <summary>File of the example sentences.</summary>
    internal const string ExamplesFile = "examples.tsv";
    /// <summary>File of the same-sense pairs.</summary>
    internal const string PairsFile = "pairs.tsv";
    /// <summary>File listing every text the evaluation embeds, for fine-tuning to leave out.</summary>
    internal const string HeldOutFile = "heldout-sentences.txt";

    private static readonly string[] GlossColumns = ["synset", "lemmas", "definition"];
    private static readonly string[] ExampleColumns = ["example", "synset", "lemmas", "sentence"];
    private static readonly string[] PairColumns = ["pair", "lemma", "example_a", "example_b", "same_synset"];

    /// <summary>Builds a set from parts (tests build small ones by hand); checks what <see cref="Load"/> checks.</summary>
    /// <exception cref="ArgumentException">A gloss has no example, an index is out of range, or a pair joins an example to itself.</exception>
    internal EvaluationSet(IReadOnlyList<EvaluationGloss> glosses, IReadOnlyList<EvaluationExample> examples, IReadOnlyList<EvaluationPair> pairs, string folder = "")
    {
        ArgumentNullException.ThrowIfNull(glosses);
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentNullException.ThrowIfNull(pairs);
        string? problem = Check(glosses, examples, pairs);
        if (problem is not null) throw new ArgumentException(problem, nameof(examples));
        Glosses = glosses;
        Examples = examples;
        Pairs = pairs;
        Folder = folder;
    }

    /// <summary>The folder the set was read from (empty for a set built in memory).</summary>
    public string Folder { get; }
    /// <summary>The held-out synsets, each a retrieval query.</summary>
    public IReadOnlyList<EvaluationGloss> Glosses { get; }
    /// <summary>The held-out example sentences, every one a candidate of every query.</summary>
    public IReadOnlyList<EvaluationExample> Examples { get; }
    /// <summary>The same-sense pairs.</summary>
    public IReadOnlyList<EvaluationPair> Pairs { get; }
    /// <summary>SHA-256 of each file read, by file name (empty for a set built in memory).</summary>
    public IReadOnlyDictionary<string, string> FileSha256 { get; private init; } = new Dictionary<string, string>();

    /// <summary>Every text the evaluation embeds: the definitions and the example sentences.</summary>
    internal IReadOnlySet<string> HeldOutTexts => _heldOut ??= Glosses.Select(g => g.Definition).Concat(Examples.Select(e => e.Sentence)).ToHashSet(StringComparer.Ordinal);
    private HashSet<string>? _heldOut;

    /// <summary>
    /// The sentences of <paramref name="corpus"/> that the evaluation does not use, in their order: the filter that keeps
    /// a fine-tuning corpus disjoint from the evaluation (data/wordnet-finetune.txt is the packaged corpus so filtered).
    /// Sentences are compared trimmed, as the corpus reader trims its lines.
    /// </summary>
    internal IEnumerable<string> ExcludeHeldOut(IEnumerable<string> corpus)
    {
        ArgumentNullException.ThrowIfNull(corpus);
        IReadOnlySet<string> heldOut = HeldOutTexts;
        return corpus.Where(s => !heldOut.Contains(s.Trim()));
    }

    /// <summary>Where the packaged evaluation is looked for (beside the program).</summary>
    public static string DefaultFolder => Path.Combine(AppContext.BaseDirectory, "data", "wordnet-eval");

    /// <summary>Reads glosses.tsv, examples.tsv and pairs.tsv from <paramref name="folder"/>.</summary>
    /// <exception cref="InputException">The folder or a file is missing, or a line is malformed or refers to an unknown id; the message names
    /// the file, the line and what was expected there.</exception>
    public static EvaluationSet Load(string folder)
    {
        ArgumentNullException.ThrowIfNull(folder);
        string full = Path.GetFullPath(folder);
        if (File.Exists(full))
            throw new InputException($"{full}: is a file, not an evaluation folder; expected a folder holding {GlossesFile}, {ExamplesFile} and {PairsFile} (scripts/build_evaluation.py writes them)");
        if (!Directory.Exists(full))
            throw new InputException($"{full}: evaluation folder not found; expected a folder holding {GlossesFile}, {ExamplesFile} and {PairsFile} (scripts/build_evaluation.py writes them)");
        var hashes = new Dictionary<string, string>(StringComparer.Ordinal);

        var glosses = new List<EvaluationGloss>();
        var synsetIndex = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (path, line, fields) in Rows(full, GlossesFile, GlossColumns, hashes))
        {
            if (!synsetIndex.TryAdd(fields[0], glosses.Count)) throw new InputException($"{path}:{line}: synset '{fields[0]}' is listed twice");
            if (fields[2].Length == 0) throw new InputException($"{path}:{line}: synset '{fields[0]}' has an empty definition");
            glosses.Add(new EvaluationGloss(fields[0], Words(fields[1]), fields[2]));
        }

        var examples = new List<EvaluationExample>();
        var exampleIndex = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (path, line, fields) in Rows(full, ExamplesFile, ExampleColumns, hashes))
        {
            if (!synsetIndex.TryGetValue(fields[1], out int synset))
                throw new InputException($"{path}:{line}: example '{fields[0]}' names synset '{fields[1]}', which is not in {GlossesFile}");
            if (!exampleIndex.TryAdd(fields[0], examples.Count)) throw new InputException($"{path}:{line}: example '{fields[0]}' is listed twice");
            if (fields[3].Length == 0) throw new InputException($"{path}:{line}: example '{fields[0]}' has an empty sentence");
            examples.Add(new EvaluationExample(fields[0], synset, Words(fields[2]), fields[3]));
        }
        var withExamples = new bool[glosses.Count];
        foreach (EvaluationExample e in examples) withExamples[e.Synset] = true;
        int bare = Array.IndexOf(withExamples, false);
        if (bare >= 0)
            throw new InputException($"{Path.Combine(full, ExamplesFile)}: synset '{glosses[bare].Id}' of {GlossesFile} has no example; every query needs at least one right answer");

        var pairs = new List<EvaluationPair>();
        var pairIds = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (path, line, fields) in Rows(full, PairsFile, PairColumns, hashes))
        {
            if (!pairIds.Add(fields[0])) throw new InputException($"{path}:{line}: pair '{fields[0]}' is listed twice");
            int Example(string id) => exampleIndex.TryGetValue(id, out int index) ? index
                : throw new InputException($"{path}:{line}: pair '{fields[0]}' names example '{id}', which is not in {ExamplesFile}");
            int a = Example(fields[2]), b = Example(fields[3]);
            if (a == b) throw new InputException($"{path}:{line}: pair '{fields[0]}' joins example '{fields[2]}' to itself");
            bool same = fields[4] switch
            {
                "1" => true,
                "0" => false,
                _ => throw new InputException($"{path}:{line}: same_synset must be 1 or 0, got '{fields[4]}'"),
            };
            if (same != (examples[a].Synset == examples[b].Synset))
                throw new InputException($"{path}:{line}: pair '{fields[0]}' says same_synset {fields[4]}, but its examples are of synsets " +
                    $"'{glosses[examples[a].Synset].Id}' and '{glosses[examples[b].Synset].Id}'");
            pairs.Add(new EvaluationPair(fields[0], fields[1], a, b, same));
        }
        // Pairs of one kind only (or none) are allowed: the run then reports retrieval alone, with a warning.
        return new EvaluationSet(glosses, examples, pairs, full) { FileSha256 = hashes };
    }

    /// <summary>
    /// A smaller set: the first <paramref name="glossCount"/> glosses, their examples, and the pairs among those examples.
    /// For quick runs and tests; the figures of a subset are not comparable with the full set's.
    /// </summary>
    internal EvaluationSet Subset(int glossCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(glossCount, 1);
        if (glossCount >= Glosses.Count) return this;
        var examples = new List<EvaluationExample>();
        var newIndex = new Dictionary<int, int>();
        for (int i = 0; i < Examples.Count; i++)
        {
            if (Examples[i].Synset >= glossCount) continue;
            newIndex[i] = examples.Count;
            examples.Add(Examples[i]);
        }
        var pairs = Pairs.Where(p => newIndex.ContainsKey(p.First) && newIndex.ContainsKey(p.Second))
            .Select(p => p with { First = newIndex[p.First], Second = newIndex[p.Second] }).ToList();
        return new EvaluationSet(Glosses.Take(glossCount).ToList(), examples, pairs, Folder) { FileSha256 = FileSha256 };
    }

    private static string[] Words(string field) => field.Split(' ', StringSplitOptions.RemoveEmptyEntries);

    private static string? Check(IReadOnlyList<EvaluationGloss> glosses, IReadOnlyList<EvaluationExample> examples, IReadOnlyList<EvaluationPair> pairs)
    {
        if (glosses.Count == 0) return "the evaluation has no gloss";
        var covered = new bool[glosses.Count];
        foreach (EvaluationExample e in examples)
        {
            if (e.Synset < 0 || e.Synset >= glosses.Count) return $"example '{e.Id}' names synset {e.Synset}, outside 0..{glosses.Count - 1}";
            covered[e.Synset] = true;
        }
        int bare = Array.IndexOf(covered, false);
        if (bare >= 0) return $"gloss '{glosses[bare].Id}' has no example";
        foreach (EvaluationPair p in pairs)
        {
            if (p.First < 0 || p.First >= examples.Count || p.Second < 0 || p.Second >= examples.Count)
                return $"pair '{p.Id}' names an example outside 0..{examples.Count - 1}";
            if (p.First == p.Second) return $"pair '{p.Id}' joins an example to itself";
        }
        return null;
    }

    /// <summary>
    /// The data rows of one file, each split into exactly the header's columns. The header must be the expected one, so
    /// that a file of the wrong kind (or an older layout) fails on its first line instead of giving wrong figures.
    /// </summary>
    private static List<(string Path, int Line, string[] Fields)> Rows(string folder, string name, string[] columns, Dictionary<string, string> hashes)
    {
        string path = Path.Combine(folder, name);
        string expected = string.Join('\t', columns);
        if (!File.Exists(path))
            throw new InputException($"{path}: evaluation file not found; expected a tab-separated file with the header '{expected.Replace('\t', ' ')}' (scripts/build_evaluation.py writes it)");
        byte[] bytes = File.ReadAllBytes(path);
        hashes[name] = Convert.ToHexStringLower(SHA256.HashData(bytes));
        string text;
        try
        {
            text = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw new InputException($"{path}: not valid UTF-8; expected tab-separated UTF-8 text");
        }
        string[] lines = text.Split('\n');
        string header = lines[0].TrimStart('\uFEFF').TrimEnd('\r');
        if (header != expected)
            throw new InputException($"{path}:1: expected the header '{expected.Replace('\t', ' ')}' (tab-separated), got '{header.Replace('\t', ' ')}'");
        var rows = new List<(string, int, string[])>(lines.Length);
        for (int i = 1; i < lines.Length; i++)
        {
            string line = lines[i].TrimEnd('\r');
            if (line.Length == 0) continue;
            string[] fields = line.Split('\t');
            if (fields.Length != columns.Length)
                throw new InputException($"{path}:{i + 1}: expected {columns.Length} tab-separated fields ({string.Join(", ", columns)}), got {fields.Length}");
            if (fields[0].Length == 0) throw new InputException($"{path}:{i + 1}: the {columns[0]} id is empty");
            rows.Add((path, i + 1, fields));
        }
        if (rows.Count == 0 && name != PairsFile) throw new InputException($"{path}: has a header but no rows; expected at least one {columns[0]}");
        return rows;
    }
}
