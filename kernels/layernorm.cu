// LayerNorm with an optional residual added first: y = LN(x + r) * gamma + beta, one block per row.
#include "common.cuh"

// Two passes over the row (mean, then the centred sum of squares) as the CPU reference does, so
// the variance does not lose precision to E[x^2] - E[x]^2. `output` may alias `input` or
// `residual`: each element is read for the last time by the thread that writes it.
extern "C" __global__ void layernorm_residual(
    const float* input, const float* residual, const float* __restrict__ gamma, const float* __restrict__ beta,
    float* output, int rows, int width, float epsilon) {
    __shared__ float scratch[32];
    const int row = blockIdx.x;
    if (row >= rows) return;
    const float* x = input + (long long)row * width;
    const float* r = residual != nullptr ? residual + (long long)row * width : nullptr;
    float* y = output + (long long)row * width;

    float partial = 0.0f;
    for (int j = threadIdx.x; j < width; j += blockDim.x) partial += r != nullptr ? x[j] + r[j] : x[j];
    const float mean = nativemi::block_sum(partial, scratch) / width;

    partial = 0.0f;
    for (int j = threadIdx.x; j < width; j += blockDim.x) {
        const float centred = (r != nullptr ? x[j] + r[j] : x[j]) - mean;
        partial += centred * centred;
    }
    const float variance = nativemi::block_sum(partial, scratch) / width;
    const float scale = rsqrtf(variance + epsilon);

    for (int j = threadIdx.x; j < width; j += blockDim.x) {
        const float centred = (r != nullptr ? x[j] + r[j] : x[j]) - mean;
        y[j] = centred * scale * gamma[j] + beta[j];
    }
}
