// One fused AdamW step with decoupled weight decay and bias-corrected moments.
#include "common.cuh"

// The hyper-parameters come from a device buffer, not from kernel arguments, so a captured CUDA
// graph can be replayed with a new learning rate or step by rewriting the buffer:
// hyper = { learning_rate, beta1, beta2, epsilon, weight_decay, step (1-based, as a float) }.
extern "C" __global__ void adamw_step(float* __restrict__ parameters, const float* __restrict__ gradients,
                                      float* __restrict__ first_moment, float* __restrict__ second_moment,
                                      long long count, const float* __restrict__ hyper) {
    const float learning_rate = hyper[0], beta1 = hyper[1], beta2 = hyper[2];
    const float epsilon = hyper[3], weight_decay = hyper[4], step = hyper[5];
    const float correction1 = 1.0f - powf(beta1, step);
    const float correction2 = 1.0f - powf(beta2, step);
    const float step_size = learning_rate / correction1;
    const float inverse_sqrt_correction2 = 1.0f / sqrtf(correction2);
    const float decay = 1.0f - learning_rate * weight_decay;
    for (long long i = nativemi::global_thread_index(); i < count; i += nativemi::grid_thread_count()) {
        const float g = gradients[i];
        const float m = beta1 * first_moment[i] + (1.0f - beta1) * g;
        const float v = beta2 * second_moment[i] + (1.0f - beta2) * g * g;
        first_moment[i] = m;
        second_moment[i] = v;
        parameters[i] = parameters[i] * decay - step_size * m / (sqrtf(v) * inverse_sqrt_correction2 + epsilon);
    }
}
