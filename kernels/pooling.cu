// Mask-aware pooling of one layer [batch*seq, width] into sentence vectors [batch, width]. Positions
// come from the attention mask and the target mask, never from the padding side, so left and
// right padding give the same vectors.
#include "common.cuh"

// Mode codes match NativeMi.Measurement.PoolingMode: 0 mean, 1 cls (first real token),
// 2 last (last real token), 3 max. One block per sentence, threads across the width. A sentence
// with nothing to pool (no real token, or no target for mean/max) gets NaN, which the host reports.
extern "C" __global__ void pool_sentences(const float* __restrict__ layer, const int* __restrict__ attention_mask,
                                          const int* __restrict__ is_target, float* __restrict__ output,
                                          int batch, int seq, int width, int mode) {
    __shared__ int first_real, last_real, target_count;
    const int s = blockIdx.x;
    if (s >= batch) return;
    const long long base = (long long)s * seq;
    if (threadIdx.x == 0) nativemi::sentence_extent(attention_mask, is_target, base, seq, first_real, last_real, target_count);
    __syncthreads();

    float* destination = output + (long long)s * width;
    const float not_a_number = __int_as_float(0x7fc00000);
    const bool needs_targets = mode == 0 || mode == 3;
    if (first_real < 0 || (needs_targets && target_count == 0)) {
        for (int j = threadIdx.x; j < width; j += blockDim.x) destination[j] = not_a_number;
        return;
    }
    if (mode == 1 || mode == 2) {
        const float* source = layer + (base + (mode == 1 ? first_real : last_real)) * width;
        for (int j = threadIdx.x; j < width; j += blockDim.x) destination[j] = source[j];
        return;
    }
    for (int j = threadIdx.x; j < width; j += blockDim.x) {
        float accumulated = mode == 0 ? 0.0f : nativemi::negative_infinity();
        for (int i = 0; i < seq; i++) {
            if (attention_mask[base + i] == 0 || is_target[base + i] == 0) continue;
            const float v = layer[(base + i) * width + j];
            accumulated = mode == 0 ? accumulated + v : fmaxf(accumulated, v);
        }
        destination[j] = mode == 0 ? accumulated / target_count : accumulated;
    }
}
