// Device reductions behind the Fano bounds: error counts, the target histogram (for H(X)) and
// per-position trial/error counts. Counts are integers, so the atomics make results exact and
// independent of scheduling.
#include "common.cuh"

// errors += number of i with predictions[i] != targets[i]. Each warp sums its counts with shuffles,
// so there is one atomic per warp rather than per element.
extern "C" __global__ void count_errors(const int* __restrict__ predictions, const int* __restrict__ targets,
                                        long long count, unsigned long long* __restrict__ errors) {
    unsigned long long local = 0;
    for (long long i = nativemi::global_thread_index(); i < count; i += nativemi::grid_thread_count())
        local += predictions[i] != targets[i] ? 1ull : 0ull;
    local = nativemi::warp_sum_u64(local);
    if ((threadIdx.x & 31) == 0 && local != 0) atomicAdd(errors, local);
}

// histogram[c] += number of i with targets[i] == c. Targets outside [0, classes) are counted in
// `out_of_range` so the host can refuse the input rather than silently drop it.
extern "C" __global__ void target_histogram(const int* __restrict__ targets, long long count, int classes,
                                            unsigned long long* __restrict__ histogram,
                                            unsigned long long* __restrict__ out_of_range) {
    for (long long i = nativemi::global_thread_index(); i < count; i += nativemi::grid_thread_count()) {
        const int c = targets[i];
        if (c >= 0 && c < classes) atomicAdd(histogram + c, 1ull);
        else atomicAdd(out_of_range, 1ull);
    }
}

// For each item i at position positions[i]: trials[p] += 1, errors[p] += (prediction != target).
// Positions outside [0, position_count) are ignored (padding carries -1).
extern "C" __global__ void per_position_counts(const int* __restrict__ predictions, const int* __restrict__ targets,
                                               const int* __restrict__ positions, long long count, int position_count,
                                               unsigned long long* __restrict__ trials,
                                               unsigned long long* __restrict__ errors) {
    for (long long i = nativemi::global_thread_index(); i < count; i += nativemi::grid_thread_count()) {
        const int p = positions[i];
        if (p < 0 || p >= position_count) continue;
        atomicAdd(trials + p, 1ull);
        if (predictions[i] != targets[i]) atomicAdd(errors + p, 1ull);
    }
}
