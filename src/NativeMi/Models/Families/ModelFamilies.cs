namespace NativeMi.Models.Families;

/// <summary>
/// One family of Hugging Face checkpoints: which model_types it reads, how its config.json becomes a
/// <see cref="BlockLayout"/> (and the rest of <see cref="TransformerConfig"/>), and how its tensors are named. Adding a
/// family is adding one of these.
/// </summary>
internal interface IModelFamily
{
    /// <summary>The config.json model_type values it reads.</summary>
    IReadOnlyList<string> ModelTypes { get; }

    /// <summary>Reads the config; refuses fields that change the math and are not supported, naming them.</summary>
    TransformerConfig Parse(ConfigJson json, string modelType);

    /// <summary>The tensor names of a model of this family.</summary>
    TensorNameMap Names(TransformerConfig config);
}

/// <summary>Every family the engine reads.</summary>
internal static class ModelFamilies
{
    private static readonly IModelFamily[] All =
    [
        new BertFamily(), new Gpt2Family(),
        new DecoderFamily("llama"), new DecoderFamily("mistral"), new DecoderFamily("qwen2", qkvBias: true), new DecoderFamily("qwen3", qkNorm: true),
        new DecoderFamily("gemma", gemma: true),
    ];

    /// <summary>Every model_type supported, for messages.</summary>
    public static IEnumerable<string> ModelTypes => All.SelectMany(f => f.ModelTypes);

    /// <summary>The family that reads <paramref name="modelType"/>, or null.</summary>
    public static IModelFamily? For(string modelType) => All.FirstOrDefault(f => f.ModelTypes.Contains(modelType, StringComparer.Ordinal));
}
