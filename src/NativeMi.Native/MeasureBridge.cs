using System.Collections.Concurrent;
using System.Text;
using NativeMi.Measurement;

namespace NativeMi.Native;

/// <summary>
/// What nativemi_measure promises its caller: the progress callback runs only on the calling thread, never twice at
/// once and never after the call returns, and the cancellation flag (read every 50 ms) or a nonzero return of the
/// callback stops the run. MeasurementRunner reports on the measuring thread today; an event that arrives from another
/// thread is queued and delivered on the calling thread at its next event or before the call returns.
/// </summary>
internal sealed unsafe class MeasureBridge : IProgress<MeasureEvent>, IDisposable
{
    /// <summary>How often the flag is read.</summary>
    private const int PollMilliseconds = 50;

    private readonly delegate* unmanaged<void*, byte*, long, long, byte*, int> _callback;
    private readonly void* _userData;
    private readonly nint _flag;
    private readonly int _callingThread = Environment.CurrentManagedThreadId;
    private readonly ConcurrentQueue<MeasureEvent> _fromOtherThreads = new();
    private readonly CancellationTokenSource _cancellation = new();
    private readonly ManualResetEventSlim _finished = new();
    private readonly Thread? _poller;
    private volatile string? _cancelReason;

    public MeasureBridge(delegate* unmanaged<void*, byte*, long, long, byte*, int> callback, void* userData, int* flag)
    {
        _callback = callback;
        _userData = userData;
        _flag = (nint)flag;
        Log = new LogLines(this);
        if (flag is null) return;
        if (FlagRaised) Cancel("the cancellation flag was raised");
        _poller = new Thread(Poll) { IsBackground = true, Name = "nativemi cancellation flag" };
        _poller.Start();
    }

    /// <summary>Cancelled by the flag or the callback.</summary>
    public CancellationToken Token => _cancellation.Token;

    /// <summary>Why the run was cancelled, or null.</summary>
    public string? CancelReason => _cancelReason;

    /// <summary>The backend choice's lines as "backend" events.</summary>
    public IProgress<string> Log { get; }

    private bool FlagRaised => _flag != 0 && Volatile.Read(ref *(int*)_flag) != 0;

    public void Report(MeasureEvent value)
    {
        if (Environment.CurrentManagedThreadId != _callingThread)
        {
            _fromOtherThreads.Enqueue(value);
            return;
        }
        Drain();
        Deliver(value);
    }

    /// <summary>Delivers the events queued from other threads; call on the calling thread before returning.</summary>
    public void Drain()
    {
        while (_fromOtherThreads.TryDequeue(out MeasureEvent queued)) Deliver(queued);
    }

    private void Deliver(MeasureEvent value)
    {
        if (FlagRaised) Cancel("the cancellation flag was raised");
        // Once the caller has asked to stop, it is not called again.
        if (_callback is null || _cancellation.IsCancellationRequested) return;
        // The forward pass marks per-batch events with a marker word, not a line for people.
        string? message = value.Message == MeasureEvent.BatchDone ? null : value.Message;
        byte[] stage = Terminated(value.Phase);
        byte[]? line = message is null ? null : Terminated(message);
        int stop;
        fixed (byte* stagePointer = stage)
        fixed (byte* linePointer = line)
        {
            stop = _callback(_userData, stagePointer, value.Completed, value.Total, line is null ? null : linePointer);
        }
        if (stop != 0) Cancel("the progress callback returned nonzero");
    }

    private static byte[] Terminated(string text)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(text) + 1];
        Encoding.UTF8.GetBytes(text, bytes);
        return bytes;
    }

    private void Cancel(string reason)
    {
        _cancelReason ??= reason;
        _cancellation.Cancel();
    }

    private void Poll()
    {
        while (!_finished.Wait(PollMilliseconds))
        {
            if (!FlagRaised) continue;
            Cancel("the cancellation flag was raised");
            return;
        }
    }

    /// <summary>Stops the poller and waits for it, so the flag is never read after the call returns.</summary>
    public void Dispose()
    {
        _finished.Set();
        _poller?.Join();
        _finished.Dispose();
        _cancellation.Dispose();
    }

    private sealed class LogLines(MeasureBridge bridge) : IProgress<string>
    {
        public void Report(string value) => bridge.Report(new MeasureEvent("backend", 0, 1, value));
    }
}
