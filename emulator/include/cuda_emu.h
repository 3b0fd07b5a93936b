// Force-included (g++ -include) before every kernel source compiled into the emulated driver. It gives the CUDA
// C++ that kernels/*.cu use a CPU meaning: the thread and block indices of the fiber that runs, barriers and warp
// collectives that really wait for every thread they name, plain-memory atomics (one block runs at a time, on one
// OS thread, and fibers switch only inside barriers and collectives, so a read-modify-write cannot be interleaved),
// and static shared memory as function-local statics. The CUDA sources themselves stay unchanged apart from
// NATIVEMI_DYNAMIC_SHARED in common.cuh.
#pragma once

#define NATIVEMI_CUDA_EMULATOR 1

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <type_traits>

struct uint3 {
    unsigned int x, y, z;
};

struct dim3 {
    unsigned int x, y, z;
};

namespace cuda_emu {

// The running fiber's threadIdx; the scheduler repoints it before each switch into a fiber.
extern const uint3* g_thread_idx;
extern uint3 g_block_idx;
extern dim3 g_block_dim;
extern dim3 g_grid_dim;

// This launch's dynamic shared memory: its end abuts a guard page, so an overrun faults.
void* dynamic_shared();

// Returns once every thread of the block has arrived; `predicate` feeds __syncthreads_count/and/or.
int syncthreads(int predicate, int reduction);

enum WarpOp : int { ShuffleIndex, ShuffleUp, ShuffleDown, ShuffleXor, Ballot, All, Any, SyncWarp };

// Returns once every lane named in `mask` has reached a collective of the same kind with the same mask.
uint64_t warp_collective(WarpOp op, unsigned int mask, uint64_t value, int argument, int width);

template <typename T>
inline T shuffle(WarpOp op, unsigned int mask, T value, int argument, int width) {
    static_assert(std::is_arithmetic<T>::value && sizeof(T) <= 8, "shuffles take a scalar of at most 8 bytes");
    uint64_t bits = 0;
    memcpy(&bits, &value, sizeof(T));
    // The collective is an opaque call already; the clobbers keep the compiler from caching shared memory across it
    // even when it can prove the call never names the variable.
    __asm__ __volatile__("" ::: "memory");
    bits = warp_collective(op, mask, bits, argument, width);
    __asm__ __volatile__("" ::: "memory");
    T result;
    memcpy(&result, &bits, sizeof(T));
    return result;
}

}  // namespace cuda_emu

#define threadIdx (*::cuda_emu::g_thread_idx)
#define blockIdx (static_cast<const ::uint3&>(::cuda_emu::g_block_idx))
#define blockDim (static_cast<const ::dim3&>(::cuda_emu::g_block_dim))
#define gridDim (static_cast<const ::dim3&>(::cuda_emu::g_grid_dim))
static constexpr int warpSize = 32;

#define __device__
#define __host__
#define __global__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __constant__
// One block runs at a time, so a block's static shared memory can be a static. The statics share one section,
// which the emulator fills with 0xFF before each block (shared memory starts undefined on a GPU).
#define __shared__ static __attribute__((section("nativemi_emu_shared")))

inline void __syncthreads() { (void)::cuda_emu::syncthreads(1, 0); }
inline int __syncthreads_count(int predicate) { return ::cuda_emu::syncthreads(predicate, 0); }
inline int __syncthreads_and(int predicate) { return ::cuda_emu::syncthreads(predicate, 1); }
inline int __syncthreads_or(int predicate) { return ::cuda_emu::syncthreads(predicate, 2); }
inline void __syncwarp(unsigned int mask = 0xffffffffu) { (void)::cuda_emu::warp_collective(::cuda_emu::SyncWarp, mask, 0, 0, 32); }
inline void __threadfence() { __asm__ __volatile__("" ::: "memory"); }
inline void __threadfence_block() { __asm__ __volatile__("" ::: "memory"); }

template <typename T>
inline T __shfl_sync(unsigned int mask, T value, int source_lane, int width = 32) {
    return ::cuda_emu::shuffle(::cuda_emu::ShuffleIndex, mask, value, source_lane, width);
}
template <typename T>
inline T __shfl_up_sync(unsigned int mask, T value, unsigned int delta, int width = 32) {
    return ::cuda_emu::shuffle(::cuda_emu::ShuffleUp, mask, value, (int)delta, width);
}
template <typename T>
inline T __shfl_down_sync(unsigned int mask, T value, unsigned int delta, int width = 32) {
    return ::cuda_emu::shuffle(::cuda_emu::ShuffleDown, mask, value, (int)delta, width);
}
template <typename T>
inline T __shfl_xor_sync(unsigned int mask, T value, int lane_mask, int width = 32) {
    return ::cuda_emu::shuffle(::cuda_emu::ShuffleXor, mask, value, lane_mask, width);
}
inline unsigned int __ballot_sync(unsigned int mask, int predicate) {
    return (unsigned int)::cuda_emu::warp_collective(::cuda_emu::Ballot, mask, predicate != 0, 0, 32);
}
inline int __all_sync(unsigned int mask, int predicate) {
    return (int)::cuda_emu::warp_collective(::cuda_emu::All, mask, predicate != 0, 0, 32);
}
inline int __any_sync(unsigned int mask, int predicate) {
    return (int)::cuda_emu::warp_collective(::cuda_emu::Any, mask, predicate != 0, 0, 32);
}

inline float __int_as_float(int value) { float r; memcpy(&r, &value, 4); return r; }
inline int __float_as_int(float value) { int r; memcpy(&r, &value, 4); return r; }
inline float __uint_as_float(unsigned int value) { float r; memcpy(&r, &value, 4); return r; }
inline unsigned int __float_as_uint(float value) { unsigned int r; memcpy(&r, &value, 4); return r; }
inline double __longlong_as_double(long long value) { double r; memcpy(&r, &value, 8); return r; }
inline long long __double_as_longlong(double value) { long long r; memcpy(&r, &value, 8); return r; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }
inline int __popc(unsigned int x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned int)x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
template <typename T>
inline T __ldg(const T* p) { return *p; }

// Atomics: plain read-modify-writes (see the top of this file); each returns the old value.
template <typename T>
inline T nativemi_emu_atomic_add(T* address, T value) { T old = *address; *address = old + value; return old; }
inline int atomicAdd(int* a, int v) { return nativemi_emu_atomic_add(a, v); }
inline unsigned int atomicAdd(unsigned int* a, unsigned int v) { return nativemi_emu_atomic_add(a, v); }
inline unsigned long long atomicAdd(unsigned long long* a, unsigned long long v) { return nativemi_emu_atomic_add(a, v); }
inline float atomicAdd(float* a, float v) { return nativemi_emu_atomic_add(a, v); }
inline double atomicAdd(double* a, double v) { return nativemi_emu_atomic_add(a, v); }
inline int atomicSub(int* a, int v) { int old = *a; *a = old - v; return old; }
inline unsigned int atomicSub(unsigned int* a, unsigned int v) { unsigned int old = *a; *a = old - v; return old; }
template <typename T>
inline T atomicExch(T* a, T v) { T old = *a; *a = v; return old; }
template <typename T>
inline T atomicMin(T* a, T v) { T old = *a; *a = v < old ? v : old; return old; }
template <typename T>
inline T atomicMax(T* a, T v) { T old = *a; *a = v > old ? v : old; return old; }
template <typename T>
inline T atomicAnd(T* a, T v) { T old = *a; *a = old & v; return old; }
template <typename T>
inline T atomicOr(T* a, T v) { T old = *a; *a = old | v; return old; }
template <typename T>
inline T atomicXor(T* a, T v) { T old = *a; *a = old ^ v; return old; }
inline int atomicCAS(int* a, int compare, int v) { int old = *a; if (old == compare) *a = v; return old; }
inline unsigned int atomicCAS(unsigned int* a, unsigned int compare, unsigned int v) { unsigned int old = *a; if (old == compare) *a = v; return old; }
inline unsigned long long atomicCAS(unsigned long long* a, unsigned long long compare, unsigned long long v) {
    unsigned long long old = *a;
    if (old == compare) *a = v;
    return old;
}
