using NativeMi.IO;
using NativeMi.Measurement;

namespace NativeMi.Cli;

/// <summary>The I_F / certified I_F / I_BA / accuracy plot against normalised depth, as PNG and SVG.</summary>
internal static class MiPlot
{
    /// <summary>One line of a plot, with an optional interval band; <paramref name="Colour"/> picks a palette entry (null: the next one).</summary>
    public sealed record Series(string Label, double[] Depth, double[] Values, double[]? Lower = null, double[]? Upper = null, bool Dashed = false, int? Colour = null, int? Marker = null);

    private static readonly ScottPlot.MarkerShape[] Markers =
        [ScottPlot.MarkerShape.FilledCircle, ScottPlot.MarkerShape.FilledSquare, ScottPlot.MarkerShape.FilledTriangleUp, ScottPlot.MarkerShape.FilledDiamond,
         ScottPlot.MarkerShape.FilledTriangleDown, ScottPlot.MarkerShape.Cross];

    public static void Write(string folder, string baseName, string title, string yLabel, IReadOnlyList<Series> series, IReadOnlyList<Series>? rightAxis = null, string? rightLabel = null)
    {
        using var files = new AtomicFileSet();
        Stage(files, folder, baseName, title, yLabel, series, rightAxis, rightLabel);
        files.Commit();
    }

    /// <summary>Adds the PNG and SVG to <paramref name="files"/>, to be renamed into place with the rest of a run's outputs.</summary>
    public static void Stage(AtomicFileSet files, string folder, string baseName, string title, string yLabel, IReadOnlyList<Series> series,
        IReadOnlyList<Series>? rightAxis = null, string? rightLabel = null)
    {
        var plot = new ScottPlot.Plot();
        var palette = new ScottPlot.Palettes.Category10();
        int colour = 0;
        foreach (Series s in series) Add(plot, s, palette.GetColor(s.Colour ?? colour++), rightAxis: false);
        if (rightAxis is not null)
        {
            foreach (Series s in rightAxis) Add(plot, s, palette.GetColor(s.Colour ?? colour++), rightAxis: true);
            plot.Axes.Right.Label.Text = rightLabel ?? "";
        }
        plot.Title(title);
        plot.XLabel("normalised depth l / L");
        plot.YLabel(yLabel);
        // Outside the data area: no line is hidden behind it.
        plot.ShowLegend(ScottPlot.Edge.Bottom);
        string png = Path.Combine(folder, baseName + ".png"), svg = Path.Combine(folder, baseName + ".svg");
        files.AddBytes(png, plot.GetImageBytes(1000, 600, ScottPlot.ImageFormat.Png));
        files.AddText(svg, plot.GetSvgXml(1000, 600));
    }

    /// <summary>One series: its interval band (when it has one) and its line, on the left or right axis.</summary>
    private static void Add(ScottPlot.Plot plot, Series s, ScottPlot.Color colour, bool rightAxis)
    {
        if (s.Lower is not null && s.Upper is not null)
        {
            var band = plot.Add.FillY(s.Depth, s.Lower, s.Upper);
            band.FillStyle.Color = colour.WithAlpha(rightAxis ? 0.12 : 0.18);
            band.LineStyle.Width = 0;
            if (rightAxis) band.Axes.YAxis = plot.Axes.Right;
        }
        var line = plot.Add.Scatter(s.Depth, s.Values);
        line.Color = colour;
        line.LineWidth = 2;
        line.MarkerSize = 6;
        line.LegendText = s.Label;
        if (s.Marker is int marker) line.MarkerShape = Markers[marker % Markers.Length];
        if (rightAxis)
        {
            line.MarkerShape = ScottPlot.MarkerShape.FilledSquare;
            line.Axes.YAxis = plot.Axes.Right;
        }
        // Skia's SVG backend cannot draw dash patterns (it prints a warning per line), so dashed series
        // are told apart by hollow markers and thinner lines instead.
        if (s.Dashed)
        {
            line.LineWidth = 1;
            line.MarkerShape = ScottPlot.MarkerShape.OpenCircle;
        }
    }

    /// <summary>
    /// The run's plot: I_BA with its band and the Fano figure of the headline target, the token target's I_BA, the
    /// control, the baseline (under its CLI name) and the accuracy on the right axis, against normalised depth.
    /// </summary>
    public static void StageMeasurement(AtomicFileSet files, string folder, MeasurementResult r)
    {
        string target = r.HeadlineTarget;
        string symbol = target == "token" ? "X" : "f(X)";
        var layers = r.Layers.Where(l => l.Name != "final").ToArray();
        double[] depth = layers.Select(l => l.Depth).ToArray();
        Series Band(string label, IReadOnlyList<LayerResult> source, string t, bool dashed = false)
        {
            var f = source.Select(l => l.For(t)).ToArray();
            return new Series(label, source.Select(l => l.Depth).ToArray(), f.Select(x => x.BarberAgakovBits).ToArray(),
                f.Select(x => x.BarberAgakovInterval?.Lower ?? x.BarberAgakovBits).ToArray(), f.Select(x => x.BarberAgakovInterval?.Upper ?? x.BarberAgakovBits).ToArray(), dashed);
        }
        string fanoLabel = layers[0].For(target).FanoKind switch
        {
            NativeMi.Information.FanoKind.ListFano => "list-Fano",
            NativeMi.Information.FanoKind.ObservedPlugIn => "I_F plug-in (observed alphabet, not a bound)",
            _ => "I_F (Fano)",
        };
        double controlBits = r.Control.For(target).BarberAgakovBits;
        var series = new List<Series>
        {
            Band($"I_BA on {symbol} (Barber-Agakov)", layers, target),
            new($"{fanoLabel} on {symbol}", depth, layers.Select(l => l.For(target).FanoBits).ToArray(),
                layers.Select(l => l.For(target).FanoInterval?.Lower ?? l.For(target).FanoBits).ToArray(), layers.Select(l => l.For(target).FanoInterval?.Upper ?? l.For(target).FanoBits).ToArray()),
            Band($"I_BA on {(target == "token" ? "f(X)" : "X")}", layers, target == "token" ? "coarse" : "token", dashed: true),
            new($"I_ctrl on {symbol} (position only)", depth, depth.Select(_ => controlBits).ToArray(), Dashed: true),
        };
        if (r.Baseline is not null)
            series.Add(Band($"I_BA on {symbol}, {r.Baseline.Kind}", r.Baseline.Layers.Where(l => l.Name != "final").ToArray(), target, dashed: true));
        var accuracy = new List<Series>
        {
            new($"accuracy on {symbol} (right axis)", depth, layers.Select(l => l.For(target).Accuracy).ToArray(),
                layers.Select(l => l.For(target).AccuracyInterval?.Lower ?? l.For(target).Accuracy).ToArray(), layers.Select(l => l.For(target).AccuracyInterval?.Upper ?? l.For(target).Accuracy).ToArray()),
        };
        Stage(files, folder, "mi", $"{r.Model.Name}: token recoverability by layer ({r.ProbeLabel} probe, {r.Corpus.HeldOut} held-out sentences)",
            "bits per target token (held-out; bands: 95% bootstrap)", series, accuracy, "recoverability (accuracy)");
    }
}
