using NativeMi.Measurement;
using Xunit;

namespace NativeMi.Tests.Measurement;

/// <summary>What MeasurementRunner refuses as soon as it can, before the work that a refusal would waste.</summary>
public sealed class EarlyRefusalTests : IDisposable
{
    private readonly TempFolder _folder = new("early-refusal");

    public void Dispose() => _folder.Dispose();

    private sealed class Recorder : IProgress<MeasureEvent>
    {
        public List<MeasureEvent> Events { get; } = [];
        public void Report(MeasureEvent value) { lock (Events) Events.Add(value); }
    }

    [Fact]
    public void ALayerTheModelLacksIsRefusedBeforeTheCorpusIsTokenised()
    {
        string corpus = MeasurementTestSupport.WriteCorpus(_folder.Combine("corpus.txt"), 60);
        var recorder = new Recorder();
        var options = MeasurementTestSupport.SmallOptions(Fixtures.Folder("bert-tiny"), corpus, _folder.Combine("cache")) with { Layers = [0, 9] };
        var error = Assert.Throws<InputException>(() => MeasurementRunner.Run(options, recorder));
        Assert.Equal("--layers: 9 is outside 0..3", error.Message);
        Assert.Equal(["sample"], recorder.Events.Select(e => e.Phase).Distinct());
        Assert.False(Directory.Exists(_folder.Combine("cache", "embeddings")));
    }
}
