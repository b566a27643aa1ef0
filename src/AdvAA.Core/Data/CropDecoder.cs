using System;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Data;

/// <summary>
/// Decodes one encoded image of any size and mode into a size×size RGB crop: grayscale, 16-bit and
/// CMYK images convert to RGB uint8 as Skia's codecs give them; transparency is composited on the
/// fill grey (128, the ops' fill). A JPEG larger than the crop needs is decoded at a reduced scale
/// in the DCT domain (1/8 steps), the largest reduction that still covers the box with
/// <c>size</c> pixels: that is where ImageNet's decode time goes. The box, a view of the decoded
/// image, is then resized as torchvision's RandomResizedCrop does (bilinear with antialiasing,
/// libtorch's uint8 kernel). Skia's cropped scanline decoding (only the box's columns and rows)
/// was faster but corrupted the native heap on a truncated JPEG, so the image decodes whole.
/// </summary>
internal static class CropDecoder
{
    /// <summary>The grey that transparent pixels are composited on.</summary>
    internal const byte Fill = 128;

    /// <summary>
    /// Decodes <paramref name="image"/>, takes the box <paramref name="choose"/> gives for its header's
    /// width and height, resizes it to <paramref name="size"/>×<paramref name="size"/> and writes it
    /// into <paramref name="target"/> (uint8 [3, size, size]). What is wrong with the image is a
    /// <see cref="DataFormatException"/> naming it.
    /// </summary>
    internal static unsafe void Decode(ImageFolders.EncodedImage image, Func<int, int, CropBox> choose, int size, Tensor target)
    {
        byte[] encoded = image.Bytes();
        using SKData data = SKData.CreateCopy(encoded);
        using SKCodec? codec = SKCodec.Create(data);
        if (codec == null) throw new DataFormatException($"{image.Origin}: {ImageFiles.Undecodable}");
        (int width, int height) = ImageFiles.Checked(codec.Info.Width, codec.Info.Height, image.Origin);
        CropBox box = choose(width, height);
        SKSizeI scaled = ScaledSize(codec, width, height, box, size);
        double sx = scaled.Width / (double)width, sy = scaled.Height / (double)height;
        int x = Math.Min(scaled.Width - 1, (int)Math.Round(box.X * sx)), y = Math.Min(scaled.Height - 1, (int)Math.Round(box.Y * sy));
        var region = SKRectI.Create(x, y, Math.Clamp((int)Math.Round(box.Width * sx), 1, scaled.Width - x), Math.Clamp((int)Math.Round(box.Height * sy), 1, scaled.Height - y));
        // The image at the reduced scale, decoded straight into a tensor's memory; the region is a view of it.
        using Tensor whole = empty(1, scaled.Height, scaled.Width, 4, ScalarType.Byte);
        var info = new SKImageInfo(scaled.Width, scaled.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        SKCodecResult result;
        // No colour space on the target: pixel values are taken as stored, as PIL's convert("RGB") does.
        fixed (byte* pixels = whole.bytes) result = codec.GetPixels(info, (IntPtr)pixels);
        if (result != SKCodecResult.Success) throw new DataFormatException($"{image.Origin}: corrupt image: decoding stopped with {result}");
        if (codec.Info.AlphaType != SKAlphaType.Opaque) Composite(whole.bytes);
        using Tensor rows = whole.narrow(1, region.Top, region.Height);
        using Tensor rgba = rows.narrow(2, region.Left, region.Width);
        // [1,4,h,w] in channels-last strides: the layout libtorch's vectorised uint8 resize takes.
        using Tensor planar = rgba.permute(0, 3, 1, 2);
        using Tensor resized = region.Width == size && region.Height == size
            ? planar.alias()
            : nn.functional.interpolate(planar, [size, size], mode: InterpolationMode.Bilinear, align_corners: false, antialias: true);
        using Tensor first = resized[0];
        using Tensor rgb = first.narrow(0, 0, 3);
        target.copy_(rgb);
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
}
