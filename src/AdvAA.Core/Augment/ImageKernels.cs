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
        var device = images.device;
        var m = matrices.to(ScalarType.Float64);                             // rows (a b c), (d e f)
        var exact = m.select(1, 0).select(1, 1).eq(0).logical_and_(m.select(1, 1).select(1, 0).eq(0)).view(n, 1, 1);
        // Per row: the coefficient along x, along y, and the value at pixel (0, 0)'s centre, in units of 1/65536;
        // rounded to whole units (PIL's fixed point) except on the scaling path.
        var atCentre = m.narrow(2, 0, 1).add(m.narrow(2, 1, 1)).mul_(0.5).add_(m.narrow(2, 2, 1));
        var raw = torch.cat(new[] { m.narrow(2, 0, 2), atCentre }, 2).mul_(65536);
        var units = torch.where(exact, raw, raw.add(0.5).floor_());
        // x_in = origin_x + a·x + b·y and y_in = origin_y + d·x + e·y. Each is split into a part along its own
        // axis (with the origin) and a part along the other: on the fixed-point path both are whole units; on
        // the scaling path the other part is 0 and floor(floor(u) / 65536) = floor(u / 65536). So each part is
        // floored on its own, and the sum is an integer shift. Parts are bounded so the int32 sum cannot overflow
        // (a built-in op's parts have one sign, so bounding them never moves a point into the image).
        var xs = torch.arange(w, ScalarType.Float64, device).view(1, 1, w);
        var ys = torch.arange(h, ScalarType.Float64, device).view(1, 1, h);
        // Row r of `along` holds coordinate r's part along that axis; the origin joins x_in's x part, y_in's y part.
        Tensor Part(int axis, Tensor positions)
        {
            var along = units.narrow(2, axis, 1).mul(positions);
            along.select(1, axis).add_(units.select(1, axis).narrow(1, 2, 1));
            return along.floor_().clamp_(-(1 << 29), 1 << 29).to(ScalarType.Int32);
        }
        var alongX = Part(0, xs);  // [n,2,W]: origin_x + a·x, d·x
        var alongY = Part(1, ys);  // [n,2,H]: b·y, origin_y + e·y
        var x = alongX.select(1, 0).view(n, 1, w).add(alongY.select(1, 0).view(n, h, 1)).bitwise_right_shift_(16);
        var y = alongY.select(1, 1).view(n, h, 1).add(alongX.select(1, 1).view(n, 1, w)).bitwise_right_shift_(16);
        return GatherPixels(images, y, x, fill);
    }

    /// <summary>
    /// out[n,c,y,x] = images[n,c,srcY,srcX] for integer source positions srcY, srcX (int32 or int64, broadcastable to [n,H,W]),
    /// or <paramref name="fill"/> where a position is outside the image.
    /// </summary>
    public static Tensor GatherPixels(Tensor images, Tensor srcY, Tensor srcX, int fill)
    {
        long n = images.shape[0], c = images.shape[1], h = images.shape[2], w = images.shape[3];
        // A one-pixel frame of fill: every outside position clamps onto it, so no mask is needed.
        var framed = torch.nn.functional.pad(images, new long[] { 1, 1, 1, 1 }, PaddingModes.Constant, fill);
        var index = srcY.clamp(-1, h).add_(1).mul_(w + 2).add(srcX.clamp(-1, w).add_(1)).expand(n, h, w).to(ScalarType.Int64);
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
        Tensor Channel(int c) => f.narrow(1, c, 1);
        return Channel(0).mul(19595).add_(Channel(1).mul(38470)).add_(Channel(2).mul(7471)).add_(32768).div_(65536).floor_();
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
