using NativeMi.Compute.Cpu;
using Xunit;

namespace NativeMi.Tests.Compute;

/// <summary>A fact that needs a second core: skipped, with the reason, on a one-core machine.</summary>
public sealed class MultiCoreFactAttribute : FactAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when this process sees one core.</summary>
    public MultiCoreFactAttribute()
    {
        if (CpuWorkers.Parallelism < 2) Skip = "this process sees one core, so the CPU backend starts no worker threads";
    }
}

/// <summary>The CPU backend's own worker threads: every item once, failures surfaced, busy and nested callers served.</summary>
public sealed class CpuWorkersTests
{
    private sealed class CountingBody(int count) : IParallelBody
    {
        public readonly int[] Runs = new int[count];
        public readonly HashSet<int> Threads = [];

        public void Invoke(int index)
        {
            Interlocked.Increment(ref Runs[index]);
            lock (Threads) Threads.Add(Environment.CurrentManagedThreadId);
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(7)]
    [InlineData(1000)]
    public void EveryIndexRunsExactlyOnce(int count)
    {
        for (int round = 0; round < 50; round++)
        {
            var body = new CountingBody(count);
            CpuWorkers.For(count, body);
            Assert.All(body.Runs, runs => Assert.Equal(1, runs));
        }
    }

    [Fact]
    public void NothingRunsForAnEmptyLoop()
    {
        CpuWorkers.For(0, _ => throw new InvalidOperationException("no index exists"));
        CpuWorkers.For(-3, _ => throw new InvalidOperationException("no index exists"));
    }

    [MultiCoreFact]
    public void AWorkerTakesPartWhenTheItemsWaitForIt()
    {
        // Each item waits until another thread has run one too, so the caller alone would never finish: the loop
        // completes only because a worker claims items while the caller is blocked in one.
        int started = 0;
        var threads = new HashSet<int>();
        CpuWorkers.For(2, _ =>
        {
            lock (threads) threads.Add(Environment.CurrentManagedThreadId);
            Interlocked.Increment(ref started);
            SpinWait.SpinUntil(() => Volatile.Read(ref started) == 2, TimeSpan.FromSeconds(30));
        });
        Assert.Equal(2, started);
        Assert.Equal(2, threads.Count);
    }

    [Fact]
    public void AnItemsExceptionIsRethrownAfterTheOthersFinish()
    {
        var body = new CountingBody(64);
        var failure = Assert.Throws<InvalidOperationException>(() => CpuWorkers.For(64, i =>
        {
            body.Invoke(i);
            if (i == 5) throw new InvalidOperationException("item 5 failed");
        }));
        Assert.Equal("item 5 failed", failure.Message);
        Assert.All(body.Runs, runs => Assert.Equal(1, runs));
        // The same from a second caller while the workers are busy (it runs on the .NET pool instead).
        var fromSecondCaller = new CountingBody(64);
        Exception? second = null;
        CpuWorkers.For(2, outer =>
        {
            if (outer != 0) return;
            second = Record.Exception(() => CpuWorkers.For(64, i =>
            {
                fromSecondCaller.Invoke(i);
                if (i == 9) throw new InvalidOperationException("item 9 failed");
            }));
        });
        Assert.Equal("item 9 failed", Assert.IsType<InvalidOperationException>(second).Message);
        Assert.All(fromSecondCaller.Runs, runs => Assert.Equal(1, runs));
        // The workers are still usable after a failed loop.
        var next = new CountingBody(64);
        CpuWorkers.For(64, next);
        Assert.All(next.Runs, runs => Assert.Equal(1, runs));
    }

    [Fact]
    public void ConcurrentAndNestedCallersEachGetTheirWholeLoop()
    {
        const int callers = 6, outer = 8, inner = 33;
        var runs = new int[callers, outer, inner];
        Parallel.For(0, callers, new ParallelOptions { MaxDegreeOfParallelism = callers }, caller =>
        {
            for (int round = 0; round < 20; round++)
                CpuWorkers.For(outer, o => CpuWorkers.For(inner, i => Interlocked.Increment(ref runs[caller, o, i])));
        });
        foreach (int r in runs) Assert.Equal(20, r);
    }

    [Theory]
    [InlineData(null, CpuWorkers.DefaultSpinMicroseconds)]
    [InlineData("", CpuWorkers.DefaultSpinMicroseconds)]
    [InlineData("0", 0)]
    [InlineData("250", 250)]
    [InlineData("1000000", 1_000_000)]
    public void TheSpinTimeIsReadFromTheEnvironment(string? value, int expected)
    {
        var (microseconds, error) = CpuWorkers.ParseSpin(value);
        Assert.Equal(expected, microseconds);
        Assert.Null(error);
    }

    [Theory]
    [InlineData("fast")]
    [InlineData("-5")]
    [InlineData("2.5")]
    [InlineData("1000001")]
    public void AnInvalidSpinTimeNamesTheVariableAndWhatWasExpected(string value)
    {
        var (microseconds, error) = CpuWorkers.ParseSpin(value);
        Assert.Equal(CpuWorkers.DefaultSpinMicroseconds, microseconds);
        Assert.Contains(CpuWorkers.SpinVariable, error);
        Assert.Contains($"'{value}'", error);
        Assert.Contains("0 to 1000000", error);
    }
}
