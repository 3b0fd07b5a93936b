using System.Globalization;
using System.Text;
using System.Text.Json;
using NativeMi.Information;
using NativeMi.IO;
using NativeMi.Measurement;

namespace NativeMi.Reporting;

/// <summary>Writes results.json, layers.csv and positions.csv, each atomically.</summary>
public static class ResultWriter
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    /// <summary>Writes the three data files into <paramref name="folder"/> and returns their paths.</summary>
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
    public static IReadOnlyList<string> Stage(MeasurementResult result, string folder, AtomicFileSet files)
    {
        ArgumentNullException.ThrowIfNull(files);
        string json = Path.Combine(folder, "results.json"), layers = Path.Combine(folder, "layers.csv"), positions = Path.Combine(folder, "positions.csv");
        files.AddText(layers, LayersCsv(result));
        files.AddText(positions, PositionsCsv(result));
        files.AddBytes(json, ToJson(result));
        return [json, layers, positions];
    }

    /// <summary>results.json, schema "nativemi.measure/1".</summary>
    public static byte[] ToJson(MeasurementResult r)
    {
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
            w.WriteString("pool", o.Pool.ToString().ToLowerInvariant());
            w.WriteString("probe", o.Probe.ToString().ToLowerInvariant());
            w.WriteNumber("hidden", o.Hidden);
            w.WriteNumber("epochs", o.Epochs);
            w.WriteNumber("batch_size", o.BatchSize);
            w.WriteNumber("probe_batch_size", o.ProbeBatchSize);
            w.WriteNumber("seed", o.Seed);
            if (o.MaxTokens is int mt) w.WriteNumber("max_tokens", mt); else w.WriteNull("max_tokens");
            w.WriteString("fano_alphabet", o.FanoAlphabet == FanoAlphabet.Vocabulary ? "vocab" : "observed");
            w.WriteNumber("bootstrap", o.Bootstrap);
            w.WriteString("baseline", BaselineName(o.Baseline));
            w.WriteBoolean("allow_nonfinite_weights", o.AllowNonFiniteWeights);
            w.WriteNumber("train_fraction", o.TrainFraction);
            w.WriteNumber("validation_fraction", o.ValidationFraction);
            w.WriteString("learning_rate", "1e-3");
            w.WriteString("weight_decay", "0.01");
            w.WriteEndObject();
            w.WriteString("backend", r.Backend);
            w.WriteStartObject("timings_s");
            foreach (var (phase, seconds) in r.TimingsSeconds) w.WriteNumber(phase, seconds);
            w.WriteEndObject();
            w.WriteStartArray("warnings");
            foreach (string warning in r.Warnings) w.WriteStringValue(warning);
            w.WriteEndArray();
            w.WriteString("probe_family", r.ProbeLabel);
            w.WriteString("note", "Every figure is in bits on held-out sentences and bounds what the named probe family can extract (V-usable information), not the true I(S; Z).");
            WriteLayers(w, "layers", r.Layers);
            if (r.BaselineLayers is not null)
            {
                w.WriteStartObject("baseline");
                w.WriteString("kind", BaselineName(o.Baseline));
                WriteLayers(w, "layers", r.BaselineLayers);
                w.WriteEndObject();
            }
            w.WriteStartObject("summary");
            w.WriteNumber("peak_layer", r.Summary.PeakLayer);
            w.WriteNumber("peak_depth", r.Summary.PeakNormalisedDepth);
            w.WriteNumber("peak_fano_bits", r.Summary.PeakFanoBits);
            w.WriteNumber("last_fano_bits", r.Summary.LastFanoBits);
            w.WriteNumber("forgetting_bits", r.Summary.ForgettingBits);
            w.WriteString("note", "over layers 0..L; GPT-2's 'final' (after ln_f) entry is reported but not used here");
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return buffer.ToArray();
    }

    private static string BaselineName(BaselineKind kind) => kind switch
    {
        BaselineKind.RandomInit => "random-init",
        BaselineKind.Shuffled => "shuffled",
        _ => "none",
    };

    private static void WriteLayers(Utf8JsonWriter w, string name, IReadOnlyList<LayerResult> layers)
    {
        w.WriteStartArray(name);
        foreach (LayerResult l in layers)
        {
            LayerFigures f = l.Figures;
            w.WriteStartObject();
            w.WriteNumber("layer", l.Layer);
            w.WriteString("name", l.Name);
            w.WriteNumber("depth", l.Depth);
            w.WriteNumber("acc", f.Accuracy);
            Interval(w, "acc_ci", f.AccuracyInterval);
            w.WriteNumber("ce_bits", f.CrossEntropyBits);
            w.WriteNumber("h_x_bits", f.EntropyBits);
            w.WriteNumber("h_x_plugin_bits", f.EntropyPlugInBits);
            w.WriteString("fano_kind", l.ListFanoBits is null ? "fano" : "list-fano");
            w.WriteNumber("fano_bits", f.FanoBits);
            Interval(w, "fano_ci", f.FanoInterval);
            w.WriteNumber("fano_certified_bits", f.CertifiedFanoBits);
            w.WriteNumber("certified_error_rate", f.CertifiedErrorRate);
            w.WriteNumber("ba_bits", f.BarberAgakovBits);
            Interval(w, "ba_ci", f.BarberAgakovInterval);
            w.WriteNumber("sentence_lower_bound_bits", f.SentenceLowerBoundBits);
            w.WriteNumber("control_ce_bits", l.ControlCrossEntropyBits);
            w.WriteNumber("control_acc", l.ControlAccuracy);
            w.WriteNumber("control_ba_bits", l.ControlBarberAgakovBits);
            w.WriteNumber("gain_bits", l.GainBits);
            if (l.ListFanoBits is double lf) w.WriteNumber("list_fano_bits", lf);
            w.WriteNumber("held_out_targets", f.TargetCount);
            w.WriteNumber("distinct_targets", f.DistinctTargets);
            w.WriteNumber("alphabet_size", f.AlphabetSize);
            w.WriteNumber("probe_epochs", l.Epochs);
            w.WriteNumber("probe_validation_ce_bits", l.ValidationCrossEntropyBits);
            w.WriteStartArray("positions");
            foreach (PositionFigures p in f.Positions)
            {
                w.WriteStartObject();
                w.WriteNumber("position", p.Position);
                w.WriteNumber("targets", p.TargetCount);
                w.WriteNumber("acc", p.Accuracy);
                w.WriteNumber("ce_bits", p.CrossEntropyBits);
                w.WriteNumber("h_x_bits", p.EntropyBits);
                w.WriteNumber("fano_bits", p.FanoBits);
                w.WriteNumber("ba_bits", p.BarberAgakovBits);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        w.WriteEndArray();
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

    private static string LayersCsv(MeasurementResult r)
    {
        var sb = new StringBuilder();
        sb.AppendLine("run,probe,layer,name,depth,acc,acc_lo,acc_hi,ce_bits,h_x_bits,h_x_plugin_bits,fano_bits,fano_lo,fano_hi,fano_certified_bits,ba_bits,ba_lo,ba_hi,control_ba_bits,gain_bits,list_fano_bits");
        void Rows(string run, IReadOnlyList<LayerResult> layers)
        {
            foreach (LayerResult l in layers)
            {
                LayerFigures f = l.Figures;
                sb.AppendJoin(',', run, r.ProbeLabel, l.Layer.ToString(Invariant), l.Name, F(l.Depth), F(f.Accuracy),
                    F(f.AccuracyInterval?.Lower ?? double.NaN), F(f.AccuracyInterval?.Upper ?? double.NaN), F(f.CrossEntropyBits), F(f.EntropyBits), F(f.EntropyPlugInBits),
                    F(f.FanoBits), F(f.FanoInterval?.Lower ?? double.NaN), F(f.FanoInterval?.Upper ?? double.NaN), F(f.CertifiedFanoBits),
                    F(f.BarberAgakovBits), F(f.BarberAgakovInterval?.Lower ?? double.NaN), F(f.BarberAgakovInterval?.Upper ?? double.NaN),
                    F(l.ControlBarberAgakovBits), F(l.GainBits), l.ListFanoBits is double lf ? F(lf) : "");
                sb.Append('\n');
            }
        }
        Rows("model", r.Layers);
        if (r.BaselineLayers is not null) Rows(BaselineName(r.Options.Baseline), r.BaselineLayers);
        return sb.ToString();
    }

    private static string PositionsCsv(MeasurementResult r)
    {
        var sb = new StringBuilder();
        sb.AppendLine("probe,layer,name,position,targets,acc,ce_bits,h_x_bits,fano_bits,ba_bits");
        foreach (LayerResult l in r.Layers)
            foreach (PositionFigures p in l.Figures.Positions)
            {
                sb.AppendJoin(',', r.ProbeLabel, l.Layer.ToString(Invariant), l.Name, p.Position.ToString(Invariant), p.TargetCount.ToString(Invariant),
                    F(p.Accuracy), F(p.CrossEntropyBits), F(p.EntropyBits), F(p.FanoBits), F(p.BarberAgakovBits));
                sb.Append('\n');
            }
        return sb.ToString();
    }
}
