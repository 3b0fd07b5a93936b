using Spectre.Console;

namespace NativeMi.Cli;

/// <summary>
/// Where a long command shows its progress: named tasks that advance and complete, and plain message lines. The
/// phases of a measurement run one after another, so a task seen for the first time means every earlier task is
/// done: it is completed then, which is what lets a task that ends early (a probe stopped early, a cached forward
/// pass) still end at 100 %.
/// </summary>
internal abstract class ProgressView
{
    private readonly Dictionary<string, (string Description, double Value, double Max, bool Done)> _tasks = new(StringComparer.Ordinal);

    /// <summary>A message line (kept whole: never wrapped by the view).</summary>
    public abstract void Line(string text);

    /// <summary>Sets task <paramref name="key"/> to <paramref name="value"/> of <paramref name="max"/>, creating it on first use.</summary>
    public void Update(string key, string description, double value, double max)
    {
        if (!_tasks.ContainsKey(key)) CompleteAll();
        max = Math.Max(max, 1);
        value = Math.Clamp(value, 0, max);
        if (_tasks.TryGetValue(key, out var task) && task.Done) return;
        _tasks[key] = (description, value, max, false);
        // Reaching the maximum is not the end yet: a probe's "done" event still brings its final description.
        Show(key, description, value, max);
    }

    /// <summary>Marks task <paramref name="key"/> done at 100 %, with a final description when one is given.</summary>
    public void Complete(string key, string? description = null)
    {
        if (!_tasks.TryGetValue(key, out var task))
        {
            CompleteAll();
            task = (description ?? key, 0, 1, false);
        }
        if (task.Done) return;
        _tasks[key] = (description ?? task.Description, task.Max, task.Max, true);
        Finish(key, description ?? task.Description, task.Max);
    }

    /// <summary>Completes every task not yet done (called when a later phase starts, and when the run ends).</summary>
    public void CompleteAll()
    {
        foreach (string key in _tasks.Where(t => !t.Value.Done).Select(t => t.Key).ToArray()) Complete(key);
    }

    /// <summary>Shows a task's new state.</summary>
    protected abstract void Show(string key, string description, double value, double max);

    /// <summary>Shows a task's end, at 100 %.</summary>
    protected abstract void Finish(string key, string description, double max);
}

/// <summary>Spectre's live display, on a terminal.</summary>
internal sealed class LiveProgress(IAnsiConsole console, ProgressContext context) : ProgressView
{
    private readonly Dictionary<string, ProgressTask> _bars = new(StringComparer.Ordinal);

    public override void Line(string text) => console.WriteLine(text);

    protected override void Show(string key, string description, double value, double max)
    {
        ProgressTask bar = Bar(key, description, max);
        bar.Description = Markup.Escape(description);
        bar.Value = value;
    }

    protected override void Finish(string key, string description, double max)
    {
        ProgressTask bar = Bar(key, description, max);
        bar.Description = Markup.Escape(description);
        bar.Value = bar.MaxValue;
    }

    private ProgressTask Bar(string key, string description, double max)
    {
        if (!_bars.TryGetValue(key, out ProgressTask? bar)) _bars[key] = bar = context.AddTask(Markup.Escape(description), maxValue: max);
        return bar;
    }
}

/// <summary>
/// Plain lines for redirected output (a log file, a pipe, a CI job): a task's line when it starts, at each quarter, and
/// at its end, always "description: N%", never wrapped.
/// </summary>
internal sealed class PlainProgress(TextWriter output) : ProgressView
{
    private readonly Dictionary<string, int> _shownQuarter = new(StringComparer.Ordinal);

    public override void Line(string text) => output.WriteLine(text);

    protected override void Show(string key, string description, double value, double max)
    {
        int percent = (int)(100 * value / max);
        if (percent >= 100) return; // Finish prints the end, once
        int quarter = percent / 25;
        if (_shownQuarter.TryGetValue(key, out int shown) && shown >= quarter) return;
        _shownQuarter[key] = quarter;
        output.WriteLine($"{description}: {percent}%");
    }

    protected override void Finish(string key, string description, double max) => output.WriteLine($"{description}: 100%");
}
