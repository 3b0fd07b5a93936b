using System.Diagnostics;
using NativeMi.Tests.Cuda;
using NativeMi.Tests.Measurement;
using Xunit;

namespace NativeMi.Tests.Evaluation;

/// <summary>
/// A fact that needs Debian's wordnet-base (/usr/share/wordnet) and python3. .ci/run installs WordNet, so with CI=true a
/// missing one fails the test; elsewhere it is skipped with the reason.
/// </summary>
public sealed class WordNetFactAttribute : FactAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when WordNet, python3 or the repository's scripts are missing.</summary>
    public WordNetFactAttribute()
    {
        if (NvrtcAvailability.RunningInCi) return;
        if (!File.Exists("/usr/share/wordnet/data.noun")) Skip = "no /usr/share/wordnet/data.noun (apt-get install wordnet-base)";
        else if (!File.Exists("/usr/bin/python3")) Skip = "no /usr/bin/python3";
        else if (CmakeTools.RepositoryRoot is null) Skip = $"no repository root above {AppContext.BaseDirectory}";
    }
}

/// <summary>scripts/build_evaluation.py reproduces the committed evaluation files byte for byte.</summary>
public sealed class EvaluationBuildScriptTests : IDisposable
{
    private readonly TempFolder _folder = new("build-evaluation");

    public void Dispose() => _folder.Dispose();

    [WordNetFact]
    public void TheScriptRebuildsTheCommittedFilesExactly()
    {
        string root = CmakeTools.RepositoryRoot!;
        var start = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string argument in new[] { Path.Combine(root, "scripts", "build_evaluation.py"), "--out-dir", _folder.Path }) start.ArgumentList.Add(argument);
        using Process process = Process.Start(start)!;
        Task<string> error = process.StandardError.ReadToEndAsync();
        process.StandardOutput.ReadToEnd();
        Assert.True(process.WaitForExit(TimeSpan.FromMinutes(3)), "build_evaluation.py ran over 3 minutes");
        Assert.True(process.ExitCode == 0, $"exit {process.ExitCode}: {error.Result}");
        string[] files =
        [
            "wordnet-finetune.txt", "wordnet-eval/glosses.tsv", "wordnet-eval/examples.tsv", "wordnet-eval/pairs.tsv",
            "wordnet-eval/heldout-sentences.txt", "wordnet-eval/WORDNET-LICENSE.txt",
        ];
        foreach (string file in files)
            Assert.True(File.ReadAllBytes(Path.Combine(root, "data", file)).AsSpan().SequenceEqual(File.ReadAllBytes(_folder.Combine(file))),
                $"data/{file} differs from what scripts/build_evaluation.py writes now: rerun the script and commit its output");
    }
}
