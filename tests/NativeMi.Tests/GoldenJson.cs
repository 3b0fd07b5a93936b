using System.Text;
using Xunit;

namespace NativeMi.Tests;

/// <summary>
/// Byte-for-byte comparison of a written JSON file with a committed golden copy under fixtures/json. The goldens were
/// written by the hand-written Utf8JsonWriter code each file had before it moved to source-generated serialisation, so
/// these tests hold the files to the bytes they always had. To regenerate them after a deliberate format change, run the
/// tests with NATIVEMI_WRITE_GOLDEN_JSON set to the source folder (tests/NativeMi.Tests/fixtures/json): they then write
/// the goldens there instead of comparing.
/// </summary>
internal static class GoldenJson
{
    public const string WriteVariable = "NATIVEMI_WRITE_GOLDEN_JSON";

    public static void AssertMatches(string name, byte[] actual)
    {
        if (Environment.GetEnvironmentVariable(WriteVariable) is { Length: > 0 } folder)
        {
            Directory.CreateDirectory(folder);
            File.WriteAllBytes(Path.Combine(folder, name), actual);
            return;
        }
        string path = Fixtures.Folder(Path.Combine("json", name));
        Assert.True(File.Exists(path), $"golden file {path} is missing (run with {WriteVariable} set to write it)");
        byte[] expected = File.ReadAllBytes(path);
        if (expected.AsSpan().SequenceEqual(actual)) return;
        int at = 0;
        while (at < expected.Length && at < actual.Length && expected[at] == actual[at]) at++;
        static string Around(byte[] bytes, int at) =>
            Encoding.UTF8.GetString(bytes, Math.Max(0, at - 80), Math.Min(bytes.Length, at + 80) - Math.Max(0, at - 80));
        Assert.Fail($"{name}: differs from the golden at byte {at} (golden {expected.Length} bytes, written {actual.Length})\n" +
            $"golden:  ...{Around(expected, at)}...\nwritten: ...{Around(actual, at)}...");
    }

    public static void AssertMatches(string name, string actual) => AssertMatches(name, Encoding.UTF8.GetBytes(actual));
}
