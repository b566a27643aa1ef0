using System;
using System.Buffers;
using SkiaSharp;

namespace AdvAA.Core.Data;

/// <summary>
/// Decodes one encoded image of any size and mode into a size×size RGB crop: grayscale, 16-bit and
/// CMYK images convert to RGB uint8 as Skia's codecs give them; transparency is composited on the
/// fill grey (128, the ops' fill). A JPEG larger than the crop needs is decoded at a reduced scale
/// in the DCT domain (1/8 steps), the largest reduction that still covers the box with
/// <c>size</c> pixels, which is where ImageNet's decode time goes.
/// </summary>
internal static class CropDecoder
{
    /// <summary>The grey that transparent pixels are composited on.</summary>
    internal const byte Fill = 128;

    /// <summary>
    /// Decodes <paramref name="image"/>, takes the box <paramref name="choose"/> gives for its header's
    /// width and height (and whether to mirror it), resizes it to <paramref name="size"/>×<paramref name="size"/>
    /// and writes the three planes into <paramref name="planes"/> (3·size² bytes). What is wrong with
    /// the image is a <see cref="DataFormatException"/> naming it.
    /// </summary>
    internal static unsafe void Decode(ImageFolders.EncodedImage image, Func<int, int, (CropBox Box, bool Flip)> choose, int size, Span<byte> planes)
    {
        byte[] encoded = image.Content ?? ImageFiles.Read(image.Origin);
        using SKData data = SKData.CreateCopy(encoded);
        using SKCodec? codec = SKCodec.Create(data);
        if (codec == null) throw new DataFormatException($"{image.Origin}: {ImageFiles.Undecodable}");
        (int width, int height) = ImageFiles.Checked(codec.Info.Width, codec.Info.Height, image.Origin);
        (CropBox box, bool flip) = choose(width, height);
        SKSizeI scaled = ScaledSize(codec, width, height, box, size);
        double sx = scaled.Width / (double)width, sy = scaled.Height / (double)height;
        int x = Math.Min(scaled.Width - 1, (int)Math.Round(box.X * sx)), y = Math.Min(scaled.Height - 1, (int)Math.Round(box.Y * sy));
        var region = SKRectI.Create(x, y, Math.Clamp((int)Math.Round(box.Width * sx), 1, scaled.Width - x), Math.Clamp((int)Math.Round(box.Height * sy), 1, scaled.Height - y));
        int regionBytes = checked(region.Width * region.Height * 4);
        byte[] decoded = ArrayPool<byte>.Shared.Rent(regionBytes);
        byte[] crop = ArrayPool<byte>.Shared.Rent(size * size * 4);
        try
        {
            SKCodecResult result = DecodeRegion(codec, scaled, region, decoded);
            if (result != SKCodecResult.Success) throw new DataFormatException($"{image.Origin}: corrupt image: decoding stopped with {result}");
            if (codec.Info.AlphaType != SKAlphaType.Opaque) Composite(decoded.AsSpan(0, regionBytes));
            var info = new SKImageInfo(region.Width, region.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
            if (!Resize(decoded, info, SKRectI.Create(0, 0, region.Width, region.Height), crop, size))
                throw new DataFormatException($"{image.Origin}: the {width}x{height} image's box {box} could not be resized to {size}x{size}");
            WritePlanes(crop, size, flip, planes);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(decoded);
            ArrayPool<byte>.Shared.Return(crop);
        }
    }

    /// <summary>
    /// The pixels of <paramref name="region"/> of the image decoded at <paramref name="scaled"/> size,
    /// as RGBA rows of the region's width. A JPEG decodes only the region's columns (libjpeg-turbo's
    /// cropped scanlines) and stops after its last row, the way TensorFlow's decode_and_crop_jpeg
    /// serves RandomResizedCrop; other images decode whole and the region is copied out.
    /// </summary>
    static unsafe SKCodecResult DecodeRegion(SKCodec codec, SKSizeI scaled, SKRectI region, byte[] target)
    {
        // No colour space on the target: pixel values are taken as stored, as PIL's convert("RGB") does.
        var full = new SKImageInfo(scaled.Width, scaled.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        int rowBytes = region.Width * 4;
        fixed (byte* p = target)
        {
            if (codec.EncodedFormat == SKEncodedImageFormat.Jpeg
                && codec.StartScanlineDecode(full, new SKCodecOptions(SKRectI.Create(region.Left, 0, region.Width, scaled.Height))) == SKCodecResult.Success)
            {
                if (region.Top > 0 && !codec.SkipScanlines(region.Top)) return SKCodecResult.IncompleteInput;
                return codec.GetScanlines((IntPtr)p, region.Height, rowBytes) == region.Height ? SKCodecResult.Success : SKCodecResult.IncompleteInput;
            }
            if (region.Width == scaled.Width && region.Height == scaled.Height) return codec.GetPixels(full, (IntPtr)p);
            byte[] whole = ArrayPool<byte>.Shared.Rent(checked(scaled.Width * scaled.Height * 4));
            try
            {
                SKCodecResult result;
                fixed (byte* w = whole) result = codec.GetPixels(full, (IntPtr)w);
                if (result != SKCodecResult.Success) return result;
                for (int row = 0; row < region.Height; row++)
                    whole.AsSpan(((region.Top + row) * scaled.Width + region.Left) * 4, rowBytes).CopyTo(target.AsSpan(row * rowBytes, rowBytes));
                return result;
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(whole);
            }
        }
    }

    /// <summary>The size to decode at: for a JPEG the smallest n/8 scale whose box still has <paramref name="size"/> pixels each way; else the image's own.</summary>
    static SKSizeI ScaledSize(SKCodec codec, int width, int height, CropBox box, int size)
    {
        if (codec.EncodedFormat != SKEncodedImageFormat.Jpeg) return new SKSizeI(width, height);
        for (int eighths = 1; eighths < 8; eighths++)
        {
            SKSizeI candidate = codec.GetScaledDimensions(eighths / 8f);
            if ((long)box.Width * candidate.Width >= (long)size * width && (long)box.Height * candidate.Height >= (long)size * height) return candidate;
        }
        return new SKSizeI(width, height);
    }

    /// <summary>Unpremultiplied RGBA composited on <see cref="Fill"/>, in place: c·a + 128·(1 − a), rounded.</summary>
    internal static void Composite(Span<byte> rgba)
    {
        for (int at = 0; at < rgba.Length; at += 4)
        {
            int a = rgba[at + 3];
            if (a == 255) continue;
            for (int c = 0; c < 3; c++) rgba[at + c] = (byte)((rgba[at + c] * a + Fill * (255 - a) + 127) / 255);
            rgba[at + 3] = 255;
        }
    }

    /// <summary>The box of the decoded pixels resized to size×size RGBA (Skia's high quality: mipmaps when shrinking, Catmull-Rom when enlarging, a copy at the same size).</summary>
    static unsafe bool Resize(byte[] decoded, SKImageInfo info, SKRectI box, byte[] crop, int size)
    {
        var sampling = box.Width > 2 * size || box.Height > 2 * size ? new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.Linear)
            : box.Width > size || box.Height > size ? new SKSamplingOptions(SKFilterMode.Linear)
            : new SKSamplingOptions(SKCubicResampler.CatmullRom);
        fixed (byte* s = decoded, d = crop)
        {
            using var source = new SKPixmap(info, (IntPtr)s);
            using SKPixmap? region = source.ExtractSubset(box);
            if (region is null) return false;
            using var target = new SKPixmap(new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Unpremul), (IntPtr)d);
            return box.Width == size && box.Height == size ? region.ReadPixels(target) : region.ScalePixels(target, sampling);
        }
    }

    /// <summary>RGBA rows to R, G and B planes, mirrored left-right when <paramref name="flip"/>.</summary>
    static void WritePlanes(byte[] rgba, int size, bool flip, Span<byte> planes)
    {
        int plane = size * size;
        Span<byte> r = planes[..plane], g = planes.Slice(plane, plane), b = planes.Slice(2 * plane, plane);
        for (int row = 0; row < size; row++)
            for (int col = 0; col < size; col++)
            {
                int at = 4 * (row * size + (flip ? size - 1 - col : col)), i = row * size + col;
                (r[i], g[i], b[i]) = (rgba[at], rgba[at + 1], rgba[at + 2]);
            }
    }
}
