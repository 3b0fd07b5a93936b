using System.Reflection;

namespace NativeMi.Compute.Cuda.Native;

/// <summary>A kernel translation unit and the headers it includes (by the names it uses in #include).</summary>
/// <param name="FileName">Name shown in compiler messages ("attention.cu").</param>
/// <param name="Code">The source text.</param>
/// <param name="Headers">Header name → text, for each header the source includes.</param>
internal sealed record KernelSource(string FileName, string Code, IReadOnlyDictionary<string, string> Headers)
{
    private const string ResourcePrefix = "kernels/";

    /// <summary>The kernel files embedded in the engine (every kernels/*.cu of the repository).</summary>
    public static IReadOnlyList<string> EmbeddedFileNames { get; } = typeof(KernelSource).Assembly.GetManifestResourceNames()
        .Where(n => n.StartsWith(ResourcePrefix, StringComparison.Ordinal) && n.EndsWith(".cu", StringComparison.Ordinal))
        .Select(n => n[ResourcePrefix.Length..])
        .Order(StringComparer.Ordinal)
        .ToArray();

    /// <summary>An embedded kernel file with every embedded header available to it.</summary>
    /// <exception cref="ArgumentException">No kernel file of that name is embedded.</exception>
    public static KernelSource Embedded(string fileName)
    {
        Assembly assembly = typeof(KernelSource).Assembly;
        string code = ReadResource(assembly, ResourcePrefix + fileName)
            ?? throw new ArgumentException($"no embedded kernel file '{fileName}'; embedded: {string.Join(", ", EmbeddedFileNames)}", nameof(fileName));
        var headers = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (string resource in assembly.GetManifestResourceNames())
            if (resource.StartsWith(ResourcePrefix, StringComparison.Ordinal) && resource.EndsWith(".cuh", StringComparison.Ordinal))
                headers[resource[ResourcePrefix.Length..]] = ReadResource(assembly, resource)!;
        return new KernelSource(fileName, code, headers);
    }

    /// <summary>Names of the kernels (extern "C" __global__ functions) the source defines, in source order.</summary>
    public IReadOnlyList<string> KernelNames() =>
        System.Text.RegularExpressions.Regex.Matches(Code, @"extern\s+""C""\s+__global__\s+void\s+(\w+)\s*\(")
            .Select(m => m.Groups[1].Value).ToArray();

    private static string? ReadResource(Assembly assembly, string name)
    {
        using Stream? stream = assembly.GetManifestResourceStream(name);
        if (stream is null) return null;
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
