using System.Reflection;
using System.Runtime.InteropServices;
using NativeMi.Compute.Cuda.Native;
using Xunit;

namespace NativeMi.Tests.Cuda;

/// <summary>
/// Every entry point the engine binds exists in the real libraries: the symbol tables of Debian's libcuda1, libcublas11
/// and libnvrtc11.2 (written by scripts/cuda-symbol-tables.sh, committed under fixtures/cuda-symbols). The emulated GPU
/// runs the same bindings in CI, so a name only the emulator exports would otherwise pass every test and fail on a GPU.
/// </summary>
public class CudaEntryPointTests
{
    private static IReadOnlyList<string> EntryPoints(Type api) =>
    [
        .. api.GetMethods(BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public)
            .Select(m => (Method: m, Import: m.GetCustomAttribute<LibraryImportAttribute>()))
            .Where(p => p.Import is not null)
            .Select(p => p.Import!.EntryPoint ?? p.Method.Name)
            .Order(StringComparer.Ordinal),
    ];

    private static HashSet<string> Symbols(string file) =>
        [.. File.ReadAllLines(Path.Combine(Fixtures.Folder("cuda-symbols"), file)).Where(l => l.Length > 0 && !l.StartsWith('#'))];

    public static TheoryData<string, string> Libraries => new()
    {
        { nameof(CudaDriverApi), "libcuda.so.1.txt" },
        { nameof(CublasApi), "libcublas.so.11.txt" },
        { nameof(NvrtcApi), "libnvrtc.so.11.2.txt" },
    };

    private static Type Api(string name) => typeof(CudaLibraries).Assembly.GetType($"NativeMi.Compute.Cuda.Native.{name}", throwOnError: true)!;

    [Theory]
    [MemberData(nameof(Libraries))]
    public void EveryBoundEntryPointIsExportedByTheRealLibrary(string api, string symbolFile)
    {
        IReadOnlyList<string> names = EntryPoints(Api(api));
        Assert.True(names.Count >= 5, $"{api} binds only {names.Count} entry points; the reflection found too few");
        HashSet<string> symbols = Symbols(symbolFile);
        Assert.True(symbols.Count > 15, $"{symbolFile} holds {symbols.Count} symbols");
        string[] missing = [.. names.Where(n => !symbols.Contains(n))];
        Assert.True(missing.Length == 0, $"{api} binds {string.Join(", ", missing)}, which Debian's {symbolFile[..^4]} does not export");
    }

    [Fact]
    public void TheCheckWouldCatchANameOnlyAnEmulatorExports()
    {
        // The _v2 suffixes are what the real driver exports for the 64-bit API; the unsuffixed cuMemAlloc is the old ABI.
        HashSet<string> driver = Symbols("libcuda.so.1.txt");
        Assert.Contains("cuMemAlloc_v2", driver);
        Assert.DoesNotContain("cuMemAlloc_v3", driver);
        Assert.Contains("cuLaunchKernel", EntryPoints(Api(nameof(CudaDriverApi))));
    }
}
