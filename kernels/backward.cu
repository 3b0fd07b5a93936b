// The backward ops of fine-tuning (IComputeBackend's "backward" section). Each kernel's CPU reference is in
// src/NativeMi/Compute/Cpu/CpuBackend.Backward.cs and its launcher in src/NativeMi/Compute/Cuda/CudaBackend.Backward.cs;
// every op has a parity case in ParityCases.cs. Parameter gradients are summed over rows in a fixed order (no atomics),
// so a gradient is the same from run to run.
#include "common.cuh"

namespace {

__device__ __forceinline__ double warp_sum_double(double value) {
    for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_xor_sync(NATIVEMI_FULL_MASK, value, offset);
    return value;
}

// block_sum for doubles; `scratch` holds 32 values, and the trailing barrier lets the caller reuse it at once.
__device__ __forceinline__ double block_sum_double(double value, double* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    value = warp_sum_double(value);
    if (lane == 0) scratch[warp] = value;
    __syncthreads();
    value = lane < warps ? scratch[lane] : 0.0;
    value = warp_sum_double(value);
    __syncthreads();
    return value;
}

__device__ __forceinline__ float gelu_tanh_derivative(float x) {
    const float c = 0.79788456080286536f, a = 0.044715f;
    const float t = tanhf(c * (x + a * x * x * x));
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * c * (1.0f + 3.0f * a * x * x);
}

// Activation codes: IComputeBackend's Activation (0 none, 1 exact GELU, 2 tanh GELU).
__device__ __forceinline__ float activate(float x, int activation) {
    return activation == 1 ? nativemi::gelu_exact(x) : activation == 2 ? nativemi::gelu_tanh(x) : x;
}

__device__ __forceinline__ float activation_derivative(float x, int activation) {
    return activation == 1 ? nativemi::gelu_exact_derivative(x) : activation == 2 ? gelu_tanh_derivative(x) : 1.0f;
}

// Gate codes: GateActivation (0 SiLU, 1 exact GELU, 2 tanh GELU).
__device__ __forceinline__ float gate(float x, int activation) {
    return activation == 0 ? x / (1.0f + expf(-x)) : activation == 1 ? nativemi::gelu_exact(x) : nativemi::gelu_tanh(x);
}

__device__ __forceinline__ float gate_derivative(float x, int activation) {
    if (activation == 0) {
        const float sigmoid = 1.0f / (1.0f + expf(-x));
        return sigmoid * (1.0f + x * (1.0f - sigmoid));
    }
    return activation == 1 ? nativemi::gelu_exact_derivative(x) : gelu_tanh_derivative(x);
}

}  // namespace

// Grid-stride: output = act(input); output may alias input.
extern "C" __global__ void activation_forward(const float* input, float* output, long long count, int activation) {
    for (long long e = nativemi::global_thread_index(); e < count; e += nativemi::grid_thread_count()) output[e] = activate(input[e], activation);
}

// Grid-stride: gradient = upstream * act'(pre); gradient may alias upstream.
extern "C" __global__ void activation_backward(const float* __restrict__ pre, const float* upstream, float* gradient, long long count, int activation) {
    for (long long e = nativemi::global_thread_index(); e < count; e += nativemi::grid_thread_count())
        gradient[e] = upstream[e] * activation_derivative(pre[e], activation);
}

// Grid-stride over rows x width: the gate's and the up projection's gradients, side by side as in gate_up.
extern "C" __global__ void gated_activation_backward(const float* __restrict__ gate_up, const float* __restrict__ upstream,
                                                     float* __restrict__ gradient, int rows, int width, int activation) {
    const long long count = (long long)rows * width;
    for (long long e = nativemi::global_thread_index(); e < count; e += nativemi::grid_thread_count()) {
        const long long row = e / width, j = e % width;
        const float g = gate_up[row * 2 * width + j], up = gate_up[row * 2 * width + width + j], u = upstream[e];
        gradient[row * 2 * width + j] = u * up * gate_derivative(g, activation);
        gradient[row * 2 * width + width + j] = u * gate(g, activation);
    }
}

// One block per row of a LayerNorm (kind 0, at x = input + residual) or an RMSNorm (kind 1: gamma, or 2: 1 + gamma): the
// statistics the input gradient needs, stats[row] = {mean (0 for RMSNorm), 1/sigma, mean(g), mean(g * xhat)} in double with g = dy * w.
// Two passes for the LayerNorm's variance, as its forward kernel does. Reads only, so the gradient may later overwrite dy.
extern "C" __global__ void norm_backward_rows(const float* __restrict__ input, const float* __restrict__ residual,
                                              const float* __restrict__ gamma, const float* __restrict__ output_gradient,
                                              double* __restrict__ stats, int rows, int width, float epsilon, int kind) {
    __shared__ double scratch[32];
    const int row = blockIdx.x;
    if (row >= rows) return;
    const float* x = input + (long long)row * width;
    const float* r = residual != nullptr ? residual + (long long)row * width : nullptr;
    const float* dy = output_gradient + (long long)row * width;
    double mean = 0.0;
    if (kind == 0) {
        double partial = 0.0;
        for (int j = threadIdx.x; j < width; j += blockDim.x) partial += r != nullptr ? x[j] + r[j] : x[j];
        mean = block_sum_double(partial, scratch) / width;
    }
    double squares = 0.0;
    for (int j = threadIdx.x; j < width; j += blockDim.x) {
        const double centred = (double)(r != nullptr ? x[j] + r[j] : x[j]) - mean;
        squares += centred * centred;
    }
    const double inverse = 1.0 / sqrt(block_sum_double(squares, scratch) / width + epsilon);
    double sum_g = 0.0, sum_gx = 0.0;
    for (int j = threadIdx.x; j < width; j += blockDim.x) {
        const double w = kind == 2 ? 1.0 + gamma[j] : gamma[j];
        const double g = (double)dy[j] * w;
        sum_g += g;
        sum_gx += g * ((double)(r != nullptr ? x[j] + r[j] : x[j]) - mean) * inverse;
    }
    sum_g = block_sum_double(sum_g, scratch);
    sum_gx = block_sum_double(sum_gx, scratch);
    if (threadIdx.x == 0) {
        double* s = stats + 4LL * row;
        s[0] = mean;
        s[1] = inverse;
        s[2] = sum_g / width;
        s[3] = sum_gx / width;
    }
}

// Blocks of 32 x 8 threads over 32 adjacent columns: gamma_gradient[j] = sum_r dy * xhat and (when beta_gradient is not null)
// beta_gradient[j] = sum_r dy, the rows split over threadIdx.y and the 8 partial sums added in order in shared memory.
extern "C" __global__ void norm_backward_columns(const float* __restrict__ input, const float* __restrict__ residual,
                                                 const float* __restrict__ output_gradient, const double* __restrict__ stats,
                                                 float* __restrict__ gamma_gradient, float* __restrict__ beta_gradient, int rows, int width) {
    __shared__ double partial_gamma[8][33];
    __shared__ double partial_beta[8][33];
    const int column = blockIdx.x * 32 + threadIdx.x;
    double g = 0.0, b = 0.0;
    if (column < width) {
        for (int row = threadIdx.y; row < rows; row += 8) {
            const long long e = (long long)row * width + column;
            const double x = residual != nullptr ? (double)(input[e] + residual[e]) : (double)input[e];
            const double dy = output_gradient[e];
            g += dy * (x - stats[4LL * row]) * stats[4LL * row + 1];
            b += dy;
        }
    }
    partial_gamma[threadIdx.y][threadIdx.x] = g;
    partial_beta[threadIdx.y][threadIdx.x] = b;
    __syncthreads();
    if (threadIdx.y == 0 && column < width) {
        double sum_g = 0.0, sum_b = 0.0;
        for (int y = 0; y < 8; y++) {
            sum_g += partial_gamma[y][threadIdx.x];
            sum_b += partial_beta[y][threadIdx.x];
        }
        gamma_gradient[column] = (float)sum_g;
        if (beta_gradient != nullptr) beta_gradient[column] = (float)sum_b;
    }
}

// Grid-stride: a norm's input gradient from its row statistics, dx = (1/sigma) (g - mean(g) - xhat mean(g xhat)) for a LayerNorm
// and (1/rms) (g - xhat mean(g xhat)) for an RMSNorm (whose stats hold mean 0 and mean(g) unused). input_gradient may alias
// output_gradient: each element is read and written by one thread.
extern "C" __global__ void norm_backward_input(const float* __restrict__ input, const float* __restrict__ residual, const float* __restrict__ gamma,
                                               const float* output_gradient, const double* __restrict__ stats, float* input_gradient,
                                               int rows, int width, int kind) {
    const long long count = (long long)rows * width;
    for (long long e = nativemi::global_thread_index(); e < count; e += nativemi::grid_thread_count()) {
        const long long row = e / width;
        const int j = (int)(e % width);
        const double* s = stats + 4 * row;
        const double x = residual != nullptr ? (double)(input[e] + residual[e]) : (double)input[e];
        const double xhat = (x - s[0]) * s[1];
        const double w = kind == 2 ? 1.0 + gamma[j] : gamma[j];
        const double g = (double)output_gradient[e] * w;
        input_gradient[e] = (float)(s[1] * (g - (kind == 0 ? s[2] : 0.0) - xhat * s[3]));
    }
}

// One block per (row, query-or-key head): the per-head RMSNorm's statistics, stats[row * (heads + kv) + head] = {1/rms, mean(g x)}
// with g = dy * gamma. Reads only.
extern "C" __global__ void head_rmsnorm_backward_rows(const float* __restrict__ qkv, const float* __restrict__ query_gamma,
                                                      const float* __restrict__ key_gamma, const float* __restrict__ qkv_gradient,
                                                      double* __restrict__ stats, int rows, int heads, int kv_heads, int head_dim, float epsilon) {
    __shared__ double scratch[32];
    const int row = blockIdx.x, head = blockIdx.y;
    if (row >= rows || head >= heads + kv_heads) return;
    const long long at = (long long)row * (heads + 2 * kv_heads) * head_dim + (long long)head * head_dim;
    const float* gamma = head < heads ? query_gamma : key_gamma;
    double squares = 0.0, gx = 0.0;
    for (int j = threadIdx.x; j < head_dim; j += blockDim.x) {
        const double x = qkv[at + j];
        squares += x * x;
        gx += (double)qkv_gradient[at + j] * gamma[j] * x;
    }
    squares = block_sum_double(squares, scratch);
    gx = block_sum_double(gx, scratch);
    if (threadIdx.x == 0) {
        double* s = stats + 2LL * ((long long)row * (heads + kv_heads) + head);
        s[0] = 1.0 / sqrt(squares / head_dim + epsilon);
        s[1] = gx / head_dim;
    }
}

// Blocks of 32 x 8 threads, blockIdx.y 0 for the query gamma and 1 for the key gamma: each column's gradient summed over the
// rows and, within a row, the part's heads in order (threadIdx.y splits the rows; the 8 partial sums added in order).
extern "C" __global__ void head_rmsnorm_backward_gamma(const float* __restrict__ qkv, const float* __restrict__ qkv_gradient,
                                                       const double* __restrict__ stats, float* __restrict__ query_gamma_gradient,
                                                       float* __restrict__ key_gamma_gradient, int rows, int heads, int kv_heads, int head_dim) {
    __shared__ double partial[8][33];
    const int column = blockIdx.x * 32 + threadIdx.x, part = blockIdx.y;
    const int first = part == 0 ? 0 : heads, last = part == 0 ? heads : heads + kv_heads;
    const long long stride = (long long)(heads + 2 * kv_heads) * head_dim;
    double sum = 0.0;
    if (column < head_dim) {
        for (int row = threadIdx.y; row < rows; row += 8)
            for (int head = first; head < last; head++) {
                const long long e = row * stride + (long long)head * head_dim + column;
                sum += (double)qkv_gradient[e] * qkv[e] * stats[2LL * ((long long)row * (heads + kv_heads) + head)];
            }
    }
    partial[threadIdx.y][threadIdx.x] = sum;
    __syncthreads();
    if (threadIdx.y == 0 && column < head_dim) {
        double total = 0.0;
        for (int y = 0; y < 8; y++) total += partial[y][threadIdx.x];
        (part == 0 ? query_gamma_gradient : key_gamma_gradient)[column] = (float)total;
    }
}

// Grid-stride over rows x (heads + kv) x head_dim, in place: dx = r (g - x r^2 mean(g x)) for every query and key element.
extern "C" __global__ void head_rmsnorm_backward_input(const float* __restrict__ qkv, const float* __restrict__ query_gamma,
                                                       const float* __restrict__ key_gamma, float* __restrict__ qkv_gradient,
                                                       const double* __restrict__ stats, int rows, int heads, int kv_heads, int head_dim) {
    const long long normed = (long long)(heads + kv_heads) * head_dim, count = (long long)rows * normed;
    const long long stride = (long long)(heads + 2 * kv_heads) * head_dim;
    for (long long e = nativemi::global_thread_index(); e < count; e += nativemi::grid_thread_count()) {
        const long long row = e / normed, within = e % normed;
        const int head = (int)(within / head_dim), j = (int)(within % head_dim);
        const long long at = row * stride + within;
        const double* s = stats + 2LL * (row * (heads + kv_heads) + head);
        const double x = qkv[at], r = s[0];
        const double g = (double)qkv_gradient[at] * (head < heads ? query_gamma[j] : key_gamma[j]);
        qkv_gradient[at] = (float)(r * (g - x * r * r * s[1]));
    }
}

// One block per row, a thread per (query-or-key head, frequency) pair: rotary_inplace's rotation undone (its transpose), the angle
// computed in double exactly as the forward kernel computes it.
extern "C" __global__ void rotary_backward_inplace(float* qkv_gradient, const int* __restrict__ positions, const float* __restrict__ inverse_frequencies,
                                                   int rows, int heads, int kv_heads, int head_dim) {
    const int row = blockIdx.x;
    if (row >= rows) return;
    const long long stride = (long long)(heads + 2 * kv_heads) * head_dim;
    nativemi::rotate_half_row(qkv_gradient + row * stride, (double)positions[row], inverse_frequencies, heads, kv_heads, head_dim, -1.0f);
}

// One block per row: [q | k (heads) | v (heads)] -> [q | k (kv heads) | v (kv heads)], each key-value head the sum, in head order,
// of the query heads h with h / (heads / kv_heads) equal to it (the transpose of expand_kv_heads).
extern "C" __global__ void reduce_kv_heads(const float* __restrict__ expanded, float* __restrict__ compact,
                                           int rows, int heads, int kv_heads, int head_dim) {
    const int row = blockIdx.x;
    if (row >= rows) return;
    const int q = heads * head_dim, kv = kv_heads * head_dim, group = heads / kv_heads;
    const float* from = expanded + (long long)row * 3 * q;
    float* to = compact + (long long)row * (q + 2 * kv);
    for (int e = threadIdx.x; e < q + 2 * kv; e += blockDim.x) {
        if (e < q) {
            to[e] = from[e];
            continue;
        }
        const int part = (e - q) / kv, within = (e - q) % kv, g = within / head_dim, d = within % head_dim;
        float sum = 0.0f;
        for (int member = 0; member < group; member++) sum += from[(part + 1) * q + (g * group + member) * head_dim + d];
        to[e] = sum;
    }
}

// In place over score gradients [sentences, heads, seq, seq] beside the probabilities P of the same shape (attention_masked_softmax's
// output): dS = P (dP - sum_j P dP) * scale, one block per (query row, head, sentence). Masked keys have P = 0 and get 0.
extern "C" __global__ void attention_softmax_backward(const float* __restrict__ probabilities, float* __restrict__ gradient, int seq, float scale) {
    __shared__ float scratch[32];
    const int i = blockIdx.x, h = blockIdx.y, b = blockIdx.z, heads = gridDim.y;
    const long long at = (((long long)b * heads + h) * seq + i) * seq;
    const float* p = probabilities + at;
    float* g = gradient + at;
    float partial = 0.0f;
    for (int j = threadIdx.x; j < seq; j += blockDim.x) partial += p[j] * g[j];
    const float dot = nativemi::block_sum(partial, scratch);
    for (int j = threadIdx.x; j < seq; j += blockDim.x) g[j] = p[j] * (g[j] - dot) * scale;
}

// One block per sentence, threads across the width: the gradient of pool_sentences (mode codes as there: 0 mean, 1 cls, 2 last,
// 3 max). Every cell of the sentence is written: the share of the upstream gradient its token gets, 0 elsewhere, NaN throughout
// when the sentence had nothing to pool.
extern "C" __global__ void pool_sentences_backward(const float* __restrict__ layer, const int* __restrict__ attention_mask,
                                                   const int* __restrict__ is_target, const float* __restrict__ pooled_gradient,
                                                   float* __restrict__ layer_gradient, int batch, int seq, int width, int mode) {
    __shared__ int first_real, last_real, target_count;
    const int s = blockIdx.x;
    if (s >= batch) return;
    const long long base = (long long)s * seq;
    if (threadIdx.x == 0) nativemi::sentence_extent(attention_mask, is_target, base, seq, first_real, last_real, target_count);
    __syncthreads();
    const bool needs_targets = mode == 0 || mode == 3;
    const bool nothing = first_real < 0 || (needs_targets && target_count == 0);
    const float not_a_number = __int_as_float(0x7fc00000);
    for (int j = threadIdx.x; j < width; j += blockDim.x) {
        const float upstream = pooled_gradient[(long long)s * width + j];
        float maximum = nativemi::negative_infinity();
        if (mode == 3 && !nothing)
            for (int i = 0; i < seq; i++)
                if (attention_mask[base + i] != 0 && is_target[base + i] != 0) maximum = fmaxf(maximum, layer[(base + i) * width + j]);
        bool routed = false;
        for (int i = 0; i < seq; i++) {
            const bool target = attention_mask[base + i] != 0 && is_target[base + i] != 0;
            float value = 0.0f;
            if (nothing) value = not_a_number;
            else if (mode == 0) value = target ? upstream / target_count : 0.0f;
            else if (mode == 1) value = i == first_real ? upstream : 0.0f;
            else if (mode == 2) value = i == last_real ? upstream : 0.0f;
            else if (target && !routed && layer[(base + i) * width + j] == maximum) {
                value = upstream;
                routed = true;
            }
            layer_gradient[(base + i) * width + j] = value;
        }
    }
}

// Grid-stride squares summed in double per thread and per block: partials[blockIdx.x] (sum_of_squares_finish adds them in order).
extern "C" __global__ void sum_of_squares_partial(const float* __restrict__ values, long long count, double* __restrict__ partials) {
    __shared__ double scratch[32];
    double sum = 0.0;
    for (long long e = nativemi::global_thread_index(); e < count; e += nativemi::grid_thread_count()) sum += (double)values[e] * values[e];
    sum = block_sum_double(sum, scratch);
    if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}

// One block: sums[index] = the partials added by one fixed tree (thread t takes t, t + blockDim, ...; then the block sum).
extern "C" __global__ void sum_of_squares_finish(const double* __restrict__ partials, int count, float* __restrict__ sums, int index) {
    __shared__ double scratch[32];
    double sum = 0.0;
    for (int e = threadIdx.x; e < count; e += blockDim.x) sum += partials[e];
    sum = block_sum_double(sum, scratch);
    if (threadIdx.x == 0) sums[index] = (float)sum;
}
