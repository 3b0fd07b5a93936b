using System.Globalization;
using System.Text;
using System.Text.Json;
using NativeMi.Information;
using NativeMi.IO;
using NativeMi.Measurement;

namespace NativeMi.Reporting;

/// <summary>
/// Renders a <see cref="MeasurementResult"/> as the files <c>nativemi measure</c> writes: results.json (every figure, schema
/// <see cref="MeasurementResult.Schema"/>), layers.csv (one row per layer and target) and positions.csv (one row per layer, target and position).
/// </summary>
public static class ResultWriter
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    /// <summary>
    /// Writes results.json, layers.csv and positions.csv into <paramref name="folder"/> (which must exist) and returns their paths,
    /// results.json first. Each file is written to a temporary file and renamed into place, results.json last: a reader never
    /// sees a half-written file, and a results.json from this run means the other two are in place too.
    /// </summary>
    /// <exception cref="IO.OutputWriteException">A file cannot be written; no destination is left half-written.</exception>
    public static IReadOnlyList<string> WriteAll(MeasurementResult result, string folder)
    {
        using var files = new AtomicFileSet();
        IReadOnlyList<string> paths = Stage(result, folder, files);
        files.Commit();
        return paths;
    }

    /// <summary>
    /// Adds the three data files to <paramref name="files"/> (renamed into place at its commit) and returns their
    /// paths, results.json first. results.json is added last: renamed after everything staged before it, a
    /// results.json from this run means the rest of the run's files are in place too.
    /// </summary>
    internal static IReadOnlyList<string> Stage(MeasurementResult result, string folder, AtomicFileSet files)
    {
        ArgumentNullException.ThrowIfNull(files);
        string json = Path.Combine(folder, "results.json"), layers = Path.Combine(folder, "layers.csv"), positions = Path.Combine(folder, "positions.csv");
        files.AddText(layers, LayersCsv(result));
        files.AddText(positions, PositionsCsv(result));
        files.AddBytes(json, ToJson(result));
        return [json, layers, positions];
    }

    /// <summary>The text of results.json (<see cref="ToJson"/> as a string): what a library caller gets without a file.</summary>
    public static string ToJsonText(MeasurementResult result) => Encoding.UTF8.GetString(ToJson(result));

    /// <summary>The UTF-8 bytes of results.json, schema "nativemi.measure/2" (docs/METHOD.md defines every figure), indented.</summary>
    public static byte[] ToJson(MeasurementResult r)
    {
        ArgumentNullException.ThrowIfNull(r);
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("schema", MeasurementResult.Schema);
            w.WriteStartObject("model");
            w.WriteString("name", r.Model.Name);
            w.WriteString("directory", r.Model.Directory);
            w.WriteString("architecture", r.Model.Architecture);
            w.WriteString("family", r.Model.Family);
            w.WriteNumber("layers", r.Model.Layers);
            w.WriteNumber("width", r.Model.Width);
            w.WriteNumber("vocab_size", r.Model.VocabularySize);
            w.WriteNumber("parameters", r.Model.Parameters);
            w.WriteString("identity_sha256", r.Model.Identity);
            w.WriteEndObject();
            w.WriteStartObject("corpus");
            w.WriteString("path", r.Corpus.Path);
            w.WriteString("sha256", r.Corpus.Sha256);
            w.WriteNumber("lines", r.Corpus.Lines);
            w.WriteNumber("population_sentences", r.Corpus.PopulationSentences);
            w.WriteNumber("population_targets", r.Corpus.PopulationTargets);
            w.WriteNumber("sampled", r.Corpus.Sampled);
            w.WriteStartObject("sentences");
            w.WriteNumber("train", r.Corpus.Train);
            w.WriteNumber("validation", r.Corpus.Validation);
            w.WriteNumber("held_out", r.Corpus.HeldOut);
            w.WriteEndObject();
            w.WriteNumber("truncated", r.Corpus.Truncated);
            w.WriteNumber("dropped_without_targets", r.Corpus.DroppedWithoutTargets);
            w.WriteEndObject();
            MeasureOptions o = r.Options;
            w.WriteStartObject("settings");
            w.WriteString("model", o.Model);
            w.WriteString("corpus", o.Corpus);
            if (o.MaxSentences is int max) w.WriteNumber("max_sentences", max); else w.WriteNull("max_sentences");
            if (o.Layers is null) w.WriteString("layers", "all");
            else { w.WriteStartArray("layers"); foreach (int l in o.Layers) w.WriteNumberValue(l); w.WriteEndArray(); }
            w.WriteString("pool", o.Pool?.ToString().ToLowerInvariant() ?? "auto");
            w.WriteString("probe", o.Probe.ToString().ToLowerInvariant());
            w.WriteNumber("hidden", o.Hidden);
            if (o.Classes is int classes) w.WriteNumber("classes", classes); else w.WriteString("classes", "all");
            w.WriteString("target", o.HeadlineTarget);
            w.WriteNumber("epochs", o.Epochs);
            w.WriteNumber("patience", o.Patience);
            w.WriteNumber("learning_rate", o.LearningRate);
            w.WriteNumber("mlp_lr_scale", o.SecondStageLearningRateScale);
            w.WriteNumber("weight_decay", 0.01);
            w.WriteNumber("probe_seeds", o.ProbeSeeds);
            w.WriteNumber("batch_size", o.BatchSize);
            w.WriteNumber("probe_batch_size", o.ProbeBatchSize);
            w.WriteNumber("seed", o.Seed);
            if (o.MaxTokens is int mt) w.WriteNumber("max_tokens", mt); else w.WriteNull("max_tokens");
            w.WriteString("fano_alphabet", o.FanoAlphabet == FanoAlphabet.Vocabulary ? "vocab" : "observed");
            w.WriteNumber("bootstrap", o.Bootstrap);
            w.WriteString("baseline", MeasurementRunner.BaselineName(o.Baseline));
            w.WriteBoolean("allow_nonfinite_weights", o.AllowNonFiniteWeights);
            w.WriteBoolean("widen_16bit_weights", o.WidenSixteenBitWeights);
            w.WriteNumber("train_fraction", o.TrainFraction);
            w.WriteNumber("validation_fraction", o.ValidationFraction);
            w.WriteEndObject();
            w.WriteString("backend", r.Backend);
            w.WriteStartObject("timings_s");
            foreach (var (phase, seconds) in r.TimingsSeconds) w.WriteNumber(phase, seconds);
            w.WriteEndObject();
            w.WriteStartArray("warnings");
            foreach (string warning in r.Warnings) w.WriteStringValue(warning);
            w.WriteEndArray();
            w.WriteString("probe_family", r.ProbeLabel);
            w.WriteString("headline_target", r.HeadlineTarget);
            w.WriteString("note", "Bits per target token on held-out sentences. Position-aware figures bound I(X; Z, I) (and the coarse ones I(f(X); Z, I) <= I(X; Z, I)); " +
                "sentence_* figures bound I(X; Z | I) <= I(S; Z). All bound what the named probe family can extract (V-usable information), not the true I(S; Z). gain is an estimate, not a bound.");
            w.WriteStartObject("targets");
            WriteTarget(w, "token", r.Targets.Token, "X: the token at a target position, over the tokenizer vocabulary; entropies over the whole corpus");
            WriteTarget(w, "coarse", r.Targets.Coarse, $"f(X): the probe's {r.Classes.Count - 1} classes (the most frequent training tokens seen at least twice), every other token one symbol; " +
                "entropies over the corpus sentences the classes and probes were not fitted on (all but the training and validation splits)");
            w.WriteStartObject("classes");
            w.WriteNumber("count", r.Classes.Count);
            if (r.Classes.Requested is int requested) w.WriteNumber("requested", requested); else w.WriteString("requested", "all");
            w.WriteNumber("other_tokens", r.Classes.OtherTokenCount);
            w.WriteNumber("other_smoothing", r.Classes.OtherSmoothing);
            w.WriteNumber("training_coverage", r.Classes.TrainingCoverage);
            w.WriteEndObject();
            w.WriteEndObject();
            w.WriteStartObject("control");
            w.WriteString("note", "the same probe trained with z replaced by zeros: a model of q(x | i); I_ctrl = H(X) - CE_ctrl estimates what position alone tells");
            w.WriteNumber("epochs", r.Control.Epochs);
            w.WriteNumber("best_epoch", r.Control.BestEpoch);
            w.WriteNumber("unigram_token_ce_bits", r.Control.UnigramToken.CrossEntropyBits);
            w.WriteNumber("unigram_coarse_ce_bits", r.Control.UnigramCoarse.CrossEntropyBits);
            w.WriteBoolean("worse_than_unigram", r.Control.WorseThanUnigram);
            WriteDifference(w, "token_over_unigram", r.Control.OverUnigram("token"));
            WriteDifference(w, "coarse_over_unigram", r.Control.OverUnigram("coarse"));
            WriteFigures(w, "token", r.Control.Token, gain: null, positions: false);
            WriteFigures(w, "coarse", r.Control.Coarse, gain: null, positions: false);
            w.WriteEndObject();
            WriteLayers(w, "layers", r.Layers);
            w.WriteStartObject("differences");
            w.WriteString("note", "I_BA(from) - I_BA(to) between consecutive probed layers, with paired 95% bootstrap intervals (the same resamples for every layer)");
            foreach (LayerDifferences differences in r.Differences)
            {
                w.WriteStartArray(differences.Target);
                foreach (PairedDifference d in differences.Consecutive) WriteDifference(w, null, d);
                w.WriteEndArray();
            }
            w.WriteEndObject();
            if (r.Baseline is not null)
            {
                w.WriteStartObject("baseline");
                w.WriteString("kind", r.Baseline.Kind);
                WriteLayers(w, "layers", r.Baseline.Layers);
                w.WriteEndObject();
            }
            w.WriteStartObject("summary");
            w.WriteString("note", "I_BA over layers 0..L (a 'final' entry after the last norm is reported but not used here); forgetting = peak - last with its paired interval");
            foreach (DepthSummary summary in r.Summaries)
            {
                w.WriteStartObject(summary.Target);
                w.WriteNumber("peak_layer", summary.PeakLayer);
                w.WriteString("peak_name", summary.PeakName);
                w.WriteNumber("peak_depth", summary.PeakDepth);
                w.WriteNumber("peak_ba_bits", summary.PeakBarberAgakovBits);
                w.WriteNumber("last_ba_bits", summary.LastBarberAgakovBits);
                WriteDifference(w, "forgetting", summary.Forgetting);
                w.WriteNumber("peak_gain_bits", summary.PeakGainBits);
                w.WriteNumber("last_gain_bits", summary.LastGainBits);
                w.WriteEndObject();
            }
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return buffer.ToArray();
    }

    private static void WriteTarget(Utf8JsonWriter w, string name, TargetVariable target, string description)
    {
        w.WriteStartObject(name);
        w.WriteString("description", description);
        w.WriteNumber("alphabet_size", target.AlphabetSize);
        w.WriteNumber("h_x_bits", target.Entropies.EntropyBits);
        w.WriteNumber("h_x_given_i_bits", target.Entropies.ConditionalEntropyBits);
        w.WriteNumber("i_x_i_bits", target.Entropies.PositionInformationBits);
        w.WriteNumber("population_sentences", target.Entropies.SentenceCount);
        w.WriteNumber("population_targets", target.Entropies.TargetCount);
        w.WriteNumber("population_distinct", target.Entropies.DistinctSymbols);
        w.WriteEndObject();
    }

    /// <summary>The JSON and CSV label of a Fano kind.</summary>
    internal static string FanoKindName(FanoKind kind) => kind switch
    {
        FanoKind.ListFano => "list-fano",
        FanoKind.ObservedPlugIn => "observed-alphabet plug-in (not a bound)",
        _ => "fano",
    };

    private static void WriteLayers(Utf8JsonWriter w, string name, IReadOnlyList<LayerResult> layers)
    {
        w.WriteStartArray(name);
        foreach (LayerResult l in layers)
        {
            w.WriteStartObject();
            w.WriteNumber("layer", l.Layer);
            w.WriteString("name", l.Name);
            w.WriteNumber("depth", l.Depth);
            w.WriteNumber("probe_epochs", l.Epochs);
            w.WriteNumber("probe_best_epoch", l.BestEpoch);
            w.WriteNumber("probe_validation_coarse_ce_bits", l.ValidationCrossEntropyBits);
            w.WriteStartArray("seeds");
            foreach (SeedFit seed in l.Seeds)
            {
                w.WriteStartObject();
                w.WriteNumber("seed", seed.Seed);
                w.WriteNumber("validation_coarse_ce_bits", seed.ValidationCrossEntropyBits);
                w.WriteNumber("token_ba_bits", seed.TokenBarberAgakovBits);
                w.WriteNumber("coarse_ba_bits", seed.CoarseBarberAgakovBits);
                w.WriteNumber("epochs", seed.Epochs);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            WriteFigures(w, "token", l.Token, l.TokenGain, positions: true);
            WriteFigures(w, "coarse", l.Coarse, l.CoarseGain, positions: true);
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }

    private static void WriteFigures(Utf8JsonWriter w, string name, LayerFigures f, PairedDifference? gain, bool positions)
    {
        w.WriteStartObject(name);
        w.WriteNumber("acc", f.Accuracy);
        Interval(w, "acc_ci", f.AccuracyInterval);
        w.WriteNumber("ce_bits", f.CrossEntropyBits);
        Interval(w, "ce_ci", f.CrossEntropyInterval);
        w.WriteString("fano_kind", FanoKindName(f.FanoKind));
        w.WriteNumber("fano_bits", f.FanoBits);
        Interval(w, "fano_ci", f.FanoInterval);
        w.WriteNumber("fano_upper_error_bits", f.FanoAtUpperErrorBits);
        w.WriteNumber("upper_error_rate", f.UpperErrorRate);
        w.WriteNumber("ba_bits", f.BarberAgakovBits);
        Interval(w, "ba_ci", f.BarberAgakovInterval);
        w.WriteNumber("sentence_fano_bits", f.SentenceFanoBits);
        w.WriteNumber("sentence_ba_bits", f.SentenceBarberAgakovBits);
        w.WriteNumber("sentence_lower_bits", f.SentenceLowerBoundBits);
        Interval(w, "sentence_lower_ci", f.SentenceLowerBoundInterval);
        if (gain is not null)
        {
            w.WriteNumber("gain_bits", gain.Bits);
            Interval(w, "gain_ci", gain.Interval);
        }
        w.WriteNumber("held_out_targets", f.TargetCount);
        w.WriteNumber("distinct_targets", f.DistinctTargets);
        w.WriteNumber("alphabet_size", f.AlphabetSize);
        w.WriteNumber("h_x_bits", f.EntropyBits);
        w.WriteNumber("h_x_given_i_bits", f.ConditionalEntropyBits);
        w.WriteNumber("held_out_h_x_plugin_bits", f.HeldOutPlugInEntropyBits);
        w.WriteNumber("held_out_h_x_miller_madow_bits", f.HeldOutMillerMadowEntropyBits);
        if (positions)
        {
            w.WriteStartArray("positions");
            foreach (PositionFigures p in f.Positions)
            {
                w.WriteStartObject();
                w.WriteNumber("position", p.Position);
                w.WriteNumber("targets", p.TargetCount);
                w.WriteBoolean("sparse", p.Sparse);
                w.WriteNumber("acc", p.Accuracy);
                w.WriteNumber("ce_bits", p.CrossEntropyBits);
                w.WriteNumber("h_x_bits", p.EntropyBits);
                w.WriteNumber("fano_bits", p.FanoBits);
                w.WriteNumber("ba_bits", p.BarberAgakovBits);
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }
        w.WriteEndObject();
    }

    private static void WriteDifference(Utf8JsonWriter w, string? name, PairedDifference d)
    {
        if (name is null) w.WriteStartObject(); else w.WriteStartObject(name);
        w.WriteString("from", d.From);
        w.WriteString("to", d.To);
        w.WriteNumber("ba_bits", d.Bits);
        Interval(w, "ci", d.Interval);
        w.WriteBoolean("resolved", d.Resolved);
        w.WriteEndObject();
    }

    private static void Interval(Utf8JsonWriter w, string name, Interval? interval)
    {
        if (interval is not { } i) { w.WriteNull(name); return; }
        w.WriteStartArray(name);
        w.WriteNumberValue(i.Lower);
        w.WriteNumberValue(i.Upper);
        w.WriteEndArray();
    }

    private static string F(double v) => v.ToString("R", Invariant);

    private static string F(double? v) => v is double x ? F(x) : "";

    private static string LayersCsv(MeasurementResult r)
    {
        var sb = new StringBuilder();
        sb.AppendLine("run,probe,target,layer,name,depth,acc,acc_lo,acc_hi,ce_bits,h_x_bits,h_x_given_i_bits,fano_kind,fano_bits,fano_lo,fano_hi,fano_upper_error_bits," +
            "ba_bits,ba_lo,ba_hi,sentence_lower_bits,sentence_lower_lo,sentence_lower_hi,gain_bits,gain_lo,gain_hi,diff_next_bits,diff_next_lo,diff_next_hi");
        void Rows(string run, IReadOnlyList<LayerResult> layers)
        {
            foreach (string target in new[] { "coarse", "token" })
            {
                var differences = LayerDifferences.From(layers, target).Consecutive;
                for (int i = 0; i < layers.Count; i++)
                {
                    LayerResult l = layers[i];
                    LayerFigures f = l.For(target);
                    PairedDifference gain = l.GainFor(target);
                    PairedDifference? next = i < differences.Count ? differences[i] : null;
                    sb.AppendJoin(',', run, r.ProbeLabel, target, l.Layer.ToString(Invariant), l.Name, F(l.Depth), F(f.Accuracy),
                        F(f.AccuracyInterval?.Lower), F(f.AccuracyInterval?.Upper), F(f.CrossEntropyBits), F(f.EntropyBits), F(f.ConditionalEntropyBits),
                        FanoKindName(f.FanoKind), F(f.FanoBits), F(f.FanoInterval?.Lower), F(f.FanoInterval?.Upper), F(f.FanoAtUpperErrorBits),
                        F(f.BarberAgakovBits), F(f.BarberAgakovInterval?.Lower), F(f.BarberAgakovInterval?.Upper),
                        F(f.SentenceLowerBoundBits), F(f.SentenceLowerBoundInterval?.Lower), F(f.SentenceLowerBoundInterval?.Upper),
                        F(gain.Bits), F(gain.Interval?.Lower), F(gain.Interval?.Upper), F(next?.Bits), F(next?.Interval?.Lower), F(next?.Interval?.Upper));
                    sb.Append('\n');
                }
            }
        }
        Rows("model", r.Layers);
        if (r.Baseline is not null) Rows(r.Baseline.Kind, r.Baseline.Layers);
        return sb.ToString();
    }

    private static string PositionsCsv(MeasurementResult r)
    {
        var sb = new StringBuilder();
        sb.AppendLine("probe,target,layer,name,position,targets,sparse,acc,ce_bits,h_x_bits,fano_bits,ba_bits");
        foreach (string target in new[] { "coarse", "token" })
            foreach (LayerResult l in r.Layers)
                foreach (PositionFigures p in l.For(target).Positions)
                {
                    sb.AppendJoin(',', r.ProbeLabel, target, l.Layer.ToString(Invariant), l.Name, p.Position.ToString(Invariant), p.TargetCount.ToString(Invariant),
                        p.Sparse ? "true" : "false", F(p.Accuracy), F(p.CrossEntropyBits), F(p.EntropyBits), F(p.FanoBits), F(p.BarberAgakovBits));
                    sb.Append('\n');
                }
        return sb.ToString();
    }
}
