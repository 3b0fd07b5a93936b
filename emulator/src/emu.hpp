// Internal interface of the emulated CUDA driver (libcuda.so.1). Every exported entry point takes the one API lock
// (api_lock), so the state below needs no finer locking; kernels and copies run on the calling thread under it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#define EMU_EXPORT extern "C" __attribute__((visibility("default")))

namespace emu {

using CUresult = int;

enum : int {
    CUDA_SUCCESS = 0,
    CUDA_ERROR_INVALID_VALUE = 1,
    CUDA_ERROR_OUT_OF_MEMORY = 2,
    CUDA_ERROR_NOT_INITIALIZED = 3,
    CUDA_ERROR_DEINITIALIZED = 4,
    CUDA_ERROR_NO_DEVICE = 100,
    CUDA_ERROR_INVALID_DEVICE = 101,
    CUDA_ERROR_INVALID_IMAGE = 200,
    CUDA_ERROR_INVALID_CONTEXT = 201,
    CUDA_ERROR_NO_BINARY_FOR_GPU = 209,
    CUDA_ERROR_INVALID_PTX = 218,
    CUDA_ERROR_UNSUPPORTED_PTX_VERSION = 222,
    CUDA_ERROR_INVALID_HANDLE = 400,
    CUDA_ERROR_NOT_FOUND = 500,
    CUDA_ERROR_NOT_READY = 600,
    CUDA_ERROR_ILLEGAL_ADDRESS = 700,
    CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES = 701,
    CUDA_ERROR_MISALIGNED_ADDRESS = 716,
    CUDA_ERROR_LAUNCH_FAILED = 719,
    CUDA_ERROR_NOT_SUPPORTED = 801,
    CUDA_ERROR_UNKNOWN = 999,
};

// --- errors.cpp -------------------------------------------------------------------------------------------------
// Records `message` as the last detailed error (nativemi_emu_last_error) and writes it to stderr with the
// "nativemi-emulator: " prefix; returns `code` so callers can `return fail(...)`.
CUresult fail(CUresult code, const char* format, ...) __attribute__((format(printf, 2, 3)));
CUresult fail_text(CUresult code, const std::string& message);
std::string format(const char* format, ...) __attribute__((format(printf, 1, 2)));
const char* error_name(int code);
const char* error_string(int code);
std::mutex& api_lock();

// --- configuration (driver.cpp) ---------------------------------------------------------------------------------
struct Config {
    bool reverse = false;         // NATIVEMI_EMU_REVERSE=1: blocks and threads in reverse order
    bool deferred = false;        // NATIVEMI_EMU_DEFERRED=1: stream work runs only at synchronisation points
    uint64_t total_memory = 0;    // NATIVEMI_EMU_MEMORY_BYTES, else the H200's
    int driver_version = 12080;   // NATIVEMI_EMU_DRIVER_VERSION (CUDA 12.8 by default)
    unsigned char fill = 0xFF;    // NATIVEMI_EMU_FILL: the byte fresh allocations hold (0xFF: NaN as float, -1 as int)
};
const Config& config();

// --- memory.cpp -------------------------------------------------------------------------------------------------
struct Allocation {
    uintptr_t base = 0;
    std::size_t size = 0;
    std::size_t rounded = 0;     // size rounded up to the 256-byte allocation granule; [size, rounded) holds a canary
    uintptr_t map = 0;           // the whole slot: guard, data pages, guard
    std::size_t map_size = 0;
    std::size_t guard = 0;       // PROT_NONE bytes on each side of the data pages
    bool host = false;           // cuMemHostAlloc (pinned host memory), not device memory
    uint64_t serial = 0;
};

CUresult device_alloc(uintptr_t* pointer, std::size_t bytes);
CUresult device_free(uintptr_t pointer);
CUresult host_alloc(void** pointer, std::size_t bytes);
CUresult host_free(void* pointer);
// Frees every allocation (the context was destroyed).
void free_everything();
std::size_t device_bytes_in_use();
// The live allocation (device or pinned host) holding `address`, or null.
const Allocation* find_allocation(uintptr_t address);
// [address, address + bytes) must lie inside one live device allocation; otherwise an INVALID_VALUE naming
// the call, the operand, the address and the size, and what the address is instead.
CUresult check_device_range(const char* call, const char* what, uintptr_t address, std::size_t bytes);
// For a host operand: refuses device addresses (a host pointer is expected); pinned host memory must fit.
CUresult check_host_range(const char* call, const char* what, const void* address, std::size_t bytes);
// Where an address lies, for fault messages: inside, before or past an allocation, in a freed one, or nowhere.
std::string describe_address(uintptr_t address);
// Checks the canaries between each allocation's size and its 256-byte granule; `after` names the work just run.
CUresult check_canaries(const char* after);

// --- executor.cpp -----------------------------------------------------------------------------------------------
struct KernelLaunch;
CUresult execute_kernel(const KernelLaunch& launch);
// Runs `work` with SIGSEGV/SIGBUS caught: a fault returns CUDA_ERROR_ILLEGAL_ADDRESS with `what` and the address.
CUresult run_guarded(const char* what, const std::function<void()>& work);
void install_fault_handler();

// --- streams (driver.cpp) ---------------------------------------------------------------------------------------
struct Stream;
// Runs `work` now (synchronous mode) or queues it on `stream` (deferred mode). `stream` is a checked handle;
// `touches` holds addresses inside the allocations the work uses, and `module` the module whose kernel it runs, so
// freeing one of them first runs the queued work that needs it.
CUresult submit(Stream* stream, std::string what, std::vector<uintptr_t> touches, std::function<CUresult()> work, const void* module = nullptr);
CUresult resolve_stream(void* handle, Stream** stream);
// The current context's sticky error, CUDA_ERROR_INVALID_CONTEXT without an active current context, or success.
CUresult context_usable();

}  // namespace emu
