// The decoder families' ops (Llama, Mistral, Qwen, Gemma): RMSNorm, per-head q/k RMSNorm, rotary embeddings,
// grouped-query key-value sharing, gated feed-forward activations and a scale. Each has its CPU reference in
// src/NativeMi/Compute/Cpu/CpuBackend.Decoder.cs and a parity case in ParityCases.cs.
#include "common.cuh"

// One block per row: y = x / sqrt(mean(x^2) + eps) * (gamma or 1 + gamma). `output` may alias `input`.
extern "C" __global__ void rmsnorm_rows(const float* input, const float* __restrict__ gamma, float* output,
                                        int rows, int width, float epsilon, int add_one) {
    __shared__ float scratch[32];
    const int row = blockIdx.x;
    if (row >= rows) return;
    const float* x = input + (long long)row * width;
    float* y = output + (long long)row * width;
    float partial = 0.0f;
    for (int j = threadIdx.x; j < width; j += blockDim.x) partial += x[j] * x[j];
    const float scale = rsqrtf(nativemi::block_sum(partial, scratch) / width + epsilon);
    for (int j = threadIdx.x; j < width; j += blockDim.x) y[j] = x[j] * scale * (add_one ? 1.0f + gamma[j] : gamma[j]);
}

// One block per (row, query-or-key head), threads across the head: Qwen3's q/k norms, in place on the fused buffer.
extern "C" __global__ void head_rmsnorm(float* qkv, const float* __restrict__ query_gamma, const float* __restrict__ key_gamma,
                                        int rows, int heads, int kv_heads, int head_dim, float epsilon) {
    __shared__ float scratch[32];
    const int row = blockIdx.x, head = blockIdx.y;
    if (row >= rows || head >= heads + kv_heads) return;
    const long long stride = (long long)(heads + 2 * kv_heads) * head_dim;
    float* x = qkv + row * stride + (long long)head * head_dim;
    const float* gamma = head < heads ? query_gamma : key_gamma;
    float partial = 0.0f;
    for (int j = threadIdx.x; j < head_dim; j += blockDim.x) partial += x[j] * x[j];
    const float scale = rsqrtf(nativemi::block_sum(partial, scratch) / head_dim + epsilon);
    for (int j = threadIdx.x; j < head_dim; j += blockDim.x) x[j] = x[j] * scale * gamma[j];
}

// One block per row, a thread per (query-or-key head, frequency) pair: Hugging Face's rotate-half rotation.
// The angle and its sine and cosine are computed in double, as the CPU reference does.
extern "C" __global__ void rotary_inplace(float* qkv, const int* __restrict__ positions, const float* __restrict__ inverse_frequencies,
                                          int rows, int heads, int kv_heads, int head_dim) {
    const int row = blockIdx.x;
    if (row >= rows) return;
    const long long stride = (long long)(heads + 2 * kv_heads) * head_dim;
    nativemi::rotate_half_row(qkv + row * stride, (double)positions[row], inverse_frequencies, heads, kv_heads, head_dim, 1.0f);
}

// One block per row: [q | k (kv heads) | v (kv heads)] -> [q | k (heads) | v (heads)], query head h reading key-value
// head h / (heads / kv_heads) (Hugging Face's repeat_kv).
extern "C" __global__ void expand_kv_heads(const float* __restrict__ compact, float* __restrict__ expanded,
                                           int rows, int heads, int kv_heads, int head_dim) {
    const int row = blockIdx.x;
    if (row >= rows) return;
    const int q = heads * head_dim, kv = kv_heads * head_dim, group = heads / kv_heads;
    const float* from = compact + (long long)row * (q + 2 * kv);
    float* to = expanded + (long long)row * 3 * q;
    for (int e = threadIdx.x; e < 3 * q; e += blockDim.x) {
        const int part = e / q, within = e % q, head = within / head_dim, d = within % head_dim;
        const int source = part == 0 ? within : q + (part - 1) * kv + (head / group) * head_dim + d;
        to[e] = from[source];
    }
}

// Grid-stride over rows x width: output = act(gate) * up, gate and up side by side in each row of gate_up.
// activation: 0 SiLU, 1 exact GELU, 2 tanh GELU (GateActivation's order).
extern "C" __global__ void gated_activation(const float* __restrict__ gate_up, float* __restrict__ output, int rows, int width, int activation) {
    const long long count = (long long)rows * width;
    for (long long e = nativemi::global_thread_index(); e < count; e += nativemi::grid_thread_count()) {
        const long long row = e / width, j = e % width;
        const float gate = gate_up[row * 2 * width + j], up = gate_up[row * 2 * width + width + j];
        const float activated = activation == 0 ? gate / (1.0f + expf(-gate))
                              : activation == 1 ? nativemi::gelu_exact(gate) : nativemi::gelu_tanh(gate);
        output[e] = activated * up;
    }
}

// Grid-stride: x *= factor.
extern "C" __global__ void scale_inplace(float* x, float factor, long long count) {
    for (long long e = nativemi::global_thread_index(); e < count; e += nativemi::grid_thread_count()) x[e] *= factor;
}
