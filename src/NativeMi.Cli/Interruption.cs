using System.Runtime.InteropServices;

namespace NativeMi.Cli;

/// <summary>
/// Turns the first Ctrl-C (SIGINT) or SIGTERM during a long command into a cancellation, so that the command stops at
/// its next check and cleans up (the error boundary reports it as "cancelled", exit 130). A second signal is left to
/// the default handling, which ends the process at once, for when the first is not honoured quickly enough.
/// </summary>
internal sealed class Interruption : IDisposable
{
    private readonly CancellationTokenSource _source = new();
    private readonly PosixSignalRegistration[] _registrations;

    public Interruption()
    {
        _registrations = [PosixSignalRegistration.Create(PosixSignal.SIGINT, Handle), PosixSignalRegistration.Create(PosixSignal.SIGTERM, Handle)];
    }

    /// <summary>Cancelled by the first signal.</summary>
    public CancellationToken Token => _source.Token;

    private void Handle(PosixSignalContext context)
    {
        if (_source.IsCancellationRequested) return;
        context.Cancel = true;
        Console.Error.WriteLine("nativemi: stopping (press Ctrl-C again to stop at once)");
        _source.Cancel();
    }

    public void Dispose()
    {
        foreach (PosixSignalRegistration registration in _registrations) registration.Dispose();
        _source.Dispose();
    }
}
