using System.Globalization;
using NativeMi.Information;
using NativeMi.Measurement;
using NativeMi.Probing;
using Spectre.Console;

namespace NativeMi.Cli;

/// <summary>The tables `measure` prints: the headline target's figures, then the other target's, then the run's entropies.</summary>
internal static class MeasureTable
{
    private static string F(double value, string format = "F2") => value.ToString(format, CultureInfo.InvariantCulture);

    private static string WithInterval(double value, Interval? interval, string format = "F2") =>
        interval is { } i ? $"{F(value, format)} [{F(i.Lower, format)}, {F(i.Upper, format)}]" : F(value, format);

    private static string FanoHeader(LayerFigures f) => f.FanoKind switch
    {
        FanoKind.ListFano => "list-Fano",
        FanoKind.ObservedPlugIn => "I_F plug-in*",
        _ => "I_F",
    };

    /// <summary>The name of a target with its symbol, for titles.</summary>
    public static string TargetLabel(MeasurementResult r, string target) => target == "token"
        ? $"token target X ({r.Targets.Token.AlphabetSize:N0}-token vocabulary)"
        : $"coarse target f(X) ({r.Classes.Count - 1:N0} most frequent training tokens + one class for the rest)";

    public static void Print(MeasurementResult r, IAnsiConsole console)
    {
        string headline = r.HeadlineTarget, other = headline == "token" ? "coarse" : "token";
        WriteTable(console, Headline(r, headline));
        WriteTable(console, Secondary(r, other));
        foreach (string line in Notes(r)) console.WriteLine(line);
    }

    /// <summary>
    /// Writes the table; to redirected output its title and caption go as plain lines, because Spectre wraps them at
    /// the table's width whatever the console's (splitting a model folder's path in the title).
    /// </summary>
    public static void WriteTable(IAnsiConsole console, Table table)
    {
        if (!Console.IsOutputRedirected)
        {
            console.Write(table);
            return;
        }
        TableTitle? title = table.Title, caption = table.Caption;
        table.Title = null;
        table.Caption = null;
        if (title is not null) Console.Out.WriteLine(Markup.Remove(title.Text));
        console.Write(table);
        if (caption is not null) Console.Out.WriteLine(Markup.Remove(caption.Text));
    }

    private static Table Headline(MeasurementResult r, string target)
    {
        LayerFigures sample = r.Layers[0].For(target);
        var table = new Table().Border(TableBorder.Rounded).Title(Markup.Escape(
            $"{r.Model.Name} ({r.Model.Architecture}, {r.Model.Layers} layers), {r.ProbeLabel} probe, {r.Options.Pool?.ToString().ToLowerInvariant()} pooling, " +
            $"{r.Corpus.HeldOut:N0} held-out of {r.Corpus.Sampled:N0} sentences: {TargetLabel(r, target)}"));
        string[] columns = ["layer", "depth", "acc [95% CI]", FanoHeader(sample), sample.FanoKind == FanoKind.ObservedPlugIn ? "I_F 95%up*" : "I_F 95%up", "I_BA [95% CI]", "I_S [95% CI]", "gain [95% CI]", "I_BA - next [95% CI]"];
        foreach (string column in columns) table.AddColumn(new TableColumn(Markup.Escape(column)).RightAligned().NoWrap());
        var differences = r.Differences.Single(d => d.Target == target).Consecutive;
        for (int i = 0; i < r.Layers.Count; i++)
        {
            LayerResult l = r.Layers[i];
            LayerFigures f = l.For(target);
            PairedDifference gain = l.GainFor(target);
            string next = i < differences.Count ? WithInterval(differences[i].Bits, differences[i].Interval) + (differences[i].Resolved ? "" : " ~") : "";
            table.AddRow(new[]
            {
                l.Name, F(l.Depth), WithInterval(f.Accuracy, f.AccuracyInterval, "F3"), F(f.FanoBits), F(f.FanoAtUpperErrorBits),
                WithInterval(f.BarberAgakovBits, f.BarberAgakovInterval), WithInterval(f.SentenceLowerBoundBits, f.SentenceLowerBoundInterval),
                WithInterval(gain.Bits, gain.Interval), next,
            }.Select(Markup.Escape).ToArray());
        }
        LayerFigures control = r.Control.For(target);
        table.AddRow(new[]
        {
            "control", "", WithInterval(control.Accuracy, control.AccuracyInterval, "F3"), F(control.FanoBits), F(control.FanoAtUpperErrorBits),
            WithInterval(control.BarberAgakovBits, control.BarberAgakovInterval), WithInterval(control.SentenceLowerBoundBits, control.SentenceLowerBoundInterval), "", "",
        }.Select(Markup.Escape).ToArray());
        if (r.Baseline is not null)
            foreach (LayerResult l in r.Baseline.Layers)
            {
                LayerFigures f = l.For(target);
                PairedDifference gain = l.GainFor(target);
                table.AddRow(new[]
                {
                    $"{r.Baseline.Kind} {l.Name}", F(l.Depth), WithInterval(f.Accuracy, f.AccuracyInterval, "F3"), F(f.FanoBits), F(f.FanoAtUpperErrorBits),
                    WithInterval(f.BarberAgakovBits, f.BarberAgakovInterval), WithInterval(f.SentenceLowerBoundBits, f.SentenceLowerBoundInterval),
                    WithInterval(gain.Bits, gain.Interval), "",
                }.Select(Markup.Escape).ToArray());
            }
        DepthSummary s = r.Summaries.Single(x => x.Target == target);
        table.Caption(Markup.Escape(
            $"Bits per target token, held-out only. I_F and I_BA are lower bounds on I({Symbol(target)}; Z, I) <= I(X; Z, I), I_S = max(I_S_F, I_S_BA) on I(X; Z | I) <= I(S; Z), " +
            $"for what a {r.ProbeLabel} probe can extract (V-usable information). gain = I_BA - I_ctrl is an estimate, not a bound. " +
            $"Intervals: 95% bootstrap over held-out sentences, paired across layers (~ marks a difference the data do not resolve). " +
            $"Peak I_BA at layer {s.PeakName} ({F(s.PeakBarberAgakovBits)} bits); forgetting (peak - last) {WithInterval(s.Forgetting.Bits, s.Forgetting.Interval)} bits."));
        return table;
    }

    private static string Symbol(string target) => target == "token" ? "X" : "f(X)";

    private static Table Secondary(MeasurementResult r, string target)
    {
        LayerFigures sample = r.Layers[0].For(target);
        var table = new Table().Border(TableBorder.Rounded).Title(Markup.Escape($"the same probes on the {TargetLabel(r, target)}"));
        foreach (string column in new[] { "layer", "acc", "CE", FanoHeader(sample), "I_BA [95% CI]", "I_S [95% CI]", "gain" })
            table.AddColumn(new TableColumn(Markup.Escape(column)).RightAligned().NoWrap());
        void Row(string name, LayerFigures f, PairedDifference? gain) => table.AddRow(new[]
        {
            name, F(f.Accuracy, "F3"), F(f.CrossEntropyBits), F(f.FanoBits), WithInterval(f.BarberAgakovBits, f.BarberAgakovInterval),
            WithInterval(f.SentenceLowerBoundBits, f.SentenceLowerBoundInterval), gain is null ? "" : F(gain.Bits),
        }.Select(Markup.Escape).ToArray());
        foreach (LayerResult l in r.Layers) Row(l.Name, l.For(target), l.GainFor(target));
        Row("control", r.Control.For(target), null);
        if (r.Baseline is not null)
            foreach (LayerResult l in r.Baseline.Layers) Row($"{r.Baseline.Kind} {l.Name}", l.For(target), l.GainFor(target));
        return table;
    }

    private static IEnumerable<string> Notes(MeasurementResult r)
    {
        foreach (string target in new[] { "coarse", "token" })
        {
            TargetVariable t = target == "token" ? r.Targets.Token : r.Targets.Coarse;
            LayerFigures f = r.Layers[0].For(target);
            string population = target == "token"
                ? $"the whole corpus ({t.Entropies.SentenceCount:N0} sentences, {t.Entropies.TargetCount:N0} targets)"
                : $"the {t.Entropies.SentenceCount:N0} corpus sentences the classes and probes were not fitted on ({t.Entropies.TargetCount:N0} targets)";
            yield return $"{Symbol(target)}: H = {F(t.Entropies.EntropyBits, "F3")} bits, H(. | I) = {F(t.Entropies.ConditionalEntropyBits, "F3")} bits over {population}; " +
                $"held-out estimates: plug-in {F(f.HeldOutPlugInEntropyBits, "F3")}, " +
                $"Miller-Madow {F(f.HeldOutMillerMadowEntropyBits, "F3")}; |alphabet| = {f.AlphabetSize:N0}";
        }
        yield return $"classes: {r.Classes.Count - 1:N0} tokens + other ({r.Classes.TrainingCoverage:P1} of training targets have a class); " +
            $"control CE {F(r.Control.Coarse.CrossEntropyBits, "F3")} (coarse) / {F(r.Control.Token.CrossEntropyBits, "F3")} (token) bits against the training unigram's " +
            $"{F(r.Control.UnigramCoarse.CrossEntropyBits, "F3")} / {F(r.Control.UnigramToken.CrossEntropyBits, "F3")}";
        if (r.Layers.Any(l => l.Seeds.Count > 1))
            yield return "probe seeds (held-out I_BA of each seed, headline target; the kept one has the lowest validation CE): " + string.Join("; ", r.Layers.Select(l =>
                $"{l.Name}: {string.Join(" ", l.Seeds.Select(s => F(r.HeadlineTarget == "token" ? s.TokenBarberAgakovBits : s.CoarseBarberAgakovBits)))}"));
        if (r.Layers[0].Coarse.FanoKind == FanoKind.ObservedPlugIn)
            yield return "* --fano-alphabet observed: the Fano columns use K + 1 (distinct held-out targets + 1) for |X|: plug-in figures about the sample, not bounds.";
        if (r.Options.Probe == ProbeFamily.Bag)
            yield return "bag probe: every Fano figure is list-Fano over each sentence's n most likely symbols (n = its number of targets).";
        yield return "I_F 95%up: Fano with P_e at its one-sided 95% Clopper-Pearson upper limit, treating held-out targets as independent (they are clustered in sentences).";
    }
}
