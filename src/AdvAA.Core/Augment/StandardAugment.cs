using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Augment;

/// <summary>The standard CIFAR pipeline, batched: every sample draws its own crop, flip and Cutout square.</summary>
public static class StandardAugment
{
    /// <summary>
    /// A random H×W crop of the image padded by <paramref name="padding"/> on every side (offsets uniform
    /// in 0..2·padding) with zeros, or with its reflection (<paramref name="reflect"/>, torchvision's
    /// "reflect": the edge pixel is not repeated), then a horizontal flip with probability 0.5, per sample.
    /// </summary>
    public static Tensor CropFlip(Tensor images, torch.Generator? generator, int padding = 4, bool reflect = false)
    {
        BatchAugment.CheckImages(images);
        if (padding < 0)
            throw new AugmentException($"padding must be 0 or more, got {padding}");
        using var scope = torch.NewDisposeScope();
        long n = images.shape[0], h = images.shape[2], w = images.shape[3];
        var device = images.device;
        var u = Draw.Uniform(new[] { n, 3L }, generator, device);
        var dy = Draw.Below(u.narrow(1, 0, 1), 2 * padding + 1).sub_(padding);
        var dx = Draw.Below(u.narrow(1, 1, 1), 2 * padding + 1).sub_(padding);
        var flip = u.narrow(1, 2, 1).lt(0.5);
        var columns = torch.arange(w, ScalarType.Int64, device).view(1, w);
        var srcX = torch.where(flip, columns.neg().add_(w - 1), columns).add(dx).view(n, 1, w);
        var srcY = torch.arange(h, ScalarType.Int64, device).view(1, h).add(dy).view(n, h, 1);
        if (reflect && padding > 0)
        {
            srcX = Reflect(srcX, w);
            srcY = Reflect(srcY, h);
        }
        return ImageKernels.GatherPixels(images, srcY, srcX, fill: 0).MoveToOuterDisposeScope();
    }

    /// <summary>Positions reflected back into 0..size−1 about the edges (−1 → 1, size → size − 2).</summary>
    static Tensor Reflect(Tensor positions, long size) =>
        size < 2 ? positions.clamp(0, size - 1) : positions.abs().neg_().add_(size - 1).abs_().neg_().add_(size - 1);

    /// <summary>
    /// One size×size square per image filled with 128 (the grey of the Cutout op), centre uniform over
    /// the image, clipped at the borders (DeVries &amp; Taylor 2017).
    /// </summary>
    public static Tensor Cutout(Tensor images, int size, torch.Generator? generator)
    {
        BatchAugment.CheckImages(images);
        if (size < 0)
            throw new AugmentException($"Cutout size must be 0 or more, got {size}");
        using var scope = torch.NewDisposeScope();
        long n = images.shape[0];
        var device = images.device;
        var u = Draw.Uniform(new[] { n, 2L }, generator, device);
        var cy = Draw.Below(u.select(1, 0), images.shape[2]);
        var cx = Draw.Below(u.select(1, 1), images.shape[3]);
        var sides = torch.full(n, size, ScalarType.Int64, device);
        return ImageKernels.CutOut(images, sides, cy, cx, ImageKernels.Fill).MoveToOuterDisposeScope();
    }
}
