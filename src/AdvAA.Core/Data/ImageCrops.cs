using System;

namespace AdvAA.Core.Data;

/// <summary>A rectangle of an image in its own pixel coordinates: left, top, width, height.</summary>
public readonly record struct CropBox(int X, int Y, int Width, int Height);

/// <summary>
/// The crops of data whose images are not all one small size, as torchvision's ImageNet recipe
/// makes them: training takes a RandomResizedCrop (a box of 8–100 % of the area with an aspect
/// ratio from 3/4 to 4/3, resized to S×S), evaluation resizes the shorter side to S/0.875 and takes
/// the centre S×S. Boxes are computed in the original image's coordinates, so a JPEG can be decoded
/// at a reduced scale that still covers the box with S pixels.
/// </summary>
public static class ImageCrops
{
    /// <summary>The share of the image's area a training crop covers: uniform in [0.08, 1], as torchvision.</summary>
    public const double ScaleLow = 0.08, ScaleHigh = 1.0;

    /// <summary>The crop's width over height: log-uniform in [3/4, 4/3], as torchvision.</summary>
    public const double RatioLow = 3.0 / 4.0, RatioHigh = 4.0 / 3.0;

    /// <summary>The evaluation crop's share of the resized shorter side (224 of 256).</summary>
    public const double CentreFraction = 0.875;

    /// <summary>Images whose sides are all at most this and of one size are "small" and keep the pad-and-crop pipeline in memory.</summary>
    public const int SmallSide = 64;

    /// <summary>
    /// torchvision's <c>RandomResizedCrop.get_params</c>: up to ten tries of an area share and a
    /// log-uniform ratio whose rounded box fits, else the centre box of the ratio nearest the image's.
    /// </summary>
    public static CropBox RandomResized(int width, int height, ref SplitMix draws)
    {
        double area = (double)width * height;
        double logLow = Math.Log(RatioLow), logHigh = Math.Log(RatioHigh);
        for (int attempt = 0; attempt < 10; attempt++)
        {
            double target = area * (ScaleLow + (ScaleHigh - ScaleLow) * draws.NextDouble());
            double ratio = Math.Exp(logLow + (logHigh - logLow) * draws.NextDouble());
            int w = (int)Math.Round(Math.Sqrt(target * ratio), MidpointRounding.ToEven);
            int h = (int)Math.Round(Math.Sqrt(target / ratio), MidpointRounding.ToEven);
            if (w > 0 && w <= width && h > 0 && h <= height)
                return new CropBox(draws.NextInt(width - w + 1), draws.NextInt(height - h + 1), w, h);
        }
        double own = (double)width / height;
        (int fw, int fh) = own < RatioLow ? (width, (int)Math.Round(width / RatioLow, MidpointRounding.ToEven))
            : own > RatioHigh ? ((int)Math.Round(height * RatioHigh, MidpointRounding.ToEven), height)
            : (width, height);
        return new CropBox((width - fw) / 2, (height - fh) / 2, fw, fh);
    }

    /// <summary>
    /// The evaluation crop in the original image: the centred square of side
    /// round(0.875 · shorter side), i.e. the S×S centre once the shorter side is resized to S/0.875.
    /// </summary>
    public static CropBox Centre(int width, int height)
    {
        int side = Math.Max(1, (int)Math.Round(CentreFraction * Math.Min(width, height), MidpointRounding.ToEven));
        return new CropBox((width - side) / 2, (height - side) / 2, side, side);
    }
}

/// <summary>
/// SplitMix64: a small, fast generator whose whole state is one number, so every image's draws
/// derive from (seed, epoch, image) alone and no worker's scheduling changes them.
/// </summary>
public struct SplitMix(ulong state)
{
    ulong state = state;

    /// <summary>The generator of one image in one epoch of a run.</summary>
    public static SplitMix For(long seed, int epoch, long image)
    {
        var mix = new SplitMix(unchecked((ulong)seed * 0x9E3779B97F4A7C15UL ^ (ulong)epoch * 0xC2B2AE3D27D4EB4FUL ^ (ulong)image * 0x165667B19E3779F9UL));
        mix.Next();
        return mix;
    }

    public ulong Next()
    {
        ulong z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, 1), 53 bits.</summary>
    public double NextDouble() => (Next() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform in [0, <paramref name="bound"/>).</summary>
    public int NextInt(int bound) => (int)((Next() >> 33) * (ulong)bound >> 31);
}
