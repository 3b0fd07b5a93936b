using NativeMi.Models;
using Xunit;

namespace NativeMi.Tests.Models;

public sealed class ReleaseWeightsTests
{
    [Fact]
    public void Released_model_keeps_config_tokenizer_and_counts_but_refuses_to_run()
    {
        using TransformerModel model = TransformerModel.Load(Fixtures.Folder("bert-tiny"));
        long parameters = model.ParameterCount;
        var batch = model.Encode(["the cat sat"]);
        Assert.Equal(model.LayerCount, model.Forward(batch).Layers.Count);

        model.ReleaseWeights();

        Assert.False(model.HasWeights);
        Assert.Equal(parameters, model.ParameterCount);
        Assert.Equal(48, model.Config.HiddenSize);
        Assert.NotEmpty(model.Encode(["the cat sat"]).InputIds);
        var e = Assert.Throws<ObjectDisposedException>(() => model.Forward(batch));
        Assert.Contains("weights were released", e.Message);
        model.Dispose(); // a second release is harmless
    }
}
