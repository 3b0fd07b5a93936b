using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace NativeMi.Compute.Cpu;

/// <summary>One parallel loop's body: called once for every index of the loop, on any thread.</summary>
internal interface IParallelBody
{
    /// <summary>Runs item <paramref name="index"/>; items of one loop must not depend on each other.</summary>
    void Invoke(int index);
}

/// <summary>
/// The CPU backend's own worker threads for the forward pass's and the probes' parallel loops. A one-sentence forward
/// pass is two dozen loops of a few tens of microseconds each; on the .NET thread pool every one of them pays for
/// waking a parked thread, which is as long as the loop itself. These workers spin for a while after each loop (as
/// ONNX Runtime's intra-op threads do) and block only when no loop has come for <see cref="SpinMicroseconds"/>.
/// The calling thread takes part, and items are claimed one at a time from a shared counter, so a worker that is slow
/// to wake leaves its items to the caller instead of delaying the loop. Which thread runs an item never changes what
/// it computes, so results are the same bits as a serial loop.
/// </summary>
internal static class CpuWorkers
{
    /// <summary>The environment variable that sets <see cref="SpinMicroseconds"/> (0: block as soon as a loop ends).</summary>
    internal const string SpinVariable = "NATIVEMI_SPIN_MICROSECONDS";

    /// <summary>How long an idle worker polls for the next loop before it blocks when <see cref="SpinVariable"/> is unset.</summary>
    internal const int DefaultSpinMicroseconds = 2_000;

    private static readonly (int Microseconds, string? Error) Spin = ParseSpin(Environment.GetEnvironmentVariable(SpinVariable));

    /// <summary>How long an idle worker keeps polling for the next loop before it blocks.</summary>
    internal static int SpinMicroseconds => Spin.Microseconds;

    private static readonly long SpinTicks = Stopwatch.Frequency * SpinMicroseconds / 1_000_000;
    // While it polls, a worker gives its core to any other runnable thread this often (a GC thread, the caller's own
    // threads, another process), so that polling never holds a core someone is waiting for.
    private static readonly long YieldTicks = Stopwatch.Frequency * 50 / 1_000_000;
    private static readonly Lock StartLock = new();
    private static Worker[]? s_workers;
    private static Batch? s_current;
    // 1 while a caller owns the workers; a second caller (another thread, or a body that itself runs a loop) uses the
    // .NET thread pool instead of waiting.
    private static int s_busy;
    [ThreadStatic] private static bool t_isWorker;

    /// <summary>Threads that can run one loop's items at once: the caller and <c>ProcessorCount - 1</c> workers.</summary>
    public static int Parallelism => Environment.ProcessorCount;

    /// <summary>Runs <paramref name="body"/> for every index in [0, <paramref name="count"/>) and returns when all have run.</summary>
    /// <exception cref="Exception">The first exception an item threw, rethrown as itself on the calling thread once every item has run.</exception>
    public static void For(int count, IParallelBody body)
    {
        if (count <= 0) return;
        if (count == 1 || Parallelism == 1 || t_isWorker)
        {
            var alone = new Batch(body, count);
            alone.Help();
            alone.ThrowIfFailed();
            return;
        }
        if (Interlocked.CompareExchange(ref s_busy, 1, 0) != 0)
        {
            // The same claiming on the .NET pool: every item still runs after one fails, and the failure surfaces
            // as itself, not wrapped, just as on the workers.
            var shared = new Batch(body, count);
            Parallel.For(0, Math.Min(count, Parallelism), _ => shared.Help());
            shared.ThrowIfFailed();
            return;
        }
        try
        {
            Worker[] workers = s_workers ?? Start();
            var batch = new Batch(body, count);
            Interlocked.Exchange(ref s_current, batch);
            foreach (Worker worker in workers)
                if (Interlocked.Exchange(ref worker.Sleeping, 0) == 1)
                    lock (worker.Gate) Monitor.Pulse(worker.Gate);
            batch.Help();
            batch.WaitForClaimedItems();
            batch.ThrowIfFailed();
        }
        finally
        {
            Volatile.Write(ref s_busy, 0);
        }
    }

    /// <summary><see cref="For(int, IParallelBody)"/> for a delegate (one allocation more per loop).</summary>
    public static void For(int count, Action<int> body) => For(count, new DelegateBody(body));

    private static Worker[] Start()
    {
        lock (StartLock)
        {
            if (s_workers is not null) return s_workers;
            var workers = new Worker[Parallelism - 1];
            for (int i = 0; i < workers.Length; i++)
            {
                workers[i] = new Worker();
                new Thread(Loop) { IsBackground = true, Name = $"NativeMi CPU worker {i + 1}" }.Start(workers[i]);
            }
            Volatile.Write(ref s_workers, workers);
            return workers;
        }
    }

    private static void Loop(object? state)
    {
        var self = (Worker)state!;
        t_isWorker = true;
        Batch? seen = null;
        while (true)
        {
            Batch? batch = Volatile.Read(ref s_current);
            if (batch != seen)
            {
                seen = batch;
                batch!.Help();
                continue;
            }
            if (SpinUntilChanged(seen)) continue;
            lock (self.Gate)
            {
                Interlocked.Exchange(ref self.Sleeping, 1);
                // Checked again after announcing the sleep: a caller that published before the announcement saw no
                // sleeper and pulses nothing, so its loop must be picked up here. A caller that sees the announcement
                // takes the gate only once this thread waits on it, so its pulse is not lost.
                if (Volatile.Read(ref s_current) != seen)
                {
                    Interlocked.Exchange(ref self.Sleeping, 0);
                    continue;
                }
                Monitor.Wait(self.Gate);
            }
        }
    }

    private static bool SpinUntilChanged(Batch? seen)
    {
        long now = Stopwatch.GetTimestamp(), deadline = now + SpinTicks, nextYield = now + YieldTicks;
        while (now < deadline)
        {
            Thread.SpinWait(16);
            if (Volatile.Read(ref s_current) != seen) return true;
            now = Stopwatch.GetTimestamp();
            if (now >= nextYield)
            {
                Thread.Yield();
                nextYield = now + YieldTicks;
            }
        }
        return false;
    }

    /// <summary>
    /// The value of <see cref="SpinVariable"/>: unset or empty gives the default, otherwise a whole number of
    /// microseconds from 0 to 1,000,000; anything else gives the default and the message that says so.
    /// </summary>
    internal static (int Microseconds, string? Error) ParseSpin(string? value)
    {
        if (string.IsNullOrWhiteSpace(value)) return (DefaultSpinMicroseconds, null);
        if (int.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int microseconds) && microseconds <= 1_000_000)
            return (microseconds, null);
        return (DefaultSpinMicroseconds, $"the environment variable {SpinVariable} is '{value}'; expected a whole number of microseconds from 0 to 1000000");
    }

    /// <summary>Fails when <see cref="SpinVariable"/> holds something other than a spin time, so that a typo is not ignored.</summary>
    /// <exception cref="InputException">The variable's value is not a whole number of microseconds from 0 to 1,000,000.</exception>
    internal static void ThrowIfMisconfigured()
    {
        if (Spin.Error is not null) throw new InputException(Spin.Error);
    }

    private sealed class Worker
    {
        public readonly object Gate = new();
        public int Sleeping;
    }

    private sealed class DelegateBody(Action<int> body) : IParallelBody
    {
        public void Invoke(int index) => body(index);
    }

    /// <summary>One loop: its body, the next unclaimed index and how many claimed items are still running.</summary>
    private sealed class Batch
    {
        private readonly IParallelBody _body;
        private readonly int _count;
        private int _next;
        private int _unfinished;
        private ExceptionDispatchInfo? _failure;

        public Batch(IParallelBody body, int count)
        {
            _body = body;
            _count = count;
            _unfinished = count;
        }

        public void Help()
        {
            int done = 0, index;
            while ((index = Interlocked.Increment(ref _next) - 1) < _count)
            {
                try
                {
                    _body.Invoke(index);
                }
                catch (Exception e)
                {
                    Interlocked.CompareExchange(ref _failure, ExceptionDispatchInfo.Capture(e), null);
                }
                done++;
            }
            if (done > 0) Interlocked.Add(ref _unfinished, -done);
        }

        public void WaitForClaimedItems()
        {
            var spin = new SpinWait();
            while (Volatile.Read(ref _unfinished) != 0) spin.SpinOnce(sleep1Threshold: -1);
        }

        public void ThrowIfFailed() => _failure?.Throw();
    }
}
