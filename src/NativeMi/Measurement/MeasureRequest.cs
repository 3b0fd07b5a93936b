using System.Globalization;
using System.Text.Json;
using NativeMi.Compute;
using NativeMi.Information;
using NativeMi.Pooling;
using NativeMi.Probing;

namespace NativeMi.Measurement;

/// <summary>
/// A measurement as a library caller asks for it in one JSON object (the options_json of the C ABI's nativemi_measure,
/// include/nativemi.h, lists the keys): the <see cref="MeasureOptions"/>, the backend to run on, and whether the probe
/// seeds were given (otherwise the backend picks them, as the CLI does).
/// </summary>
public sealed record MeasureRequest
{
    /// <summary>The options; <see cref="MeasureOptions.ProbeSeeds"/> there is 1 unless <see cref="ProbeSeeds"/> is given.</summary>
    public MeasureOptions Options { get; init; } = new();

    /// <summary>"auto", "cpu" or "cuda", as <see cref="LanguageModel.Open"/> takes it.</summary>
    public string Backend { get; init; } = "cpu";

    /// <summary>Probe seeds per layer when given; null lets the backend choose, as the CLI does (1 on the CPU, 3 on a GPU).</summary>
    public int? ProbeSeeds { get; init; }

    /// <summary>
    /// The options for a run on <paramref name="backend"/>: the given probe seeds, or the CLI's default for that backend
    /// (1 on the CPU; 3 on a GPU, where several seeds are affordable).
    /// </summary>
    internal MeasureOptions OptionsFor(IComputeBackend backend)
    {
        ArgumentNullException.ThrowIfNull(backend);
        return Options with { ProbeSeeds = ProbeSeeds ?? (backend.Name == "cuda" ? 3 : 1) };
    }

    /// <summary>
    /// Reads a JSON object whose keys are all optional: model, backend, corpus, max_sentences (integer or null for every
    /// sentence), layers (array of integers), pool, probe, hidden, epochs, patience, learning_rate, classes (integer or
    /// null for all), probe_seeds, target, batch_size, probe_batch_size, seed, max_tokens, bootstrap, fano_alphabet,
    /// baseline, cache. Values are checked against the same limits as the CLI's options.
    /// </summary>
    /// <exception cref="UsageException">The text is not a JSON object, a key is unknown or given twice, or a value has the
    /// wrong type or is out of range; the message names the key and what was expected.</exception>
    public static MeasureRequest FromJson(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 8 });
        }
        catch (JsonException e)
        {
            throw new UsageException($"measure options: not well-formed JSON: {e.Message}", e);
        }
        using (document)
        {
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new UsageException($"measure options: expected a JSON object, got {Describe(root)}");
            var request = new MeasureRequest();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (JsonProperty property in root.EnumerateObject())
            {
                if (!seen.Add(property.Name)) throw new UsageException($"measure options: key '{property.Name}' is given twice");
                request = Apply(request, property.Name, property.Value);
            }
            return request;
        }
    }

    private static MeasureRequest Apply(MeasureRequest r, string key, JsonElement value)
    {
        MeasureOptions o = r.Options;
        return key switch
        {
            "model" => r with { Options = o with { Model = NonEmptyString(key, value) } },
            "backend" => r with { Backend = OneOf(key, value, [.. BackendSelection.Choices]) },
            "corpus" => r with { Options = o with { Corpus = NonEmptyString(key, value) } },
            "max_sentences" => r with { Options = o with { MaxSentences = value.ValueKind == JsonValueKind.Null ? null : Integer(key, value, 5, "or null for every sentence") } },
            "layers" => r with { Options = o with { Layers = Layers(key, value) } },
            "pool" => r with { Options = o with { Pool = Enum.Parse<PoolingMode>(OneOf(key, value, "mean", "cls", "last", "max"), ignoreCase: true) } },
            "probe" => r with { Options = o with { Probe = Enum.Parse<ProbeFamily>(OneOf(key, value, "positional", "bag", "linear"), ignoreCase: true) } },
            "hidden" => r with { Options = o with { Hidden = Integer(key, value, 1) } },
            "epochs" => r with { Options = o with { Epochs = Integer(key, value, 1) } },
            "patience" => r with { Options = o with { Patience = Integer(key, value, 1) } },
            "learning_rate" => r with { Options = o with { LearningRate = PositiveNumber(key, value) } },
            "classes" => r with { Options = o with { Classes = value.ValueKind == JsonValueKind.Null ? null : Integer(key, value, 1, "or null for all") } },
            "probe_seeds" => r with { ProbeSeeds = Integer(key, value, 1) },
            "target" => r with { Options = o with { HeadlineTarget = OneOf(key, value, "coarse", "token") } },
            "batch_size" => r with { Options = o with { BatchSize = Integer(key, value, 1) } },
            "probe_batch_size" => r with { Options = o with { ProbeBatchSize = Integer(key, value, 1) } },
            "seed" => r with { Options = o with { Seed = Seed(key, value) } },
            "max_tokens" => r with { Options = o with { MaxTokens = Integer(key, value, 3) } },
            "bootstrap" => r with { Options = o with { Bootstrap = Integer(key, value, 0) } },
            "fano_alphabet" => r with { Options = o with { FanoAlphabet = OneOf(key, value, "vocab", "observed") == "observed" ? FanoAlphabet.ObservedPlusOne : FanoAlphabet.Vocabulary } },
            "baseline" => r with
            {
                Options = o with
                {
                    Baseline = OneOf(key, value, "none", "random-init", "shuffled") switch { "random-init" => BaselineKind.RandomInit, "shuffled" => BaselineKind.Shuffled, _ => BaselineKind.None },
                },
            },
            "cache" => r with { Options = o with { CacheDirectory = NonEmptyString(key, value) } },
            _ => throw new UsageException($"measure options: unknown key '{key}'; known keys: {string.Join(", ", Keys)}"),
        };
    }

    /// <summary>Every key <see cref="FromJson"/> reads.</summary>
    public static IReadOnlyList<string> Keys { get; } =
    [
        "model", "backend", "corpus", "max_sentences", "layers", "pool", "probe", "hidden", "epochs", "patience", "learning_rate", "classes",
        "probe_seeds", "target", "batch_size", "probe_batch_size", "seed", "max_tokens", "bootstrap", "fano_alphabet", "baseline", "cache",
    ];

    private static string NonEmptyString(string key, JsonElement value) =>
        value.ValueKind == JsonValueKind.String && value.GetString() is { Length: > 0 } text ? text
        : throw Wrong(key, "a non-empty string", value);

    private static string OneOf(string key, JsonElement value, params string[] allowed) =>
        value.ValueKind == JsonValueKind.String && allowed.Contains(value.GetString(), StringComparer.Ordinal) ? value.GetString()!
        : throw Wrong(key, $"one of {string.Join(", ", allowed.Select(a => $"\"{a}\""))}", value);

    private static int Integer(string key, JsonElement value, int minimum, string? alternative = null) =>
        value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int n) && n >= minimum ? n
        : throw Wrong(key, $"an integer {(minimum == 0 ? "of 0 or more" : $"of at least {minimum}")}{(alternative is null ? "" : $", {alternative}")}", value);

    private static ulong Seed(string key, JsonElement value) =>
        value.ValueKind == JsonValueKind.Number && value.TryGetUInt64(out ulong n) ? n : throw Wrong(key, "an integer of 0 or more", value);

    private static float PositiveNumber(string key, JsonElement value) =>
        value.ValueKind == JsonValueKind.Number && value.TryGetDouble(out double x) && x > 0 && float.IsFinite((float)x) ? (float)x
        : throw Wrong(key, "a positive number", value);

    private static int[] Layers(string key, JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Array || value.GetArrayLength() == 0) throw Wrong(key, "a non-empty array of layer numbers", value);
        var layers = new List<int>();
        foreach (JsonElement item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt32(out int layer) || layer < 0)
                throw Wrong(key, "a non-empty array of layer numbers (integers of 0 or more)", value);
            layers.Add(layer);
        }
        return [.. layers];
    }

    private static UsageException Wrong(string key, string expected, JsonElement value) =>
        new($"measure options: '{key}' must be {expected}, got {Describe(value)}");

    private static string Describe(JsonElement value)
    {
        string text = value.GetRawText();
        if (text.Length > 60) text = text[..57] + "...";
        string kind = value.ValueKind switch
        {
            JsonValueKind.String => "a string",
            JsonValueKind.Number => "the number",
            JsonValueKind.Array => "an array",
            JsonValueKind.Object => "an object",
            JsonValueKind.True or JsonValueKind.False => "the boolean",
            _ => "",
        };
        return string.Create(CultureInfo.InvariantCulture, $"{kind}{(kind.Length > 0 ? " " : "")}{text}");
    }
}
