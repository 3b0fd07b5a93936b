using System.Diagnostics;
using System.Text.Json;
using Xunit;

namespace NativeMi.Tests.Text;

/// <summary>What Hugging Face's tokenizers library (npm package, tests/oracle) gives for one line.</summary>
internal sealed record OracleLine(int[] Ids, int[] IdsWithSpecial, int[] SpecialMask);

/// <summary>The oracle's answer for one tokenizer folder and a list of lines.</summary>
internal sealed record OracleResult(string Version, int VocabSize, IReadOnlyList<(int Id, string Content, bool Special)> AddedTokens, IReadOnlyList<OracleLine> Lines);

/// <summary>
/// Runs tests/oracle/hf-tokenize.js (Hugging Face's tokenizers through its Node bindings) as a child process. CI installs
/// it (.ci/run: npm ci in tests/oracle), so with CI=true a missing oracle fails the tests; elsewhere they are skipped.
/// </summary>
internal static class HuggingFaceOracle
{
    public static bool RunningInCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>tests/oracle of the checkout the tests were built from, when it can be found.</summary>
    public static string? OracleFolder { get; } = FindOracleFolder();

    public static string? Node { get; } = FindOnPath("node");

    public static string? SkipReason()
    {
        if (RunningInCi) return null;
        if (OracleFolder is null) return $"no tests/oracle/hf-tokenize.js above {AppContext.BaseDirectory} (CI is not 'true', so skipping)";
        if (!Directory.Exists(Path.Combine(OracleFolder, "node_modules", "tokenizers")))
            return $"the tokenizer oracle is not installed: run 'npm ci --prefix {OracleFolder}' (CI is not 'true', so skipping)";
        if (Node is null) return "node is not on PATH (CI is not 'true', so skipping)";
        return null;
    }

    /// <summary>Encodes <paramref name="texts"/> with the tokenizer of <paramref name="folder"/>.</summary>
    public static OracleResult Encode(string folder, IReadOnlyList<string> texts)
    {
        string oracle = OracleFolder ?? throw new InvalidOperationException($"tests/oracle not found above {AppContext.BaseDirectory}");
        if (!Directory.Exists(Path.Combine(oracle, "node_modules", "tokenizers")))
            throw new InvalidOperationException($"the tokenizer oracle is not installed: run 'npm ci --prefix {oracle}' (.ci/run does)");
        string node = Node ?? throw new InvalidOperationException("node is not on PATH; the tokenizer oracle needs Node.js");
        string input = Path.Combine(Path.GetTempPath(), $"nativemi-oracle-{Environment.ProcessId}-{Guid.NewGuid():N}.json");
        try
        {
            File.WriteAllText(input, JsonSerializer.Serialize(texts));
            var start = new ProcessStartInfo(node) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            start.ArgumentList.Add(Path.Combine(oracle, "hf-tokenize.js"));
            start.ArgumentList.Add(folder);
            start.ArgumentList.Add(input);
            using Process process = Process.Start(start)!;
            Task<string> stderr = process.StandardError.ReadToEndAsync();
            string stdout = process.StandardOutput.ReadToEnd();
            if (!process.WaitForExit(TimeSpan.FromMinutes(3))) { process.Kill(entireProcessTree: true); throw new TimeoutException("tokenizer oracle ran past 3 minutes"); }
            if (process.ExitCode != 0) throw new InvalidOperationException($"tokenizer oracle failed on {folder} (exit {process.ExitCode}): {stderr.Result}");
            using JsonDocument document = JsonDocument.Parse(stdout);
            JsonElement root = document.RootElement;
            int[] Ints(JsonElement e) => e.EnumerateArray().Select(x => x.GetInt32()).ToArray();
            var lines = root.GetProperty("results").EnumerateArray()
                .Select(r => new OracleLine(Ints(r.GetProperty("ids")), Ints(r.GetProperty("ids_with_special")), Ints(r.GetProperty("special_mask"))))
                .ToList();
            var added = root.GetProperty("added_tokens").EnumerateArray()
                .Select(t => (t.GetProperty("id").GetInt32(), t.GetProperty("content").GetString()!, t.GetProperty("special").GetBoolean()))
                .ToList();
            Assert.Equal(texts.Count, lines.Count);
            return new OracleResult(root.GetProperty("version").GetString()!, root.GetProperty("vocab_size").GetInt32(), added, lines);
        }
        finally
        {
            File.Delete(input);
        }
    }

    private static string? FindOracleFolder()
    {
        for (DirectoryInfo? folder = new(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
        {
            string candidate = Path.Combine(folder.FullName, "tests", "oracle");
            if (File.Exists(Path.Combine(candidate, "hf-tokenize.js"))) return candidate;
        }
        return null;
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(folder => Path.Combine(folder, name))
            .FirstOrDefault(File.Exists);
}

/// <summary>A theory that needs the tokenizer oracle: skipped outside CI when it is missing, failing inside CI.</summary>
public sealed class OracleTheoryAttribute : TheoryAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when the oracle is missing and CI is not set.</summary>
    public OracleTheoryAttribute()
    {
        if (HuggingFaceOracle.SkipReason() is { } reason) Skip = reason;
    }
}

/// <summary>A fact that needs the tokenizer oracle: skipped outside CI when it is missing, failing inside CI.</summary>
public sealed class OracleFactAttribute : FactAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when the oracle is missing and CI is not set.</summary>
    public OracleFactAttribute()
    {
        if (HuggingFaceOracle.SkipReason() is { } reason) Skip = reason;
    }
}
