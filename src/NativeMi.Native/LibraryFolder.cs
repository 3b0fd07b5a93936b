using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace NativeMi.Native;

/// <summary>
/// Makes <see cref="AppContext.BaseDirectory"/> the folder of libnativemi.so. The engine finds the built-in models
/// (models/), the packaged corpus (data/) and libhf_tokenizers.so there; in a NativeAOT shared library the runtime
/// reports the folder of the executable that loaded it instead, which is the caller's program, not ours.
/// </summary>
internal static unsafe partial class LibraryFolder
{
    /// <summary>The key <see cref="AppContext.BaseDirectory"/> reads before it falls back to the runtime's answer.</summary>
    private const string BaseDirectoryKey = "APP_CONTEXT_BASE_DIRECTORY";

#pragma warning disable CA2255 // a library's module initializer: the folder must be set before any engine code asks for it
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void SetBaseDirectory()
    {
        string? folder = Find();
        if (folder is not null) AppContext.SetData(BaseDirectoryKey, folder.EndsWith('/') ? folder : folder + "/");
    }

    /// <summary>The folder of the shared object that holds this code, or null when the loader cannot say.</summary>
    private static string? Find()
    {
        delegate* unmanaged<byte*> export = &Exports.Version;
        DlInfo info;
        if (DlAddr(export, &info) == 0 || info.FileName is null) return null;
        string? path = Marshal.PtrToStringUTF8((nint)info.FileName);
        return string.IsNullOrEmpty(path) ? null : Path.GetDirectoryName(Path.GetFullPath(path));
    }

    /// <summary>Dl_info of dlfcn.h.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct DlInfo
    {
        public byte* FileName;
        public void* FileBase;
        public byte* SymbolName;
        public void* SymbolAddress;
    }

    // glibc 2.34 moved dladdr into libc.so.6; the tokenizers library beside us needs 2.34 already.
    [LibraryImport("libc.so.6", EntryPoint = "dladdr")]
    private static partial int DlAddr(void* address, DlInfo* info);
}
