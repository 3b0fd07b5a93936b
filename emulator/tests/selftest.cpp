// The emulator's own tests: `nativemi-emu-selftest <case>` drives the emulated driver and cuBLAS directly and checks
// that each broken kernel, launch, copy or GEMM is caught, with the status a GPU gives and a message that names
// what failed. Exit 0: passed; 1: failed (the reason on stderr); 77: skipped (NVRTC missing).
// tests/NativeMi.Tests/Cuda/CudaEmulatorTests.cs runs every case, some under NATIVEMI_EMU_* settings.
#include <dlfcn.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern "C" {
typedef int CUresult;
typedef unsigned long long CUdeviceptr;
CUresult cuInit(unsigned int);
CUresult cuDevicePrimaryCtxRetain(void**, int);
CUresult cuDevicePrimaryCtxRelease_v2(int);
CUresult cuCtxSetCurrent(void*);
CUresult cuCtxSynchronize(void);
CUresult cuMemAlloc_v2(CUdeviceptr*, size_t);
CUresult cuMemFree_v2(CUdeviceptr);
CUresult cuMemGetInfo_v2(size_t*, size_t*);
CUresult cuMemcpyHtoD_v2(CUdeviceptr, const void*, size_t);
CUresult cuMemcpyDtoH_v2(void*, CUdeviceptr, size_t);
CUresult cuMemcpyDtoHAsync_v2(void*, CUdeviceptr, size_t, void*);
CUresult cuMemsetD32Async(CUdeviceptr, unsigned int, size_t, void*);
CUresult cuStreamCreate(void**, unsigned int);
CUresult cuStreamSynchronize(void*);
CUresult cuStreamDestroy_v2(void*);
CUresult cuModuleLoadData(void**, const void*);
CUresult cuModuleUnload(void*);
CUresult cuModuleGetFunction(void**, void*, const char*);
CUresult cuFuncSetAttribute(void*, int, int);
CUresult cuLaunchKernel(void*, unsigned int, unsigned int, unsigned int, unsigned int, unsigned int, unsigned int, unsigned int, void*, void**, void**);
const char* nativemi_emu_last_error(void);
int cublasCreate_v2(void**);
int cublasDestroy_v2(void*);
int cublasSetStream_v2(void*, void*);
int cublasSgemm_v2(void*, int, int, int, int, int, const float*, const float*, int, const float*, int, const float*, float*, int);
}

namespace {

int g_failures = 0;

#define CHECK(condition, ...)                                                      \
    do {                                                                           \
        if (!(condition)) {                                                        \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #condition); \
            fprintf(stderr, __VA_ARGS__);                                          \
            fprintf(stderr, "\n");                                                 \
            g_failures++;                                                          \
            return;                                                                \
        }                                                                          \
    } while (0)

#define OK(call) CHECK((call) == 0, "%s returned an error: %s", #call, nativemi_emu_last_error())

bool mentions(const std::vector<const char*>& parts) {
    std::string message = nativemi_emu_last_error();
    for (const char* part : parts)
        if (message.find(part) == std::string::npos) return false;
    return true;
}

#define EXPECT_ERROR(call, code, ...)                                                                                          \
    do {                                                                                                                       \
        int status_ = (call);                                                                                                  \
        CHECK(status_ == (code), "%s returned %d, expected %d (last message: %s)", #call, status_, (code), nativemi_emu_last_error()); \
        CHECK(mentions({__VA_ARGS__}), "the message of %s lacks an expected part: %s", #call, nativemi_emu_last_error());      \
    } while (0)

std::string read_file(const char* path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// The fault kernels' PTX from the system's NVRTC, as the engine gets its kernels' PTX.
std::string g_ptx;
bool compile_fault_kernels() {
    void* nvrtc = nullptr;
    for (const char* name : {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"})
        if ((nvrtc = dlopen(name, RTLD_NOW)) != nullptr) break;
    if (nvrtc == nullptr) return false;
    using Create = int (*)(void**, const char*, const char*, int, const char* const*, const char* const*);
    using Compile = int (*)(void*, int, const char* const*);
    using Size = int (*)(void*, size_t*);
    using Get = int (*)(void*, char*);
    auto create = (Create)dlsym(nvrtc, "nvrtcCreateProgram");
    auto compile = (Compile)dlsym(nvrtc, "nvrtcCompileProgram");
    auto ptx_size = (Size)dlsym(nvrtc, "nvrtcGetPTXSize");
    auto get_ptx = (Get)dlsym(nvrtc, "nvrtcGetPTX");
    auto log_size = (Size)dlsym(nvrtc, "nvrtcGetProgramLogSize");
    auto get_log = (Get)dlsym(nvrtc, "nvrtcGetProgramLog");
    std::string source = read_file(NATIVEMI_EMU_FAULT_KERNELS), header = read_file(NATIVEMI_EMU_COMMON_HEADER);
    const char* headers[] = {header.c_str()};
    const char* names[] = {"common.cuh"};
    void* program = nullptr;
    if (create(&program, source.c_str(), "fault_kernels.cu", 1, headers, names) != 0) return false;
    const char* options[] = {"--gpu-architecture=compute_90", "--std=c++17"};
    int status = compile(program, 2, options);
    size_t size = 0;
    log_size(program, &size);
    std::string log(size, '\0');
    get_log(program, log.data());
    if (status != 0 || log.find("warning") != std::string::npos) {
        fprintf(stderr, "NVRTC failed on fault_kernels.cu:\n%s\n", log.c_str());
        exit(1);
    }
    ptx_size(program, &size);
    g_ptx.assign(size, '\0');
    get_ptx(program, g_ptx.data());
    return true;
}

bool deferred() {
    const char* value = getenv("NATIVEMI_EMU_DEFERRED");
    return value != nullptr && strcmp(value, "1") == 0;
}

// The primary context with the fault kernels loaded; released to zero on destruction, which clears a sticky fault.
struct Session {
    void* context = nullptr;
    void* module = nullptr;
    bool ok = false;

    Session() {
        if (cuInit(0) != 0 || cuDevicePrimaryCtxRetain(&context, 0) != 0 || cuCtxSetCurrent(context) != 0) return;
        if (cuModuleLoadData(&module, g_ptx.c_str()) != 0) {
            fprintf(stderr, "cuModuleLoadData: %s\n", nativemi_emu_last_error());
            return;
        }
        ok = true;
    }
    ~Session() {
        if (module) cuModuleUnload(module);
        cuDevicePrimaryCtxRelease_v2(0);
    }
    void* function(const char* name) {
        void* f = nullptr;
        if (cuModuleGetFunction(&f, module, name) != 0) fprintf(stderr, "cuModuleGetFunction(%s): %s\n", name, nativemi_emu_last_error());
        return f;
    }
};

// A launch and the synchronisation after it: a fault surfaces at the launch (synchronous mode) or at the
// synchronisation (NATIVEMI_EMU_DEFERRED=1), as on a GPU, where it is asynchronous.
CUresult launch(void* f, unsigned int grid, unsigned int block, std::vector<void*> args, unsigned int shared = 0) {
    CUresult status = cuLaunchKernel(f, grid, 1, 1, block, 1, 1, shared, nullptr, args.data(), nullptr);
    return status != 0 ? status : cuCtxSynchronize();
}

void warp_shuffle() {
    {
        Session s;
        CHECK(s.ok, "no session");
        void* f = s.function("emu_test_warp_sum");
        std::vector<float> input(64);
        for (int i = 0; i < 64; i++) input[i] = (float)i;
        CUdeviceptr in = 0, out = 0;
        OK(cuMemAlloc_v2(&in, 64 * 4));
        OK(cuMemAlloc_v2(&out, 2 * 4));
        OK(cuMemcpyHtoD_v2(in, input.data(), 64 * 4));
        OK(launch(f, 1, 64, {&in, &out}));
        float sums[2];
        OK(cuMemcpyDtoH_v2(sums, out, 8));
        CHECK(sums[0] == 496.0f && sums[1] == 1520.0f, "warp sums %g %g, expected 496 1520", sums[0], sums[1]);
        EXPECT_ERROR(launch(f, 1, 48, {&in, &out}), 719, "kernel emu_test_warp_sum", "block (0,0,0)", "thread (", "partial warp", "__shfl_xor_sync");
        // The fault is sticky for the context, as on a GPU.
        CUdeviceptr other = 0;
        CHECK(cuMemAlloc_v2(&other, 16) == 719, "a call after the fault did not return the sticky error");
        CHECK(cuCtxSynchronize() == 719, "cuCtxSynchronize did not return the sticky error");
    }
    // Releasing the primary context to zero destroys it; the next retain gets a working one.
    Session s;
    CHECK(s.ok, "no session after the reset");
    void* f = s.function("emu_test_warp_sum");
    CUdeviceptr in = 0, out = 0;
    OK(cuMemAlloc_v2(&in, 64 * 4));
    OK(cuMemAlloc_v2(&out, 2 * 4));
    OK(launch(f, 1, 64, {&in, &out}));
    OK(cuCtxSynchronize());
}

void skipped_barrier() {
    Session s;
    CHECK(s.ok, "no session");
    void* f = s.function("emu_test_skipped_barrier");
    CUdeviceptr out = 0;
    OK(cuMemAlloc_v2(&out, 64 * 4));
    int skipper = 5;
    EXPECT_ERROR(launch(f, 1, 64, {&out, &skipper}), 719, "kernel emu_test_skipped_barrier", "block (0,0,0)", "thread (5,0,0)", "__syncthreads");
}

void guard_page() {
    {
        Session s;
        CHECK(s.ok, "no session");
        void* f = s.function("emu_test_store");
        CUdeviceptr out = 0;
        OK(cuMemAlloc_v2(&out, 1000 * 4));
        long long index = 999;
        float value = 1.0f;
        OK(launch(f, 1, 32, {&out, &index, &value}));
        index = 1100;   // 400 bytes past the end: in the guard page
        EXPECT_ERROR(launch(f, 1, 32, {&out, &index, &value}), 700, "kernel emu_test_store", "block (0,0,0)", "thread (0,0,0)", "illegal address",
                     "400 bytes past the end of the 4000-byte device allocation");
    }
    Session s;
    CHECK(s.ok, "no session");
    void* f = s.function("emu_test_store");
    CUdeviceptr out = 0;
    OK(cuMemAlloc_v2(&out, 1000 * 4));
    long long index = 1001;   // inside the allocation's 256-byte granule, so no fault: the canary after it changes
    float value = 1.0f;
    EXPECT_ERROR(launch(f, 1, 32, {&out, &index, &value}), 700, "kernel emu_test_store wrote past the end of the 4000-byte device allocation");
}

void use_after_free() {
    {
        Session s;
        CHECK(s.ok, "no session");
        void* f = s.function("emu_test_load_through");
        CUdeviceptr table = 0, data = 0, out = 0;
        OK(cuMemAlloc_v2(&table, 8));
        OK(cuMemAlloc_v2(&data, 256));
        OK(cuMemAlloc_v2(&out, 4));
        OK(cuMemcpyHtoD_v2(table, &data, 8));
        OK(launch(f, 1, 32, {&table, &out}));
        OK(cuMemFree_v2(data));
        EXPECT_ERROR(launch(f, 1, 32, {&table, &out}), 700, "kernel emu_test_load_through", "thread (0,0,0)", "illegal address", "use after free");
    }
    Session s;
    CHECK(s.ok, "no session");
    void* f = s.function("emu_test_store");
    CUdeviceptr data = 0;
    OK(cuMemAlloc_v2(&data, 256));
    OK(cuMemFree_v2(data));
    long long index = 0;
    float value = 1.0f;
    EXPECT_ERROR(launch(f, 1, 32, {&data, &index, &value}), 700, "cuLaunchKernel(emu_test_store): parameter 0", "use after free", "refused at launch");
    // Freeing twice is reported too (a new session: the launch above left its fault in the context).
}

void cublas() {
    Session s;
    CHECK(s.ok, "no session");
    void* handle = nullptr;
    OK(cublasCreate_v2(&handle));
    // Column-major A (2x3) and B (3x2): C = A B = [[22, 28], [49, 64]] for A = [[1,2,3],[4,5,6]], B = [[1,2],[3,4],[5,6]].
    float a[6] = {1, 4, 2, 5, 3, 6}, b[6] = {1, 3, 5, 2, 4, 6}, c[4];
    float nan = std::nanf("");
    float poison[4] = {nan, nan, nan, nan};
    CUdeviceptr da = 0, db = 0, dc = 0;
    OK(cuMemAlloc_v2(&da, sizeof a));
    OK(cuMemAlloc_v2(&db, sizeof b));
    OK(cuMemAlloc_v2(&dc, sizeof c));
    OK(cuMemcpyHtoD_v2(da, a, sizeof a));
    OK(cuMemcpyHtoD_v2(db, b, sizeof b));
    OK(cuMemcpyHtoD_v2(dc, poison, sizeof poison));
    float one = 1, zero = 0;
    // beta = 0: C is not read, so the NaNs in it do not matter.
    OK(cublasSgemm_v2(handle, 0, 0, 2, 2, 3, &one, (const float*)da, 2, (const float*)db, 3, &zero, (float*)dc, 2));
    OK(cuMemcpyDtoH_v2(c, dc, sizeof c));
    CHECK(c[0] == 22 && c[1] == 49 && c[2] == 28 && c[3] == 64, "C = %g %g %g %g, expected 22 49 28 64 (column-major)", c[0], c[1], c[2], c[3]);
    // C = Aᵀ Aᵀ... op(A) = Aᵀ (3x2) times op(B) = Bᵀ (2x3) = 3x3, which does not fit C: use Bᵀ Aᵀ = (A B)ᵀ (2x2) instead.
    OK(cublasSgemm_v2(handle, 1, 1, 2, 2, 3, &one, (const float*)db, 3, (const float*)da, 2, &zero, (float*)dc, 2));
    OK(cuMemcpyDtoH_v2(c, dc, sizeof c));
    CHECK(c[0] == 22 && c[1] == 28 && c[2] == 49 && c[3] == 64, "(A B)ᵀ = %g %g %g %g, expected 22 28 49 64", c[0], c[1], c[2], c[3]);
    EXPECT_ERROR(cublasSgemm_v2(handle, 0, 0, 2, 2, 3, &one, (const float*)da, 1, (const float*)db, 3, &zero, (float*)dc, 2), 7, "cublasSgemm_v2",
                 "lda=1 < max(1, 2)");
    EXPECT_ERROR(cublasSgemm_v2(handle, 1, 0, 2, 2, 3, &one, (const float*)da, 2, (const float*)db, 3, &zero, (float*)dc, 2), 7, "lda=2 < max(1, 3)");
    EXPECT_ERROR(cublasSgemm_v2(nullptr, 0, 0, 2, 2, 3, &one, (const float*)da, 2, (const float*)db, 3, &zero, (float*)dc, 2), 1, "handle");
    EXPECT_ERROR(cublasSgemm_v2(handle, 0, 0, 2, 2, 3, nullptr, (const float*)da, 2, (const float*)db, 3, &zero, (float*)dc, 2), 7, "alpha");
    // A valid leading dimension that reaches past A's allocation (a transposed layout read the wrong way round).
    EXPECT_ERROR(cublasSgemm_v2(handle, 0, 0, 2, 2, 3, &one, (const float*)da, 3, (const float*)db, 3, &zero, (float*)dc, 2), 13, "cublasSgemm_v2",
                 "A (2x3 as stored, ld 3)", "past the end of the 24-byte device allocation");
    CHECK(cuCtxSynchronize() == 700, "the out-of-bounds GEMM did not leave CUDA_ERROR_ILLEGAL_ADDRESS in the context");
    cublasDestroy_v2(handle);
    EXPECT_ERROR(cublasSgemm_v2(handle, 0, 0, 2, 2, 3, &one, (const float*)da, 2, (const float*)db, 3, &zero, (float*)dc, 2), 1, "destroyed");
}

void stream_order() {
    Session s;
    CHECK(s.ok, "no session");
    void* stream = nullptr;
    OK(cuStreamCreate(&stream, 1));
    CUdeviceptr buffer = 0;
    OK(cuMemAlloc_v2(&buffer, 4));
    int host = 0;
    OK(cuMemsetD32Async(buffer, 7, 1, stream));
    OK(cuMemcpyDtoHAsync_v2(&host, buffer, 4, stream));
    if (deferred()) CHECK(host == 0, "deferred mode: the copy ran before any synchronisation (host = %d)", host);
    else CHECK(host == 7, "synchronous mode: the copy has not run at the call (host = %d)", host);
    OK(cuStreamSynchronize(stream));
    CHECK(host == 7, "after cuStreamSynchronize host = %d, expected 7", host);
    OK(cuStreamDestroy_v2(stream));
}

void out_of_memory() {
    Session s;
    CHECK(s.ok, "no session");
    size_t free_bytes = 0, total = 0;
    OK(cuMemGetInfo_v2(&free_bytes, &total));
    CHECK(total == 64ull << 20, "total %zu, expected NATIVEMI_EMU_MEMORY_BYTES=64M", total);
    CUdeviceptr small = 0, large = 0;
    OK(cuMemAlloc_v2(&small, 32ull << 20));
    EXPECT_ERROR(cuMemAlloc_v2(&large, 40ull << 20), 2, "cuMemAlloc_v2", "41943040 bytes requested", "of 67108864 bytes of device memory are free");
    OK(cuMemFree_v2(small));
    OK(cuMemAlloc_v2(&large, 40ull << 20));
}

void launch_limits() {
    Session s;
    CHECK(s.ok, "no session");
    void* warp_sum = s.function("emu_test_warp_sum");
    void* shared = s.function("emu_test_dynamic_shared");
    CUdeviceptr in = 0, out = 0;
    OK(cuMemAlloc_v2(&in, 2048 * 4));
    OK(cuMemAlloc_v2(&out, 64 * 4));
    std::vector<void*> args = {&in, &out};
    EXPECT_ERROR(cuLaunchKernel(warp_sum, 1, 1, 1, 1056, 1, 1, 0, nullptr, args.data(), nullptr), 1, "block (1056,1,1) exceeds");
    EXPECT_ERROR(cuLaunchKernel(warp_sum, 1, 1, 1, 32, 33, 1, 0, nullptr, args.data(), nullptr), 1, "at most 1024 threads");
    EXPECT_ERROR(cuLaunchKernel(warp_sum, 1, 65536, 1, 32, 1, 1, 0, nullptr, args.data(), nullptr), 1, "grid (1,65536,1) exceeds");
    EXPECT_ERROR(cuLaunchKernel(warp_sum, 1, 1, 65536, 32, 1, 1, 0, nullptr, args.data(), nullptr), 1, "grid (1,1,65536) exceeds");
    int count = 48 * 256 + 4, overrun = 0;
    std::vector<void*> shared_args = {&out, &count, &overrun};
    EXPECT_ERROR(launch(shared, 1, 256, shared_args, (unsigned int)count * 4), 1, "emu_test_dynamic_shared", "must opt in");
    EXPECT_ERROR(cuFuncSetAttribute(shared, 8, 232448 + 4), 1, "the most a block may opt in to is 232448");
    OK(cuFuncSetAttribute(shared, 8, 100 * 1024));
    count = 25 * 1024;
    OK(launch(shared, 1, 256, shared_args, (unsigned int)count * 4));
    float last = 0;
    OK(cuMemcpyDtoH_v2(&last, out, 4));
    CHECK(last == (float)(count - 1), "dynamic shared memory round trip gave %g", last);
    EXPECT_ERROR(launch(shared, 1, 256, shared_args, 100 * 1024 + 16), 1, "limit set by cuFuncSetAttribute");
}

void dynamic_shared_overrun() {
    Session s;
    CHECK(s.ok, "no session");
    void* shared = s.function("emu_test_dynamic_shared");
    CUdeviceptr out = 0;
    OK(cuMemAlloc_v2(&out, 4));
    int count = 64, overrun = 1;
    EXPECT_ERROR(launch(shared, 1, 32, {&out, &count, &overrun}, 256), 700, "kernel emu_test_dynamic_shared", "thread (0,0,0)",
                 "past the end of the launch's 256 bytes of dynamic shared memory");
}

void missing_barrier() {
    Session s;
    CHECK(s.ok, "no session");
    void* f = s.function("emu_test_missing_barrier");
    CUdeviceptr out = 0;
    OK(cuMemAlloc_v2(&out, 64 * 4));
    OK(launch(f, 1, 64, {&out}));
    float values[64];
    OK(cuMemcpyDtoH_v2(values, out, sizeof values));
    // Shared memory starts as NaN and a thread runs until it synchronises, so a read of a neighbour's value that no
    // barrier orders after the write sees NaN: in forward order every thread but the last, in reverse order the last.
    int nans = 0;
    for (float v : values) nans += std::isnan(v);
    const char* reverse = getenv("NATIVEMI_EMU_REVERSE");
    bool reversed = reverse != nullptr && strcmp(reverse, "1") == 0;
    CHECK(nans == (reversed ? 1 : 63), "%d of 64 reads saw unwritten shared memory, expected %d", nans, reversed ? 1 : 63);
    CHECK(reversed ? std::isnan(values[63]) : std::isnan(values[0]) && values[63] == 0.0f, "the stale reads are not where the order puts them");
}

void deadlock() {
    Session s;
    CHECK(s.ok, "no session");
    void* f = s.function("emu_test_deadlock");
    CUdeviceptr out = 0;
    OK(cuMemAlloc_v2(&out, 64 * 4));
    EXPECT_ERROR(launch(f, 1, 64, {&out}), 719, "kernel emu_test_deadlock", "deadlock", "thread (0,0,0) waits at __syncthreads",
                 "waits at __shfl_xor_sync");
}

void ptx_checks() {
    Session s;
    CHECK(s.ok, "no session");
    void* module = nullptr;
    const char elf[] = "\x7f" "ELF\x02\x01\x01";
    EXPECT_ERROR(cuModuleLoadData(&module, elf), 200, "cubin");
    std::string newer = g_ptx;
    newer.replace(newer.find(".version "), 12, ".version 9.9");
    EXPECT_ERROR(cuModuleLoadData(&module, newer.c_str()), 222, "PTX ISA 9.9 is newer");
    std::string future = g_ptx;
    future.replace(future.find(".target sm_90"), 13, ".target sm_100");
    EXPECT_ERROR(cuModuleLoadData(&module, future.c_str()), 218, "sm_100");
    // The second parameter of emu_test_store is a long long: declare it 32-bit, as a stale CPU build would see it.
    std::string changed = g_ptx;
    size_t at = changed.find(".param .u64 emu_test_store_param_1");
    CHECK(at != std::string::npos, "no emu_test_store_param_1 in the PTX");
    changed.replace(at, 11, ".param .u32");
    OK(cuModuleLoadData(&module, changed.c_str()));
    void* f = nullptr;
    EXPECT_ERROR(cuModuleGetFunction(&f, module, "emu_test_store"), 200, "cuModuleGetFunction(emu_test_store): parameter 1", ".u32",
                 "a signed integer (8 bytes)");
    EXPECT_ERROR(cuModuleGetFunction(&f, module, "no_such_kernel"), 500, "no such .entry");
    OK(cuModuleUnload(module));
}

void symbols(int count, char** names) {
    for (int i = 0; i < count; i++) CHECK(dlsym(RTLD_DEFAULT, names[i]) != nullptr, "the emulator does not export %s", names[i]);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: nativemi-emu-selftest <case> | symbols <name>...\n");
        return 2;
    }
    std::string name = argv[1];
    if (name == "symbols") {
        symbols(argc - 2, argv + 2);
        return g_failures == 0 ? 0 : 1;
    }
    if (!compile_fault_kernels()) {
        fprintf(stderr, "skipped: NVRTC (libnvrtc.so.13, .12, .11.2) is not installed\n");
        return 77;
    }
    struct Case {
        const char* name;
        void (*run)();
    };
    const Case cases[] = {
        {"warp-shuffle", warp_shuffle}, {"skipped-barrier", skipped_barrier}, {"guard-page", guard_page}, {"use-after-free", use_after_free},
        {"cublas", cublas}, {"stream-order", stream_order}, {"out-of-memory", out_of_memory}, {"launch-limits", launch_limits},
        {"dynamic-shared-overrun", dynamic_shared_overrun}, {"missing-barrier", missing_barrier}, {"deadlock", deadlock}, {"ptx", ptx_checks},
    };
    for (const Case& c : cases) {
        if (name != c.name) continue;
        c.run();
        if (g_failures == 0) printf("ok %s\n", c.name);
        return g_failures == 0 ? 0 : 1;
    }
    fprintf(stderr, "no case '%s'\n", name.c_str());
    return 2;
}
