namespace NativeMi;

/// <summary>
/// Test-only hook for kill-and-resume tests: named moments at which a process can be made to stop so that a
/// test kills it (SIGKILL) at exactly that moment rather than at whatever moment a timer happens to hit.
/// When the environment variable <see cref="EnvironmentVariable"/> equals a point's name, reaching that point
/// writes <see cref="Announcement"/> followed by the name to standard error and blocks the calling thread for good.
/// Unset (as it always is outside tests), a point costs one null check.
/// </summary>
internal static class TestPausePoint
{
    /// <summary>The environment variable naming the point to stop at.</summary>
    public const string EnvironmentVariable = "NATIVEMI_TEST_PAUSE_AT";

    /// <summary>The prefix of the line written to standard error when the process stops at a point.</summary>
    public const string Announcement = "nativemi-test-paused: ";

    // Read once: the hook must not cost an environment lookup inside loops.
    private static readonly string? Target = Environment.GetEnvironmentVariable(EnvironmentVariable);

    /// <summary>Stops here for good when <see cref="EnvironmentVariable"/> equals <paramref name="name"/>; otherwise returns at once.</summary>
    public static void Reach(string name)
    {
        if (Target is null || !string.Equals(Target, name, StringComparison.Ordinal)) return;
        Console.Error.WriteLine(Announcement + name);
        Console.Error.Flush();
        Thread.Sleep(Timeout.Infinite);
    }

    /// <summary>Whether a pause point is set at all, so callers can skip building point names.</summary>
    public static bool Armed => Target is not null;
}
