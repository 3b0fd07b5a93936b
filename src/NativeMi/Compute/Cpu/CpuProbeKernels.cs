using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace NativeMi.Compute.Cpu;

/// <summary>The probe's fused kernels on the CPU.</summary>
public static class CpuProbeKernels
{
    /// <summary>
    /// One logits row: an online pass finds the maximum, its index and the running sum of exponentials
    /// (rescaled when the maximum moves); a second pass overwrites the row with the gradient
    /// (softmax − onehot)·scale. Returns the loss −ln q(target) in nats and the argmax.
    /// </summary>
    public static (float LossNats, int Argmax) SoftmaxCrossEntropyRow(Span<float> row, int target, float gradientScale, bool writeGradient)
    {
        float max = float.NegativeInfinity, sum = 0f;
        int argmax = 0;
        for (int j = 0; j < row.Length; j++)
        {
            float v = row[j];
            if (v > max)
            {
                sum = sum * MathF.Exp(max - v) + 1f;
                max = v;
                argmax = j;
            }
            else
            {
                sum += MathF.Exp(v - max);
            }
        }
        float logSumExp = max + MathF.Log(sum);
        float loss = logSumExp - row[target];
        if (writeGradient)
        {
            float inverse = 1f / sum;
            for (int j = 0; j < row.Length; j++) row[j] = MathF.Exp(row[j] - max) * inverse * gradientScale;
            row[target] -= gradientScale;
        }
        return (loss, argmax);
    }

    /// <summary>AdamW with decoupled weight decay, bias-corrected moments, one fused loop.</summary>
    public static void AdamW(Span<float> parameters, ReadOnlySpan<float> gradients, Span<float> m, Span<float> v, AdamWStep step)
    {
        float b1 = step.Beta1, b2 = step.Beta2;
        float correction1 = 1f - MathF.Pow(b1, step.Step), correction2 = 1f - MathF.Pow(b2, step.Step);
        float stepSize = step.LearningRate / correction1;
        float inverseSqrtCorrection2 = 1f / MathF.Sqrt(correction2);
        float decay = 1f - step.LearningRate * step.WeightDecay;
        for (int i = 0; i < parameters.Length; i++)
        {
            float g = gradients[i];
            float mi = m[i] = b1 * m[i] + (1f - b1) * g;
            float vi = v[i] = b2 * v[i] + (1f - b2) * g * g;
            parameters[i] = parameters[i] * decay - stepSize * mi / (MathF.Sqrt(vi) * inverseSqrtCorrection2 + step.Epsilon);
        }
    }
}
