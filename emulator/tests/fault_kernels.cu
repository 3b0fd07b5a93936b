// Kernels that break the rules on purpose, for the emulator's own tests: each one exercises a check the emulator
// must make. Compiled into the emulator and, by the self-test, with NVRTC; never part of the engine.
#include "common.cuh"

// Correct with a block of whole warps; a block of 48 threads leaves the second warp partial.
extern "C" __global__ void emu_test_warp_sum(const float* __restrict__ input, float* __restrict__ output) {
    const float total = nativemi::warp_sum(input[threadIdx.x]);
    if ((threadIdx.x & 31) == 0) output[threadIdx.x / 32] = total;
}

// Every thread but `skipper` reaches the barrier.
extern "C" __global__ void emu_test_skipped_barrier(float* __restrict__ output, int skipper) {
    if ((int)threadIdx.x != skipper) __syncthreads();
    output[threadIdx.x] = 1.0f;
}

// One store at any index, in bounds or not.
extern "C" __global__ void emu_test_store(float* output, long long index, float value) {
    if (threadIdx.x == 0 && blockIdx.x == 0) output[index] = value;
}

// Reads through a pointer kept in device memory, so the launch cannot see which allocation it names.
extern "C" __global__ void emu_test_load_through(const float* const* table, float* output) {
    if (threadIdx.x == 0) output[0] = table[0][0];
}

// Reads a neighbour's shared-memory value without a barrier between the write and the read.
extern "C" __global__ void emu_test_missing_barrier(float* __restrict__ output) {
    __shared__ float values[64];
    values[threadIdx.x] = (float)threadIdx.x;
    output[threadIdx.x] = values[(threadIdx.x + 1) % blockDim.x];
}

// Writes `count + overrun` floats of dynamic shared memory, `count` of which the launch provides.
extern "C" __global__ void emu_test_dynamic_shared(float* __restrict__ output, int count, int overrun) {
    NATIVEMI_DYNAMIC_SHARED(float, values);
    for (int i = threadIdx.x; i < count + overrun; i += blockDim.x) values[i] = (float)i;
    __syncthreads();
    if (threadIdx.x == 0) output[0] = values[count - 1];
}

// Lane 0 waits at the block barrier while the other lanes of its warp wait for it at a shuffle.
extern "C" __global__ void emu_test_deadlock(float* __restrict__ output) {
    float value = 1.0f;
    if (threadIdx.x == 0) {
        __syncthreads();
    } else {
        value = __shfl_xor_sync(NATIVEMI_FULL_MASK, value, 1);
        __syncthreads();
    }
    output[threadIdx.x] = value;
}
