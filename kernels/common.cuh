// Shared helpers for NativeMi's kernels. NVRTC compiles these sources without the CUDA toolkit's
// headers, so nothing here may include a system header: only compiler built-ins are used.
#pragma once

#define NATIVEMI_FULL_MASK 0xffffffffu

// The launch's dynamic shared memory as an array of `type` named `name`. The emulated device (emulator/) compiles
// these sources for the CPU, where the launch's buffer is reached through a pointer instead.
#ifdef NATIVEMI_CUDA_EMULATOR
#define NATIVEMI_DYNAMIC_SHARED(type, name) type* const name = static_cast<type*>(::cuda_emu::dynamic_shared())
#else
#define NATIVEMI_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif

namespace nativemi {

// Built without <math.h>, so infinity comes from its bit pattern.
__device__ __forceinline__ float positive_infinity() { return __int_as_float(0x7f800000); }
__device__ __forceinline__ float negative_infinity() { return __int_as_float(0xff800000); }

// Kernels are launched with 1-D grids whose total size may exceed 2^31 elements, so the global
// index is computed in 64 bits.
__device__ __forceinline__ long long global_thread_index() {
    return (long long)blockIdx.x * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ long long grid_thread_count() {
    return (long long)gridDim.x * blockDim.x;
}

__device__ __forceinline__ float warp_sum(float value) {
    for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_xor_sync(NATIVEMI_FULL_MASK, value, offset);
    return value;
}

__device__ __forceinline__ float warp_max(float value) {
    for (int offset = 16; offset > 0; offset >>= 1) value = fmaxf(value, __shfl_xor_sync(NATIVEMI_FULL_MASK, value, offset));
    return value;
}

__device__ __forceinline__ unsigned long long warp_sum_u64(unsigned long long value) {
    for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_xor_sync(NATIVEMI_FULL_MASK, value, offset);
    return value;
}

// Block-wide reductions for blocks of up to 1024 threads (a multiple of 32). Every thread gets the
// result. `scratch` holds at least 32 values; the trailing barrier lets callers reuse it at once.
__device__ __forceinline__ float block_sum(float value, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    value = warp_sum(value);
    if (lane == 0) scratch[warp] = value;
    __syncthreads();
    value = lane < warps ? scratch[lane] : 0.0f;
    value = warp_sum(value);
    __syncthreads();
    return value;
}

__device__ __forceinline__ float block_max(float value, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    value = warp_max(value);
    if (lane == 0) scratch[warp] = value;
    __syncthreads();
    value = lane < warps ? scratch[lane] : negative_infinity();
    value = warp_max(value);
    __syncthreads();
    return value;
}

// The running state of an online softmax: the maximum so far, the sum of exp(x - maximum), and
// the first index holding the maximum (ties go to the lower index, as the CPU reference does).
struct OnlineSoftmax {
    float maximum;
    float sum;
    int argmax;
};

__device__ __forceinline__ OnlineSoftmax online_softmax_empty() {
    OnlineSoftmax state;
    state.maximum = negative_infinity();
    state.sum = 0.0f;
    state.argmax = 0x7fffffff;
    return state;
}

__device__ __forceinline__ OnlineSoftmax online_softmax_push(OnlineSoftmax state, float value, int index) {
    if (value > state.maximum) {
        state.sum = state.sum * expf(state.maximum - value) + 1.0f;
        state.maximum = value;
        state.argmax = index;
    } else {
        state.sum += expf(value - state.maximum);
        if (value == state.maximum && index < state.argmax) state.argmax = index;
    }
    return state;
}

__device__ __forceinline__ OnlineSoftmax online_softmax_merge(OnlineSoftmax a, OnlineSoftmax b) {
    if (b.maximum > a.maximum || (b.maximum == a.maximum && b.argmax < a.argmax)) {
        OnlineSoftmax t = a; a = b; b = t;
    }
    // An empty partial state has maximum -inf; exp(-inf - m) is 0 unless both are empty.
    if (b.sum > 0.0f) a.sum += b.sum * expf(b.maximum - a.maximum);
    return a;
}

__device__ __forceinline__ OnlineSoftmax warp_online_softmax(OnlineSoftmax state) {
    for (int offset = 16; offset > 0; offset >>= 1) {
        OnlineSoftmax other;
        other.maximum = __shfl_xor_sync(NATIVEMI_FULL_MASK, state.maximum, offset);
        other.sum = __shfl_xor_sync(NATIVEMI_FULL_MASK, state.sum, offset);
        other.argmax = __shfl_xor_sync(NATIVEMI_FULL_MASK, state.argmax, offset);
        state = online_softmax_merge(state, other);
    }
    return state;
}

// `scratch` holds at least 32 states.
__device__ __forceinline__ OnlineSoftmax block_online_softmax(OnlineSoftmax state, OnlineSoftmax* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    state = warp_online_softmax(state);
    if (lane == 0) scratch[warp] = state;
    __syncthreads();
    state = lane < warps ? scratch[lane] : online_softmax_empty();
    state = warp_online_softmax(state);
    __syncthreads();
    return state;
}

__device__ __forceinline__ float gelu_exact(float x) {
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
}

__device__ __forceinline__ float gelu_exact_derivative(float x) {
    // d/dx [x Φ(x)] = Φ(x) + x φ(x)
    const float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
    const float pdf = 0.39894228040143268f * expf(-0.5f * x * x);
    return cdf + x * pdf;
}

__device__ __forceinline__ float gelu_tanh(float x) {
    const float inner = 0.79788456080286536f * (x + 0.044715f * x * x * x);
    return 0.5f * x * (1.0f + tanhf(inner));
}

// Thread 0 of a pooling block finds sentence s's first and last real positions and its target count, for
// pool_sentences and its backward alike (the caller synchronises before the others read them).
__device__ __forceinline__ void sentence_extent(const int* __restrict__ attention_mask, const int* __restrict__ is_target, long long base,
                                                int seq, int& first_real, int& last_real, int& target_count) {
    int first = -1, last = -1, targets = 0;
    for (int i = 0; i < seq; i++) {
        if (attention_mask[base + i] == 0) continue;
        if (first < 0) first = i;
        last = i;
        if (is_target[base + i] != 0) targets++;
    }
    first_real = first;
    last_real = last;
    target_count = targets;
}

// One row of Hugging Face's rotate-half rotation over every query and key head, the angle and its sine and cosine in
// double; direction +1 rotates (rotary_inplace), -1 applies the transpose (its backward).
__device__ __forceinline__ void rotate_half_row(float* base, double position, const float* __restrict__ inverse_frequencies, int heads,
                                                int kv_heads, int head_dim, float direction) {
    const int half = head_dim / 2;
    for (int pair = threadIdx.x; pair < (heads + kv_heads) * half; pair += blockDim.x) {
        const int head = pair / half, i = pair % half;
        double s, c;
        sincos(position * (double)inverse_frequencies[i], &s, &c);
        const float sine = direction * (float)s, cosine = (float)c;
        float* x = base + (long long)head * head_dim;
        const float first = x[i], second = x[i + half];
        x[i] = first * cosine - second * sine;
        x[i + half] = second * cosine + first * sine;
    }
}

}  // namespace nativemi

namespace nativemi {

// Op codes of a bad index (IndexErrorOp in CudaBackend.IndexErrors.cs).
constexpr int kOpGatherRows = 1;
constexpr int kOpScatterAddRows = 2;
constexpr int kOpSoftmaxTarget = 3;
constexpr int kOpEmbeddingToken = 4;
constexpr int kOpEmbeddingPosition = 5;
constexpr int kOpEmbeddingType = 6;

// The first out-of-range index a kernel met: the kernel skips the access (so no other allocation is read or
// written) and records it here; the host reads the record at its next synchronisation and throws naming the op,
// so a bad index neither corrupts memory nor costs a synchronisation per launch.
struct IndexError {
    int flag;
    int op;
    int row;
    int value;
    long long limit;
};

__device__ __forceinline__ void report_bad_index(IndexError* error, int op, int row, int value, long long limit) {
    if (atomicCAS(&error->flag, 0, 1) == 0) {
        error->op = op;
        error->row = row;
        error->value = value;
        error->limit = limit;
    }
}

// The embedding gathers' report: the first of the row's three ids that is out of range.
__device__ __forceinline__ void report_bad_embedding(IndexError* error, int row, int token, long long word_rows, int position,
                                                     long long position_rows, int type, long long type_rows) {
    if (token < 0 || token >= word_rows) report_bad_index(error, kOpEmbeddingToken, row, token, word_rows);
    else if (position < 0 || position >= position_rows) report_bad_index(error, kOpEmbeddingPosition, row, position, position_rows);
    else report_bad_index(error, kOpEmbeddingType, row, type, type_rows);
}

}  // namespace nativemi
