using NativeMi.IO;
using NativeMi.Measurement;

namespace NativeMi.Cli;

/// <summary>The I_F / certified I_F / I_BA / accuracy plot against normalised depth, as PNG and SVG.</summary>
internal static class MiPlot
{
    public sealed record Series(string Label, double[] Depth, double[] Values, double[]? Lower = null, double[]? Upper = null, bool Dashed = false);

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
        foreach (Series s in series) Add(plot, s, palette.GetColor(colour++), rightAxis: false);
        if (rightAxis is not null)
        {
            foreach (Series s in rightAxis) Add(plot, s, palette.GetColor(colour++), rightAxis: true);
            plot.Axes.Right.Label.Text = rightLabel ?? "";
        }
        plot.Title(title);
        plot.XLabel("normalised depth l / L");
        plot.YLabel(yLabel);
        plot.ShowLegend(ScottPlot.Alignment.LowerLeft);
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

    public static void StageMeasurement(AtomicFileSet files, string folder, MeasurementResult r)
    {
        var layers = r.Layers.Where(l => l.Name != "final").ToArray();
        double[] depth = layers.Select(l => l.Depth).ToArray();
        var series = new List<Series>
        {
            new("I_F (Fano, point)", depth, layers.Select(l => l.Figures.FanoBits).ToArray(),
                layers.Select(l => l.Figures.FanoInterval?.Lower ?? l.Figures.FanoBits).ToArray(), layers.Select(l => l.Figures.FanoInterval?.Upper ?? l.Figures.FanoBits).ToArray()),
            new("I_F certified (95%)", depth, layers.Select(l => l.Figures.CertifiedFanoBits).ToArray()),
            new("I_BA (Barber-Agakov)", depth, layers.Select(l => l.Figures.BarberAgakovBits).ToArray(),
                layers.Select(l => l.Figures.BarberAgakovInterval?.Lower ?? l.Figures.BarberAgakovBits).ToArray(), layers.Select(l => l.Figures.BarberAgakovInterval?.Upper ?? l.Figures.BarberAgakovBits).ToArray()),
            new("I_ctrl (position only)", depth, layers.Select(l => l.ControlBarberAgakovBits).ToArray(), Dashed: true),
        };
        if (r.BaselineLayers is not null)
        {
            var b = r.BaselineLayers.Where(l => l.Name != "final").ToArray();
            series.Add(new Series($"I_BA baseline ({r.Options.Baseline})", b.Select(l => l.Depth).ToArray(), b.Select(l => l.Figures.BarberAgakovBits).ToArray(), Dashed: true));
        }
        var accuracy = new List<Series>
        {
            new("accuracy (right axis)", depth, layers.Select(l => l.Figures.Accuracy).ToArray(),
                layers.Select(l => l.Figures.AccuracyInterval?.Lower ?? l.Figures.Accuracy).ToArray(), layers.Select(l => l.Figures.AccuracyInterval?.Upper ?? l.Figures.Accuracy).ToArray()),
        };
        Stage(files, folder, "mi", $"{r.Model.Name}: token recoverability by layer ({r.ProbeLabel} probe, {r.Corpus.HeldOut} held-out sentences)",
            "bits (held-out; bands: 95% bootstrap)", series, accuracy, "recoverability (accuracy)");
    }
}
