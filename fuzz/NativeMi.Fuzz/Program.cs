using SharpFuzz;

namespace NativeMi.Fuzz;

/// <summary>
/// Entry point of the fuzzing harness. <c>NativeMi.Fuzz TARGET</c> runs TARGET under afl-fuzz
/// (SharpFuzz's fork-server protocol; once on stdin when not under afl-fuzz);
/// <c>NativeMi.Fuzz replay TARGET FILE_OR_FOLDER...</c> runs every file and reports findings;
/// <c>NativeMi.Fuzz make-seeds FOLDER</c> writes the starting corpus of every target except onnx
/// (scripts/make_onnx_seed.py makes that one).
/// </summary>
public static class Program
{
    /// <summary>Runs the harness; see the type's summary for the command line.</summary>
    public static int Main(string[] args)
    {
        if (args.Length >= 3 && args[0] == "replay") return Replay(args[1], args[2..]);
        if (args.Length == 2 && args[0] == "make-seeds") return Seeds.Write(args[1]);
        if (args.Length != 1 || !FuzzTargets.Names.Contains(args[0]))
        {
            Console.Error.WriteLine($"usage: NativeMi.Fuzz TARGET | replay TARGET FILE_OR_FOLDER...   (TARGET: {string.Join(", ", FuzzTargets.Names)})");
            return 2;
        }
        string target = args[0];
        using var workspace = new FuzzWorkspace(Directory.Exists("/dev/shm") ? "/dev/shm" : null);
        Fuzzer.Run(stream =>
        {
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            try
            {
                FuzzTargets.Run(target, buffer.ToArray(), workspace);
            }
            catch (Exception e) when (FuzzTargets.IsExpectedRejection(e))
            {
            }
        });
        return 0;
    }

    private static int Replay(string target, string[] paths)
    {
        using var workspace = new FuzzWorkspace();
        int files = 0, rejected = 0, findings = 0;
        foreach (string file in paths.SelectMany(p => Directory.Exists(p) ? Directory.EnumerateFiles(p) : [p]).Order(StringComparer.Ordinal))
        {
            files++;
            try
            {
                FuzzTargets.Run(target, File.ReadAllBytes(file), workspace);
            }
            catch (Exception e) when (FuzzTargets.IsExpectedRejection(e))
            {
                rejected++;
            }
            catch (Exception e)
            {
                findings++;
                Console.WriteLine($"FINDING {file}: {e.GetType().FullName}: {e.Message}");
                Console.WriteLine(e.StackTrace);
            }
        }
        Console.WriteLine($"{target}: {files} inputs, {files - rejected - findings} accepted, {rejected} rejected with an input error, {findings} findings");
        return findings == 0 ? 0 : 1;
    }
}
