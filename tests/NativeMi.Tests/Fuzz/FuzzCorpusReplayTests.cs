using NativeMi.Fuzz;
using Xunit;

namespace NativeMi.Tests.Fuzz;

/// <summary>
/// Replays the committed fuzzing corpus (seeds, what AFL++ kept, and the inputs of fixed findings)
/// through the fuzz targets: every input must parse or be rejected with an input error.
/// </summary>
public sealed class FuzzCorpusReplayTests
{
    public static TheoryData<string> Targets => new(FuzzTargets.Names);

    private static readonly string[] InputKinds = ["seeds", "corpus", "regressions"];

    private static IEnumerable<string> Inputs(string target) =>
        InputKinds
            .Select(kind => Path.Combine(AppContext.BaseDirectory, "fuzz", kind, target))
            .Where(Directory.Exists)
            .SelectMany(Directory.EnumerateFiles)
            .Where(f => Path.GetFileName(f) != "README.md")
            .Order(StringComparer.Ordinal);

    [Theory]
    [MemberData(nameof(Targets))]
    public void Every_corpus_input_parses_or_is_rejected_with_an_input_error(string target)
    {
        string[] inputs = Inputs(target).ToArray();
        Assert.NotEmpty(inputs);
        using var workspace = new FuzzWorkspace();
        int accepted = 0, rejected = 0;
        var findings = new List<string>();
        foreach (string input in inputs)
        {
            try
            {
                FuzzTargets.Run(target, File.ReadAllBytes(input), workspace);
                accepted++;
            }
            catch (Exception e) when (FuzzTargets.IsExpectedRejection(e))
            {
                rejected++;
                Assert.False(string.IsNullOrWhiteSpace(e.Message), $"{input}: empty message");
            }
            catch (Exception e)
            {
                findings.Add($"{Path.GetFileName(input)}: {e.GetType().Name}: {e.Message}");
            }
        }
        Assert.True(findings.Count == 0, $"{findings.Count} of {inputs.Length} inputs escaped as non-input errors:\n" + string.Join('\n', findings));
        // The seeds are valid, so a target that rejects everything has lost its way into the parser.
        Assert.True(accepted > 0, $"no input of the {target} corpus was accepted ({rejected} rejected)");
    }

    [Fact]
    public void Rejections_name_the_file()
    {
        using var workspace = new FuzzWorkspace();
        var e = Assert.ThrowsAny<InputException>(() => FuzzTargets.Run("safetensors", [8, 0, 0, 0, 0, 0, 0, 0, (byte)'{'], workspace));
        Assert.Contains("model.safetensors", e.Message);
    }
}
