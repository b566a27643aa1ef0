using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Augment;

/// <summary>Writes a grid of uint8 images as a PNG (previews, reports).</summary>
public static class ImageGrid
{
    const int Gap = 2;

    /// <summary>
    /// Writes images uint8 [rows·columns, C, H, W] (row-major, any device; C = 1 or 3) as a PNG: each image
    /// enlarged <paramref name="scale"/> times (nearest), 2-pixel white gaps, and a label left of each row if given.
    /// </summary>
    public static void WritePng(string path, Tensor images, int columns, IReadOnlyList<string>? rowLabels = null, int scale = 3) =>
        File.WriteAllBytes(path, EncodePng(images, columns, rowLabels, scale));

    /// <summary>The grid of <see cref="WritePng"/> as PNG bytes, with its height and width.</summary>
    public static byte[] EncodePng(Tensor images, int columns, IReadOnlyList<string>? rowLabels = null, int scale = 3) =>
        EncodePng(images, columns, rowLabels, scale, out _, out _);

    public static byte[] EncodePng(Tensor images, int columns, IReadOnlyList<string>? rowLabels, int scale, out int height, out int width)
    {
        BatchAugment.CheckImages(images);
        long n = images.shape[0];
        if (columns < 1 || n % columns != 0)
            throw new AugmentException($"a grid of {n} images cannot have {columns} columns; expected a divisor of {n}");
        if (scale < 1)
            throw new AugmentException($"scale must be at least 1, got {scale}");
        int rows = (int)(n / columns), channels = (int)images.shape[1], h = (int)images.shape[2], w = (int)images.shape[3];
        if (rowLabels != null && rowLabels.Count != rows)
            throw new AugmentException($"{rowLabels.Count} row labels for {rows} rows");

        byte[] pixels;
        using (var hwc = images.permute(0, 2, 3, 1).contiguous().cpu())
            pixels = hwc.data<byte>().ToArray();

        using var typeface = SKTypeface.Default;
        using var font = new SKFont(typeface, 12 * Math.Max(1, scale / 2f));
        using var ink = new SKPaint { Color = SKColors.Black, IsAntialias = true };
        int labelWidth = rowLabels == null ? 0 : (int)Math.Ceiling(rowLabels.Max(l => font.MeasureText(l))) + 3 * Gap;
        int cellW = w * scale, cellH = h * scale;
        width = labelWidth + columns * (cellW + Gap) + Gap;
        height = rows * (cellH + Gap) + Gap;

        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        var canvasBytes = new byte[width * height * 4];
        Array.Fill(canvasBytes, (byte)255);
        for (int i = 0; i < n; i++)
        {
            int left = labelWidth + Gap + (i % columns) * (cellW + Gap), top = Gap + (i / columns) * (cellH + Gap);
            for (int y = 0; y < cellH; y++)
                for (int x = 0; x < cellW; x++)
                {
                    int source = ((i * h + y / scale) * w + x / scale) * channels;
                    int target = ((top + y) * width + left + x) * 4;
                    canvasBytes[target] = pixels[source];
                    canvasBytes[target + 1] = pixels[source + (channels == 3 ? 1 : 0)];
                    canvasBytes[target + 2] = pixels[source + (channels == 3 ? 2 : 0)];
                }
        }
        Marshal.Copy(canvasBytes, 0, bitmap.GetPixels(), canvasBytes.Length);

        using (var canvas = new SKCanvas(bitmap))
            for (int r = 0; r < (rowLabels?.Count ?? 0); r++)
                canvas.DrawText(rowLabels![r], Gap, Gap + r * (cellH + Gap) + cellH / 2f + font.Size / 3, SKTextAlign.Left, font, ink);

        using var image = SKImage.FromBitmap(bitmap);
        using var png = image.Encode(SKEncodedImageFormat.Png, 100);
        return png.ToArray();
    }
}
