// Embedding sum: output[row] = words[ids[row]] + positions[position_ids[row]] (+ types[type_ids[row]]).
#include "common.cuh"

// One block per row, threads across the width. An id outside its table is not read; the row is
// filled with NaN and the first offending id is recorded in `error`, which the host reads at its next
// synchronisation and reports with the row, the id and the table, instead of reading out of bounds.
extern "C" __global__ void embedding_gather(
    const int* __restrict__ ids, const int* __restrict__ position_ids, const int* __restrict__ type_ids,
    const float* __restrict__ words, const float* __restrict__ positions, const float* __restrict__ types,
    float* __restrict__ output, int rows, int width,
    long long word_rows, long long position_rows, long long type_rows, nativemi::IndexError* __restrict__ error) {
    const int row = blockIdx.x;
    if (row >= rows) return;
    const int token = ids[row];
    const int position = position_ids[row];
    const int type = type_ids != nullptr ? type_ids[row] : 0;
    const bool valid = token >= 0 && token < word_rows && position >= 0 && position < position_rows &&
                       (types == nullptr || (type >= 0 && type < type_rows));
    float* destination = output + (long long)row * width;
    if (!valid) {
        for (int j = threadIdx.x; j < width; j += blockDim.x) destination[j] = __int_as_float(0x7fc00000);
        if (threadIdx.x == 0) nativemi::report_bad_embedding(error, row, token, word_rows, position, position_rows, type, type_rows);
        return;
    }
    const float* word = words + (long long)token * width;
    const float* place = positions + (long long)position * width;
    const float* kind = types != nullptr ? types + (long long)type * width : nullptr;
    for (int j = threadIdx.x; j < width; j += blockDim.x) {
        float value = word[j] + place[j];
        if (kind != nullptr) value += kind[j];
        destination[j] = value;
    }
}
