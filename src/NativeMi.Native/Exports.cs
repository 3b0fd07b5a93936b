using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using NativeMi.Compute;
using NativeMi.Measurement;
using NativeMi.Pooling;
using NativeMi.Reporting;

namespace NativeMi.Native;

/// <summary>nativemi_model_info of include/nativemi.h, field for field.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct ModelInfo
{
    public nuint StructSize;
    public fixed byte Family[32];
    public fixed byte Backend[32];
    public int Layers;
    public int Entries;
    public int Width;
    public int VocabularySize;
    public int MaxSequenceLength;
    public int Causal;
    public int DefaultPool;
}

/// <summary>
/// The functions of include/nativemi.h. Each one catches every exception and turns it into a status and this thread's
/// last error (<see cref="LastError"/>), so nothing .NET ever crosses the boundary.
/// </summary>
internal static unsafe class Exports
{
    /// <summary>NATIVEMI_ABI_VERSION of the header this library implements.</summary>
    private const int AbiVersion = 1;

    private const int Ok = 0;

    private static nint s_version;

    [UnmanagedCallersOnly(EntryPoint = "nativemi_version")]
    public static byte* Version()
    {
        if (s_version != 0) return (byte*)s_version;
        try
        {
            string version = typeof(LanguageModel).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";
            byte* copy = NativeText.Allocate(version);
            // Two threads may race to make it; the loser frees its copy, so one string lives for the library's lifetime.
            if (Interlocked.CompareExchange(ref s_version, (nint)copy, 0) != 0) NativeText.Free(copy);
            return (byte*)s_version;
        }
#pragma warning disable CA1031 // the version is never NULL: a static fallback when even that allocation failed
        catch (Exception)
#pragma warning restore CA1031
        {
            return (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetReference("unknown\0"u8));
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "nativemi_abi_version")]
    public static int AbiVersionOfLibrary() => AbiVersion;

    [UnmanagedCallersOnly(EntryPoint = "nativemi_last_error")]
    public static byte* LastErrorMessage() => LastError.Message;

    [UnmanagedCallersOnly(EntryPoint = "nativemi_last_status")]
    public static int LastErrorStatus() => LastError.Status;

    [UnmanagedCallersOnly(EntryPoint = "nativemi_open")]
    public static int Open(byte* modelNameOrFolder, byte* backend, nint* model)
    {
        try
        {
            if (model is null) throw new UsageException("model (the handle's destination) is NULL");
            *model = 0;
            string name = NativeText.Read(modelNameOrFolder, "model_name_or_folder");
            string choice = backend is null ? "cpu" : NativeText.Read(backend, "backend");
            LanguageModel opened = LanguageModel.Open(name, choice);
            *model = ModelHandles.Add(opened);
            return Ok;
        }
#pragma warning disable CA1031 // the boundary: every exception becomes a status
        catch (Exception e)
#pragma warning restore CA1031
        {
            return LastError.Record(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "nativemi_close")]
    public static void Close(nint model)
    {
        try
        {
            if (model != 0) ModelHandles.Remove(model)?.Dispose();
        }
#pragma warning disable CA1031 // the boundary: close returns nothing, so a failure is only this thread's last error
        catch (Exception e)
#pragma warning restore CA1031
        {
            LastError.Record(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "nativemi_describe")]
    public static int Describe(nint model, ModelInfo* info)
    {
        try
        {
            LanguageModel opened = ModelHandles.Get(model);
            if (info is null) throw new UsageException("info is NULL");
            if (info->StructSize < (nuint)sizeof(ModelInfo))
                throw new UsageException($"info->struct_size is {info->StructSize}; set it to sizeof(nativemi_model_info), {sizeof(ModelInfo)} in this library's header");
            LanguageModelDescription d = opened.Description;
            NativeText.CopyTo(d.Family, info->Family, 32);
            NativeText.CopyTo(d.Backend, info->Backend, 32);
            info->Layers = d.Layers;
            info->Entries = d.Entries;
            info->Width = d.Width;
            info->VocabularySize = d.VocabularySize;
            info->MaxSequenceLength = d.MaxSequenceLength;
            info->Causal = d.IsCausal ? 1 : 0;
            info->DefaultPool = PoolNumber(d.DefaultPool);
            return Ok;
        }
#pragma warning disable CA1031 // the boundary: every exception becomes a status
        catch (Exception e)
#pragma warning restore CA1031
        {
            return LastError.Record(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "nativemi_tokenize")]
    public static int Tokenize(nint model, byte* text, int* ids, nuint capacity, nuint* count)
    {
        try
        {
            LanguageModel opened = ModelHandles.Get(model);
            if (count is null) throw new UsageException("count is NULL");
            if (ids is null && capacity > 0) throw new UsageException($"ids is NULL but capacity is {capacity}");
            int[] tokens = opened.Tokenize(NativeText.Read(text, "text"));
            *count = (nuint)tokens.Length;
            if (capacity < (nuint)tokens.Length) throw new UsageException($"ids holds {capacity} ids; the sentence has {tokens.Length}");
            tokens.CopyTo(new Span<int>(ids, tokens.Length));
            return Ok;
        }
#pragma warning disable CA1031 // the boundary: every exception becomes a status
        catch (Exception e)
#pragma warning restore CA1031
        {
            return LastError.Record(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "nativemi_embed")]
    public static int Embed(nint model, byte** sentences, nuint sentenceCount, int* layers, nuint layerCount, int pool, float* output, nuint outputCapacity)
    {
        try
        {
            LanguageModel opened = ModelHandles.Get(model);
            string[] texts = NativeText.ReadArray(sentences, sentenceCount, "sentences");
            if (layerCount > int.MaxValue) throw new UsageException($"layer_count {layerCount} is too large");
            if (layers is null && layerCount > 0) throw new UsageException($"layers is NULL but layer_count is {layerCount}");
            int[] entries = new ReadOnlySpan<int>(layers, (int)layerCount).ToArray();
            PoolingMode? mode = pool switch
            {
                0 => null,
                1 => PoolingMode.Mean,
                2 => PoolingMode.Cls,
                3 => PoolingMode.Last,
                4 => PoolingMode.Max,
                _ => throw new UsageException($"pool is {pool}; expected 0 (default), 1 (mean), 2 (cls), 3 (last) or 4 (max)"),
            };
            long needed = opened.EmbedLength(texts.Length, entries.Length);
            CheckOutput(output, outputCapacity, needed, "out", $"layer_count {entries.Length} x sentence_count {texts.Length} x width {opened.Description.Width}");
            opened.Embed(texts, entries, new Span<float>(output, (int)needed), mode);
            return Ok;
        }
#pragma warning disable CA1031 // the boundary: every exception becomes a status
        catch (Exception e)
#pragma warning restore CA1031
        {
            return LastError.Record(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "nativemi_hidden_length")]
    public static int HiddenLength(nint model, byte** sentences, nuint sentenceCount, nuint* sequenceLength)
    {
        try
        {
            LanguageModel opened = ModelHandles.Get(model);
            if (sequenceLength is null) throw new UsageException("sequence_length is NULL");
            *sequenceLength = (nuint)opened.HiddenLength(NativeText.ReadArray(sentences, sentenceCount, "sentences"));
            return Ok;
        }
#pragma warning disable CA1031 // the boundary: every exception becomes a status
        catch (Exception e)
#pragma warning restore CA1031
        {
            return LastError.Record(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "nativemi_hidden")]
    public static int Hidden(nint model, byte** sentences, nuint sentenceCount, float* states, nuint statesCapacity, int* lengths, nuint lengthsCapacity)
    {
        try
        {
            LanguageModel opened = ModelHandles.Get(model);
            string[] texts = NativeText.ReadArray(sentences, sentenceCount, "sentences");
            int t = opened.HiddenLength(texts);
            LanguageModelDescription d = opened.Description;
            long needed = opened.HiddenStatesLength(texts.Length, t);
            CheckOutput(states, statesCapacity, needed, "states", $"entries {d.Entries} x sentence_count {texts.Length} x T {t} x width {d.Width}");
            if (lengths is not null && lengthsCapacity < (nuint)texts.Length)
                throw new UsageException($"lengths holds {lengthsCapacity} elements; sentence_count is {texts.Length}");
            opened.Hidden(texts, new Span<float>(states, (int)needed), lengths is null ? [] : new Span<int>(lengths, texts.Length));
            return Ok;
        }
#pragma warning disable CA1031 // the boundary: every exception becomes a status
        catch (Exception e)
#pragma warning restore CA1031
        {
            return LastError.Record(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "nativemi_measure")]
    public static int Measure(byte* optionsJson, delegate* unmanaged<void*, byte*, long, long, byte*, int> progress, void* userData, int* cancel, byte** resultsJson)
    {
        MeasureBridge? bridge = null;
        try
        {
            if (resultsJson is null) throw new UsageException("results_json is NULL");
            *resultsJson = null;
            MeasureRequest request = MeasureRequest.FromJson(NativeText.Read(optionsJson, "options_json"));
            bridge = new MeasureBridge(progress, userData, cancel);
            bridge.Token.ThrowIfCancellationRequested();
            using IComputeBackend backend = BackendSelection.Choose(request.Backend, log: bridge.Log);
            MeasurementResult result = MeasurementRunner.Run(request.OptionsFor(backend), bridge, backend, bridge.Token);
            bridge.Drain();
            *resultsJson = NativeText.Allocate(ResultWriter.ToJsonText(result));
            return Ok;
        }
#pragma warning disable CA1031 // the boundary: every exception becomes a status
        catch (Exception e)
#pragma warning restore CA1031
        {
            bridge?.Drain();
            return e is OperationCanceledException && bridge?.CancelReason is string reason
                ? LastError.Record(ExitStatus.Cancelled, $"measurement cancelled: {reason}")
                : LastError.Record(e);
        }
        finally
        {
            bridge?.Dispose();
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "nativemi_free_string")]
    public static void FreeString(byte* text) => NativeText.Free(text);

    private static int PoolNumber(PoolingMode mode) => mode switch
    {
        PoolingMode.Mean => 1,
        PoolingMode.Cls => 2,
        PoolingMode.Last => 3,
        _ => 4,
    };

    /// <summary>Refuses an output that is NULL or smaller than <paramref name="needed"/> floats, before anything is computed.</summary>
    private static void CheckOutput(float* output, nuint capacity, long needed, string name, string shape)
    {
        if (needed > int.MaxValue) throw new UsageException($"{name} would need {needed} floats ({shape}), too many for one call; pass fewer sentences");
        if (output is null && needed > 0) throw new UsageException($"{name} is NULL; {shape} need {needed} floats");
        if (capacity < (nuint)needed) throw new UsageException($"{name} holds {capacity} floats; {shape} need {needed}");
    }
}
