// Multi-head scaled dot-product attention over qkv [batch*seq, 3*heads*head_dim] (queries, keys,
// values side by side) with a key mask [batch, seq] (1 = real token) and an optional causal limit.
// A query that sees no key outputs zeros, as the CPU reference does.
//
// Two paths:
//  * attention_fused: one block per (query, head, sentence); scores live in shared memory. Suits the
//    short sequences of sentence probing (a few hundred tokens) without any scratch buffer.
//  * attention_masked_softmax: the softmax between two cuBLAS strided-batched GEMMs
//    (S = Q K^T scaled, P = softmax(S), O = P V) for long sequences.
#include "common.cuh"

// Dynamic shared memory: head_dim floats for the query, then seq floats for the scores.
extern "C" __global__ void attention_fused(const float* __restrict__ qkv, const int* __restrict__ mask,
                                           float* __restrict__ output, int seq, int heads, int head_dim,
                                           int causal, float scale) {
    NATIVEMI_DYNAMIC_SHARED(float, shared);
    __shared__ float scratch[32];
    float* query = shared;
    float* scores = shared + head_dim;

    const int i = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    const int width = heads * head_dim;
    const long long stride = 3LL * width;
    const long long row_base = (long long)b * seq;
    const float* q = qkv + (row_base + i) * stride + (long long)h * head_dim;
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) query[d] = q[d];
    __syncthreads();

    const int key_end = causal ? i + 1 : seq;
    float local_max = nativemi::negative_infinity();
    for (int j = threadIdx.x; j < key_end; j += blockDim.x) {
        float s = nativemi::negative_infinity();
        if (mask[row_base + j] != 0) {
            const float* k = qkv + (row_base + j) * stride + width + (long long)h * head_dim;
            float dot = 0.0f;
            for (int d = 0; d < head_dim; d++) dot += query[d] * k[d];
            s = dot * scale;
        }
        scores[j] = s;
        local_max = fmaxf(local_max, s);
    }
    const float maximum = nativemi::block_max(local_max, scratch);

    float* o = output + (row_base + i) * width + (long long)h * head_dim;
    if (maximum == nativemi::negative_infinity()) {
        for (int d = threadIdx.x; d < head_dim; d += blockDim.x) o[d] = 0.0f;
        return;
    }

    float local_sum = 0.0f;
    for (int j = threadIdx.x; j < key_end; j += blockDim.x) {
        const float s = scores[j];
        const float e = s == nativemi::negative_infinity() ? 0.0f : expf(s - maximum);
        scores[j] = e;
        local_sum += e;
    }
    const float inverse = 1.0f / nativemi::block_sum(local_sum, scratch);

    // block_sum ends with a barrier, so every score is visible here.
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
        float accumulated = 0.0f;
        for (int j = 0; j < key_end; j++) {
            const float p = scores[j];
            if (p != 0.0f) accumulated += p * qkv[(row_base + j) * stride + 2LL * width + (long long)h * head_dim + d];
        }
        o[d] = accumulated * inverse;
    }
}

// In place over scores [sentences, heads, seq, seq] (already scaled): one block per (query row, head,
// sentence), the sentence's mask at mask + sentence * seq. Masked and (when causal) future keys become
// exactly 0; a row with no visible key becomes all zeros, so P V gives the zero output the contract asks for.
extern "C" __global__ void attention_masked_softmax(float* __restrict__ scores, const int* __restrict__ mask,
                                                    int seq, int causal) {
    __shared__ float scratch[32];
    const int i = blockIdx.x, h = blockIdx.y, b = blockIdx.z, heads = gridDim.y;
    float* row = scores + (((long long)b * heads + h) * seq + i) * seq;
    const int* sentence_mask = mask + (long long)b * seq;
    const int key_end = causal ? i + 1 : seq;

    float local_max = nativemi::negative_infinity();
    for (int j = threadIdx.x; j < key_end; j += blockDim.x)
        if (sentence_mask[j] != 0) local_max = fmaxf(local_max, row[j]);
    const float maximum = nativemi::block_max(local_max, scratch);

    if (maximum == nativemi::negative_infinity()) {
        for (int j = threadIdx.x; j < seq; j += blockDim.x) row[j] = 0.0f;
        return;
    }

    float local_sum = 0.0f;
    for (int j = threadIdx.x; j < seq; j += blockDim.x) {
        const float e = (j < key_end && sentence_mask[j] != 0) ? expf(row[j] - maximum) : 0.0f;
        row[j] = e;
        local_sum += e;
    }
    const float inverse = 1.0f / nativemi::block_sum(local_sum, scratch);
    for (int j = threadIdx.x; j < seq; j += blockDim.x) row[j] *= inverse;
}
