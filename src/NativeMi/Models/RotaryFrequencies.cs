namespace NativeMi.Models;

/// <summary>Rotary embeddings' inverse frequencies, rope_scaling included, as transformers' modeling_rope_utils computes them.</summary>
internal static class RotaryFrequencies
{
    /// <summary>
    /// inv_freq_i = θ^(−2i / d) for i &lt; d / 2 (d the rotated width), then the rope_scaling: "linear" divides every
    /// frequency by the factor; "llama3" divides the low frequencies (wavelength above original_max / low_freq_factor) by it,
    /// keeps the high ones (wavelength below original_max / high_freq_factor), and blends linearly in between.
    /// Computed in double, rounded to float once.
    /// </summary>
    public static float[] Inverse(RotarySpec rotary)
    {
        ArgumentNullException.ThrowIfNull(rotary);
        int dims = rotary.RotaryDimensions, half = dims / 2;
        var result = new float[half];
        for (int i = 0; i < half; i++)
        {
            double frequency = 1 / Math.Pow(rotary.Theta, 2.0 * i / dims);
            if (rotary.Scaling is { } s)
            {
                if (s.Type == "linear") frequency /= s.Factor;
                else if (s.Type == "llama3")
                {
                    double lowWavelength = s.OriginalMaxPositions / s.LowFrequencyFactor, highWavelength = s.OriginalMaxPositions / s.HighFrequencyFactor;
                    double wavelength = 2 * Math.PI / frequency;
                    if (wavelength > lowWavelength) frequency /= s.Factor;
                    else if (wavelength >= highWavelength)
                    {
                        double smooth = (s.OriginalMaxPositions / wavelength - s.LowFrequencyFactor) / (s.HighFrequencyFactor - s.LowFrequencyFactor);
                        frequency = (1 - smooth) * frequency / s.Factor + smooth * frequency;
                    }
                }
            }
            result[i] = (float)frequency;
        }
        return result;
    }
}
