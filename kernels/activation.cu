// Element-wise kernels: the GEMM epilogue (bias + activation), the probe's bias + exact GELU that keeps
// the pre-activation for the backward pass, GELU's derivative, and in-place addition.
#include "common.cuh"

// Activation codes match NativeMi.Compute.Activation: 0 none, 1 exact GELU, 2 tanh GELU.
extern "C" __global__ void bias_activation_inplace(float* __restrict__ values, const float* __restrict__ bias,
                                                   int rows, int width, int activation) {
    const long long count = (long long)rows * width;
    for (long long i = nativemi::global_thread_index(); i < count; i += nativemi::grid_thread_count()) {
        float v = values[i];
        if (bias != nullptr) v += bias[i % width];
        if (activation == 1) v = nativemi::gelu_exact(v);
        else if (activation == 2) v = nativemi::gelu_tanh(v);
        values[i] = v;
    }
}

// pre = input + bias; output = apply_gelu ? gelu_exact(pre) : pre. `pre` and `output` may alias
// `input` (each element is touched by one thread only).
extern "C" __global__ void bias_gelu_keep_preactivation(const float* input, const float* __restrict__ bias, float* pre,
                                                        float* output, int rows, int width, int apply_gelu) {
    const long long count = (long long)rows * width;
    for (long long i = nativemi::global_thread_index(); i < count; i += nativemi::grid_thread_count()) {
        const float u = input[i] + bias[i % width];
        pre[i] = u;
        output[i] = apply_gelu ? nativemi::gelu_exact(u) : u;
    }
}

extern "C" __global__ void gelu_backward(const float* __restrict__ pre, const float* __restrict__ upstream,
                                         float* __restrict__ gradient, long long count) {
    for (long long i = nativemi::global_thread_index(); i < count; i += nativemi::grid_thread_count())
        gradient[i] = upstream[i] * nativemi::gelu_exact_derivative(pre[i]);
}

extern "C" __global__ void add_inplace(float* __restrict__ accumulator, const float* __restrict__ addend, long long count) {
    for (long long i = nativemi::global_thread_index(); i < count; i += nativemi::grid_thread_count())
        accumulator[i] += addend[i];
}
