using NativeMi.Tests.Measurement;
using NativeMi.Training;
using Xunit;

namespace NativeMi.Tests.Training;

/// <summary>A fine-tuning checkpoint's state.json, byte for byte against a golden written by the code it had before, and read back whole.</summary>
public sealed class CheckpointStateGoldenTests : IDisposable
{
    private readonly TempFolder _folder = new("checkpoint-golden");

    public void Dispose() => _folder.Dispose();

    [Fact]
    public void TheStateIsWrittenAsBeforeAndReadBack()
    {
        var parameters = new Dictionary<string, float[]> { ["w"] = [1f, -2f] };
        var checkpoint = new Checkpoint("fingerprint é <x> + 'y'", 251, 2, 4016, 1234.5678901234567, 9_876_543_210, 5.724390205433112,
            [new FinetuneEpoch(1, 250, 5.777354083456732, 4.81406857737234), new FinetuneEpoch(2, 500, 1.0 / 3, 1e-17)],
            [(1, 5.5, 0.25), (2, 1e21, 5e-324), (251, -0.0, 123456789.125)],
            parameters, parameters, parameters, [("W1", [0.5f], [0f], [1e-8f])]);
        string folder = _folder.Combine("checkpoint");
        Checkpoint.Save(folder, checkpoint);
        GoldenJson.AssertMatches("checkpoint-state.json", File.ReadAllBytes(Path.Combine(folder, "state.json")));

        Checkpoint loaded = Checkpoint.Load(folder, checkpoint.Fingerprint)!;
        Assert.Equal((checkpoint.Step, checkpoint.Epoch, checkpoint.NextStart, checkpoint.EpochNats, checkpoint.EpochTargets, checkpoint.InitialValidationBits),
            (loaded.Step, loaded.Epoch, loaded.NextStart, loaded.EpochNats, loaded.EpochTargets, loaded.InitialValidationBits));
        Assert.Equal(checkpoint.Epochs, loaded.Epochs);
        Assert.Equal(checkpoint.Steps, loaded.Steps);
        Assert.Equal([0.5f], loaded.Probe.Single().Value);
        Assert.Throws<NativeMi.InputException>(() => Checkpoint.Load(folder, "another run"));
    }
}
