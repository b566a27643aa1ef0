using System;
using System.Linq;
using TorchSharp;
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

    /// <summary>The per-channel mean and (population) standard deviation of a data set's pixels, scaled to [0,1].</summary>
    public static Normalizer FromDataset(ImageDataset data)
    {
        const long chunk = 4096; // bounds the float64 copy to a few hundred MB at CIFAR size
        int channels = data.Channels;
        var sum = new double[channels];
        var squares = new double[channels];
        for (long start = 0; start < data.Count; start += chunk)
        {
            using var scope = NewDisposeScope();
            Tensor x = data.Images.narrow(0, start, Math.Min(chunk, data.Count - start)).to_type(ScalarType.Float64).div_(255.0);
            double[] s = x.sum([0, 2, 3]).data<double>().ToArray();
            double[] q = x.square().sum([0, 2, 3]).data<double>().ToArray();
            for (int c = 0; c < channels; c++) (sum[c], squares[c]) = (sum[c] + s[c], squares[c] + q[c]);
        }
        double n = (double)data.Count * data.Height * data.Width;
        double[] mean = sum.Select(s => s / n).ToArray();
        double[] std = squares.Select((q, c) => Math.Sqrt(Math.Max(q / n - mean[c] * mean[c], 0))).ToArray();
        int flat = Array.FindIndex(std, s => !(s > 0));
        if (flat >= 0)
            throw new ArgumentException($"{data.Source}: channel {flat} has one value in every pixel (std 0), so it cannot be normalised", nameof(data));
        return new Normalizer(mean, std);
    }

    public double[] Mean => (double[])mean.Clone();
    public double[] Std => (double[])std.Clone();

    /// <summary>uint8 [B,C,H,W] → float32 [B,C,H,W] on the same device.</summary>
    public Tensor Apply(Tensor images)
    {
        if (images.dtype != ScalarType.Byte || images.Dimensions != 4 || images.shape[1] != mean.Length)
            throw new ArgumentException($"expected uint8 [B,{mean.Length},H,W] images, not {images.dtype} [{string.Join(",", images.shape)}]", nameof(images));
        using var scope = NewDisposeScope();
        Tensor m = tensor(mean.Select(v => (float)v).ToArray(), ScalarType.Float32, images.device).view(1, -1, 1, 1);
        Tensor s = tensor(std.Select(v => (float)v).ToArray(), ScalarType.Float32, images.device).view(1, -1, 1, 1);
        return images.to_type(ScalarType.Float32).div_(255f).sub_(m).div_(s).MoveToOuterDisposeScope();
    }
}
