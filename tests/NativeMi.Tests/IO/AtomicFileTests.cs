using NativeMi.IO;
using NativeMi.Tests.Measurement;
using Xunit;

namespace NativeMi.Tests.IO;

/// <summary>The staged multi-file write and the sweep of temporaries that killed writers leave behind.</summary>
public sealed class AtomicFileTests : IDisposable
{
    private readonly TempFolder _folder = new("atomic");

    public void Dispose() => _folder.Dispose();

    private string[] Names() => Directory.GetFiles(_folder.Path).Select(f => Path.GetFileName(f)).Order(StringComparer.Ordinal).ToArray();

    [Fact]
    public void AStagedFileReplacesItsDestinationOnlyAtCommit()
    {
        string a = _folder.Combine("a.txt"), b = _folder.Combine("b.txt");
        File.WriteAllText(a, "old");
        using (var files = new AtomicFileSet())
        {
            files.AddText(a, "new a");
            files.AddText(b, "new b");
            Assert.Equal("old", File.ReadAllText(a));
            Assert.False(File.Exists(b));
            Assert.Equal([a, b], files.Commit());
            Assert.Throws<InvalidOperationException>(() => files.AddText(a, "late"));
        }
        Assert.Equal("new a", File.ReadAllText(a));
        Assert.Equal("new b", File.ReadAllText(b));
        Assert.Equal(["a.txt", "b.txt"], Names());
    }

    [Fact]
    public void AnUncommittedSetLeavesTheDestinationsAndNoTemporaries()
    {
        string a = _folder.Combine("a.txt");
        File.WriteAllText(a, "old");
        using (var files = new AtomicFileSet())
        {
            files.AddText(a, "new");
            files.AddText(_folder.Combine("b.txt"), "new");
            Assert.Equal(3, Names().Length);
        }
        Assert.Equal("old", File.ReadAllText(a));
        Assert.Equal(["a.txt"], Names());
    }

    [Fact]
    public void TheSweepRemovesOnlyTemporariesOfProcessesThatAreGone()
    {
        // int.MaxValue is above any Linux pid_max, so no process has it.
        string stale = _folder.Combine(AtomicFile.TemporaryName("results.json", int.MaxValue));
        string live = _folder.Combine(AtomicFile.TemporaryName("results.json"));
        string unrelated = _folder.Combine(".notes.tmp");
        // The older form without the namespace tag: its process id cannot be trusted, so only its age counts.
        string legacyFresh = _folder.Combine($".results.json.{int.MaxValue}.{Guid.NewGuid():N}.tmp");
        string legacyOld = _folder.Combine($".layers.csv.{int.MaxValue}.{Guid.NewGuid():N}.tmp");
        foreach (string path in new[] { stale, live, unrelated, legacyFresh, legacyOld }) File.WriteAllText(path, "x");
        File.SetLastWriteTimeUtc(legacyOld, DateTime.UtcNow - AtomicFile.ForeignStaleAfter - TimeSpan.FromMinutes(1));

        Assert.Equal(2, AtomicFile.RemoveStaleTemporaries(_folder.Path));
        Assert.False(File.Exists(stale));
        Assert.False(File.Exists(legacyOld));
        Assert.True(File.Exists(live));
        Assert.True(File.Exists(unrelated));
        Assert.True(File.Exists(legacyFresh));
        Assert.Equal(0, AtomicFile.RemoveStaleTemporaries(_folder.Combine("missing")));
    }
}
