using NativeMi.Tests.Cli;
using NativeMi.Tests.Measurement;
using NativeMi.Tests.Onnx;
using Xunit;

namespace NativeMi.Tests.Models;

/// <summary>What a model argument names when a folder in the current directory has a built-in model's name.</summary>
public sealed class ModelNameResolutionTests(BuiltinModelFixture builtins) : IClassFixture<BuiltinModelFixture>, IDisposable
{
    private readonly TempFolder _folder = new("model-names");

    public void Dispose() => _folder.Dispose();

    [Fact]
    public void ABuiltinNameWinsOverAFolderOfThatNameAndDotSlashReachesTheFolder()
    {
        // What a previous run with --out minilm leaves behind: a folder with no model in it.
        Directory.CreateDirectory(_folder.Combine("minilm"));
        File.WriteAllText(_folder.Combine("minilm", "results.json"), "{}");
        var environment = new Dictionary<string, string?> { ["NATIVEMI_CACHE"] = builtins.CacheRoot };

        var (code, output, error) = NativemiChild.Run(["inspect", "minilm"], environment, workingDirectory: _folder.Path);
        Assert.True(code == 0, $"inspect minilm exited {code}: {error}");
        // The built-in's layout, where the folder (no config.json) would have been an input error.
        Assert.Contains("bert", output, StringComparison.OrdinalIgnoreCase);

        var (folderCode, _, folderError) = NativemiChild.Run(["inspect", "./minilm"], environment, workingDirectory: _folder.Path);
        Assert.Equal(3, folderCode);
        Assert.Contains("config.json", folderError, StringComparison.Ordinal);
    }
}
