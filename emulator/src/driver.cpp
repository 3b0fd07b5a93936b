// The driver API entry points of the emulated device: one H200-shaped device, its primary context, streams,
// events, memory and modules. Work submitted to a stream runs at the call (the default) or, with
// NATIVEMI_EMU_DEFERRED=1, only when something synchronises with it, so a missing synchronisation shows up as stale
// data. Names and signatures are those of cuda.h (CUDA 12); versioned names (_v2) are the ones cuda.h maps to.
#include <sys/mman.h>
#include <time.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <set>

#include "emu.hpp"
#include "executor.hpp"
#include "ptx.hpp"

namespace emu {
namespace {

constexpr uint64_t kH200Memory = 143771336704ull;
constexpr const char* kDeviceName = "NVIDIA H200 (NativeMi emulated device on the CPU)";
constexpr int kMaxSharedOptIn = 232448;   // 227 KiB
constexpr int kDefaultSharedLimit = 49152;

constexpr uint32_t kStreamMagic = 0x5354524d, kEventMagic = 0x45564e54, kModuleMagic = 0x4d4f444c, kFunctionMagic = 0x46554e43;

struct Context;

struct Op {
    uint64_t seq;
    std::string what;
    std::function<CUresult()> work;
    std::vector<uintptr_t> touches;   // bases of the allocations the work uses
    const void* module;
};

}  // namespace

struct Stream {
    uint32_t magic = kStreamMagic;
    Context* context = nullptr;
    unsigned int flags = 0;
    bool alive = true;
    bool legacy = false;
    std::deque<Op> queue;
};

namespace {

struct Event {
    uint32_t magic = kEventMagic;
    Context* context = nullptr;
    unsigned int flags = 0;
    bool alive = true;
    int state = 0;   // 0 never recorded, 1 recorded but not reached, 2 reached
    double milliseconds = 0;
    Stream* stream = nullptr;
    uint64_t seq = 0;
};

struct Function;

struct Module {
    uint32_t magic = kModuleMagic;
    Context* context = nullptr;
    bool alive = true;
    PtxModule ptx;
    std::map<std::string, Function*> functions;
};

struct Function {
    uint32_t magic = kFunctionMagic;
    Module* module = nullptr;
    const PtxEntry* entry = nullptr;
    const cuda_emu::KernelEntry* kernel = nullptr;
    int max_dynamic_shared = -1;   // unset: static + dynamic must fit in 48 KiB
    int carveout = -1;
};

struct Context {
    bool active = false;
    int refcount = 0;
    CUresult sticky = CUDA_SUCCESS;
    Stream legacy;
    std::vector<Stream*> streams;
    std::vector<Module*> modules;
    std::vector<Event*> events;
};

Context g_context;
thread_local Context* t_current = nullptr;
bool g_initialised = false;
uint64_t g_seq = 0;
// Every handle ever handed out. Objects are never freed (a destroyed one is marked dead), so a stale handle is
// recognised as such instead of aliasing a newer object at the same address.
std::set<const void*> g_handles;

bool sticky_code(CUresult code) {
    return code == CUDA_ERROR_ILLEGAL_ADDRESS || code == CUDA_ERROR_MISALIGNED_ADDRESS || code == CUDA_ERROR_LAUNCH_FAILED;
}

template <typename T>
T* lookup(const void* handle, uint32_t magic) {
    if (handle == nullptr || g_handles.count(handle) == 0) return nullptr;
    T* object = (T*)const_cast<void*>(handle);
    return object->magic == magic ? object : nullptr;
}

bool parse_bytes(const char* text, uint64_t& value) {
    char* end = nullptr;
    errno = 0;
    unsigned long long number = strtoull(text, &end, 10);
    if (end == text || errno != 0) return false;
    uint64_t scale = 1;
    switch (toupper((unsigned char)*end)) {
        case 0: break;
        case 'K': scale = 1ull << 10; end++; break;
        case 'M': scale = 1ull << 20; end++; break;
        case 'G': scale = 1ull << 30; end++; break;
        case 'T': scale = 1ull << 40; end++; break;
        default: return false;
    }
    if (*end != 0 || (scale > 1 && number > UINT64_MAX / scale)) return false;
    value = number * scale;
    return true;
}

double now_milliseconds() {
    timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

// NATIVEMI_EMU_PROFILE=1: seconds and calls per kind of work, printed to stderr at exit (emulator time, never GPU time).
struct ProfileEntry {
    double seconds = 0;
    uint64_t calls = 0;
};
std::map<std::string, ProfileEntry>* g_profile = nullptr;

void print_profile() {
    if (g_profile == nullptr) return;
    std::vector<std::pair<std::string, ProfileEntry>> rows(g_profile->begin(), g_profile->end());
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.seconds > b.second.seconds; });
    fprintf(stderr, "nativemi-emulator: profile (CPU seconds of the emulation, not GPU time):\n");
    for (const auto& [what, entry] : rows)
        fprintf(stderr, "nativemi-emulator:   %10.3f s %10llu calls  %s\n", entry.seconds, (unsigned long long)entry.calls, what.c_str());
}

Config g_config;
std::string g_config_error;

void read_config() {
    static bool read = false;
    if (read) return;
    read = true;
    auto flag = [](const char* name) {
        const char* value = getenv(name);
        return value != nullptr && *value != 0 && strcmp(value, "0") != 0;
    };
    g_config.reverse = flag("NATIVEMI_EMU_REVERSE");
    g_config.deferred = flag("NATIVEMI_EMU_DEFERRED");
    if (flag("NATIVEMI_EMU_PROFILE")) {
        g_profile = new std::map<std::string, ProfileEntry>();
        atexit(print_profile);
    }
    g_config.total_memory = kH200Memory;
    if (const char* memory = getenv("NATIVEMI_EMU_MEMORY_BYTES"); memory != nullptr && *memory != 0) {
        uint64_t bytes = 0;
        if (!parse_bytes(memory, bytes) || bytes == 0)
            g_config_error = format("NATIVEMI_EMU_MEMORY_BYTES='%s' is not a positive byte count (digits, optionally K, M, G or T)", memory);
        else g_config.total_memory = bytes;
    }
    if (const char* fill = getenv("NATIVEMI_EMU_FILL"); fill != nullptr && *fill != 0) {
        char* end = nullptr;
        unsigned long byte = strtoul(fill, &end, 0);
        if (*end != 0 || byte > 255) g_config_error = format("NATIVEMI_EMU_FILL='%s' is not a byte value (0 to 255, or 0x00 to 0xff)", fill);
        else g_config.fill = (unsigned char)byte;
    }
    if (const char* version = getenv("NATIVEMI_EMU_DRIVER_VERSION"); version != nullptr && *version != 0) {
        int v = atoi(version);
        if (v < 11000 || v > 99990) g_config_error = format("NATIVEMI_EMU_DRIVER_VERSION='%s' is not a CUDA version such as 12080", version);
        else g_config.driver_version = v;
    }
}

// The newest PTX ISA (major * 10 + minor) a driver of this CUDA version reads.
int max_ptx_isa(int driver) {
    int major = driver / 1000, minor = driver % 1000 / 10;
    if (major <= 11) return 70 + minor;
    if (major == 12) {
        static const int isa[] = {80, 81, 82, 83, 84, 85, 85, 86, 87, 88};
        return minor < 10 ? isa[minor] : 88;
    }
    return 90 + minor;
}

#define LOCKED std::lock_guard<std::mutex> api_guard(api_lock())
#define REQUIRE_INIT                                                                          \
    do {                                                                                      \
        if (!g_initialised) return fail(CUDA_ERROR_NOT_INITIALIZED, "%s before cuInit", __func__); \
    } while (0)
#define REQUIRE_CONTEXT                             \
    do {                                            \
        REQUIRE_INIT;                               \
        if (CUresult s_ = context_usable()) return s_; \
    } while (0)

CUresult run_op(Context& context, Op& op) {
    if (g_profile != nullptr) {
        double start = now_milliseconds();
        CUresult status = op.work();
        ProfileEntry& entry = (*g_profile)[op.what];
        entry.seconds += (now_milliseconds() - start) / 1e3;
        entry.calls++;
        if (status != CUDA_SUCCESS && sticky_code(status)) context.sticky = status;
        return status;
    }
    CUresult status = op.work();
    if (status != CUDA_SUCCESS && sticky_code(status)) context.sticky = status;
    return status;
}

void drop_queues(Context& context) {
    context.legacy.queue.clear();
    for (Stream* s : context.streams) s->queue.clear();
}

// Runs the queued work of `stream` up to and including sequence number `until`.
CUresult flush(Stream* stream, uint64_t until = UINT64_MAX) {
    Context& context = *stream->context;
    while (!stream->queue.empty() && stream->queue.front().seq <= until) {
        Op op = std::move(stream->queue.front());
        stream->queue.pop_front();
        CUresult status = run_op(context, op);
        if (status != CUDA_SUCCESS) {
            // A GPU runs nothing more in a context whose kernel faulted.
            if (sticky_code(status)) drop_queues(context);
            return status;
        }
    }
    return CUDA_SUCCESS;
}

// Runs every queued piece of work of the context, in submission order.
CUresult flush_all(Context& context) {
    for (;;) {
        Stream* next = context.legacy.queue.empty() ? nullptr : &context.legacy;
        for (Stream* s : context.streams)
            if (!s->queue.empty() && (next == nullptr || s->queue.front().seq < next->queue.front().seq)) next = s;
        if (next == nullptr) return context.sticky;
        CUresult status = flush(next, next->queue.front().seq);
        if (status != CUDA_SUCCESS) return status;
    }
}

// The legacy default stream synchronises with every blocking stream (those created without CU_STREAM_NON_BLOCKING).
CUresult flush_legacy_and_blocking(Context& context) {
    for (;;) {
        Stream* next = context.legacy.queue.empty() ? nullptr : &context.legacy;
        for (Stream* s : context.streams)
            if (!(s->flags & 1u) && !s->queue.empty() && (next == nullptr || s->queue.front().seq < next->queue.front().seq)) next = s;
        if (next == nullptr) return context.sticky;
        CUresult status = flush(next, next->queue.front().seq);
        if (status != CUDA_SUCCESS) return status;
    }
}

// Runs, on every stream, the queued work up to the last piece that uses the allocation at `base` (or `module`):
// freeing memory or unloading a module waits for the work that needs it, not for unrelated work.
CUresult flush_users(Context& context, uintptr_t base, const void* module) {
    std::vector<Stream*> streams(context.streams.begin(), context.streams.end());
    streams.push_back(&context.legacy);
    for (Stream* s : streams) {
        uint64_t last = 0;
        for (const Op& op : s->queue)
            if ((base != 0 && std::find(op.touches.begin(), op.touches.end(), base) != op.touches.end()) || (module != nullptr && op.module == module))
                last = op.seq;
        if (last != 0) {
            CUresult status = flush(s, last);
            if (status != CUDA_SUCCESS) return status;
        }
    }
    return context.sticky;
}

void destroy_context(Context& context) {
    if (context.sticky == CUDA_SUCCESS) flush_all(context);
    drop_queues(context);
    for (Stream* s : context.streams) s->alive = false;
    for (Module* m : context.modules) m->alive = false;
    for (Event* e : context.events) e->alive = false;
    context.streams.clear();
    context.modules.clear();
    context.events.clear();
    free_everything();
    context.sticky = CUDA_SUCCESS;
    context.active = false;
}

CUresult legacy_trap(const char* name, const char* replacement) {
    return fail(CUDA_ERROR_NOT_SUPPORTED, "%s is the pre-CUDA-4 entry point (32-bit sizes or pointers); cuda.h maps the name to %s, "
                "which is what a binding must name", name, replacement);
}

std::string kind_name(const cuda_emu::KernelParam& p) { return cuda_emu::describe(p); }

CUresult check_signature(const PtxEntry& entry, const cuda_emu::KernelEntry& kernel) {
    if (entry.params.size() != kernel.params.size())
        return fail(CUDA_ERROR_INVALID_IMAGE, "cuModuleGetFunction(%s): the PTX entry has %zu parameters, the emulator's CPU build of the kernel "
                    "(from %s) has %zu; the emulator is stale or the kernel source differs", entry.name.c_str(), entry.params.size(),
                    kernel.source, kernel.params.size());
    for (std::size_t i = 0; i < entry.params.size(); i++) {
        const PtxParam& p = entry.params[i];
        const cuda_emu::KernelParam& c = kernel.params[i];
        bool array = p.declaration.find('[') != std::string::npos;
        bool ok = p.size == c.size;
        if (ok && !array) {
            char letter = p.type.size() > 1 ? p.type[1] : '?';
            if (letter == 'f') ok = c.kind == cuda_emu::ParamKind::Float;
            else if (letter == 'b') ok = c.kind != cuda_emu::ParamKind::Other;
            else ok = c.kind == cuda_emu::ParamKind::Pointer || c.kind == cuda_emu::ParamKind::SignedInteger ||
                      c.kind == cuda_emu::ParamKind::UnsignedInteger;
        }
        if (!ok)
            return fail(CUDA_ERROR_INVALID_IMAGE, "cuModuleGetFunction(%s): parameter %zu is '%s' (%zu bytes) in the PTX but %s in the emulator's "
                        "CPU build (from %s)", entry.name.c_str(), i, p.declaration.c_str(), p.size, kind_name(c).c_str(), kernel.source);
    }
    return CUDA_SUCCESS;
}

CUresult check_pointer_param(const Function& f, std::size_t index, uint64_t value, std::size_t alignment) {
    if (value == 0) return CUDA_SUCCESS;
    const Allocation* a = find_allocation((uintptr_t)value);
    // One past the end is a valid pointer as long as nothing reads it (an empty tail of a buffer, say).
    if (a == nullptr) {
        const Allocation* before = find_allocation((uintptr_t)value - 1);
        if (before != nullptr && before->base + before->size == value) a = before;
    }
    if (a == nullptr)
        return fail(CUDA_ERROR_ILLEGAL_ADDRESS, "cuLaunchKernel(%s): parameter %zu is the pointer 0x%llx, which is %s; refused at launch, as a GPU "
                    "would fault when the kernel dereferences it", f.kernel->name, index, (unsigned long long)value,
                    describe_address((uintptr_t)value).c_str());
    if (alignment > 1 && value % alignment != 0)
        return fail(CUDA_ERROR_MISALIGNED_ADDRESS, "cuLaunchKernel(%s): parameter %zu is the pointer 0x%llx, not aligned to its %zu-byte element "
                    "type; a GPU faults on the misaligned access", f.kernel->name, index, (unsigned long long)value, alignment);
    return CUDA_SUCCESS;
}

int attribute_value(int attribute, bool& known) {
    known = true;
    switch (attribute) {
        case 1: return 1024;          // MAX_THREADS_PER_BLOCK
        case 2: return 1024;          // MAX_BLOCK_DIM_X
        case 3: return 1024;          // MAX_BLOCK_DIM_Y
        case 4: return 64;            // MAX_BLOCK_DIM_Z
        case 5: return 2147483647;    // MAX_GRID_DIM_X
        case 6: return 65535;         // MAX_GRID_DIM_Y
        case 7: return 65535;         // MAX_GRID_DIM_Z
        case 8: return kDefaultSharedLimit;   // MAX_SHARED_MEMORY_PER_BLOCK
        case 9: return 65536;         // TOTAL_CONSTANT_MEMORY
        case 10: return 32;           // WARP_SIZE
        case 11: return 2147483647;   // MAX_PITCH
        case 12: return 65536;        // MAX_REGISTERS_PER_BLOCK
        case 13: return 1980000;      // CLOCK_RATE (kHz)
        case 14: return 512;          // TEXTURE_ALIGNMENT
        case 15: return 1;            // GPU_OVERLAP
        case 16: return 132;          // MULTIPROCESSOR_COUNT
        case 17: return 0;            // KERNEL_EXEC_TIMEOUT
        case 18: return 0;            // INTEGRATED
        case 19: return 1;            // CAN_MAP_HOST_MEMORY
        case 20: return 0;            // COMPUTE_MODE (default)
        case 30: return 512;          // SURFACE_ALIGNMENT
        case 31: return 1;            // CONCURRENT_KERNELS
        case 32: return 1;            // ECC_ENABLED
        case 33: return 0;            // PCI_BUS_ID
        case 34: return 0;            // PCI_DEVICE_ID
        case 35: return 0;            // TCC_DRIVER
        case 36: return 3201000;      // MEMORY_CLOCK_RATE (kHz)
        case 37: return 6144;         // GLOBAL_MEMORY_BUS_WIDTH (bits)
        case 38: return 52428800;     // L2_CACHE_SIZE
        case 39: return 2048;         // MAX_THREADS_PER_MULTIPROCESSOR
        case 40: return 3;            // ASYNC_ENGINE_COUNT
        case 41: return 1;            // UNIFIED_ADDRESSING
        case 50: return 0;            // PCI_DOMAIN_ID
        case 51: return 32;           // TEXTURE_PITCH_ALIGNMENT
        case 75: return 9;            // COMPUTE_CAPABILITY_MAJOR
        case 76: return 0;            // COMPUTE_CAPABILITY_MINOR
        case 78: return 1;            // STREAM_PRIORITIES_SUPPORTED
        case 79: return 1;            // GLOBAL_L1_CACHE_SUPPORTED
        case 80: return 1;            // LOCAL_L1_CACHE_SUPPORTED
        case 81: return 233472;       // MAX_SHARED_MEMORY_PER_MULTIPROCESSOR
        case 82: return 65536;        // MAX_REGISTERS_PER_MULTIPROCESSOR
        case 83: return 1;            // MANAGED_MEMORY
        case 84: return 0;            // MULTI_GPU_BOARD
        case 85: return 0;            // MULTI_GPU_BOARD_GROUP_ID
        case 86: return 0;            // HOST_NATIVE_ATOMIC_SUPPORTED
        case 87: return 2;            // SINGLE_TO_DOUBLE_PRECISION_PERF_RATIO
        case 88: return 0;            // PAGEABLE_MEMORY_ACCESS
        case 89: return 1;            // CONCURRENT_MANAGED_ACCESS
        case 90: return 1;            // COMPUTE_PREEMPTION_SUPPORTED
        case 91: return 0;            // CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM
        case 95: return 1;            // COOPERATIVE_LAUNCH
        case 97: return kMaxSharedOptIn;   // MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
        case 98: return 0;            // CAN_FLUSH_REMOTE_WRITES
        case 99: return 1;            // HOST_REGISTER_SUPPORTED
        case 100: return 0;           // PAGEABLE_MEMORY_ACCESS_USES_HOST_PAGE_TABLES
        case 101: return 0;           // DIRECT_MANAGED_MEM_ACCESS_FROM_HOST
        case 106: return 32;          // MAX_BLOCKS_PER_MULTIPROCESSOR
        case 111: return 1024;        // RESERVED_SHARED_MEMORY_PER_BLOCK
        case 115: return 1;           // MEMORY_POOLS_SUPPORTED
        case 120: return 1;           // CLUSTER_LAUNCH
        default: known = false; return 0;
    }
}

}  // namespace

const Config& config() {
    read_config();
    return g_config;
}

CUresult context_usable() {
    Context* c = t_current;
    if (c == nullptr) return fail(CUDA_ERROR_INVALID_CONTEXT, "no current context on this thread (cuCtxSetCurrent was not called, or with null)");
    if (!c->active)
        return fail(CUDA_ERROR_INVALID_CONTEXT, "the current context is the primary context after its last cuDevicePrimaryCtxRelease: it is destroyed");
    if (c->sticky != CUDA_SUCCESS) return c->sticky;
    return CUDA_SUCCESS;
}

CUresult resolve_stream(void* handle, Stream** stream) {
    Context* c = t_current;
    uintptr_t value = (uintptr_t)handle;
    if (value == 0 || value == 1 || value == 2) {
        // 0 and CU_STREAM_LEGACY name the legacy default stream; CU_STREAM_PER_THREAD is treated the same (one thread).
        *stream = &c->legacy;
        return CUDA_SUCCESS;
    }
    Stream* s = lookup<Stream>(handle, kStreamMagic);
    if (s == nullptr) return fail(CUDA_ERROR_INVALID_HANDLE, "%p is not a stream handle", handle);
    if (!s->alive) return fail(CUDA_ERROR_INVALID_HANDLE, "stream %p was destroyed", handle);
    if (s->context != c) return fail(CUDA_ERROR_INVALID_HANDLE, "stream %p belongs to another context", handle);
    *stream = s;
    return CUDA_SUCCESS;
}

CUresult submit(Stream* stream, std::string what, std::vector<uintptr_t> touches, std::function<CUresult()> work, const void* module) {
    Context& context = *stream->context;
    if (context.sticky != CUDA_SUCCESS) return context.sticky;
    Op op{++g_seq, std::move(what), std::move(work), {}, module};
    if (!config().deferred) return run_op(context, op);
    for (uintptr_t address : touches) {
        const Allocation* a = find_allocation(address);
        if (a == nullptr && address != 0) a = find_allocation(address - 1);   // one past the end
        if (a != nullptr) op.touches.push_back(a->base);
    }
    // Implicit synchronisation of the legacy default stream, applied when the work is queued.
    if (stream->legacy) {
        for (Stream* s : context.streams)
            if (!(s->flags & 1u)) {
                CUresult status = flush(s);
                if (status != CUDA_SUCCESS) return status;
            }
    } else if (!(stream->flags & 1u)) {
        CUresult status = flush(&context.legacy);
        if (status != CUDA_SUCCESS) return status;
    }
    stream->queue.push_back(std::move(op));
    return CUDA_SUCCESS;
}

}  // namespace emu

using namespace emu;

typedef int CUdevice;
typedef unsigned long long CUdeviceptr;

// --- initialisation, errors, devices -----------------------------------------------------------------------------

EMU_EXPORT CUresult cuInit(unsigned int flags) {
    LOCKED;
    if (flags != 0) return fail(CUDA_ERROR_INVALID_VALUE, "cuInit(%u): flags must be 0", flags);
    read_config();
    if (!g_config_error.empty()) return fail(CUDA_ERROR_INVALID_VALUE, "cuInit: %s", g_config_error.c_str());
    if (!g_initialised) {
        install_fault_handler();
        g_context.legacy.context = &g_context;
        g_context.legacy.legacy = true;
        g_initialised = true;
    }
    return CUDA_SUCCESS;
}

EMU_EXPORT CUresult cuDriverGetVersion(int* version) {
    LOCKED;
    if (version == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuDriverGetVersion(null)");
    read_config();
    *version = g_config.driver_version;
    return CUDA_SUCCESS;
}

EMU_EXPORT CUresult cuGetErrorName(CUresult error, const char** name) {
    if (name == nullptr) return CUDA_ERROR_INVALID_VALUE;
    *name = error_name(error);
    return *name ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

EMU_EXPORT CUresult cuGetErrorString(CUresult error, const char** text) {
    if (text == nullptr) return CUDA_ERROR_INVALID_VALUE;
    *text = error_string(error);
    return *text ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

EMU_EXPORT CUresult cuDeviceGetCount(int* count) {
    LOCKED;
    REQUIRE_INIT;
    if (count == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuDeviceGetCount(null)");
    *count = 1;
    return CUDA_SUCCESS;
}

EMU_EXPORT CUresult cuDeviceGet(CUdevice* device, int ordinal) {
    LOCKED;
    REQUIRE_INIT;
    if (device == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuDeviceGet(null)");
    if (ordinal != 0) return fail(CUDA_ERROR_INVALID_DEVICE, "cuDeviceGet(%d): the emulator has one device, ordinal 0", ordinal);
    *device = 0;
    return CUDA_SUCCESS;
}

#define REQUIRE_DEVICE(d)                                                                                  \
    do {                                                                                                   \
        if ((d) != 0) return fail(CUDA_ERROR_INVALID_DEVICE, "%s: device %d does not exist (one device, 0)", __func__, (int)(d)); \
    } while (0)

EMU_EXPORT CUresult cuDeviceGetName(char* name, int length, CUdevice device) {
    LOCKED;
    REQUIRE_INIT;
    REQUIRE_DEVICE(device);
    if (name == nullptr || length <= 0) return fail(CUDA_ERROR_INVALID_VALUE, "cuDeviceGetName: null buffer or length %d", length);
    snprintf(name, (size_t)length, "%s", kDeviceName);
    return CUDA_SUCCESS;
}

EMU_EXPORT CUresult cuDeviceGetAttribute(int* value, int attribute, CUdevice device) {
    LOCKED;
    REQUIRE_INIT;
    REQUIRE_DEVICE(device);
    if (value == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuDeviceGetAttribute(null)");
    bool known = false;
    int v = attribute_value(attribute, known);
    if (!known)
        return fail(CUDA_ERROR_INVALID_VALUE, "cuDeviceGetAttribute: attribute %d is not emulated (add it to the emulator's table with the "
                    "H200's value)", attribute);
    *value = v;
    return CUDA_SUCCESS;
}

EMU_EXPORT CUresult cuDeviceTotalMem_v2(size_t* bytes, CUdevice device) {
    LOCKED;
    REQUIRE_INIT;
    REQUIRE_DEVICE(device);
    if (bytes == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuDeviceTotalMem_v2(null)");
    *bytes = g_config.total_memory;
    return CUDA_SUCCESS;
}

// --- contexts ----------------------------------------------------------------------------------------------------

EMU_EXPORT CUresult cuDevicePrimaryCtxRetain(void** context, CUdevice device) {
    LOCKED;
    REQUIRE_INIT;
    REQUIRE_DEVICE(device);
    if (context == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuDevicePrimaryCtxRetain(null)");
    if (!g_context.active) {
        g_context.active = true;
        g_context.sticky = CUDA_SUCCESS;
    }
    g_context.refcount++;
    *context = &g_context;
    return CUDA_SUCCESS;
}

EMU_EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice device) {
    LOCKED;
    REQUIRE_INIT;
    REQUIRE_DEVICE(device);
    if (g_context.refcount == 0)
        return fail(CUDA_ERROR_INVALID_CONTEXT, "cuDevicePrimaryCtxRelease_v2: the primary context is not retained (more releases than retains)");
    if (--g_context.refcount == 0) destroy_context(g_context);
    return CUDA_SUCCESS;
}

EMU_EXPORT CUresult cuCtxSetCurrent(void* context) {
    LOCKED;
    REQUIRE_INIT;
    if (context != nullptr && context != &g_context) return fail(CUDA_ERROR_INVALID_CONTEXT, "cuCtxSetCurrent(%p): not a context handle", context);
    t_current = (Context*)context;
    return CUDA_SUCCESS;
}

EMU_EXPORT CUresult cuCtxGetCurrent(void** context) {
    LOCKED;
    REQUIRE_INIT;
    if (context == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuCtxGetCurrent(null)");
    *context = t_current;
    return CUDA_SUCCESS;
}

EMU_EXPORT CUresult cuCtxGetDevice(CUdevice* device) {
    LOCKED;
    REQUIRE_CONTEXT;
    if (device == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuCtxGetDevice(null)");
    *device = 0;
    return CUDA_SUCCESS;
}

EMU_EXPORT CUresult cuCtxSynchronize(void) {
    LOCKED;
    REQUIRE_CONTEXT;
    return flush_all(*t_current);
}

// --- memory ------------------------------------------------------------------------------------------------------

EMU_EXPORT CUresult cuMemAlloc_v2(CUdeviceptr* pointer, size_t bytes) {
    LOCKED;
    REQUIRE_CONTEXT;
    if (pointer == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuMemAlloc_v2(null)");
    uintptr_t address = 0;
    CUresult status = device_alloc(&address, bytes);
    if (status == CUDA_SUCCESS) *pointer = address;
    return status;
}

EMU_EXPORT CUresult cuMemFree_v2(CUdeviceptr pointer) {
    LOCKED;
    REQUIRE_INIT;
    if (t_current == nullptr || !t_current->active) return context_usable();
    // Freeing waits for the queued work that uses the memory (and only that, so a missing synchronisation elsewhere
    // still shows).
    CUresult pending = t_current->sticky == CUDA_SUCCESS ? flush_users(*t_current, (uintptr_t)pointer, nullptr) : t_current->sticky;
    CUresult status = device_free((uintptr_t)pointer);
    return pending != CUDA_SUCCESS ? pending : status;
}

EMU_EXPORT CUresult cuMemGetInfo_v2(size_t* free_bytes, size_t* total_bytes) {
    LOCKED;
    REQUIRE_CONTEXT;
    if (free_bytes == nullptr || total_bytes == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuMemGetInfo_v2(null)");
    *total_bytes = g_config.total_memory;
    *free_bytes = g_config.total_memory - device_bytes_in_use();
    return CUDA_SUCCESS;
}

EMU_EXPORT CUresult cuMemHostAlloc(void** pointer, size_t bytes, unsigned int flags) {
    LOCKED;
    REQUIRE_CONTEXT;
    if (pointer == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuMemHostAlloc(null)");
    if (flags & ~7u) return fail(CUDA_ERROR_INVALID_VALUE, "cuMemHostAlloc: unknown flags 0x%x (PORTABLE 1, DEVICEMAP 2, WRITECOMBINED 4)", flags);
    return host_alloc(pointer, bytes);
}

EMU_EXPORT CUresult cuMemFreeHost(void* pointer) {
    LOCKED;
    REQUIRE_INIT;
    if (t_current == nullptr || !t_current->active) return context_usable();
    CUresult pending = t_current->sticky == CUDA_SUCCESS ? flush_users(*t_current, (uintptr_t)pointer, nullptr) : t_current->sticky;
    CUresult status = host_free(pointer);
    return pending != CUDA_SUCCESS ? pending : status;
}

namespace {

// A synchronous copy runs on the legacy default stream: after its earlier work and that of blocking streams.
CUresult synchronous_copy(const char* call, void* destination, const void* source, size_t bytes) {
    CUresult status = flush_legacy_and_blocking(*t_current);
    if (status != CUDA_SUCCESS) return status;
    status = run_guarded(call, [&] { memcpy(destination, source, bytes); });
    if (status != CUDA_SUCCESS) t_current->sticky = status;
    return status;
}

}  // namespace

EMU_EXPORT CUresult cuMemcpyHtoD_v2(CUdeviceptr destination, const void* source, size_t bytes) {
    LOCKED;
    REQUIRE_CONTEXT;
    if (CUresult s = check_device_range("cuMemcpyHtoD_v2", "destination", destination, bytes)) return s;
    if (CUresult s = check_host_range("cuMemcpyHtoD_v2", "source", source, bytes)) return s;
    return synchronous_copy("cuMemcpyHtoD_v2", (void*)destination, source, bytes);
}

EMU_EXPORT CUresult cuMemcpyDtoH_v2(void* destination, CUdeviceptr source, size_t bytes) {
    LOCKED;
    REQUIRE_CONTEXT;
    if (CUresult s = check_host_range("cuMemcpyDtoH_v2", "destination", destination, bytes)) return s;
    if (CUresult s = check_device_range("cuMemcpyDtoH_v2", "source", source, bytes)) return s;
    return synchronous_copy("cuMemcpyDtoH_v2", destination, (const void*)source, bytes);
}

namespace {

CUresult check_overlap(const char* call, uintptr_t destination, uintptr_t source, size_t bytes) {
    if (bytes != 0 && destination < source + bytes && source < destination + bytes)
        return fail(CUDA_ERROR_INVALID_VALUE, "%s: source [0x%llx, +%zu) and destination [0x%llx, +%zu) overlap (the result is undefined)", call,
                    (unsigned long long)source, bytes, (unsigned long long)destination, bytes);
    return CUDA_SUCCESS;
}

}  // namespace

EMU_EXPORT CUresult cuMemcpyDtoD_v2(CUdeviceptr destination, CUdeviceptr source, size_t bytes) {
    LOCKED;
    REQUIRE_CONTEXT;
    if (CUresult s = check_device_range("cuMemcpyDtoD_v2", "destination", destination, bytes)) return s;
    if (CUresult s = check_device_range("cuMemcpyDtoD_v2", "source", source, bytes)) return s;
    if (CUresult s = check_overlap("cuMemcpyDtoD_v2", destination, source, bytes)) return s;
    // Device-to-device copies are asynchronous with respect to the host even without a stream argument.
    return submit(&t_current->legacy, "cuMemcpyDtoD_v2", {destination, source}, [=] {
        return run_guarded("cuMemcpyDtoD_v2", [=] { memcpy((void*)destination, (const void*)source, bytes); });
    });
}

EMU_EXPORT CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr destination, const void* source, size_t bytes, void* stream_handle) {
    LOCKED;
    REQUIRE_CONTEXT;
    Stream* stream = nullptr;
    if (CUresult s = resolve_stream(stream_handle, &stream)) return s;
    if (CUresult s = check_device_range("cuMemcpyHtoDAsync_v2", "destination", destination, bytes)) return s;
    if (CUresult s = check_host_range("cuMemcpyHtoDAsync_v2", "source", source, bytes)) return s;
    if (bytes == 0) return CUDA_SUCCESS;
    const Allocation* pinned = find_allocation((uintptr_t)source);
    if (pinned != nullptr || !config().deferred) {
        // Pinned memory is read when the copy runs, so the host must not touch it before synchronising.
        return submit(stream, "cuMemcpyHtoDAsync_v2", {destination, (uintptr_t)source}, [=] {
            return run_guarded("cuMemcpyHtoDAsync_v2", [=] { memcpy((void*)destination, source, bytes); });
        });
    }
    // From pageable memory the driver stages the data before returning, so the caller may reuse the buffer at once.
    auto staged = std::make_shared<std::vector<unsigned char>>((const unsigned char*)source, (const unsigned char*)source + bytes);
    return submit(stream, "cuMemcpyHtoDAsync_v2", {destination}, [=] {
        return run_guarded("cuMemcpyHtoDAsync_v2", [=] { memcpy((void*)destination, staged->data(), bytes); });
    });
}

EMU_EXPORT CUresult cuMemcpyDtoHAsync_v2(void* destination, CUdeviceptr source, size_t bytes, void* stream_handle) {
    LOCKED;
    REQUIRE_CONTEXT;
    Stream* stream = nullptr;
    if (CUresult s = resolve_stream(stream_handle, &stream)) return s;
    if (CUresult s = check_host_range("cuMemcpyDtoHAsync_v2", "destination", destination, bytes)) return s;
    if (CUresult s = check_device_range("cuMemcpyDtoHAsync_v2", "source", source, bytes)) return s;
    if (bytes == 0) return CUDA_SUCCESS;
    // The host buffer is written when the copy runs, in deferred mode only at the next synchronisation.
    return submit(stream, "cuMemcpyDtoHAsync_v2", {(uintptr_t)destination, source}, [=] {
        return run_guarded("cuMemcpyDtoHAsync_v2", [=] { memcpy(destination, (const void*)source, bytes); });
    });
}

EMU_EXPORT CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr destination, CUdeviceptr source, size_t bytes, void* stream_handle) {
    LOCKED;
    REQUIRE_CONTEXT;
    Stream* stream = nullptr;
    if (CUresult s = resolve_stream(stream_handle, &stream)) return s;
    if (CUresult s = check_device_range("cuMemcpyDtoDAsync_v2", "destination", destination, bytes)) return s;
    if (CUresult s = check_device_range("cuMemcpyDtoDAsync_v2", "source", source, bytes)) return s;
    if (CUresult s = check_overlap("cuMemcpyDtoDAsync_v2", destination, source, bytes)) return s;
    if (bytes == 0) return CUDA_SUCCESS;
    return submit(stream, "cuMemcpyDtoDAsync_v2", {destination, source}, [=] {
        return run_guarded("cuMemcpyDtoDAsync_v2", [=] { memcpy((void*)destination, (const void*)source, bytes); });
    });
}

namespace {

CUresult memset_on(const char* call, Stream* stream, CUdeviceptr destination, uint32_t value, size_t count, size_t element) {
    if (element > 1 && destination % element != 0)
        return fail(CUDA_ERROR_INVALID_VALUE, "%s: destination 0x%llx is not %zu-byte aligned", call, (unsigned long long)destination, element);
    if (count > SIZE_MAX / element) return fail(CUDA_ERROR_INVALID_VALUE, "%s: %zu elements overflow", call, count);
    if (CUresult s = check_device_range(call, "destination", destination, count * element)) return s;
    if (count == 0) return CUDA_SUCCESS;
    return submit(stream, call, {destination}, [=] {
        return run_guarded(call, [=] {
            if (element == 1) {
                memset((void*)destination, (int)(value & 0xFF), count);
            } else {
                uint32_t* p = (uint32_t*)destination;
                for (size_t i = 0; i < count; i++) p[i] = value;
            }
        });
    });
}

}  // namespace

EMU_EXPORT CUresult cuMemsetD8Async(CUdeviceptr destination, unsigned char value, size_t count, void* stream_handle) {
    LOCKED;
    REQUIRE_CONTEXT;
    Stream* stream = nullptr;
    if (CUresult s = resolve_stream(stream_handle, &stream)) return s;
    return memset_on("cuMemsetD8Async", stream, destination, value, count, 1);
}

EMU_EXPORT CUresult cuMemsetD32Async(CUdeviceptr destination, unsigned int value, size_t count, void* stream_handle) {
    LOCKED;
    REQUIRE_CONTEXT;
    Stream* stream = nullptr;
    if (CUresult s = resolve_stream(stream_handle, &stream)) return s;
    return memset_on("cuMemsetD32Async", stream, destination, value, count, 4);
}

EMU_EXPORT CUresult cuMemsetD8_v2(CUdeviceptr destination, unsigned char value, size_t count) {
    LOCKED;
    REQUIRE_CONTEXT;
    return memset_on("cuMemsetD8_v2", &t_current->legacy, destination, value, count, 1);
}

EMU_EXPORT CUresult cuMemsetD32_v2(CUdeviceptr destination, unsigned int value, size_t count) {
    LOCKED;
    REQUIRE_CONTEXT;
    return memset_on("cuMemsetD32_v2", &t_current->legacy, destination, value, count, 4);
}

// --- streams and events ------------------------------------------------------------------------------------------

EMU_EXPORT CUresult cuStreamCreate(void** stream, unsigned int flags) {
    LOCKED;
    REQUIRE_CONTEXT;
    if (stream == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuStreamCreate(null)");
    if (flags & ~1u) return fail(CUDA_ERROR_INVALID_VALUE, "cuStreamCreate: unknown flags 0x%x (CU_STREAM_NON_BLOCKING is 1)", flags);
    Stream* s = new Stream();
    s->context = t_current;
    s->flags = flags;
    t_current->streams.push_back(s);
    g_handles.insert(s);
    *stream = s;
    return CUDA_SUCCESS;
}

EMU_EXPORT CUresult cuStreamDestroy_v2(void* handle) {
    LOCKED;
    REQUIRE_INIT;
    if (handle == nullptr || (uintptr_t)handle <= 2) return fail(CUDA_ERROR_INVALID_HANDLE, "cuStreamDestroy_v2: the default stream cannot be destroyed");
    Stream* s = lookup<Stream>(handle, kStreamMagic);
    if (s == nullptr || !s->alive) return fail(CUDA_ERROR_INVALID_HANDLE, "cuStreamDestroy_v2(%p): not a live stream", handle);
    // The driver lets queued work finish after the destroy; running it now keeps that order.
    CUresult status = s->context->sticky == CUDA_SUCCESS ? flush(s) : s->context->sticky;
    s->alive = false;
    s->queue.clear();
    auto& list = s->context->streams;
    list.erase(std::remove(list.begin(), list.end(), s), list.end());
    return status;
}

EMU_EXPORT CUresult cuStreamSynchronize(void* handle) {
    LOCKED;
    REQUIRE_CONTEXT;
    Stream* stream = nullptr;
    if (CUresult s = resolve_stream(handle, &stream)) return s;
    CUresult status = stream->legacy ? flush_legacy_and_blocking(*t_current) : flush(stream);
    return status != CUDA_SUCCESS ? status : t_current->sticky;
}

EMU_EXPORT CUresult cuStreamQuery(void* handle) {
    LOCKED;
    REQUIRE_CONTEXT;
    Stream* stream = nullptr;
    if (CUresult s = resolve_stream(handle, &stream)) return s;
    return stream->queue.empty() ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY;
}

EMU_EXPORT CUresult cuEventCreate(void** event, unsigned int flags) {
    LOCKED;
    REQUIRE_CONTEXT;
    if (event == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuEventCreate(null)");
    if (flags & ~7u) return fail(CUDA_ERROR_INVALID_VALUE, "cuEventCreate: unknown flags 0x%x", flags);
    Event* e = new Event();
    e->context = t_current;
    e->flags = flags;
    t_current->events.push_back(e);
    g_handles.insert(e);
    *event = e;
    return CUDA_SUCCESS;
}

EMU_EXPORT CUresult cuEventDestroy_v2(void* handle) {
    LOCKED;
    REQUIRE_INIT;
    Event* e = lookup<Event>(handle, kEventMagic);
    if (e == nullptr || !e->alive) return fail(CUDA_ERROR_INVALID_HANDLE, "cuEventDestroy_v2(%p): not a live event", handle);
    e->alive = false;
    auto& list = e->context->events;
    list.erase(std::remove(list.begin(), list.end(), e), list.end());
    return CUDA_SUCCESS;
}

EMU_EXPORT CUresult cuEventRecord(void* handle, void* stream_handle) {
    LOCKED;
    REQUIRE_CONTEXT;
    Event* e = lookup<Event>(handle, kEventMagic);
    if (e == nullptr || !e->alive) return fail(CUDA_ERROR_INVALID_HANDLE, "cuEventRecord(%p): not a live event", handle);
    Stream* stream = nullptr;
    if (CUresult s = resolve_stream(stream_handle, &stream)) return s;
    e->state = 1;
    e->stream = stream;
    e->seq = g_seq + 1;
    // The time is taken when the stream reaches the event, as on a GPU.
    return submit(stream, "cuEventRecord", {}, [e] {
        e->milliseconds = now_milliseconds();
        e->state = 2;
        return CUDA_SUCCESS;
    });
}

EMU_EXPORT CUresult cuEventSynchronize(void* handle) {
    LOCKED;
    REQUIRE_CONTEXT;
    Event* e = lookup<Event>(handle, kEventMagic);
    if (e == nullptr || !e->alive) return fail(CUDA_ERROR_INVALID_HANDLE, "cuEventSynchronize(%p): not a live event", handle);
    if (e->state == 1) {
        CUresult status = flush(e->stream, e->seq);
        if (status != CUDA_SUCCESS) return status;
    }
    return t_current->sticky;
}

EMU_EXPORT CUresult cuEventQuery(void* handle) {
    LOCKED;
    REQUIRE_CONTEXT;
    Event* e = lookup<Event>(handle, kEventMagic);
    if (e == nullptr || !e->alive) return fail(CUDA_ERROR_INVALID_HANDLE, "cuEventQuery(%p): not a live event", handle);
    return e->state == 1 ? CUDA_ERROR_NOT_READY : CUDA_SUCCESS;
}

EMU_EXPORT CUresult cuEventElapsedTime(float* milliseconds, void* start_handle, void* end_handle) {
    LOCKED;
    REQUIRE_CONTEXT;
    Event* start = lookup<Event>(start_handle, kEventMagic);
    Event* end = lookup<Event>(end_handle, kEventMagic);
    if (milliseconds == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuEventElapsedTime(null)");
    if (start == nullptr || end == nullptr || !start->alive || !end->alive)
        return fail(CUDA_ERROR_INVALID_HANDLE, "cuEventElapsedTime: not live events");
    if ((start->flags | end->flags) & 2u) return fail(CUDA_ERROR_INVALID_HANDLE, "cuEventElapsedTime: an event was created with CU_EVENT_DISABLE_TIMING");
    if (start->state == 0 || end->state == 0) return fail(CUDA_ERROR_INVALID_HANDLE, "cuEventElapsedTime: an event was never recorded");
    if (start->state != 2 || end->state != 2) return CUDA_ERROR_NOT_READY;
    *milliseconds = (float)(end->milliseconds - start->milliseconds);
    return CUDA_SUCCESS;
}

// --- modules and kernels -----------------------------------------------------------------------------------------

EMU_EXPORT CUresult cuModuleLoadData(void** module, const void* image) {
    LOCKED;
    REQUIRE_CONTEXT;
    if (module == nullptr || image == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuModuleLoadData: null module or image");
    const unsigned char* bytes = (const unsigned char*)image;
    if (memcmp(bytes, "\x7f" "ELF", 4) == 0)
        return fail(CUDA_ERROR_INVALID_IMAGE, "cuModuleLoadData: the image is a cubin (ELF machine code); the emulated device runs PTX text only "
                    "(it maps each .entry to the kernel's CPU build)");
    uint32_t magic;
    memcpy(&magic, bytes, 4);
    if (magic == 0xBA55ED50u || magic == 0x466243B1u)
        return fail(CUDA_ERROR_INVALID_IMAGE, "cuModuleLoadData: the image is a fatbinary; the emulated device runs PTX text only");
    std::string text((const char*)image);
    auto m = std::make_unique<Module>();
    std::string error;
    if (!parse_ptx(text, m->ptx, error)) return fail(CUDA_ERROR_INVALID_IMAGE, "cuModuleLoadData: %s", error.c_str());
    const PtxModule& ptx = m->ptx;
    int isa = ptx.version_major * 10 + ptx.version_minor, supported = max_ptx_isa(g_config.driver_version);
    if (isa > supported)
        return fail(CUDA_ERROR_UNSUPPORTED_PTX_VERSION, "cuModuleLoadData: PTX ISA %d.%d is newer than this driver reads (CUDA %d.%d reads up to "
                    "ISA %d.%d): the compiler is newer than the driver", ptx.version_major, ptx.version_minor, g_config.driver_version / 1000,
                    g_config.driver_version % 1000 / 10, supported / 10, supported % 10);
    if (ptx.target_sm == 0 || ptx.target_sm > 90 || (ptx.arch_specific && ptx.target_sm != 90))
        return fail(CUDA_ERROR_INVALID_PTX, "cuModuleLoadData: the PTX targets %s, which a device of compute capability 9.0 cannot run",
                    ptx.target.c_str());
    if (ptx.address_size != 64) return fail(CUDA_ERROR_INVALID_PTX, "cuModuleLoadData: .address_size %d (64 is required)", ptx.address_size);
    m->context = t_current;
    Module* raw = m.release();
    t_current->modules.push_back(raw);
    g_handles.insert(raw);
    *module = raw;
    return CUDA_SUCCESS;
}

EMU_EXPORT CUresult cuModuleLoadDataEx(void** module, const void* image, unsigned int, void*, void**) {
    return cuModuleLoadData(module, image);
}

EMU_EXPORT CUresult cuModuleUnload(void* handle) {
    LOCKED;
    REQUIRE_INIT;
    Module* m = lookup<Module>(handle, kModuleMagic);
    if (m == nullptr || !m->alive) return fail(CUDA_ERROR_INVALID_HANDLE, "cuModuleUnload(%p): not a loaded module", handle);
    // Queued launches of the module's kernels run first.
    CUresult status = m->context->sticky == CUDA_SUCCESS ? flush_users(*m->context, 0, m) : m->context->sticky;
    m->alive = false;
    auto& list = m->context->modules;
    list.erase(std::remove(list.begin(), list.end(), m), list.end());
    return status;
}

EMU_EXPORT CUresult cuModuleGetFunction(void** function, void* handle, const char* name) {
    LOCKED;
    REQUIRE_CONTEXT;
    if (function == nullptr || name == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuModuleGetFunction: null function or name");
    Module* m = lookup<Module>(handle, kModuleMagic);
    if (m == nullptr || !m->alive) return fail(CUDA_ERROR_INVALID_HANDLE, "cuModuleGetFunction(%s): %p is not a loaded module", name, handle);
    auto known = m->functions.find(name);
    if (known != m->functions.end()) {
        *function = known->second;
        return CUDA_SUCCESS;
    }
    const PtxEntry* entry = nullptr;
    std::string names;
    for (const PtxEntry& e : m->ptx.entries) {
        if (e.name == name) entry = &e;
        names += (names.empty() ? "" : ", ") + e.name;
    }
    if (entry == nullptr) return fail(CUDA_ERROR_NOT_FOUND, "cuModuleGetFunction(%s): the module has no such .entry (it has: %s)", name, names.c_str());
    const cuda_emu::KernelEntry* kernel = cuda_emu::find_kernel(name);
    if (kernel == nullptr)
        return fail(CUDA_ERROR_NOT_FOUND, "cuModuleGetFunction(%s): the PTX has the entry but the emulator has no CPU build of it; rebuild the "
                    "emulator (scripts/build-cuda-emulator.sh) from the same kernels/", name);
    if (CUresult s = check_signature(*entry, *kernel)) return s;
    Function* f = new Function();
    f->module = m;
    f->entry = entry;
    f->kernel = kernel;
    m->functions[name] = f;
    g_handles.insert(f);
    *function = f;
    return CUDA_SUCCESS;
}

namespace {

CUresult live_function(void* handle, const char* call, Function** out) {
    Function* f = lookup<Function>(handle, kFunctionMagic);
    if (f == nullptr) return fail(CUDA_ERROR_INVALID_HANDLE, "%s: %p is not a function handle", call, handle);
    if (!f->module->alive) return fail(CUDA_ERROR_INVALID_HANDLE, "%s(%s): its module was unloaded", call, f->kernel->name);
    *out = f;
    return CUDA_SUCCESS;
}

}  // namespace

EMU_EXPORT CUresult cuFuncSetAttribute(void* handle, int attribute, int value) {
    LOCKED;
    REQUIRE_CONTEXT;
    Function* f = nullptr;
    if (CUresult s = live_function(handle, "cuFuncSetAttribute", &f)) return s;
    std::size_t static_shared = f->entry->static_shared;
    switch (attribute) {
        case 8:   // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
            if (value < 0 || (std::size_t)value + static_shared > (std::size_t)kMaxSharedOptIn)
                return fail(CUDA_ERROR_INVALID_VALUE, "cuFuncSetAttribute(%s, MAX_DYNAMIC_SHARED_SIZE_BYTES, %d): with %zu bytes of static shared "
                            "memory the most a block may opt in to is %zu", f->kernel->name, value, static_shared,
                            (std::size_t)kMaxSharedOptIn - static_shared);
            f->max_dynamic_shared = value;
            return CUDA_SUCCESS;
        case 9:   // CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT
            if (value < -1 || value > 100) return fail(CUDA_ERROR_INVALID_VALUE, "cuFuncSetAttribute(%s, carveout %d)", f->kernel->name, value);
            f->carveout = value;
            return CUDA_SUCCESS;
        default:
            return fail(CUDA_ERROR_INVALID_VALUE, "cuFuncSetAttribute(%s): attribute %d cannot be set (or is not emulated)", f->kernel->name, attribute);
    }
}

EMU_EXPORT CUresult cuFuncGetAttribute(int* value, int attribute, void* handle) {
    LOCKED;
    REQUIRE_CONTEXT;
    Function* f = nullptr;
    if (CUresult s = live_function(handle, "cuFuncGetAttribute", &f)) return s;
    if (value == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuFuncGetAttribute(null)");
    int static_shared = (int)f->entry->static_shared;
    switch (attribute) {
        case 0: *value = 1024; return CUDA_SUCCESS;
        case 1: *value = static_shared; return CUDA_SUCCESS;
        case 2: case 3: *value = 0; return CUDA_SUCCESS;
        case 4: *value = 32; return CUDA_SUCCESS;
        case 5: *value = f->module->ptx.version_major * 10 + f->module->ptx.version_minor; return CUDA_SUCCESS;
        case 6: *value = 90; return CUDA_SUCCESS;
        case 7: *value = 0; return CUDA_SUCCESS;
        case 8: *value = f->max_dynamic_shared >= 0 ? f->max_dynamic_shared : kDefaultSharedLimit - static_shared; return CUDA_SUCCESS;
        case 9: *value = f->carveout; return CUDA_SUCCESS;
        default: return fail(CUDA_ERROR_INVALID_VALUE, "cuFuncGetAttribute(%s): attribute %d is not emulated", f->kernel->name, attribute);
    }
}

EMU_EXPORT CUresult cuLaunchKernel(void* handle, unsigned int grid_x, unsigned int grid_y, unsigned int grid_z, unsigned int block_x,
                                   unsigned int block_y, unsigned int block_z, unsigned int shared_bytes, void* stream_handle,
                                   void** kernel_params, void** extra) {
    LOCKED;
    REQUIRE_CONTEXT;
    Function* f = nullptr;
    if (CUresult s = live_function(handle, "cuLaunchKernel", &f)) return s;
    const char* name = f->kernel->name;
    Stream* stream = nullptr;
    if (CUresult s = resolve_stream(stream_handle, &stream)) return s;
    if (grid_x == 0 || grid_y == 0 || grid_z == 0 || block_x == 0 || block_y == 0 || block_z == 0)
        return fail(CUDA_ERROR_INVALID_VALUE, "cuLaunchKernel(%s): empty grid (%u,%u,%u) or block (%u,%u,%u)", name, grid_x, grid_y, grid_z, block_x,
                    block_y, block_z);
    unsigned long long threads = (unsigned long long)block_x * block_y * block_z;
    if (block_x > 1024 || block_y > 1024 || block_z > 64 || threads > 1024)
        return fail(CUDA_ERROR_INVALID_VALUE, "cuLaunchKernel(%s): block (%u,%u,%u) exceeds the device's limits (x, y <= 1024, z <= 64, at most 1024 "
                    "threads)", name, block_x, block_y, block_z);
    if (grid_x > 2147483647u || grid_y > 65535u || grid_z > 65535u)
        return fail(CUDA_ERROR_INVALID_VALUE, "cuLaunchKernel(%s): grid (%u,%u,%u) exceeds the device's limits (x < 2^31, y and z <= 65535)", name,
                    grid_x, grid_y, grid_z);
    std::size_t static_shared = f->entry->static_shared;
    long long dynamic_limit = f->max_dynamic_shared >= 0 ? f->max_dynamic_shared : (long long)kDefaultSharedLimit - (long long)static_shared;
    if ((long long)shared_bytes > dynamic_limit)
        return fail(CUDA_ERROR_INVALID_VALUE, "cuLaunchKernel(%s): %u bytes of dynamic shared memory requested; the kernel may use %lld (%zu bytes "
                    "static%s)", name, shared_bytes, dynamic_limit, static_shared,
                    f->max_dynamic_shared >= 0 ? ", limit set by cuFuncSetAttribute" : "; beyond 48 KiB in all a kernel must opt in with "
                    "cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)");
    if (static_shared + shared_bytes > (std::size_t)kMaxSharedOptIn)
        return fail(CUDA_ERROR_INVALID_VALUE, "cuLaunchKernel(%s): %zu bytes of shared memory in all exceed the device's %d per block", name,
                    static_shared + shared_bytes, kMaxSharedOptIn);
    if (extra != nullptr && extra[0] != nullptr)
        return fail(CUDA_ERROR_NOT_SUPPORTED, "cuLaunchKernel(%s): parameters through `extra` are not emulated; pass kernelParams", name);
    const auto& params = f->kernel->params;
    if (!params.empty() && kernel_params == nullptr)
        return fail(CUDA_ERROR_INVALID_VALUE, "cuLaunchKernel(%s): kernelParams is null but the kernel takes %zu parameters", name, params.size());
    auto launch = std::make_shared<KernelLaunch>();
    launch->kernel = f->kernel;
    launch->grid = {grid_x, grid_y, grid_z};
    launch->block = {block_x, block_y, block_z};
    launch->dynamic_shared = shared_bytes;
    launch->fiberless = !f->entry->synchronizes;
    std::size_t offset = 0;
    std::vector<uintptr_t> touches;
    for (std::size_t i = 0; i < params.size(); i++) {
        if (kernel_params[i] == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuLaunchKernel(%s): kernelParams[%zu] is null", name, i);
        // Each copy 16-byte aligned (the vector's storage is), as the widest parameter type needs.
        offset = (offset + 15) / 16 * 16;
        launch->param_offsets.push_back(offset);
        launch->param_bytes.resize(offset + params[i].size);
        memcpy(launch->param_bytes.data() + offset, kernel_params[i], params[i].size);
        if (params[i].kind == cuda_emu::ParamKind::Pointer) {
            uint64_t value;
            memcpy(&value, kernel_params[i], 8);
            CUresult s = check_pointer_param(*f, i, value, params[i].pointee_alignment);
            if (s != CUDA_SUCCESS) {
                stream->context->sticky = s;
                return s;
            }
            touches.push_back((uintptr_t)value);
        }
        offset += params[i].size;
    }
    return submit(stream, std::string("kernel ") + name, std::move(touches), [launch] { return execute_kernel(*launch); }, f->module);
}

// --- the pre-CUDA-4 names, which a binding must not use (see legacy_trap) ----------------------------------------

EMU_EXPORT CUresult cuDeviceTotalMem(unsigned int*, CUdevice) { return legacy_trap("cuDeviceTotalMem", "cuDeviceTotalMem_v2"); }
EMU_EXPORT CUresult cuMemGetInfo(unsigned int*, unsigned int*) { return legacy_trap("cuMemGetInfo", "cuMemGetInfo_v2"); }
EMU_EXPORT CUresult cuMemAlloc(unsigned int*, unsigned int) { return legacy_trap("cuMemAlloc", "cuMemAlloc_v2"); }
EMU_EXPORT CUresult cuMemFree(unsigned int) { return legacy_trap("cuMemFree", "cuMemFree_v2"); }
EMU_EXPORT CUresult cuMemcpyHtoD(unsigned int, const void*, unsigned int) { return legacy_trap("cuMemcpyHtoD", "cuMemcpyHtoD_v2"); }
EMU_EXPORT CUresult cuMemcpyDtoH(void*, unsigned int, unsigned int) { return legacy_trap("cuMemcpyDtoH", "cuMemcpyDtoH_v2"); }
EMU_EXPORT CUresult cuMemcpyDtoD(unsigned int, unsigned int, unsigned int) { return legacy_trap("cuMemcpyDtoD", "cuMemcpyDtoD_v2"); }
EMU_EXPORT CUresult cuMemcpyHtoDAsync(unsigned int, const void*, unsigned int, void*) { return legacy_trap("cuMemcpyHtoDAsync", "cuMemcpyHtoDAsync_v2"); }
EMU_EXPORT CUresult cuMemcpyDtoHAsync(void*, unsigned int, unsigned int, void*) { return legacy_trap("cuMemcpyDtoHAsync", "cuMemcpyDtoHAsync_v2"); }
EMU_EXPORT CUresult cuMemcpyDtoDAsync(unsigned int, unsigned int, unsigned int, void*) { return legacy_trap("cuMemcpyDtoDAsync", "cuMemcpyDtoDAsync_v2"); }
EMU_EXPORT CUresult cuMemsetD8(unsigned int, unsigned char, unsigned int) { return legacy_trap("cuMemsetD8", "cuMemsetD8_v2"); }
EMU_EXPORT CUresult cuMemsetD32(unsigned int, unsigned int, unsigned int) { return legacy_trap("cuMemsetD32", "cuMemsetD32_v2"); }
EMU_EXPORT CUresult cuStreamDestroy(void*) { return legacy_trap("cuStreamDestroy", "cuStreamDestroy_v2"); }
EMU_EXPORT CUresult cuEventDestroy(void*) { return legacy_trap("cuEventDestroy", "cuEventDestroy_v2"); }
EMU_EXPORT CUresult cuDevicePrimaryCtxRelease(CUdevice) { return legacy_trap("cuDevicePrimaryCtxRelease", "cuDevicePrimaryCtxRelease_v2"); }

// --- for the emulated cuBLAS (libcublas.so.12), which keeps no device state of its own ----------------------------

// The current context if it can take work: CUDA_SUCCESS, its sticky error, or why there is none.
EMU_EXPORT CUresult nativemi_emu_context_status(void) {
    LOCKED;
    REQUIRE_INIT;
    return t_current == nullptr ? CUDA_ERROR_INVALID_CONTEXT : context_usable();
}

EMU_EXPORT CUresult nativemi_emu_check_stream(void* handle) {
    LOCKED;
    REQUIRE_CONTEXT;
    Stream* stream = nullptr;
    return resolve_stream(handle, &stream);
}

EMU_EXPORT CUresult nativemi_emu_check_device_range(const char* call, const char* what, unsigned long long address, unsigned long long bytes) {
    LOCKED;
    REQUIRE_CONTEXT;
    return check_device_range(call, what, (uintptr_t)address, (std::size_t)bytes);
}

// Runs `work(data)` on `stream` now or, deferred, at the next synchronisation; `release(data)` follows either way.
// `addresses` lie in the allocations the work uses (see submit).
EMU_EXPORT CUresult nativemi_emu_submit(void* stream_handle, const char* what, const unsigned long long* addresses, int address_count,
                                        void (*work)(void*), void* data, void (*release)(void*)) {
    LOCKED;
    std::shared_ptr<void> owned(data, [release](void* p) {
        if (release != nullptr) release(p);
    });
    REQUIRE_CONTEXT;
    Stream* stream = nullptr;
    if (CUresult s = resolve_stream(stream_handle, &stream)) return s;
    std::string name = what;
    std::vector<uintptr_t> touches(addresses, addresses + (address_count > 0 ? address_count : 0));
    return submit(stream, name, std::move(touches), [=] { return run_guarded(name.c_str(), [=] { work(owned.get()); }); });
}

// Records a fault cuBLAS detected (an operand outside device memory) and leaves it in the context, as a GPU would.
EMU_EXPORT int nativemi_emu_raise(int code, const char* message) {
    LOCKED;
    fail_text(code, message ? message : "");
    if (t_current != nullptr && t_current->active && sticky_code(code)) t_current->sticky = code;
    return code;
}
