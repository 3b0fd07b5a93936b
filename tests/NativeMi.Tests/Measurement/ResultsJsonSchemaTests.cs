using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using NativeMi.Measurement;
using NativeMi.Reporting;
using Xunit;

namespace NativeMi.Tests.Measurement;

/// <summary>results.json ("nativemi.measure/1"): keys, types and the arithmetic that ties the figures together.</summary>
public class ResultsJsonSchemaTests(MeasurementRunFixture runs) : IClassFixture<MeasurementRunFixture>
{
    private const double Exact = 1e-9;

    private static JsonObject Parse(MeasurementResult result) => JsonNode.Parse(ResultWriter.ToJson(result))!.AsObject();

    private static double Number(JsonNode? node, string what)
    {
        Assert.True(node is JsonValue v && v.GetValueKind() == JsonValueKind.Number, $"{what} should be a number, got {node?.ToJsonString() ?? "missing"}");
        double value = node!.GetValue<double>();
        Assert.True(double.IsFinite(value), $"{what} = {value}");
        return value;
    }

    private static string Text(JsonNode? node, string what)
    {
        Assert.True(node is JsonValue v && v.GetValueKind() == JsonValueKind.String, $"{what} should be a string, got {node?.ToJsonString() ?? "missing"}");
        return node!.GetValue<string>();
    }

    private static (double Lo, double Hi) Interval(JsonNode? node, string what)
    {
        Assert.True(node is JsonArray, $"{what} should be an array [lo, hi], got {node?.ToJsonString() ?? "missing"}");
        JsonArray array = node!.AsArray();
        Assert.Equal(2, array.Count);
        double lo = Number(array[0], what + "[0]"), hi = Number(array[1], what + "[1]");
        Assert.True(lo <= hi, $"{what}: lower {lo} above upper {hi}");
        return (lo, hi);
    }

    private static double BinaryEntropy(double p) => p <= 0 || p >= 1 ? 0 : -p * Math.Log2(p) - (1 - p) * Math.Log2(1 - p);

    [Theory]
    [InlineData("bert-tiny", "bert")]
    [InlineData("gpt2-tiny", "gpt2")]
    public void TopLevelObjectsCarryTheModelCorpusSettingsAndBackend(string model, string architecture)
    {
        MeasurementResult result = runs.Run(model);
        JsonObject json = Parse(result);
        Assert.Equal("nativemi.measure/1", Text(json["schema"], "schema"));

        JsonObject m = json["model"]!.AsObject();
        Assert.Equal(Fixtures.Folder(model), Text(m["name"], "model.name"));
        Assert.Equal(architecture, Text(m["architecture"], "model.architecture"));
        Assert.Equal(3, Number(m["layers"], "model.layers"));
        Assert.Equal(48, Number(m["width"], "model.width"));
        Assert.Equal(320, Number(m["vocab_size"], "model.vocab_size"));

        JsonObject c = json["corpus"]!.AsObject();
        Assert.Equal(Path.GetFullPath(runs.CorpusPath), Text(c["path"], "corpus.path"));
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(runs.CorpusPath))), Text(c["sha256"], "corpus.sha256"));
        JsonObject s = c["sentences"]!.AsObject();
        double train = Number(s["train"], "train"), validation = Number(s["validation"], "validation"), heldOut = Number(s["held_out"], "held_out");
        Assert.True(train > validation && heldOut > validation && validation >= 1, $"split {train}/{validation}/{heldOut}");
        Assert.Equal(MeasurementRunFixture.Sentences, train + validation + heldOut + Number(c["dropped_without_targets"], "dropped"));
        Assert.Equal(MeasurementRunFixture.Sentences, Number(c["sampled"], "sampled"));

        JsonObject settings = json["settings"]!.AsObject();
        string[] keys = ["model", "corpus", "max_sentences", "layers", "pool", "probe", "hidden", "epochs", "batch_size", "probe_batch_size", "seed",
            "max_tokens", "fano_alphabet", "bootstrap", "baseline", "train_fraction", "validation_fraction", "learning_rate", "weight_decay"];
        foreach (string key in keys) Assert.True(settings.ContainsKey(key), $"settings.{key} is missing");
        MeasureOptions o = result.Options;
        Assert.Equal(o.Model, Text(settings["model"], "settings.model"));
        Assert.Equal(Path.GetFullPath(runs.CorpusPath), Text(settings["corpus"], "settings.corpus"));
        Assert.Null(settings["max_sentences"]);
        Assert.Equal("all", Text(settings["layers"], "settings.layers"));
        Assert.Equal("mean", Text(settings["pool"], "settings.pool"));
        Assert.Equal("positional", Text(settings["probe"], "settings.probe"));
        Assert.Equal(32, Number(settings["hidden"], "hidden"));
        Assert.Equal(3, Number(settings["epochs"], "epochs"));
        Assert.Equal(o.BatchSize, Number(settings["batch_size"], "batch_size"));
        Assert.Equal(o.ProbeBatchSize, Number(settings["probe_batch_size"], "probe_batch_size"));
        Assert.Equal(0, Number(settings["seed"], "seed"));
        Assert.Equal("vocab", Text(settings["fano_alphabet"], "fano_alphabet"));
        Assert.Equal(20, Number(settings["bootstrap"], "bootstrap"));
        Assert.Equal("none", Text(settings["baseline"], "baseline"));
        Assert.Equal(0.7, Number(settings["train_fraction"], "train_fraction"));
        Assert.Equal(0.1, Number(settings["validation_fraction"], "validation_fraction"));

        Assert.False(string.IsNullOrWhiteSpace(Text(json["backend"], "backend")));
        JsonObject timings = json["timings_s"]!.AsObject();
        foreach (string phase in new[] { "load", "tokenise", "forward", "control", "probes", "total" })
            Assert.True(Number(timings[phase], $"timings_s.{phase}") >= 0);
        Assert.True(json["warnings"] is JsonArray);
        Assert.Equal("positional", Text(json["probe_family"], "probe_family"));
    }

    [Theory]
    [InlineData("bert-tiny")]
    [InlineData("gpt2-tiny")]
    public void EveryLayerEntryIsCompleteAndItsFiguresAreConsistent(string model)
    {
        MeasurementResult result = runs.Run(model);
        JsonObject json = Parse(result);
        bool gpt2 = model.StartsWith("gpt2", StringComparison.Ordinal);
        const int numLayers = 3;
        JsonArray layers = json["layers"]!.AsArray();
        Assert.Equal(numLayers + 1 + (gpt2 ? 1 : 0), layers.Count);

        double? entropy = null, controlBa = null;
        for (int i = 0; i < layers.Count; i++)
        {
            JsonObject l = layers[i]!.AsObject();
            string where = $"{model} layers[{i}]";
            Assert.Equal(i, Number(l["layer"], where + ".layer"));
            bool final = gpt2 && i == numLayers + 1;
            Assert.Equal(final ? "final" : i.ToString(System.Globalization.CultureInfo.InvariantCulture), Text(l["name"], where + ".name"));
            Assert.Equal(Math.Min(i, numLayers) / (double)numLayers, Number(l["depth"], where + ".depth"), Exact);

            double acc = Number(l["acc"], where + ".acc");
            Assert.InRange(acc, 0, 1);
            var accCi = Interval(l["acc_ci"], where + ".acc_ci");
            Assert.InRange(accCi.Lo, 0, 1);
            Assert.InRange(accCi.Hi, 0, 1);
            double ce = Number(l["ce_bits"], where + ".ce_bits");
            Assert.True(ce > 0);
            double hx = Number(l["h_x_bits"], where + ".h_x_bits"), plugin = Number(l["h_x_plugin_bits"], where + ".h_x_plugin_bits");
            double n = Number(l["held_out_targets"], where + ".held_out_targets"), k = Number(l["distinct_targets"], where + ".distinct_targets");
            Assert.True(plugin > 0 && plugin <= Math.Log2(k) + Exact, $"{where}: plug-in H(X) {plugin} outside (0, log2 K]");
            Assert.Equal(plugin + (k - 1) / (2 * n * Math.Log(2)), hx, Exact); // Miller-Madow
            entropy ??= hx;
            Assert.Equal(entropy.Value, hx, Exact); // the same held-out targets at every layer

            double alphabet = Number(l["alphabet_size"], where + ".alphabet_size");
            Assert.Equal(320, alphabet);
            double fano = Number(l["fano_bits"], where + ".fano_bits");
            double pe = 1 - acc;
            Assert.Equal(hx - BinaryEntropy(pe) - pe * Math.Log2(alphabet - 1), fano, Exact);
            Interval(l["fano_ci"], where + ".fano_ci");
            double certified = Number(l["fano_certified_bits"], where + ".fano_certified_bits");
            Assert.True(certified <= fano + Exact, $"{where}: certified Fano {certified} above the point estimate {fano}");
            Assert.True(Number(l["certified_error_rate"], where + ".certified_error_rate") >= pe);

            double ba = Number(l["ba_bits"], where + ".ba_bits");
            Assert.Equal(hx - ce, ba, Exact);
            Interval(l["ba_ci"], where + ".ba_ci");
            Assert.Equal(Math.Max(fano, ba), Number(l["sentence_lower_bound_bits"], where + ".sentence_lower_bound_bits"), Exact);

            double control = Number(l["control_ba_bits"], where + ".control_ba_bits");
            Assert.Equal(hx - Number(l["control_ce_bits"], where + ".control_ce_bits"), control, Exact);
            controlBa ??= control;
            Assert.Equal(controlBa.Value, control, Exact); // one control probe for every layer
            Assert.Equal(ba - control, Number(l["gain_bits"], where + ".gain_bits"), Exact);

            JsonArray positions = l["positions"]!.AsArray();
            Assert.NotEmpty(positions);
            Assert.Equal(n, positions.Sum(p => Number(p!["targets"], where + ".positions.targets")));
            Assert.Equal(acc, positions.Sum(p => Number(p!["acc"], "acc") * Number(p!["targets"], "targets")) / n, 1e-9);
        }
    }

    [Theory]
    [InlineData("bert-tiny")]
    [InlineData("gpt2-tiny")]
    public void SummaryIsThePeakOfFanoOverLayersZeroToLAndTheDropToLayerL(string model)
    {
        JsonObject json = Parse(runs.Run(model));
        var layers = json["layers"]!.AsArray().Select(l => l!.AsObject()).Where(l => Text(l["name"], "name") != "final").ToArray();
        Assert.Equal(4, layers.Length);
        double[] fano = layers.Select(l => Number(l["fano_bits"], "fano_bits")).ToArray();
        int peak = Array.IndexOf(fano, fano.Max());
        JsonObject summary = json["summary"]!.AsObject();
        Assert.Equal(peak, Number(summary["peak_layer"], "peak_layer"));
        Assert.Equal(fano[peak], Number(summary["peak_fano_bits"], "peak_fano_bits"), Exact);
        Assert.Equal(peak / 3.0, Number(summary["peak_depth"], "peak_depth"), Exact);
        Assert.Equal(fano[^1], Number(summary["last_fano_bits"], "last_fano_bits"), Exact);
        Assert.Equal(fano[peak] - fano[^1], Number(summary["forgetting_bits"], "forgetting_bits"), Exact);
        Assert.True(Number(summary["forgetting_bits"], "forgetting_bits") >= 0);
    }

    [Fact]
    public void Gpt2HasAFinalEntryAfterLnFAndBertHasNone()
    {
        JsonArray gpt2 = Parse(runs.Run("gpt2-tiny"))["layers"]!.AsArray();
        JsonObject final = gpt2[^1]!.AsObject();
        Assert.Equal("final", Text(final["name"], "name"));
        Assert.Equal(4, Number(final["layer"], "layer"));
        Assert.Equal(1.0, Number(final["depth"], "depth"));
        // ln_f changes the vectors, so the probe's figures differ from layer L's.
        Assert.NotEqual(Number(gpt2[3]!["ce_bits"], "ce"), Number(final["ce_bits"], "ce"));

        JsonArray bert = Parse(runs.Run("bert-tiny"))["layers"]!.AsArray();
        Assert.DoesNotContain(bert, l => Text(l!["name"], "name") == "final");
    }
}
