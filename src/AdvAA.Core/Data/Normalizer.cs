using System;
using System.Collections.Concurrent;
using System.Linq;
using static TorchSharp.torch;

namespace AdvAA.Core.Data;

/// <summary>Per-channel normalisation on the images' device: uint8 NCHW → float32 (x/255 − mean)/std.</summary>
public sealed class Normalizer
{
    readonly double[] mean;
    readonly double[] std;

    public Normalizer(double[] mean, double[] std)
    {
        if (mean.Length == 0 || mean.Length != std.Length)
            throw new ArgumentException($"mean ({mean.Length} values) and std ({std.Length} values) need one value per channel each");
        if (std.Any(s => !(s > 0) || double.IsInfinity(s)))
            throw new ArgumentException($"every std must be positive and finite, not [{string.Join(", ", std)}]", nameof(std));
        (this.mean, this.std) = ((double[])mean.Clone(), (double[])std.Clone());
    }

    /// <summary>The CIFAR-10 training set's statistics.</summary>
    public static Normalizer Cifar10 { get; } = new([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]);

    /// <summary>
    /// The per-channel mean and (population) standard deviation of a data set's pixels, scaled to
    /// [0,1]. Sums are exact integers, so a channel with one value everywhere has std exactly 0.
    /// </summary>
    /// <remarks>A streamed set's statistics are those of the centre crops of <see cref="StreamedSample"/> evenly spaced images (less the bad ones, with <paramref name="skipBad"/>).</remarks>
    public static Normalizer FromDataset(ImageDataset data, bool skipBad = false)
    {
        if (!data.IsStreamed) return FromPixels(data.Images, data.Source);
        using ImageDataset sample = data.Select(arange(0, data.Count, Math.Max(1, data.Count / StreamedSample)));
        using Tensor pixels = BatchLoader.Decoded(sample, skipBad);
        return FromPixels(pixels, data.Source);
    }

    /// <summary>The images a streamed set's statistics come from.</summary>
    public const int StreamedSample = 512;

    static Normalizer FromPixels(Tensor images, string source)
    {
        long count = images.shape[0];
        int channels = (int)images.shape[1];
        // Images per step, so that the int64 copy stays near 128 MB whatever the image size.
        long chunk = Math.Max(1, (1L << 24) / (channels * images.shape[2] * images.shape[3]));
        var sums = new long[channels];
        var squares = new long[channels];
        for (long start = 0; start < count; start += chunk)
        {
            using var scope = NewDisposeScope();
            Tensor x = images.narrow(0, start, Math.Min(chunk, count - start)).to_type(ScalarType.Int64);
            long[] s = x.sum([0, 2, 3]).data<long>().ToArray();
            long[] q = x.square().sum([0, 2, 3]).data<long>().ToArray();
            for (int c = 0; c < channels; c++) (sums[c], squares[c]) = (sums[c] + s[c], squares[c] + q[c]);
        }
        Int128 n = (Int128)count * images.shape[2] * images.shape[3];
        var mean = new double[channels];
        var std = new double[channels];
        for (int c = 0; c < channels; c++)
        {
            Int128 spread = n * squares[c] - (Int128)sums[c] * sums[c]; // n² · variance, in pixel units²
            mean[c] = (double)sums[c] / (double)n / 255;
            std[c] = Math.Sqrt((double)spread) / (double)n / 255;
        }
        int flat = Array.IndexOf(std, 0.0);
        if (flat >= 0)
            throw new ArgumentException($"{source}: channel {flat} has one value in every pixel (std 0), so it cannot be normalised", "data");
        return new Normalizer(mean, std);
    }

    public double[] Mean => (double[])mean.Clone();
    public double[] Std => (double[])std.Clone();

    readonly ConcurrentDictionary<string, (Tensor Mean, Tensor Std)> onDevice = new();

    /// <summary>
    /// uint8 [B,C,H,W] → float32 [B,C,H,W] on the same device; with <paramref name="channelsLast"/> the
    /// result is laid out channels-last (NHWC in memory, NCHW in shape), the layout convolutions run
    /// fastest on, made in the same pass.
    /// </summary>
    public Tensor Apply(Tensor images, bool channelsLast = false)
    {
        if (images.dtype != ScalarType.Byte || images.Dimensions != 4 || images.shape[1] != mean.Length)
            throw new ArgumentException($"expected uint8 [B,{mean.Length},H,W] images, not {images.dtype} [{string.Join(",", images.shape)}]", nameof(images));
        using var scope = NewDisposeScope();
        var (m, s) = onDevice.GetOrAdd(images.device.ToString(), _ =>
            (tensor(mean.Select(v => (float)v).ToArray(), ScalarType.Float32, images.device).DetachFromDisposeScope(),
             tensor(std.Select(v => (float)v).ToArray(), ScalarType.Float32, images.device).DetachFromDisposeScope()));
        if (!channelsLast)
            return images.to_type(ScalarType.Float32).div_(255f).sub_(m.view(1, -1, 1, 1)).div_(s.view(1, -1, 1, 1)).MoveToOuterDisposeScope();
        // NHWC values, viewed back as NCHW: the channels-last strides.
        return images.permute(0, 2, 3, 1).contiguous().to_type(ScalarType.Float32).div_(255f).sub_(m).div_(s).permute(0, 3, 1, 2).MoveToOuterDisposeScope();
    }
}
