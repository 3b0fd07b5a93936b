using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using NativeMi.Evaluation;
using NativeMi.IO;

namespace NativeMi.Reporting;

/// <summary>
/// Renders an <see cref="EvaluationResult"/> as the files <c>nativemi evaluate</c> writes: evaluation.json (public, schema
/// <see cref="EvaluationResult.Schema"/>) and, for the CLI, evaluation.csv, retrieval-ranks.csv and pair-scores.csv.
/// </summary>
public static class EvaluationWriter
{
    /// <summary>The summary JSON's file name.</summary>
    internal const string JsonFile = "evaluation.json";
    /// <summary>The summary CSV's file name.</summary>
    internal const string CsvFile = "evaluation.csv";
    /// <summary>Each query's rank.</summary>
    internal const string RanksFile = "retrieval-ranks.csv";
    /// <summary>Each pair's cosine.</summary>
    internal const string PairScoresFile = "pair-scores.csv";

    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    // The relaxed encoder keeps apostrophes and '+' readable in the notes; the file is data, never embedded in HTML.
    private static readonly EvaluationJsonContext Json = new(new JsonSerializerOptions(EvaluationJsonContext.Default.Options)
    {
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });

    /// <summary>
    /// Adds the four files to <paramref name="files"/> (renamed into place at its commit) and returns their paths, the JSON
    /// first. The JSON is added last, so that once it is in place the run's other files are too.
    /// </summary>
    internal static IReadOnlyList<string> Stage(EvaluationResult result, string folder, AtomicFileSet files)
    {
        ArgumentNullException.ThrowIfNull(result);
        ArgumentNullException.ThrowIfNull(files);
        string json = Path.Combine(folder, JsonFile), csv = Path.Combine(folder, CsvFile);
        string ranks = Path.Combine(folder, RanksFile), pairs = Path.Combine(folder, PairScoresFile);
        files.AddText(csv, SummaryCsv(result));
        files.AddText(ranks, RanksCsv(result));
        files.AddText(pairs, PairScoresCsv(result));
        files.AddBytes(json, ToJson(result));
        return [json, csv, ranks, pairs];
    }

    /// <summary>The UTF-8 text of evaluation.json, schema <see cref="EvaluationResult.Schema"/>, indented.</summary>
    public static byte[] ToJson(EvaluationResult r)
    {
        ArgumentNullException.ThrowIfNull(r);
        string interval = r.Settings.Bootstrap > 0
            ? $"95% percentile intervals from {r.Settings.Bootstrap} bootstrap resamples (seed {r.Settings.Seed}): retrieval over queries, ROC-AUC over pairs stratified by label"
            : "no bootstrap: intervals omitted";
        var document = new EvaluationDocument(
            EvaluationResult.Schema,
            new ModelPart(r.Model.Name, r.Model.Directory, r.Model.Architecture, r.Model.Layers, r.Model.Width, r.Model.Parameters, r.Model.Identity),
            new DataPart(r.Data.Folder, r.Data.Sha256, r.Data.Glosses, r.Data.Examples, r.Data.Pairs, r.Data.SameSynsetPairs, r.Data.Truncated),
            new SettingsPart(r.Settings.Layer, r.Settings.LayerIndex, r.Settings.Pool, r.Settings.BatchSize, r.Settings.MaxTokens, r.Settings.Seed,
                r.Settings.Bootstrap, r.Settings.MaxGlosses, interval),
            r.Backend,
            new RetrievalPart(r.Retrieval.Queries, r.Data.Examples, r.Retrieval.RecallAt1, r.Retrieval.RecallAt10, r.Retrieval.MeanReciprocalRank,
                "Each gloss (definition) is a query against every held-out example sentence, ranked by cosine similarity of pooled vectors; " +
                "its right answers are its synset's examples. rank = 1 + wrong candidates scoring at least the best right one (ties count against the query). " +
                $"A random ranking has R@1 = 1 / queries = {(1.0 / r.Retrieval.Queries).ToString("G3", Invariant)}."),
            r.SameSense is null ? null : new SameSensePart(r.Data.Pairs, r.Data.SameSynsetPairs, r.SameSense,
                "Pairs of example sentences using one lemma, scored by cosine; ROC-AUC of same synset (positive) against different synsets, ties counting one half."),
            r.TimingsSeconds,
            r.Warnings);
        return JsonSerializer.SerializeToUtf8Bytes(document, Json.EvaluationDocument);
    }

    private static string F(double value) => value.ToString("R", Invariant);
    private static string F(double? value) => value is double v ? F(v) : "";

    private static string Csv(string field) =>
        field.IndexOfAny([',', '"', '\n', '\r']) >= 0 ? "\"" + field.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : field;

    /// <summary>evaluation.csv: one line per figure.</summary>
    internal static string SummaryCsv(EvaluationResult r)
    {
        ArgumentNullException.ThrowIfNull(r);
        var text = new StringBuilder("task,metric,value,lower,upper,n,layer,pool\n");
        void Row(string task, string metric, MetricEstimate m, int n) =>
            text.Append(CultureInfo.InvariantCulture, $"{task},{metric},{F(m.Value)},{F(m.Lower)},{F(m.Upper)},{n},{r.Settings.Layer},{r.Settings.Pool}\n");
        Row("retrieval", "r_at_1", r.Retrieval.RecallAt1, r.Retrieval.Queries);
        Row("retrieval", "r_at_10", r.Retrieval.RecallAt10, r.Retrieval.Queries);
        Row("retrieval", "mrr", r.Retrieval.MeanReciprocalRank, r.Retrieval.Queries);
        if (r.SameSense is { } auc) Row("same_sense", "roc_auc", auc, r.Data.Pairs);
        return text.ToString();
    }

    private static string RanksCsv(EvaluationResult r)
    {
        var answers = new int[r.Set.Glosses.Count];
        foreach (EvaluationExample e in r.Set.Examples) answers[e.Synset]++;
        var text = new StringBuilder("synset,rank,right_answers\n");
        for (int q = 0; q < r.Ranks.Count; q++) text.Append(CultureInfo.InvariantCulture, $"{Csv(r.Set.Glosses[q].Id)},{r.Ranks[q]},{answers[q]}\n");
        return text.ToString();
    }

    private static string PairScoresCsv(EvaluationResult r)
    {
        var text = new StringBuilder("pair,lemma,same_synset,cosine\n");
        for (int p = 0; p < r.PairScores.Count; p++)
        {
            EvaluationPair pair = r.Set.Pairs[p];
            text.Append(CultureInfo.InvariantCulture, $"{Csv(pair.Id)},{Csv(pair.Lemma)},{(pair.SameSynset ? 1 : 0)},{F(r.PairScores[p])}\n");
        }
        return text.ToString();
    }
}

internal sealed record EvaluationDocument(
    string Schema, ModelPart Model, DataPart Data, SettingsPart Settings, string Backend, RetrievalPart Retrieval, SameSensePart? SameSense,
    [property: JsonPropertyName("timings_s")] IReadOnlyDictionary<string, double> Timings, IReadOnlyList<string> Warnings);

internal sealed record ModelPart(string Name, string Directory, string Architecture, int Layers, int Width, long Parameters,
    [property: JsonPropertyName("identity_sha256")] string Identity);

internal sealed record DataPart(string Folder, [property: JsonPropertyName("files_sha256")] IReadOnlyDictionary<string, string> Files, int Glosses, int Examples,
    int Pairs, int SameSynsetPairs, int Truncated);

internal sealed record SettingsPart(string Layer, int LayerIndex, string Pool, int BatchSize, int MaxTokens, ulong Seed, int Bootstrap, int? MaxGlosses, string Intervals);

internal sealed record RetrievalPart(int Queries, int Candidates, [property: JsonPropertyName("r_at_1")] MetricEstimate RecallAt1,
    [property: JsonPropertyName("r_at_10")] MetricEstimate RecallAt10, [property: JsonPropertyName("mrr")] MetricEstimate MeanReciprocalRank, string Note);

internal sealed record SameSensePart(int Pairs, int SameSynset, MetricEstimate RocAuc, string Note);

/// <summary>Source-generated serialisation of evaluation.json (no reflection, so the NativeAOT binary writes it too).</summary>
[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(EvaluationDocument))]
internal sealed partial class EvaluationJsonContext : JsonSerializerContext;
