// The probe's kernels: the fused softmax-cross-entropy step, row gather / scatter-add, column sums.
#include "common.cuh"

// One block per row of logits [rows, classes]. A single pass keeps an online (maximum, sum of
// exponentials, argmax) per thread, merged with a block reduction; a second pass overwrites the row
// with the gradient (softmax - onehot) * gradient_scale. No probability is ever stored.
extern "C" __global__ void softmax_cross_entropy(float* __restrict__ logits, const int* __restrict__ targets,
                                                 float* __restrict__ loss_nats, int* __restrict__ argmax,
                                                 int rows, int classes, float gradient_scale, int write_gradient,
                                                 nativemi::IndexError* __restrict__ error) {
    __shared__ nativemi::OnlineSoftmax scratch[32];
    const int row = blockIdx.x;
    if (row >= rows) return;
    float* x = logits + (long long)row * classes;

    // The target logit is read before the reduction's barrier: after it, some thread may already be
    // overwriting that element with its gradient. A target outside the classes is not read: the row's
    // loss becomes NaN and the host is told (the whole block returns together, before any barrier).
    const int target = targets[row];
    if (target < 0 || target >= classes) {
        if (threadIdx.x == 0) {
            loss_nats[row] = __int_as_float(0x7fc00000);
            argmax[row] = -1;
            nativemi::report_bad_index(error, nativemi::kOpSoftmaxTarget, row, target, classes);
        }
        return;
    }
    const float target_logit = x[target];
    nativemi::OnlineSoftmax state = nativemi::online_softmax_empty();
    for (int j = threadIdx.x; j < classes; j += blockDim.x) state = nativemi::online_softmax_push(state, x[j], j);
    state = nativemi::block_online_softmax(state, scratch);

    if (threadIdx.x == 0) {
        loss_nats[row] = state.maximum + logf(state.sum) - target_logit;
        argmax[row] = state.argmax;
    }
    if (!write_gradient) return;
    const float inverse = 1.0f / state.sum;
    for (int j = threadIdx.x; j < classes; j += blockDim.x) {
        float g = expf(x[j] - state.maximum) * inverse * gradient_scale;
        if (j == target) g -= gradient_scale;
        x[j] = g;
    }
}

// output[r] = source[indices[r]]; one block per row.
// An index outside the source is not read: the row gets NaN and the host is told.
extern "C" __global__ void gather_rows(const float* __restrict__ source, const int* __restrict__ indices,
                                       float* __restrict__ output, int rows, int width, long long source_rows,
                                       nativemi::IndexError* __restrict__ error) {
    const int r = blockIdx.x;
    if (r >= rows) return;
    const int index = indices[r];
    float* to = output + (long long)r * width;
    if (index < 0 || index >= source_rows) {
        for (int j = threadIdx.x; j < width; j += blockDim.x) to[j] = __int_as_float(0x7fc00000);
        if (threadIdx.x == 0) nativemi::report_bad_index(error, nativemi::kOpGatherRows, r, index, source_rows);
        return;
    }
    const float* from = source + (long long)index * width;
    for (int j = threadIdx.x; j < width; j += blockDim.x) to[j] = from[j];
}

// target[indices[r]] += source[r]. Rows may share a target, hence the atomics (the summation order,
// and so the last bits, may differ from run to run).
// An index outside the target is not written; the host is told.
extern "C" __global__ void scatter_add_rows(const float* __restrict__ source, const int* __restrict__ indices,
                                            float* __restrict__ target, int rows, int width, long long target_rows,
                                            nativemi::IndexError* __restrict__ error) {
    const int r = blockIdx.x;
    if (r >= rows) return;
    const int index = indices[r];
    if (index < 0 || index >= target_rows) {
        if (threadIdx.x == 0) nativemi::report_bad_index(error, nativemi::kOpScatterAddRows, r, index, target_rows);
        return;
    }
    const float* from = source + (long long)r * width;
    float* to = target + (long long)index * width;
    for (int j = threadIdx.x; j < width; j += blockDim.x) atomicAdd(to + j, from[j]);
}

// sums[slice, j] = sum over the slice's rows r of matrix[r, j], slice = blockIdx.y of rows_per_slice rows. Blocks of
// 32 x 8 threads: x walks 32 adjacent columns (coalesced reads), y splits the slice's rows; the 8 partial sums meet in
// shared memory. With one slice the output is the column sums themselves; with several, column_sums_finish adds the
// slices in order (slices give a narrow matrix enough blocks for every SM; the order is fixed, so results are too).
extern "C" __global__ void column_sums(const float* __restrict__ matrix, float* __restrict__ sums, int rows, int width, int rows_per_slice) {
    __shared__ float partial[8][33];
    const int column = blockIdx.x * 32 + threadIdx.x;
    const long long begin = (long long)blockIdx.y * rows_per_slice;
    const long long end = begin + rows_per_slice < rows ? begin + rows_per_slice : rows;
    float accumulated = 0.0f;
    if (column < width)
        for (long long r = begin + threadIdx.y; r < end; r += 8) accumulated += matrix[r * width + column];
    partial[threadIdx.y][threadIdx.x] = accumulated;
    __syncthreads();
    if (threadIdx.y == 0 && column < width) {
        float total = 0.0f;
        for (int k = 0; k < 8; k++) total += partial[k][threadIdx.x];
        sums[(long long)blockIdx.y * width + column] = total;
    }
}

// sums[j] = sum over s of partial[s, j], in slice order.
extern "C" __global__ void column_sums_finish(const float* __restrict__ partial, float* __restrict__ sums, int slices, int width) {
    for (long long j = nativemi::global_thread_index(); j < width; j += nativemi::grid_thread_count()) {
        float total = 0.0f;
        for (int s = 0; s < slices; s++) total += partial[(long long)s * width + j];
        sums[j] = total;
    }
}
