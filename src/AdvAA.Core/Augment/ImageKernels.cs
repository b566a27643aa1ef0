using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Augment;

/// <summary>
/// Batched image arithmetic with PIL 9.4's semantics (uint8 rounding and clipping as PIL does).
/// Every function takes uint8 [n,C,H,W] (or per-sample parameters [n]) and works for any n at once.
/// </summary>
internal static class ImageKernels
{
    /// <summary>The grey that geometric ops and Cutout put where there is no image.</summary>
    public const int Fill = 128;

    /// <summary>
    /// PIL's affine transform with NEAREST (Image.transform(AFFINE) and Image.rotate), matrices float64 [n,2,3]
    /// mapping output pixel centres (x + 0.5, y + 0.5) to input coordinates. PIL computes these coordinates in
    /// 16.16 fixed point (coefficients rounded to 1/65536, then exact integer steps) and takes the pixel they
    /// fall in; pure shifts and scales (m01 = m10 = 0) it computes in floating point. Outside: <paramref name="fill"/>.
    /// </summary>
    public static Tensor AffineNearest(Tensor images, Tensor matrices, int fill)
    {
        long n = images.shape[0], h = images.shape[2], w = images.shape[3];
        var m = matrices.to(ScalarType.Float64);
        Tensor At(int row, int col) => m.select(1, row).select(1, col).view(n, 1);
        var exact = At(0, 1).eq(0).logical_and_(At(1, 0).eq(0));   // PIL's scaling path: no rounding
        // Coefficients in units of 1/65536: rounded to whole units (fixed point) unless on the scaling path.
        Tensor Units(Tensor v) { var u = v.mul(65536); return torch.where(exact, u, u.add(0.5).floor_()); }
        var xs = torch.arange(w, ScalarType.Float64, images.device).view(1, w);
        var ys = torch.arange(h, ScalarType.Float64, images.device).view(1, h);
        Tensor a = At(0, 0), b = At(0, 1), c = At(0, 2), d = At(1, 0), e = At(1, 1), f = At(1, 2);
        // x_in = a·(x+½) + b·(y+½) + c: a part along x holding the origin, plus a part along y (and likewise y_in).
        // On the fixed-point path both parts are whole units; on the scaling path the other part is 0 and the
        // own part may be fractional, where floor(floor(u) / 65536) = floor(u / 65536). So: floor, add as integers, shift.
        var xOwn = xs.mul(Units(a)).add_(Units(c.add(a.mul(0.5)).add_(b.mul(0.5)))).floor_().to(ScalarType.Int64).view(n, 1, w);
        var xOther = ys.mul(Units(b)).to(ScalarType.Int64).view(n, h, 1);
        var yOwn = ys.mul(Units(e)).add_(Units(f.add(d.mul(0.5)).add_(e.mul(0.5)))).floor_().to(ScalarType.Int64).view(n, h, 1);
        var yOther = xs.mul(Units(d)).to(ScalarType.Int64).view(n, 1, w);
        return GatherPixels(images, yOwn.add(yOther).bitwise_right_shift_(16), xOwn.add(xOther).bitwise_right_shift_(16), fill);
    }

    /// <summary>
    /// out[n,c,y,x] = images[n,c,srcY,srcX] for integer source positions srcY, srcX (int64, broadcastable to [n,H,W]),
    /// or <paramref name="fill"/> where a position is outside the image.
    /// </summary>
    public static Tensor GatherPixels(Tensor images, Tensor srcY, Tensor srcX, int fill)
    {
        long n = images.shape[0], c = images.shape[1], h = images.shape[2], w = images.shape[3];
        // A one-pixel frame of fill: every outside position clamps onto it, so no mask is needed.
        var framed = torch.nn.functional.pad(images, new long[] { 1, 1, 1, 1 }, PaddingModes.Constant, fill);
        var index = srcY.clamp(-1, h).add_(1).mul_(w + 2).add(srcX.clamp(-1, w).add_(1)).expand(n, h, w);
        return framed.reshape(n, c, (h + 2) * (w + 2))
            .gather(2, index.reshape(n, 1, h * w).expand(n, c, h * w))
            .view(n, c, h, w);
    }

    /// <summary>Applies a lookup table per sample and channel: lut uint8 [n,C,256].</summary>
    public static Tensor ApplyLut(Tensor images, Tensor lut)
    {
        long n = images.shape[0], c = images.shape[1], h = images.shape[2], w = images.shape[3];
        // int32 positions into the flattened tables: half the memory of gather's int64 index.
        var offsets = torch.arange(n * c, ScalarType.Int32, images.device).mul_(256).view(n, c, 1);
        var positions = images.reshape(n, c, h * w).to(ScalarType.Int32).add_(offsets).view(-1);
        return lut.contiguous().view(-1).index_select(0, positions).view(n, c, h, w);
    }

    /// <summary>The 256 intensities as float32 [1,1,256]: the argument of every lookup table.</summary>
    public static Tensor Intensities(Device device) => torch.arange(256, ScalarType.Float32, device).view(1, 1, 256);

    /// <summary>A float32 table [n,1|C,256] (already integral) as uint8 [n,C,256].</summary>
    public static Tensor ToLut(Tensor table, long n, long channels) =>
        table.clamp(0, 255).to(ScalarType.Byte).expand(n, channels, 256);

    /// <summary>
    /// PIL Image.blend(a, b, alpha) on uint8 data: a + alpha·(b − a) in float32, truncated and clipped to 0..255.
    /// a, b: float32 (broadcastable to [n,C,H,W]); alpha: float32 [n].
    /// </summary>
    public static Tensor Blend(Tensor a, Tensor b, Tensor alpha)
    {
        var weight = alpha.view(-1, 1, 1, 1);
        // Separate multiply and add (no fused multiply-add), as PIL computes it.
        return b.sub(a).mul_(weight).add_(a).clamp_(0, 255).to(ScalarType.Byte);
    }

    /// <summary>
    /// PIL's RGB → L conversion, (19595 R + 38470 G + 7471 B + 32768) >> 16 (exact in float32);
    /// a one-channel image is its own L. Returns float32 [n,1,H,W].
    /// </summary>
    public static Tensor Luminance(Tensor images)
    {
        var f = images.to(ScalarType.Float32);
        if (images.shape[1] == 1) return f;
        var weights = torch.tensor(new float[] { 19595, 38470, 7471 }, device: images.device).view(1, 3, 1, 1);
        return f.mul_(weights).sum(1, keepdim: true).add_(32768).div_(65536).floor_();
    }

    /// <summary>
    /// PIL's ImageFilter.SMOOTH (3×3 kernel 1 1 1 / 1 5 1 / 1 1 1, divided by 13, rounded half up), with
    /// the border rows and columns kept from the input, as PIL's 3×3 filter does. Returns float32.
    /// </summary>
    public static Tensor Smooth(Tensor images)
    {
        long h = images.shape[2], w = images.shape[3];
        var f = images.to(ScalarType.Float32);
        if (h < 3 || w < 3) return f;
        // Integer sums of shifted copies: exact, unlike a convolution's algorithm choices.
        var rows = f.narrow(3, 0, w - 2).add(f.narrow(3, 1, w - 2)).add_(f.narrow(3, 2, w - 2));
        var box = rows.narrow(2, 0, h - 2).add(rows.narrow(2, 1, h - 2)).add_(rows.narrow(2, 2, h - 2));
        var centre = f.narrow(2, 1, h - 2).narrow(3, 1, w - 2);
        // round(S / 13) with S integral: S / 13 is never within 1/26 of a half, so float32 is exact here.
        var smooth = box.add_(centre.mul(4)).add_(6.5).div_(13).floor_();
        var result = f.clone();
        result.narrow(2, 1, h - 2).narrow(3, 1, w - 2).copy_(smooth);
        return result;
    }

    /// <summary>
    /// PIL ImageOps.equalize per sample and channel: step = (pixels − count of the highest occupied bin) / 255;
    /// lut[i] = (step / 2 + pixels below i) / step (integer division), identity where step is 0. Returns uint8 [n,C,256].
    /// </summary>
    public static Tensor EqualizeLut(Tensor images)
    {
        long n = images.shape[0], c = images.shape[1], pixels = images.shape[2] * images.shape[3];
        var device = images.device;
        var histogram = torch.zeros(new[] { n * c, 256L }, ScalarType.Int32, device).scatter_add_(1,
            images.reshape(n * c, pixels).to(ScalarType.Int64), torch.ones(new[] { n * c, pixels }, ScalarType.Int32, device))
            .to(ScalarType.Int64);
        var bins = torch.arange(256, ScalarType.Int64, device).view(1, 256);
        var highest = histogram.gt(0).to(ScalarType.Int64).mul_(bins).amax(new long[] { 1 }, keepdim: true);
        var step = histogram.gather(1, highest).neg_().add_(pixels).div_(255, RoundingMode.floor);
        var below = histogram.cumsum(1).sub_(histogram);
        var lut = below.add_(step.div(2, RoundingMode.floor)).div_(step.clamp_min(1), RoundingMode.floor).clamp_max_(255);
        return torch.where(step.gt(0), lut, bins).to(ScalarType.Byte).view(n, c, 256);
    }

    /// <summary>
    /// PIL ImageOps.autocontrast (cutoff 0) per sample and channel: lo..hi stretched to 0..255 with PIL's
    /// arithmetic, lut[i] = int(i·scale + offset), scale = 255 / (hi − lo), offset = −lo·scale (float64, as
    /// Python computes it), clipped; identity where hi ≤ lo. Returns uint8 [n,C,256].
    /// </summary>
    public static Tensor AutoContrastLut(Tensor images)
    {
        long n = images.shape[0], c = images.shape[1];
        var dims = new long[] { 2, 3 };
        var lo = images.amin(dims).to(ScalarType.Float64).view(n, c, 1);
        var hi = images.amax(dims).to(ScalarType.Float64).view(n, c, 1);
        var span = hi.sub(lo);
        var scale = torch.full_like(span, 255.0).div_(span.clamp_min(1));
        var offset = lo.neg().mul_(scale);
        var r = torch.arange(256, ScalarType.Float64, images.device).view(1, 1, 256);
        var stretched = r.mul(scale).add_(offset).trunc_();
        return ToLut(torch.where(span.gt(0), stretched, r.expand(n, c, 256)), n, c);
    }

    /// <summary>
    /// Cutout: fills, per sample, the rows [cy − s/2, cy − s/2 + s) × columns [cx − s/2, cx − s/2 + s),
    /// clipped at the borders, with <paramref name="fill"/>. sides, cy, cx: int64 [n].
    /// </summary>
    public static Tensor CutOut(Tensor images, Tensor sides, Tensor cy, Tensor cx, int fill)
    {
        long h = images.shape[2], w = images.shape[3];
        var device = images.device;
        var half = sides.div(2, RoundingMode.floor);
        var y0 = cy.sub(half).unsqueeze(1);
        var x0 = cx.sub(half).unsqueeze(1);
        var s = sides.unsqueeze(1);
        var ys = torch.arange(h, ScalarType.Int64, device).view(1, h);
        var xs = torch.arange(w, ScalarType.Int64, device).view(1, w);
        var inRows = ys.ge(y0).logical_and_(ys.lt(y0.add(s)));
        var inCols = xs.ge(x0).logical_and_(xs.lt(x0.add(s)));
        var mask = inRows.unsqueeze(2).logical_and(inCols.unsqueeze(1)).unsqueeze(1); // [n,1,H,W]
        return images.masked_fill(mask, fill);
    }
}
