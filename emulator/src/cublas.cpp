// The emulated cuBLAS (libcublas.so.12): the routines NativeMi binds, written from the cuBLAS documentation's
// column-major definitions: C = alpha op(A) op(B) + beta C with op(X)(i, j) = X[i + j * ldx] (or its transpose),
// products accumulated in double, beta = 0 meaning C is not read, and the documented argument checks. Device state
// (contexts, streams, memory) lives in the emulated driver; this library asks it through the nativemi_emu_ calls.
#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#define CUBLAS_EXPORT extern "C" __attribute__((visibility("default")))

extern "C" {
int nativemi_emu_context_status(void);
int nativemi_emu_check_stream(void* stream);
int nativemi_emu_check_device_range(const char* call, const char* what, unsigned long long address, unsigned long long bytes);
int nativemi_emu_submit(void* stream, const char* what, const unsigned long long* addresses, int address_count, void (*work)(void*), void* data,
                        void (*release)(void*));
int nativemi_emu_raise(int code, const char* message);
void nativemi_emu_report(const char* message);
const char* nativemi_emu_last_error(void);
int cuMemAlloc_v2(unsigned long long* pointer, size_t bytes);
int cuMemFree_v2(unsigned long long pointer);
}

namespace {

enum : int {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_ALLOC_FAILED = 3,
    CUBLAS_STATUS_INVALID_VALUE = 7,
    CUBLAS_STATUS_ARCH_MISMATCH = 8,
    CUBLAS_STATUS_MAPPING_ERROR = 11,
    CUBLAS_STATUS_EXECUTION_FAILED = 13,
    CUBLAS_STATUS_INTERNAL_ERROR = 14,
    CUBLAS_STATUS_NOT_SUPPORTED = 15,
    CUBLAS_STATUS_LICENSE_ERROR = 16,
};

constexpr int kOpN = 0, kOpT = 1, kOpC = 2;
constexpr int kDefaultMath = 0, kPedanticMath = 2, kTf32Math = 3, kDisallowReducedPrecision = 16;
constexpr int kCudaR32F = 0, kCudaR16F = 2, kCudaR16BF = 14;
constexpr int kCompute32F = 68, kCompute32FPedantic = 69, kCompute32FFast16F = 74, kCompute32FFast16BF = 75, kCompute32FFastTf32 = 77;
constexpr uint32_t kHandleMagic = 0x43424c53;

struct Handle {
    uint32_t magic = kHandleMagic;
    bool alive = true;
    void* stream = nullptr;
    int math_mode = kDefaultMath;
    unsigned long long workspace = 0;
};

// cuBLAS takes a workspace pool from device memory for each handle; 32 MiB is its size on Hopper (the documented
// recommendation for cublasSetWorkspace). Taking it at cublasCreate_v2 makes a full device fail there with
// CUBLAS_STATUS_ALLOC_FAILED, as cuBLAS does, and makes the emulated memory use include it.
constexpr size_t kWorkspaceBytes = 32u << 20;

std::mutex g_lock;
// Handles are never freed, so a destroyed one stays recognisable (NOT_INITIALIZED) instead of aliasing a new one.
std::set<const void*> g_handles;

int report(int status, const char* format, ...) __attribute__((format(printf, 2, 3)));
int report(int status, const char* format, ...) {
    char buffer[2048];
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(buffer, sizeof buffer, format, arguments);
    va_end(arguments);
    nativemi_emu_report(buffer);
    return status;
}

Handle* live(void* handle) {
    std::lock_guard<std::mutex> guard(g_lock);
    if (handle == nullptr || g_handles.count(handle) == 0) return nullptr;
    Handle* h = (Handle*)handle;
    return h->alive && h->magic == kHandleMagic ? h : nullptr;
}

// TF32 keeps 10 of fp32's 23 mantissa bits; tensor cores round the inputs to it (to nearest, ties to even).
inline float to_tf32(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) != 0x7f800000u) {
        u += 0xFFFu + ((u >> 13) & 1u);
        u &= 0xFFFFE000u;
    }
    memcpy(&x, &u, 4);
    return x;
}

struct Gemm {
    std::string call;
    int transa, transb, m, n, k;
    double alpha, beta;
    uintptr_t a, b, c;
    long long lda, ldb, ldc, stride_a, stride_b, stride_c;
    int batch;
    bool tf32;
    int type_a = kCudaR32F, type_b = kCudaR32F;
};

int element_bytes(int type) { return type == kCudaR32F ? 4 : 2; }

// IEEE binary16 to float, written out from the format (1 sign, 5 exponent, 10 mantissa bits) rather than with a
// compiler extension, so subnormals, infinities and NaNs are handled visibly.
float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exponent = (h >> 10) & 0x1Fu, mantissa = h & 0x3FFu, bits;
    if (exponent == 0x1F) {
        bits = sign | 0x7F800000u | (mantissa << 13);
    } else if (exponent != 0) {
        bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
    } else if (mantissa == 0) {
        bits = sign;
    } else {
        float value = std::ldexp((float)mantissa, -24);
        memcpy(&bits, &value, 4);
        bits |= sign;
    }
    float out;
    memcpy(&out, &bits, 4);
    return out;
}

// One element of an operand stored as `type`: bfloat16 is the upper half of an fp32.
inline float load(const void* base, long long index, int type) {
    if (type == kCudaR32F) return ((const float*)base)[index];
    uint16_t raw = ((const uint16_t*)base)[index];
    if (type == kCudaR16F) return half_to_float(raw);
    uint32_t bits = (uint32_t)raw << 16;
    float out;
    memcpy(&out, &bits, 4);
    return out;
}

void multiply(const Gemm& g, const void* a, const void* b, float* c) {
    const int m = g.m, n = g.n, k = g.k;
    if (k == 0 || g.alpha == 0.0) {
        // A and B are not read; with beta = 0 neither is C (it may hold NaN from uninitialised memory).
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                float& out = c[i + (long long)j * g.ldc];
                out = g.beta == 0.0 ? 0.0f : (float)(g.beta * out);
            }
        return;
    }
    // op(A) as rows of k and op(B) as columns of k, in double, padded to multiples of 4 for the 4x4 block below.
    const int m4 = (m + 3) / 4 * 4, n4 = (n + 3) / 4 * 4;
    std::vector<double> pa((size_t)m4 * k, 0.0), pb((size_t)n4 * k, 0.0);
    for (int i = 0; i < m; i++)
        for (int l = 0; l < k; l++) {
            float v = load(a, g.transa == kOpN ? i + (long long)l * g.lda : l + (long long)i * g.lda, g.type_a);
            pa[(size_t)i * k + l] = g.tf32 ? to_tf32(v) : v;
        }
    for (int j = 0; j < n; j++)
        for (int l = 0; l < k; l++) {
            float v = load(b, g.transb == kOpN ? l + (long long)j * g.ldb : j + (long long)l * g.ldb, g.type_b);
            pb[(size_t)j * k + l] = g.tf32 ? to_tf32(v) : v;
        }
    for (int j0 = 0; j0 < n4; j0 += 4)
        for (int i0 = 0; i0 < m4; i0 += 4) {
            double s[4][4] = {};
            const double* ar[4] = {&pa[(size_t)i0 * k], &pa[(size_t)(i0 + 1) * k], &pa[(size_t)(i0 + 2) * k], &pa[(size_t)(i0 + 3) * k]};
            const double* br[4] = {&pb[(size_t)j0 * k], &pb[(size_t)(j0 + 1) * k], &pb[(size_t)(j0 + 2) * k], &pb[(size_t)(j0 + 3) * k]};
            for (int l = 0; l < k; l++) {
                const double a0 = ar[0][l], a1 = ar[1][l], a2 = ar[2][l], a3 = ar[3][l];
                for (int q = 0; q < 4; q++) {
                    const double bq = br[q][l];
                    s[0][q] += a0 * bq;
                    s[1][q] += a1 * bq;
                    s[2][q] += a2 * bq;
                    s[3][q] += a3 * bq;
                }
            }
            for (int q = 0; q < 4 && j0 + q < n; q++)
                for (int r = 0; r < 4 && i0 + r < m; r++) {
                    float& out = c[(i0 + r) + (long long)(j0 + q) * g.ldc];
                    double value = g.alpha * s[r][q];
                    if (g.beta != 0.0) value += g.beta * out;
                    out = (float)value;
                }
        }
}

void run_gemm(void* data) {
    const Gemm& g = *(const Gemm*)data;
    for (int p = 0; p < g.batch; p++)
        multiply(g, (const char*)g.a + p * g.stride_a * element_bytes(g.type_a), (const char*)g.b + p * g.stride_b * element_bytes(g.type_b),
                 (float*)g.c + p * g.stride_c);
}

void release_gemm(void* data) { delete (Gemm*)data; }

const char* op_name(int op) { return op == kOpN ? "N" : op == kOpT ? "T" : "C"; }

// The documented argument checks (cublas<t>gemm, cublasGemmEx and their strided-batched forms).
int check_arguments(const char* call, Handle* h, int transa, int transb, int m, int n, int k, const void* alpha, long long lda, long long ldb,
                    const void* beta, long long ldc, int batch) {
    if (h == nullptr) return report(CUBLAS_STATUS_NOT_INITIALIZED, "%s: the handle is null or destroyed (cublasCreate_v2 first)", call);
    if (transa != kOpN && transa != kOpT && transa != kOpC)
        return report(CUBLAS_STATUS_INVALID_VALUE, "%s: transa %d is not CUBLAS_OP_N, _T or _C", call, transa);
    if (transb != kOpN && transb != kOpT && transb != kOpC)
        return report(CUBLAS_STATUS_INVALID_VALUE, "%s: transb %d is not CUBLAS_OP_N, _T or _C", call, transb);
    if (m < 0 || n < 0 || k < 0) return report(CUBLAS_STATUS_INVALID_VALUE, "%s: negative size m=%d n=%d k=%d", call, m, n, k);
    if (batch < 0) return report(CUBLAS_STATUS_INVALID_VALUE, "%s: batchCount %d is negative", call, batch);
    long long rows_a = transa == kOpN ? m : k, rows_b = transb == kOpN ? k : n;
    if (lda < std::max(1LL, rows_a))
        return report(CUBLAS_STATUS_INVALID_VALUE, "%s: lda=%lld < max(1, %lld), the rows of A as stored (transa=%s, m=%d, k=%d)", call, lda, rows_a,
                      op_name(transa), m, k);
    if (ldb < std::max(1LL, rows_b))
        return report(CUBLAS_STATUS_INVALID_VALUE, "%s: ldb=%lld < max(1, %lld), the rows of B as stored (transb=%s, k=%d, n=%d)", call, ldb, rows_b,
                      op_name(transb), k, n);
    if (ldc < std::max(1, m)) return report(CUBLAS_STATUS_INVALID_VALUE, "%s: ldc=%lld < max(1, m=%d)", call, ldc, m);
    if (alpha == nullptr || beta == nullptr) return report(CUBLAS_STATUS_INVALID_VALUE, "%s: alpha or beta is null", call);
    return CUBLAS_STATUS_SUCCESS;
}

// Each operand's extent (all batches) must lie inside one live allocation. A GPU would read or write past it and
// fault, so the emulator fails the call and leaves the context with the fault, as the GPU would.
int check_extent(const Gemm& g, const char* what, uintptr_t base, long long rows, long long columns, long long ld, long long stride, int type) {
    const long long bytes = element_bytes(type);
    long long one = ((columns - 1) * ld + rows) * bytes;
    long long last = (long long)(g.batch - 1) * stride * bytes;
    long long low = std::min(0LL, last), high = std::max(0LL, last) + one;
    std::string operand = std::string(what) + " (" + std::to_string(rows) + "x" + std::to_string(columns) + " as stored, ld " +
                          std::to_string(ld) + (g.batch > 1 ? ", " + std::to_string(g.batch) + " batches of stride " + std::to_string(stride) : "") + ")";
    int status = nativemi_emu_check_device_range(g.call.c_str(), operand.c_str(), (unsigned long long)(base + low), (unsigned long long)(high - low));
    if (status == 0) return CUBLAS_STATUS_SUCCESS;
    nativemi_emu_raise(700, (std::string(nativemi_emu_last_error()) + "; a GPU would fault, so the context now holds CUDA_ERROR_ILLEGAL_ADDRESS").c_str());
    return CUBLAS_STATUS_EXECUTION_FAILED;
}

int submit(Handle* h, Gemm* g) {
    // Nothing to compute: no operand is touched (the documented quick return).
    if (g->m == 0 || g->n == 0 || g->batch == 0) {
        delete g;
        return CUBLAS_STATUS_SUCCESS;
    }
    int context = nativemi_emu_context_status();
    if (context != 0) {
        report(CUBLAS_STATUS_EXECUTION_FAILED, "%s: the context cannot run work (CUDA error %d)", g->call.c_str(), context);
        delete g;
        return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    bool reads_ab = g->k > 0 && g->alpha != 0.0;
    int status = CUBLAS_STATUS_SUCCESS;
    if (reads_ab) {
        status = check_extent(*g, "A", g->a, g->transa == kOpN ? g->m : g->k, g->transa == kOpN ? g->k : g->m, g->lda, g->stride_a, g->type_a);
        if (status == 0)
            status = check_extent(*g, "B", g->b, g->transb == kOpN ? g->k : g->n, g->transb == kOpN ? g->n : g->k, g->ldb, g->stride_b, g->type_b);
    }
    if (status == 0) status = check_extent(*g, "C", g->c, g->m, g->n, g->ldc, g->stride_c, kCudaR32F);
    if (status != 0) {
        delete g;
        return status;
    }
    std::string call = g->call;
    // C first: with alpha = 0 or k = 0, A and B are not read.
    const unsigned long long operands[] = {g->c, g->a, g->b};
    int launched = nativemi_emu_submit(h->stream, call.c_str(), operands, reads_ab ? 3 : 1, run_gemm, g, release_gemm);
    if (launched != 0) return report(CUBLAS_STATUS_EXECUTION_FAILED, "%s: the work failed (CUDA error %d)", call.c_str(), launched);
    return CUBLAS_STATUS_SUCCESS;
}

int check_ex_types(const char* call, int type_a, int type_b, int type_c, int compute, int algorithm, Handle* h, bool& tf32) {
    if (compute != kCompute32F && compute != kCompute32FPedantic && compute != kCompute32FFastTf32 && compute != kCompute32FFast16F &&
        compute != kCompute32FFast16BF && !(compute >= 64 && compute <= 79))
        return report(CUBLAS_STATUS_INVALID_VALUE, "%s: computeType %d is not a cublasComputeType_t", call, compute);
    if (!((algorithm >= -1 && algorithm <= 23) || (algorithm >= 99 && algorithm <= 115)))
        return report(CUBLAS_STATUS_INVALID_VALUE, "%s: algo %d is not a cublasGemmAlgo_t", call, algorithm);
    // The documented GemmEx combinations with an fp32 C and fp32 accumulation: A and B both 32F, both 16F or both
    // 16BF (the 16-bit ones with computeType 32F or 32F_PEDANTIC only).
    const bool sixteen = (type_a == kCudaR16F || type_a == kCudaR16BF) && type_b == type_a;
    if (type_c != kCudaR32F || !(sixteen || (type_a == kCudaR32F && type_b == kCudaR32F)))
        return report(CUBLAS_STATUS_NOT_SUPPORTED,
                      "%s: types A=%d B=%d C=%d; the emulator implements C = CUDA_R_32F (0) with A and B both CUDA_R_32F (0), both CUDA_R_16F (2) "
                      "or both CUDA_R_16BF (14)", call, type_a, type_b, type_c);
    if (sixteen) {
        if (compute != kCompute32F && compute != kCompute32FPedantic)
            return report(CUBLAS_STATUS_NOT_SUPPORTED, "%s: computeType %d with 16-bit A and B and fp32 C (cuBLAS takes 32F or 32F_PEDANTIC)", call,
                          compute);
        tf32 = false;
        return CUBLAS_STATUS_SUCCESS;
    }
    if (compute != kCompute32F && compute != kCompute32FPedantic && compute != kCompute32FFastTf32)
        return report(CUBLAS_STATUS_NOT_SUPPORTED, "%s: computeType %d with fp32 data is not emulated (32F, 32F_PEDANTIC and 32F_FAST_TF32 are)", call,
                      compute);
    tf32 = compute == kCompute32FFastTf32 || (compute == kCompute32F && (h->math_mode & 0xF) == kTf32Math);
    return CUBLAS_STATUS_SUCCESS;
}

Gemm* make_gemm(const char* call, Handle* h, int transa, int transb, int m, int n, int k, double alpha, unsigned long long a, long long lda,
                long long stride_a, unsigned long long b, long long ldb, long long stride_b, double beta, unsigned long long c, long long ldc,
                long long stride_c, int batch, bool tf32) {
    (void)h;
    return new Gemm{call, transa, transb, m, n, k, alpha, beta, (uintptr_t)a, (uintptr_t)b, (uintptr_t)c, lda, ldb, ldc, stride_a, stride_b, stride_c,
                    batch, tf32};
}

const char* status_name(int status) {
    switch (status) {
        case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
        case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
        case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
        case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
        case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
        case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
        case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
        case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
        case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
        case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
        default: return "CUBLAS_STATUS_UNKNOWN";
    }
}

}  // namespace

CUBLAS_EXPORT int cublasCreate_v2(void** handle) {
    if (handle == nullptr) return report(CUBLAS_STATUS_INVALID_VALUE, "cublasCreate_v2(null)");
    int context = nativemi_emu_context_status();
    if (context != 0) return report(CUBLAS_STATUS_NOT_INITIALIZED, "cublasCreate_v2: no usable current CUDA context (CUDA error %d)", context);
    unsigned long long workspace = 0;
    if (cuMemAlloc_v2(&workspace, kWorkspaceBytes) != 0)
        return report(CUBLAS_STATUS_ALLOC_FAILED, "cublasCreate_v2: the %zu-byte workspace does not fit in device memory (%s)", kWorkspaceBytes,
                      nativemi_emu_last_error());
    Handle* h = new Handle();
    h->workspace = workspace;
    std::lock_guard<std::mutex> guard(g_lock);
    g_handles.insert(h);
    *handle = h;
    return CUBLAS_STATUS_SUCCESS;
}

CUBLAS_EXPORT int cublasDestroy_v2(void* handle) {
    Handle* h = live(handle);
    if (h == nullptr) return report(CUBLAS_STATUS_NOT_INITIALIZED, "cublasDestroy_v2(%p): not a live handle", handle);
    h->alive = false;
    // The context may already be gone (its memory with it); that is not the handle's error.
    if (h->workspace != 0 && nativemi_emu_context_status() == 0) cuMemFree_v2(h->workspace);
    h->workspace = 0;
    return CUBLAS_STATUS_SUCCESS;
}

CUBLAS_EXPORT int cublasSetStream_v2(void* handle, void* stream) {
    Handle* h = live(handle);
    if (h == nullptr) return report(CUBLAS_STATUS_NOT_INITIALIZED, "cublasSetStream_v2(%p): not a live handle", handle);
    int status = nativemi_emu_check_stream(stream);
    if (status != 0) return report(CUBLAS_STATUS_INVALID_VALUE, "cublasSetStream_v2: %p is not a usable stream (CUDA error %d)", stream, status);
    h->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}

CUBLAS_EXPORT int cublasGetStream_v2(void* handle, void** stream) {
    Handle* h = live(handle);
    if (h == nullptr) return report(CUBLAS_STATUS_NOT_INITIALIZED, "cublasGetStream_v2(%p): not a live handle", handle);
    if (stream == nullptr) return report(CUBLAS_STATUS_INVALID_VALUE, "cublasGetStream_v2(null)");
    *stream = h->stream;
    return CUBLAS_STATUS_SUCCESS;
}

CUBLAS_EXPORT int cublasSetMathMode(void* handle, int mode) {
    Handle* h = live(handle);
    if (h == nullptr) return report(CUBLAS_STATUS_NOT_INITIALIZED, "cublasSetMathMode(%p): not a live handle", handle);
    int base = mode & ~kDisallowReducedPrecision;
    if (base < 0 || base > kTf32Math)
        return report(CUBLAS_STATUS_INVALID_VALUE, "cublasSetMathMode(%d): not a cublasMath_t (DEFAULT 0, TENSOR_OP 1, PEDANTIC 2, TF32_TENSOR_OP 3, "
                      "optionally | 16)", mode);
    h->math_mode = mode;
    return CUBLAS_STATUS_SUCCESS;
}

CUBLAS_EXPORT int cublasGetMathMode(void* handle, int* mode) {
    Handle* h = live(handle);
    if (h == nullptr) return report(CUBLAS_STATUS_NOT_INITIALIZED, "cublasGetMathMode(%p): not a live handle", handle);
    if (mode == nullptr) return report(CUBLAS_STATUS_INVALID_VALUE, "cublasGetMathMode(null)");
    *mode = h->math_mode;
    return CUBLAS_STATUS_SUCCESS;
}

CUBLAS_EXPORT int cublasGetProperty(int type, int* value) {
    if (value == nullptr) return report(CUBLAS_STATUS_INVALID_VALUE, "cublasGetProperty(null)");
    switch (type) {
        case 0: *value = 12; return CUBLAS_STATUS_SUCCESS;
        case 1: *value = 8; return CUBLAS_STATUS_SUCCESS;
        case 2: *value = 0; return CUBLAS_STATUS_SUCCESS;
        default: return report(CUBLAS_STATUS_INVALID_VALUE, "cublasGetProperty(%d): not MAJOR_VERSION 0, MINOR_VERSION 1 or PATCH_LEVEL 2", type);
    }
}

CUBLAS_EXPORT int cublasGetVersion_v2(void* handle, int* version) {
    if (live(handle) == nullptr) return report(CUBLAS_STATUS_NOT_INITIALIZED, "cublasGetVersion_v2(%p): not a live handle", handle);
    if (version == nullptr) return report(CUBLAS_STATUS_INVALID_VALUE, "cublasGetVersion_v2(null)");
    *version = 120800;
    return CUBLAS_STATUS_SUCCESS;
}

CUBLAS_EXPORT const char* cublasGetStatusName(int status) { return status_name(status); }

CUBLAS_EXPORT const char* cublasGetStatusString(int status) {
    switch (status) {
        case CUBLAS_STATUS_SUCCESS: return "success";
        case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
        case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
        case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
        case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
        default: return status_name(status);
    }
}

CUBLAS_EXPORT int cublasSgemm_v2(void* handle, int transa, int transb, int m, int n, int k, const float* alpha, const float* a, int lda,
                                 const float* b, int ldb, const float* beta, float* c, int ldc) {
    const char* call = "cublasSgemm_v2";
    Handle* h = live(handle);
    if (int s = check_arguments(call, h, transa, transb, m, n, k, alpha, lda, ldb, beta, ldc, 1)) return s;
    bool tf32 = (h->math_mode & 0xF) == kTf32Math;
    return submit(h, make_gemm(call, h, transa, transb, m, n, k, *alpha, (uintptr_t)a, lda, 0, (uintptr_t)b, ldb, 0, *beta, (uintptr_t)c, ldc, 0, 1,
                               tf32));
}

CUBLAS_EXPORT int cublasGemmEx(void* handle, int transa, int transb, int m, int n, int k, const void* alpha, const void* a, int type_a, int lda,
                               const void* b, int type_b, int ldb, const void* beta, void* c, int type_c, int ldc, int compute, int algorithm) {
    const char* call = "cublasGemmEx";
    Handle* h = live(handle);
    if (int s = check_arguments(call, h, transa, transb, m, n, k, alpha, lda, ldb, beta, ldc, 1)) return s;
    bool tf32 = false;
    if (int s = check_ex_types(call, type_a, type_b, type_c, compute, algorithm, h, tf32)) return s;
    Gemm* g = make_gemm(call, h, transa, transb, m, n, k, *(const float*)alpha, (uintptr_t)a, lda, 0, (uintptr_t)b, ldb, 0, *(const float*)beta,
                        (uintptr_t)c, ldc, 0, 1, tf32);
    g->type_a = type_a;
    g->type_b = type_b;
    return submit(h, g);
}

CUBLAS_EXPORT int cublasSgemmStridedBatched(void* handle, int transa, int transb, int m, int n, int k, const float* alpha, const float* a, int lda,
                                            long long stride_a, const float* b, int ldb, long long stride_b, const float* beta, float* c, int ldc,
                                            long long stride_c, int batch) {
    const char* call = "cublasSgemmStridedBatched";
    Handle* h = live(handle);
    if (int s = check_arguments(call, h, transa, transb, m, n, k, alpha, lda, ldb, beta, ldc, batch)) return s;
    bool tf32 = (h->math_mode & 0xF) == kTf32Math;
    return submit(h, make_gemm(call, h, transa, transb, m, n, k, *alpha, (uintptr_t)a, lda, stride_a, (uintptr_t)b, ldb, stride_b, *beta, (uintptr_t)c,
                               ldc, stride_c, batch, tf32));
}

CUBLAS_EXPORT int cublasGemmStridedBatchedEx(void* handle, int transa, int transb, int m, int n, int k, const void* alpha, const void* a, int type_a,
                                             int lda, long long stride_a, const void* b, int type_b, int ldb, long long stride_b, const void* beta,
                                             void* c, int type_c, int ldc, long long stride_c, int batch, int compute, int algorithm) {
    const char* call = "cublasGemmStridedBatchedEx";
    Handle* h = live(handle);
    if (int s = check_arguments(call, h, transa, transb, m, n, k, alpha, lda, ldb, beta, ldc, batch)) return s;
    bool tf32 = false;
    if (int s = check_ex_types(call, type_a, type_b, type_c, compute, algorithm, h, tf32)) return s;
    Gemm* g = make_gemm(call, h, transa, transb, m, n, k, *(const float*)alpha, (uintptr_t)a, lda, stride_a, (uintptr_t)b, ldb, stride_b,
                        *(const float*)beta, (uintptr_t)c, ldc, stride_c, batch, tf32);
    g->type_a = type_a;
    g->type_b = type_b;
    return submit(h, g);
}

// The legacy (cuBLAS v1) names take no handle; a binding must name the _v2 ones, which cublas_v2.h maps to.
CUBLAS_EXPORT int cublasCreate(void**) { return report(CUBLAS_STATUS_NOT_SUPPORTED, "cublasCreate is not the v2 API; bind cublasCreate_v2"); }
CUBLAS_EXPORT int cublasDestroy(void*) { return report(CUBLAS_STATUS_NOT_SUPPORTED, "cublasDestroy is not the v2 API; bind cublasDestroy_v2"); }
CUBLAS_EXPORT int cublasSetStream(void*, void*) { return report(CUBLAS_STATUS_NOT_SUPPORTED, "cublasSetStream is not the v2 API; bind cublasSetStream_v2"); }
CUBLAS_EXPORT void cublasSgemm(char, char, int, int, int, float, const float*, int, const float*, int, float, float*, int) {
    report(CUBLAS_STATUS_NOT_SUPPORTED, "cublasSgemm is the legacy cuBLAS v1 routine (no handle, char arguments); bind cublasSgemm_v2");
}
