using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using NativeMi.Measurement;
using NativeMi.Reporting;
using Xunit;

namespace NativeMi.Tests.Measurement;

/// <summary>results.json ("nativemi.measure/2"): keys, types and the arithmetic that ties the figures together.</summary>
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
        Assert.Equal("nativemi.measure/2", Text(json["schema"], "schema"));

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
        // Every corpus sentence is sampled here, so the population is the sample (less sentences without targets).
        Assert.Equal(train + validation + heldOut, Number(c["population_sentences"], "population_sentences"));
        Assert.True(Number(c["population_targets"], "population_targets") > Number(c["population_sentences"], "population_sentences"));

        JsonObject settings = json["settings"]!.AsObject();
        string[] keys = ["model", "corpus", "max_sentences", "layers", "pool", "probe", "hidden", "epochs", "batch_size", "probe_batch_size", "seed",
            "max_tokens", "fano_alphabet", "bootstrap", "baseline", "train_fraction", "validation_fraction", "learning_rate", "weight_decay",
            "classes", "target", "patience", "probe_seeds", "mlp_lr_scale"];
        foreach (string key in keys) Assert.True(settings.ContainsKey(key), $"settings.{key} is missing");
        MeasureOptions o = result.Options;
        Assert.Equal(o.Model, Text(settings["model"], "settings.model"));
        Assert.Equal(Path.GetFullPath(runs.CorpusPath), Text(settings["corpus"], "settings.corpus"));
        Assert.Null(settings["max_sentences"]);
        Assert.Equal("all", Text(settings["layers"], "settings.layers"));
        // No --pool given: the family's default, recorded as resolved (mean for the encoder, last for the decoder).
        Assert.Equal(architecture == "gpt2" ? "last" : "mean", Text(settings["pool"], "settings.pool"));
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
        Assert.Equal("coarse", Text(json["headline_target"], "headline_target"));

        // The targets: X over the whole vocabulary, f(X) over the classes; H(X | I) <= H(X), and I(X; I) their difference.
        foreach (string target in new[] { "token", "coarse" })
        {
            JsonObject t = json["targets"]![target]!.AsObject();
            double h = Number(t["h_x_bits"], $"{target}.h_x_bits"), hi = Number(t["h_x_given_i_bits"], $"{target}.h_x_given_i_bits");
            Assert.True(hi <= h + Exact && hi >= 0, $"{target}: H(X | I) {hi} vs H(X) {h}");
            Assert.Equal(h - hi, Number(t["i_x_i_bits"], $"{target}.i_x_i_bits"), Exact);
        }
        Assert.Equal(320, Number(json["targets"]!["token"]!["alphabet_size"], "token alphabet"));
        double classes = Number(json["targets"]!["classes"]!["count"], "classes.count");
        Assert.Equal(classes, Number(json["targets"]!["coarse"]!["alphabet_size"], "coarse alphabet"));
        Assert.Equal(320 - (classes - 1), Number(json["targets"]!["classes"]!["other_tokens"], "other_tokens"));

        // The control: never worse than the training unigram beyond noise, and its figures are complete.
        JsonObject control = json["control"]!.AsObject();
        Assert.False(control["worse_than_unigram"]!.GetValue<bool>());
        Assert.Equal(result.Control.UnigramToken.CrossEntropyBits, Number(control["unigram_token_ce_bits"], "unigram_token_ce_bits"), Exact);
        Number(control["token"]!["ba_bits"], "control.token.ba_bits");
        Number(control["coarse"]!["ba_bits"], "control.coarse.ba_bits");
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

        foreach (string target in new[] { "token", "coarse" })
        {
            JsonObject t = json["targets"]![target]!.AsObject();
            double hx = Number(t["h_x_bits"], "h_x_bits"), hxi = Number(t["h_x_given_i_bits"], "h_x_given_i_bits");
            double alphabet = Number(t["alphabet_size"], "alphabet_size");
            double controlCe = Number(json["control"]![target]!["ce_bits"], "control ce");
            for (int i = 0; i < layers.Count; i++)
            {
                JsonObject l = layers[i]!.AsObject();
                string where = $"{model} layers[{i}].{target}";
                Assert.Equal(i, Number(l["layer"], where + ".layer"));
                bool final = gpt2 && i == numLayers + 1;
                Assert.Equal(final ? "final" : i.ToString(System.Globalization.CultureInfo.InvariantCulture), Text(l["name"], where + ".name"));
                Assert.Equal(Math.Min(i, numLayers) / (double)numLayers, Number(l["depth"], where + ".depth"), Exact);
                JsonObject f = l[target]!.AsObject();

                double acc = Number(f["acc"], where + ".acc");
                Assert.InRange(acc, 0, 1);
                var accCi = Interval(f["acc_ci"], where + ".acc_ci");
                Assert.InRange(accCi.Lo, 0, 1);
                Assert.InRange(accCi.Hi, 0, 1);
                double ce = Number(f["ce_bits"], where + ".ce_bits");
                Assert.True(ce > 0);
                // H(X) and H(X | I) are the run's population values at every layer, not the held-out sample's.
                Assert.Equal(hx, Number(f["h_x_bits"], where + ".h_x_bits"), Exact);
                Assert.Equal(hxi, Number(f["h_x_given_i_bits"], where + ".h_x_given_i_bits"), Exact);
                double plugin = Number(f["held_out_h_x_plugin_bits"], where + ".plug-in");
                double n = Number(f["held_out_targets"], where + ".held_out_targets"), k = Number(f["distinct_targets"], where + ".distinct_targets");
                Assert.True(plugin > 0 && plugin <= Math.Log2(k) + Exact, $"{where}: plug-in H(X) {plugin} outside (0, log2 K]");
                Assert.Equal(plugin + (k - 1) / (2 * n * Math.Log(2)), Number(f["held_out_h_x_miller_madow_bits"], where + ".mm"), Exact);

                Assert.Equal(alphabet, Number(f["alphabet_size"], where + ".alphabet_size"));
                Assert.Equal("fano", Text(f["fano_kind"], where + ".fano_kind"));
                double fano = Number(f["fano_bits"], where + ".fano_bits");
                double pe = 1 - acc, fanoConditional = BinaryEntropy(pe) + pe * Math.Log2(alphabet - 1);
                Assert.Equal(hx - fanoConditional, fano, Exact);
                Interval(f["fano_ci"], where + ".fano_ci");
                double upper = Number(f["fano_upper_error_bits"], where + ".fano_upper_error_bits");
                Assert.True(upper <= fano + Exact, $"{where}: Fano at the upper error rate {upper} above the point estimate {fano}");
                Assert.True(Number(f["upper_error_rate"], where + ".upper_error_rate") >= pe);

                double ba = Number(f["ba_bits"], where + ".ba_bits");
                Assert.Equal(hx - ce, ba, Exact);
                var baCi = Interval(f["ba_ci"], where + ".ba_ci");
                var ceCi = Interval(f["ce_ci"], where + ".ce_ci");
                Assert.Equal(hx - ceCi.Hi, baCi.Lo, Exact);
                // Sentence level: from H(X | I), never a max of the position-aware figures.
                Assert.Equal(hxi - fanoConditional, Number(f["sentence_fano_bits"], where + ".sentence_fano_bits"), Exact);
                Assert.Equal(hxi - ce, Number(f["sentence_ba_bits"], where + ".sentence_ba_bits"), Exact);
                Assert.Equal(Math.Max(hxi - fanoConditional, hxi - ce), Number(f["sentence_lower_bits"], where + ".sentence_lower_bits"), Exact);
                Interval(f["sentence_lower_ci"], where + ".sentence_lower_ci");
                // gain = CE_ctrl - CE, one control for every layer.
                Assert.Equal(controlCe - ce, Number(f["gain_bits"], where + ".gain_bits"), Exact);
                Interval(f["gain_ci"], where + ".gain_ci");

                JsonArray positions = f["positions"]!.AsArray();
                Assert.NotEmpty(positions);
                Assert.Equal(n, positions.Sum(p => Number(p!["targets"], where + ".positions.targets")));
                Assert.Equal(acc, positions.Sum(p => Number(p!["acc"], "acc") * Number(p!["targets"], "targets")) / n, 1e-9);
                Assert.All(positions, p => Assert.Equal(Number(p!["targets"], "targets") < 30, p!["sparse"]!.GetValue<bool>()));
            }

            // Paired differences between consecutive layers: I_BA(a) - I_BA(b).
            JsonArray differences = json["differences"]![target]!.AsArray();
            Assert.Equal(layers.Count - 1, differences.Count);
            for (int i = 0; i < differences.Count; i++)
            {
                JsonObject d = differences[i]!.AsObject();
                double expected = Number(layers[i]![target]!["ba_bits"], "ba") - Number(layers[i + 1]![target]!["ba_bits"], "ba");
                Assert.Equal(expected, Number(d["ba_bits"], "difference"), Exact);
                var ci = Interval(d["ci"], "difference ci");
                Assert.Equal(ci.Lo > 0 || ci.Hi < 0, d["resolved"]!.GetValue<bool>());
            }
        }
    }

    [Theory]
    [InlineData("bert-tiny")]
    [InlineData("gpt2-tiny")]
    public void SummaryIsThePeakOfBarberAgakovOverLayersZeroToLAndTheDropToLayerL(string model)
    {
        JsonObject json = Parse(runs.Run(model));
        var layers = json["layers"]!.AsArray().Select(l => l!.AsObject()).Where(l => Text(l["name"], "name") != "final").ToArray();
        Assert.Equal(4, layers.Length);
        foreach (string target in new[] { "token", "coarse" })
        {
            double[] ba = layers.Select(l => Number(l[target]!["ba_bits"], "ba_bits")).ToArray();
            int peak = Array.IndexOf(ba, ba.Max());
            JsonObject summary = json["summary"]![target]!.AsObject();
            Assert.Equal(peak, Number(summary["peak_layer"], "peak_layer"));
            Assert.Equal(ba[peak], Number(summary["peak_ba_bits"], "peak_ba_bits"), Exact);
            Assert.Equal(peak / 3.0, Number(summary["peak_depth"], "peak_depth"), Exact);
            Assert.Equal(ba[^1], Number(summary["last_ba_bits"], "last_ba_bits"), Exact);
            JsonObject forgetting = summary["forgetting"]!.AsObject();
            Assert.Equal(ba[peak] - ba[^1], Number(forgetting["ba_bits"], "forgetting"), Exact);
            Assert.True(Number(forgetting["ba_bits"], "forgetting") >= 0);
            Interval(forgetting["ci"], "forgetting ci");
            Assert.Equal(Number(layers[peak][target]!["gain_bits"], "gain"), Number(summary["peak_gain_bits"], "peak_gain_bits"), Exact);
        }
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
        Assert.NotEqual(Number(gpt2[3]!["token"]!["ce_bits"], "ce"), Number(final["token"]!["ce_bits"], "ce"));

        JsonArray bert = Parse(runs.Run("bert-tiny"))["layers"]!.AsArray();
        Assert.DoesNotContain(bert, l => Text(l!["name"], "name") == "final");
    }
}
