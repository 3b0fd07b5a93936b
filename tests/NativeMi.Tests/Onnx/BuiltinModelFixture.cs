using Xunit;
using NativeMi.Models;

namespace NativeMi.Tests.Onnx;

/// <summary>Imports both built-in models once, into a private cache that is removed afterwards.</summary>
public sealed class BuiltinModelFixture : IDisposable
{
    public BuiltinModelFixture()
    {
        CacheRoot = Path.Combine(Path.GetTempPath(), $"nativemi-test-cache-{Environment.ProcessId}-{Guid.NewGuid():N}");
        foreach (string name in BuiltinModels.Names)
        {
            Folders[name] = BuiltinModels.EnsureImported(name, CacheRoot, null);
            OnnxPaths[name] = BuiltinModels.GetOnnxPath(name, CacheRoot, null);
        }
    }

    public string CacheRoot { get; }

    public Dictionary<string, string> Folders { get; } = new();

    public Dictionary<string, string> OnnxPaths { get; } = new();

    public void Dispose()
    {
        try { Directory.Delete(CacheRoot, recursive: true); } catch (IOException) { }
    }
}

[CollectionDefinition(Name)]
public sealed class BuiltinModelCollection : ICollectionFixture<BuiltinModelFixture>
{
    public const string Name = "built-in models";
}
