#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "emu.hpp"

namespace emu {
namespace {

std::mutex g_message_lock;
std::string g_last_error;
// nativemi_emu_last_error hands out a pointer that stays valid until the next error.
char g_last_error_copy[8192];

struct ErrorInfo {
    int code;
    const char* name;
    const char* text;
};

const ErrorInfo g_errors[] = {
    {0, "CUDA_SUCCESS", "no error"},
    {1, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {2, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {3, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"},
    {4, "CUDA_ERROR_DEINITIALIZED", "driver shutting down"},
    {5, "CUDA_ERROR_PROFILER_DISABLED", "profiler disabled while using external profiling tool"},
    {100, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
    {101, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
    {200, "CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"},
    {201, "CUDA_ERROR_INVALID_CONTEXT", "invalid device context"},
    {209, "CUDA_ERROR_NO_BINARY_FOR_GPU", "no kernel image is available for execution on the device"},
    {218, "CUDA_ERROR_INVALID_PTX", "a PTX JIT compilation failed"},
    {222, "CUDA_ERROR_UNSUPPORTED_PTX_VERSION", "the provided PTX was compiled with an unsupported toolchain."},
    {400, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
    {500, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {600, "CUDA_ERROR_NOT_READY", "device not ready"},
    {700, "CUDA_ERROR_ILLEGAL_ADDRESS", "an illegal memory access was encountered"},
    {701, "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES", "too many resources requested for launch"},
    {702, "CUDA_ERROR_LAUNCH_TIMEOUT", "the launch timed out and was terminated"},
    {709, "CUDA_ERROR_CONTEXT_IS_DESTROYED", "context is destroyed"},
    {716, "CUDA_ERROR_MISALIGNED_ADDRESS", "misaligned address"},
    {719, "CUDA_ERROR_LAUNCH_FAILED", "unspecified launch failure"},
    {801, "CUDA_ERROR_NOT_SUPPORTED", "operation not supported"},
    {999, "CUDA_ERROR_UNKNOWN", "unknown error"},
};

const ErrorInfo* lookup(int code) {
    for (const ErrorInfo& e : g_errors)
        if (e.code == code) return &e;
    return nullptr;
}

}  // namespace

std::mutex& api_lock() {
    static std::mutex lock;
    return lock;
}

std::string format(const char* text, ...) {
    va_list arguments;
    va_start(arguments, text);
    char buffer[4096];
    int length = vsnprintf(buffer, sizeof buffer, text, arguments);
    va_end(arguments);
    if (length < 0) return text;
    if ((size_t)length < sizeof buffer) return std::string(buffer, (size_t)length);
    std::string result((size_t)length, '\0');
    va_start(arguments, text);
    vsnprintf(result.data(), result.size() + 1, text, arguments);
    va_end(arguments);
    return result;
}

CUresult fail_text(CUresult code, const std::string& message) {
    std::lock_guard<std::mutex> guard(g_message_lock);
    g_last_error = message;
    snprintf(g_last_error_copy, sizeof g_last_error_copy, "%s", message.c_str());
    fprintf(stderr, "nativemi-emulator: %s\n", message.c_str());
    fflush(stderr);
    return code;
}

CUresult fail(CUresult code, const char* text, ...) {
    va_list arguments;
    va_start(arguments, text);
    char buffer[4096];
    vsnprintf(buffer, sizeof buffer, text, arguments);
    va_end(arguments);
    return fail_text(code, buffer);
}

const char* error_name(int code) {
    const ErrorInfo* e = lookup(code);
    return e ? e->name : nullptr;
}

const char* error_string(int code) {
    const ErrorInfo* e = lookup(code);
    return e ? e->text : nullptr;
}

}  // namespace emu

// The last detailed message the emulator reported (what failed, with kernel, block, thread and address where
// they apply); empty before the first. For tests: the CUDA status alone rarely says which check fired.
EMU_EXPORT const char* nativemi_emu_last_error(void) {
    std::lock_guard<std::mutex> guard(emu::g_message_lock);
    return emu::g_last_error_copy;
}

// cuBLAS (libcublas.so.12 of the emulator) reports its argument errors through the same channel.
EMU_EXPORT void nativemi_emu_report(const char* message) { emu::fail_text(0, message ? message : ""); }
