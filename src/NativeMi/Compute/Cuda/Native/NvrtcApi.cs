using System.Runtime.InteropServices;

namespace NativeMi.Compute.Cuda.Native;

/// <summary>NVRTC entry points (the subset NativeMi uses). Strings cross as NUL-terminated UTF-8 bytes.</summary>
internal static unsafe partial class NvrtcApi
{
    private const string Library = CudaLibraries.NvrtcImportName;

    [LibraryImport(Library, EntryPoint = "nvrtcVersion")]
    internal static partial int Version(out int major, out int minor);

    [LibraryImport(Library, EntryPoint = "nvrtcGetErrorString")]
    internal static partial byte* GetErrorString(int result);

    [LibraryImport(Library, EntryPoint = "nvrtcCreateProgram")]
    internal static partial int CreateProgram(out nint program, byte* source, byte* name, int headerCount, byte** headers, byte** includeNames);

    [LibraryImport(Library, EntryPoint = "nvrtcDestroyProgram")]
    internal static partial int DestroyProgram(ref nint program);

    [LibraryImport(Library, EntryPoint = "nvrtcCompileProgram")]
    internal static partial int CompileProgram(nint program, int optionCount, byte** options);

    [LibraryImport(Library, EntryPoint = "nvrtcGetPTXSize")]
    internal static partial int GetPtxSize(nint program, out nuint size);

    [LibraryImport(Library, EntryPoint = "nvrtcGetPTX")]
    internal static partial int GetPtx(nint program, byte* ptx);

    [LibraryImport(Library, EntryPoint = "nvrtcGetCUBINSize")]
    internal static partial int GetCubinSize(nint program, out nuint size);

    [LibraryImport(Library, EntryPoint = "nvrtcGetCUBIN")]
    internal static partial int GetCubin(nint program, byte* cubin);

    [LibraryImport(Library, EntryPoint = "nvrtcGetProgramLogSize")]
    internal static partial int GetProgramLogSize(nint program, out nuint size);

    [LibraryImport(Library, EntryPoint = "nvrtcGetProgramLog")]
    internal static partial int GetProgramLog(nint program, byte* log);

    /// <summary>Throws a <see cref="CudaException"/> named after the NVRTC status unless it is NVRTC_SUCCESS.</summary>
    internal static void Check(int status, string call, string? detail = null)
    {
        if (status == 0) return;
        string name = Marshal.PtrToStringUTF8((nint)GetErrorString(status)) ?? $"NVRTC_ERROR_{status}";
        throw new CudaException(name, status, call, detail);
    }
}
