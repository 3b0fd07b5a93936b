using System.Globalization;
using System.Text;
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
    /// Writes results.json, layers.csv and positions.csv into <paramref name="folder"/> (created when missing) and returns their paths,
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

    /// <summary>The UTF-8 bytes of results.json, schema "nativemi.measure/2", indented (docs/METHOD.md defines every figure; Reporting/ResultJson.cs its shape).</summary>
    public static byte[] ToJson(MeasurementResult r)
    {
        ArgumentNullException.ThrowIfNull(r);
        return ResultJson.Serialize(r);
    }

    /// <summary>The JSON and CSV label of a Fano kind.</summary>
    internal static string FanoKindName(FanoKind kind) => kind switch
    {
        FanoKind.ListFano => "list-fano",
        FanoKind.ObservedPlugIn => "observed-alphabet plug-in (not a bound)",
        _ => "fano",
    };

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
