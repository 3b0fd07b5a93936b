namespace NativeMi.Evaluation;

/// <summary>The model an evaluation ran, as evaluation.json's "model" object records it.</summary>
/// <param name="Name">What the user named (a built-in name or a folder).</param>
/// <param name="Directory">The model folder.</param>
/// <param name="Architecture">config.json's model_type.</param>
/// <param name="Layers">Number of blocks L.</param>
/// <param name="Width">Hidden size.</param>
/// <param name="Parameters">Parameter count.</param>
/// <param name="Identity">SHA-256 over the config, tokenizer and weight files: a fine-tuned copy has another.</param>
public sealed record EvaluatedModel(string Name, string Directory, string Architecture, int Layers, int Width, long Parameters, string Identity);

/// <summary>The evaluation data a run read.</summary>
/// <param name="Folder">The evaluation folder.</param>
/// <param name="Sha256">SHA-256 of each file read, by name.</param>
/// <param name="Glosses">Glosses evaluated (retrieval queries).</param>
/// <param name="Examples">Examples evaluated (retrieval candidates).</param>
/// <param name="Pairs">Same-sense pairs evaluated.</param>
/// <param name="SameSynsetPairs">Pairs of the positive class.</param>
/// <param name="Truncated">Texts longer than the token limit, truncated.</param>
public sealed record EvaluationDataDescription(string Folder, IReadOnlyDictionary<string, string> Sha256, int Glosses, int Examples, int Pairs, int SameSynsetPairs, int Truncated);

/// <summary>The settings an evaluation ran with, defaults resolved.</summary>
/// <param name="Layer">"0".."L", or "final".</param>
/// <param name="LayerIndex">The entry index (L + 1 for "final").</param>
/// <param name="Pool">Pooling mode.</param>
/// <param name="BatchSize">Texts per forward batch.</param>
/// <param name="MaxTokens">Token limit.</param>
/// <param name="Seed">Bootstrap seed.</param>
/// <param name="Bootstrap">Bootstrap resamples.</param>
/// <param name="MaxGlosses">The subset's size, or null for the whole set.</param>
public sealed record EvaluationSettings(string Layer, int LayerIndex, string Pool, int BatchSize, int MaxTokens, ulong Seed, int Bootstrap, int? MaxGlosses);

/// <summary>
/// Everything an evaluation found (<see cref="EvaluationRunner.Run(EvaluateOptions, IProgress{EvaluateEvent}?, CancellationToken)"/>):
/// retrieval and same-sense scores with their intervals, each query's rank and each pair's cosine, and what the run read.
/// <see cref="Reporting.EvaluationWriter.ToJson"/> renders it as evaluation.json.
/// </summary>
public sealed record EvaluationResult
{
    /// <summary>Schema name and version of evaluation.json.</summary>
    public const string Schema = "nativemi.evaluate/1";
    /// <summary>The model.</summary>
    public required EvaluatedModel Model { get; init; }
    /// <summary>The data.</summary>
    public required EvaluationDataDescription Data { get; init; }
    /// <summary>The settings.</summary>
    public required EvaluationSettings Settings { get; init; }
    /// <summary>The compute backend's description.</summary>
    public required string Backend { get; init; }
    /// <summary>Gloss-to-example retrieval.</summary>
    public required RetrievalFigures Retrieval { get; init; }
    /// <summary>Same-sense ROC-AUC; null when the pairs are not of both kinds.</summary>
    public required MetricEstimate? SameSense { get; init; }
    /// <summary>Each gloss's rank of its first right example, in the set's order.</summary>
    public required IReadOnlyList<int> Ranks { get; init; }
    /// <summary>Each pair's cosine, in the set's order.</summary>
    public required IReadOnlyList<double> PairScores { get; init; }
    /// <summary>The evaluation set that was scored (the first glosses only when MaxGlosses was given): <see cref="Ranks"/> follows its Glosses, <see cref="PairScores"/> its Pairs.</summary>
    public required EvaluationSet Set { get; init; }
    /// <summary>Seconds per phase, and "total".</summary>
    public required IReadOnlyDictionary<string, double> TimingsSeconds { get; init; }
    /// <summary>Warnings of the run.</summary>
    public required IReadOnlyList<string> Warnings { get; init; }
}
