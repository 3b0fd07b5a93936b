using System.Text.Json;

namespace NativeMi.Models;

/// <summary>Typed reads of config.json fields, each failure naming the file, the field and what was expected.</summary>
internal readonly struct ConfigJson(string path, JsonElement root)
{
    /// <summary>The config.json file.</summary>
    public string Path { get; } = path;

    /// <summary>The field's value, or null when it is absent or null.</summary>
    public JsonElement? Find(string field) =>
        root.TryGetProperty(field, out JsonElement value) && value.ValueKind != JsonValueKind.Null ? value : null;

    /// <summary>Whether the field is present with a non-null value.</summary>
    public bool Has(string field) => Find(field) is not null;

    public string String(string field, string? fallback = null)
    {
        JsonElement? value = Find(field);
        if (value is null) return fallback ?? throw new ModelFormatException(Path, $"missing field '{field}' (a string)");
        if (value.Value.ValueKind != JsonValueKind.String)
            throw new ModelFormatException(Path, $"field '{field}' must be a string, found {value.Value.ValueKind}");
        return value.Value.GetString()!;
    }

    public int Int(string field, int? fallback, int min, int max)
    {
        JsonElement? value = Find(field);
        if (value is null) return fallback ?? throw new ModelFormatException(Path, $"missing field '{field}' (an integer in [{min}, {max}])");
        if (value.Value.ValueKind != JsonValueKind.Number || !value.Value.TryGetInt64(out long number) || number < min || number > max)
            throw new ModelFormatException(Path, $"field '{field}' = {value.Value.GetRawText()}; expected an integer in [{min}, {max}]");
        return (int)number;
    }

    public int? OptionalInt(string field) => Find(field) is null ? null : Int(field, null, 0, int.MaxValue);

    public double Double(string field, double fallback)
    {
        JsonElement? value = Find(field);
        if (value is null) return fallback;
        if (value.Value.ValueKind != JsonValueKind.Number || !value.Value.TryGetDouble(out double number) || !double.IsFinite(number))
            throw new ModelFormatException(Path, $"field '{field}' = {value.Value.GetRawText()}; expected a finite number");
        return number;
    }

    public bool Bool(string field, bool fallback)
    {
        JsonElement? value = Find(field);
        if (value is null) return fallback;
        return value.Value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new ModelFormatException(Path, $"field '{field}' must be true or false, found {value.Value.GetRawText()}"),
        };
    }

    /// <summary>A GELU name as Hugging Face spells it in config.json.</summary>
    public GeluKind Gelu(string field, string fallback)
    {
        string act = String(field, fallback);
        return act switch
        {
            "gelu" => GeluKind.Exact,
            "gelu_new" or "gelu_pytorch_tanh" => GeluKind.Tanh,
            _ => throw new ModelFormatException(Path, $"field '{field}' is \"{act}\"; supported: gelu, gelu_new, gelu_pytorch_tanh"),
        };
    }
}
