// 16-bit weights (F16 and BF16 checkpoints kept 16-bit on the device): narrowing activations for cuBLAS's 16-bit
// GemmEx, and the gathers that read a 16-bit embedding table. The CPU references are in
// src/NativeMi/Compute/WeightFormat.cs (SixteenBitWeights) and CpuBackend.cs; the launchers in CudaBackend.SixteenBit.cs.
// Conversions are written out in integer arithmetic (no cuda_fp16.h / cuda_bf16.h: NVRTC builds these without the
// toolkit's headers), round to nearest even, keep NaN a NaN and flush nothing.
#include "common.cuh"

namespace nativemi {

// Format codes shared with WeightFormat: 1 = F16, 2 = BF16.
constexpr int kFloat16 = 1;
constexpr int kBFloat16 = 2;

__device__ __forceinline__ float bfloat16_to_float(unsigned short bits) { return __int_as_float((int)((unsigned int)bits << 16)); }

__device__ __forceinline__ unsigned short float_to_bfloat16(float value) {
    unsigned int bits = (unsigned int)__float_as_int(value);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((bits >> 16) | 0x40u);
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (unsigned short)(bits >> 16);
}

__device__ __forceinline__ float float16_to_float(unsigned short bits) {
    const unsigned int sign = (unsigned int)(bits & 0x8000u) << 16;
    unsigned int exponent = (bits >> 10) & 0x1fu, mantissa = bits & 0x3ffu;
    if (exponent == 0x1fu) return __int_as_float((int)(sign | 0x7f800000u | (mantissa << 13)));
    if (exponent == 0) {
        if (mantissa == 0) return __int_as_float((int)sign);
        // Subnormal: mantissa · 2^-24, exact in fp32.
        const float magnitude = (float)mantissa * 5.9604644775390625e-8f;
        return sign ? -magnitude : magnitude;
    }
    return __int_as_float((int)(sign | ((exponent + 112u) << 23) | (mantissa << 13)));
}

__device__ __forceinline__ unsigned short float_to_float16(float value) {
    const unsigned int bits = (unsigned int)__float_as_int(value);
    const unsigned short sign = (unsigned short)((bits >> 16) & 0x8000u);
    const unsigned int magnitude = bits & 0x7fffffffu;
    if (magnitude > 0x7f800000u) return (unsigned short)(sign | 0x7e00u);  // NaN
    if (magnitude >= 0x477ff000u) return (unsigned short)(sign | 0x7c00u); // rounds to infinity (65520 and up)
    if (magnitude < 0x38800000u) {
        // Below the smallest normal half (2^-14): a subnormal, mantissa = round(|x| · 2^24) to nearest even.
        if (magnitude < 0x33000000u) return sign;  // below half the smallest subnormal
        const unsigned int exponent = magnitude >> 23, full = (magnitude & 0x7fffffu) | 0x800000u;
        const unsigned int shift = 126u - exponent;  // |x| · 2^24 = full · 2^(exponent - 126 - 24 + 24)
        unsigned int result = full >> shift;
        const unsigned int remainder = full & ((1u << shift) - 1u), half = 1u << (shift - 1u);
        if (remainder > half || (remainder == half && (result & 1u))) result++;
        return (unsigned short)(sign | result);
    }
    unsigned int rounded = magnitude - 0x38000000u;  // rebias the exponent from 127 to 15
    rounded += 0xfffu + ((rounded >> 13) & 1u);
    return (unsigned short)(sign | (rounded >> 13));
}

__device__ __forceinline__ float widen(unsigned short bits, int format) {
    return format == kFloat16 ? float16_to_float(bits) : bfloat16_to_float(bits);
}

}  // namespace nativemi

// output[i] = input[i] rounded to the 16-bit format, for cuBLAS's GemmEx with 16-bit A and B (fp32 accumulation).
extern "C" __global__ void narrow_to_16bit(const float* __restrict__ input, unsigned short* __restrict__ output, long long count, int format) {
    for (long long i = nativemi::global_thread_index(); i < count; i += nativemi::grid_thread_count())
        output[i] = format == nativemi::kBFloat16 ? nativemi::float_to_bfloat16(input[i]) : nativemi::float_to_float16(input[i]);
}

// output[i] = the fp32 value of input[i] (Download of a 16-bit table or matrix).
extern "C" __global__ void widen_from_16bit(const unsigned short* __restrict__ input, float* __restrict__ output, long long count, int format) {
    for (long long i = nativemi::global_thread_index(); i < count; i += nativemi::grid_thread_count())
        output[i] = nativemi::widen(input[i], format);
}

// output[r] = source[indices[r]], widened; one block per row. An index outside the table is not read: the row gets NaN
// and the host is told (gather_rows in probe.cu).
extern "C" __global__ void gather_rows_16bit(const unsigned short* __restrict__ source, const int* __restrict__ indices,
                                             float* __restrict__ output, int rows, int width, long long source_rows, int format,
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
    const unsigned short* from = source + (long long)index * width;
    for (int j = threadIdx.x; j < width; j += blockDim.x) to[j] = nativemi::widen(from[j], format);
}

// embedding_gather (embedding.cu) with a 16-bit word table; the position and type tables stay fp32.
extern "C" __global__ void embedding_gather_16bit(
    const int* __restrict__ ids, const int* __restrict__ position_ids, const int* __restrict__ type_ids,
    const unsigned short* __restrict__ words, const float* __restrict__ positions, const float* __restrict__ types,
    float* __restrict__ output, int rows, int width,
    long long word_rows, long long position_rows, long long type_rows, int format, nativemi::IndexError* __restrict__ error) {
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
    const unsigned short* word = words + (long long)token * width;
    const float* place = positions + (long long)position * width;
    const float* kind = types != nullptr ? types + (long long)type * width : nullptr;
    for (int j = threadIdx.x; j < width; j += blockDim.x) {
        float value = nativemi::widen(word[j], format) + place[j];
        if (kind != nullptr) value += kind[j];
        destination[j] = value;
    }
}
