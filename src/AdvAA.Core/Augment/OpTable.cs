using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Augment;

/// <summary>
/// The one op table (DESIGN.md "Operations"): every op's semantics, default range (the AutoAugment
/// paper's search space), sign and level mapping. The CLI, docs, controller and DSL read it.
/// </summary>
public static class OpTable
{
    /// <summary>The side CIFAR images have, which the default pixel ranges are made for.</summary>
    public const int DefaultImageSize = 32;

    /// <summary>The table for 32×32 images (TranslateX/Y up to 0.45·32 = 14.4 px, Cutout up to 0.2·32 = 6.4 px).</summary>
    public static IReadOnlyList<OpDefinition> Defaults { get; } = ForImageSize(DefaultImageSize, DefaultImageSize);

    /// <summary>The table with the pixel ranges scaled to images of this size (translate 0.45·side, Cutout 0.2·W).</summary>
    public static IReadOnlyList<OpDefinition> ForImageSize(int height, int width)
    {
        if (height < 1 || width < 1)
            throw new AugmentException($"image size must be positive, got {height}×{width}");
        double inf = double.PositiveInfinity;
        return new List<OpDefinition>
        {
            Affine("ShearX", 0, 0.3, "shear along x: out(x,y) = in(x + v·y, y), origin top-left", ShearX),
            Affine("ShearY", 0, 0.3, "shear along y: out(x,y) = in(x, y + v·x), origin top-left", ShearY),
            Affine("TranslateX", 0, 0.45 * width, "shift by v whole pixels: out(x,y) = in(x + v, y)", TranslateX, integer: true),
            Affine("TranslateY", 0, 0.45 * height, "shift by v whole pixels: out(x,y) = in(x, y + v)", TranslateY, integer: true),
            Affine("Rotate", 0, 30, "rotate v degrees counter-clockwise about the centre", Rotate),
            NoMagnitude("AutoContrast", OpKind.Histogram, "stretch each channel's min..max to 0..255 (PIL ImageOps.autocontrast)",
                new LutCompute((images, _) => ImageKernels.AutoContrastLut(images))),
            NoMagnitude("Invert", OpKind.Color, "255 − x", new LutCompute(InvertLut)),
            NoMagnitude("Equalize", OpKind.Histogram, "equalise each channel's histogram (PIL ImageOps.equalize)",
                new LutCompute((images, _) => ImageKernels.EqualizeLut(images))),
            new("Solarize", OpKind.Color, 256, 0, false, true, true, 256, 0, 256,
                "x ≥ v → 255 − x (threshold v; stronger with level)", new LutCompute(SolarizeLut)),
            new("Posterize", OpKind.Color, 8, 4, false, true, true, 8, 0, 8,
                "keep the v highest bits of each channel", new LutCompute(PosterizeLut)),
            Enhance("Contrast", "blend with the mean of the grey image by factor v (PIL ImageEnhance.Contrast)", new LutCompute(ContrastLut)),
            Enhance("Color", "blend with the grey (L) image by factor v (PIL ImageEnhance.Color)", new DirectCompute(Color)),
            Enhance("Brightness", "blend with black by factor v (PIL ImageEnhance.Brightness)", new LutCompute(BrightnessLut)),
            Enhance("Sharpness", "blend with the SMOOTH-filtered image by factor v, border kept (PIL ImageEnhance.Sharpness)",
                new DirectCompute(Sharpness)),
            new("Cutout", OpKind.Cutout, 0, 0.2 * width, false, true, true, 0, 0, inf,
                "fill a v×v square with 128, centre uniform over the image, clipped at the borders", new DirectCompute(Cutout)),
            new("SamplePairing", OpKind.Pairing, 0, 0.4, false, true, false, 0, 0, 1,
                "blend with the next image of the batch, weight v (PIL Image.blend)", new DirectCompute(SamplePairing)),
            NoMagnitude("Identity", OpKind.Identity, "leave the image unchanged", SkipCompute.Instance),
        };
    }

    /// <summary>The op with this name (case-insensitive) from <see cref="Defaults"/>.</summary>
    public static OpDefinition Get(string name) =>
        Defaults.FirstOrDefault(o => string.Equals(o.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new AugmentException($"unknown op '{name}'; known ops: {string.Join(", ", Defaults.Select(o => o.Name))}");

    static OpDefinition Affine(string name, double low, double high, string description, Func<Tensor, long, long, Tensor> matrix, bool integer = false) =>
        new(name, OpKind.Geometric, low, high, true, true, integer, 0, double.NegativeInfinity, double.PositiveInfinity,
            description + "; nearest pixel, fill 128", new AffineCompute(matrix));

    static OpDefinition Enhance(string name, string description, OpCompute compute) =>
        new(name, OpKind.Blend, 0.1, 1.9, false, true, false, 1, 0, double.PositiveInfinity, description, compute);

    static OpDefinition NoMagnitude(string name, OpKind kind, string description, OpCompute compute) =>
        new(name, kind, 0, 0, false, false, false, 0, 0, 0, description, compute);

    // ---- geometric: inverse maps from output pixel centres to input coordinates (PIL's transform data)

    /// <summary>The identity matrix with <paramref name="v"/> at row-major position <paramref name="vAt"/>, float64 [n,2,3].</summary>
    static Tensor Matrix(Tensor v, int vAt)
    {
        var m = torch.zeros(new[] { v.shape[0], 6L }, ScalarType.Float64, v.device);
        m.narrow(1, 0, 1).fill_(1);
        m.narrow(1, 4, 1).fill_(1);
        m.select(1, vAt).copy_(v);
        return m.view(-1, 2, 3);
    }

    // PIL's data for Image.transform(AFFINE, (a, b, c, d, e, f)): input = (a·x + b·y + c, d·x + e·y + f).
    static Tensor ShearX(Tensor v, long h, long w) => Matrix(v, vAt: 1);
    static Tensor ShearY(Tensor v, long h, long w) => Matrix(v, vAt: 3);
    static Tensor TranslateX(Tensor v, long h, long w) => Matrix(v, vAt: 2);
    static Tensor TranslateY(Tensor v, long h, long w) => Matrix(v, vAt: 5);

    /// <summary>PIL Image.rotate (expand off, centre (W/2, H/2)): the inverse rotation as transform data.</summary>
    static Tensor Rotate(Tensor v, long h, long w)
    {
        var theta = v.to(ScalarType.Float64).mul(-Math.PI / 180);
        var cos = theta.cos();
        var sin = theta.sin();
        double cx = w / 2.0, cy = h / 2.0;
        var c = cos.mul(-cx).add_(sin.mul(-cy)).add_(cx);
        var f = sin.mul(cx).add_(cos.mul(-cy)).add_(cy);
        return torch.stack(new[] { cos, sin, c, sin.neg(), cos, f }, 1).view(-1, 2, 3);
    }

    // ---- lookup tables: (images [n,C,H,W], values [n]) → uint8 [n,C,256]

    static Tensor InvertLut(Tensor images, Tensor v) =>
        ImageKernels.ToLut(ImageKernels.Intensities(images.device).neg().add_(255), images.shape[0], images.shape[1]);

    static Tensor SolarizeLut(Tensor images, Tensor v)
    {
        var r = ImageKernels.Intensities(images.device);
        var table = torch.where(r.ge(v.view(-1, 1, 1)), r.neg().add_(255), r);
        return ImageKernels.ToLut(table, images.shape[0], images.shape[1]);
    }

    static Tensor PosterizeLut(Tensor images, Tensor v)
    {
        var r = ImageKernels.Intensities(images.device);
        var step = v.floor().neg_().add_(8).exp2_().view(-1, 1, 1);   // 2^(8 − bits)
        return ImageKernels.ToLut(r.div(step).floor_().mul_(step), images.shape[0], images.shape[1]);
    }

    static Tensor BrightnessLut(Tensor images, Tensor v)
    {
        var r = ImageKernels.Intensities(images.device);
        return ImageKernels.ToLut(r.mul(v.view(-1, 1, 1)).trunc_(), images.shape[0], images.shape[1]);
    }

    /// <summary>Blend with the constant int(mean(L) + 0.5), as ImageEnhance.Contrast builds it.</summary>
    static Tensor ContrastLut(Tensor images, Tensor v)
    {
        long n = images.shape[0], pixels = images.shape[2] * images.shape[3];
        var sum = ImageKernels.Luminance(images).to(ScalarType.Int64).sum(new long[] { 1, 2, 3 });
        var mean = sum.mul_(2).add_(pixels).div_(2 * pixels, RoundingMode.floor).to(ScalarType.Float32).view(n, 1, 1);
        var r = ImageKernels.Intensities(images.device);
        var table = r.sub(mean).mul_(v.view(n, 1, 1)).add_(mean).trunc_();
        return ImageKernels.ToLut(table, n, images.shape[1]);
    }

    // ---- direct ops

    static Tensor Color(StageSlice s) =>
        ImageKernels.Blend(ImageKernels.Luminance(s.Images), s.Images.to(ScalarType.Float32), s.Values);

    static Tensor Sharpness(StageSlice s) =>
        ImageKernels.Blend(ImageKernels.Smooth(s.Images), s.Images.to(ScalarType.Float32), s.Values);

    /// <summary>Blends sample i with sample (i + 1) mod N of the stage input.</summary>
    static Tensor SamplePairing(StageSlice s)
    {
        var partners = s.Batch.index_select(0, s.Indices.add(1).remainder_(s.Batch.shape[0]));
        return ImageKernels.Blend(s.Images.to(ScalarType.Float32), partners.to(ScalarType.Float32), s.Values);
    }

    static Tensor Cutout(StageSlice s)
    {
        var cy = Draw.Below(s.Uniforms.select(1, 0), s.Images.shape[2]);
        var cx = Draw.Below(s.Uniforms.select(1, 1), s.Images.shape[3]);
        return ImageKernels.CutOut(s.Images, s.Values.trunc().to(ScalarType.Int64), cy, cx, ImageKernels.Fill);
    }
}
