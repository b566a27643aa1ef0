using System;
using System.Globalization;
using System.IO;
using SkiaSharp;

namespace AdvAA.Core.Data;

/// <summary>
/// Reading encoded images without trusting them: only regular files (links followed; never a
/// device, pipe or socket), a pixel limit checked on the header before any pixel buffer exists, and
/// an encoded size that must be plausible for the header's dimensions before it is read whole.
/// </summary>
public static class ImageFiles
{
    /// <summary>The environment variable that sets <see cref="MaxPixels"/>.</summary>
    public const string PixelsVariable = "ADVAA_MAX_IMAGE_PIXELS";

    /// <summary>PIL's limit (twice its <c>MAX_IMAGE_PIXELS</c>, where it raises DecompressionBombError).</summary>
    public const long DefaultMaxPixels = 178_956_970;

    /// <summary>The largest limit that can be set: the RGBA decode buffer of such an image still fits one .NET array.</summary>
    public static readonly long LargestMaxPixels = Array.MaxLength / 4;

    /// <summary>
    /// Bytes an encoded image may take beyond 8 per pixel (16-bit RGBA PNG stored uncompressed is
    /// about 8): row filters, chunks, ICC profiles, EXIF with its thumbnail.
    /// </summary>
    const long MetadataAllowance = 16L << 20;

    /// <summary>The bytes of an archive entry read to find its dimensions before it is read whole.</summary>
    const int HeaderPrefix = 1 << 20;

    /// <summary>The most pixels (width × height) an image may have: <see cref="PixelsVariable"/>, else <see cref="DefaultMaxPixels"/>.</summary>
    /// <exception cref="ConfigException">The variable is set to something other than a whole number from 1 to <see cref="LargestMaxPixels"/>.</exception>
    public static long MaxPixels
    {
        get
        {
            string? text = Environment.GetEnvironmentVariable(PixelsVariable);
            if (string.IsNullOrEmpty(text)) return DefaultMaxPixels;
            if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long pixels) && pixels >= 1 && pixels <= LargestMaxPixels) return pixels;
            throw new ConfigException($"{PixelsVariable}={text}: expected the most pixels (width × height) an image may have, a whole number from 1 to {LargestMaxPixels}");
        }
    }

    /// <summary>The most encoded bytes an image of <paramref name="pixels"/> pixels plausibly takes.</summary>
    static long PlausibleBytes(long pixels) => 8 * pixels + MetadataAllowance;

    /// <summary>The regular file <paramref name="path"/> names (<see cref="RegularFile"/>); anything else is an error naming it.</summary>
    internal static FileInfo Regular(string path) =>
        RegularFile.Resolve(path, out string? problem) ?? throw new DataFormatException($"{path}: {problem}");

    /// <summary>The bytes of the image file <paramref name="path"/>: a regular file no larger than an image within the pixel limit can be.</summary>
    internal static byte[] Read(string path)
    {
        FileInfo file = Regular(path);
        long limit = PlausibleBytes(MaxPixels);
        if (file.Length > limit)
            throw new DataFormatException($"{path}: {file.Length} bytes, more than an image within the pixel limit ({MaxPixels} pixels, {PixelsVariable}) can take");
        return DataFormatException.Reading(path, () =>
        {
            using var stream = new FileStream(file.FullName, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
            var bytes = new byte[file.Length];
            int read = stream.ReadAtLeast(bytes, bytes.Length, throwOnEndOfStream: false);
            return read == bytes.Length ? bytes : throw new DataFormatException($"{path}: the file ended at byte {read} of {bytes.Length} while it was read");
        });
    }

    /// <summary>
    /// An archive entry's bytes (<paramref name="length"/> as its header says), read whole only once
    /// its image header has been found in the first bytes and the dimensions are within the pixel
    /// limit and plausible for the entry's size: a compressed run of zeros named .png costs a
    /// megabyte, not its length.
    /// </summary>
    internal static byte[] ReadEntry(Stream data, long length, string origin)
    {
        if (length <= 0) throw new DataFormatException($"{origin}: empty entry; expected a JPEG or PNG image");
        if (length > PlausibleBytes(MaxPixels))
            throw new DataFormatException($"{origin}: {length} bytes, more than an image within the pixel limit ({MaxPixels} pixels, {PixelsVariable}) can take");
        var prefix = new byte[(int)Math.Min(length, HeaderPrefix)];
        int read = data.ReadAtLeast(prefix, prefix.Length, throwOnEndOfStream: false);
        if (read < prefix.Length) throw new DataFormatException($"{origin}: the archive ends inside this entry (byte {read} of {length})");
        (int width, int height) = Dimensions(new MemoryStream(prefix, writable: false), origin);
        if (length == prefix.Length) return prefix;
        long plausible = PlausibleBytes((long)width * height);
        if (length > plausible)
            throw new DataFormatException($"{origin}: {length} bytes for a {width}x{height} image, far more than such an image takes (at most {plausible}); not read");
        var bytes = new byte[length];
        prefix.CopyTo(bytes, 0);
        read = data.ReadAtLeast(bytes.AsSpan(prefix.Length), (int)(length - prefix.Length), throwOnEndOfStream: false);
        return read == length - prefix.Length ? bytes : throw new DataFormatException($"{origin}: the archive ends inside this entry (byte {prefix.Length + read} of {length})");
    }

    /// <summary>
    /// The width and height in the header of an encoded image (it need not be complete), checked
    /// against the pixel limit before anything the size of the image exists.
    /// </summary>
    /// <exception cref="DataFormatException">No JPEG or PNG header, or more pixels than <see cref="MaxPixels"/>.</exception>
    internal static (int Width, int Height) Dimensions(Stream encoded, string origin)
    {
        using SKCodec? codec = SKCodec.Create(encoded);
        if (codec == null) throw new DataFormatException($"{origin}: {Undecodable}");
        return Checked(codec.Info.Width, codec.Info.Height, origin);
    }

    /// <summary>Width and height as a header gives them, when within the pixel limit.</summary>
    internal static (int Width, int Height) Checked(int width, int height, string origin)
    {
        long pixels = (long)width * height, limit = MaxPixels;
        if (width <= 0 || height <= 0)
            throw new DataFormatException($"{origin}: {Undecodable} (its header gives {width}x{height} pixels)");
        if (pixels > limit)
            throw new DataFormatException(
                $"{origin}: the image is {width}x{height} ({pixels} pixels), more than the limit of {limit} pixels; refused before decoding (set {PixelsVariable} to allow larger images)");
        return (width, height);
    }

    /// <summary>
    /// The canonical path of an existing file or folder, every link followed (POSIX realpath); null
    /// when it does not exist. Elsewhere than Linux and macOS, the final target of a link.
    /// </summary>
    internal static string? RealPath(string path)
    {
        if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS())
        {
            IntPtr resolved = realpath(path, IntPtr.Zero);
            if (resolved == IntPtr.Zero) return null;
            try { return System.Runtime.InteropServices.Marshal.PtrToStringUTF8(resolved); }
            finally { free(resolved); }
        }
        FileSystemInfo info = Directory.Exists(path) ? new DirectoryInfo(path) : new FileInfo(path);
        if (!info.Exists) return null;
        return (info.LinkTarget is null ? info : info.ResolveLinkTarget(returnFinalTarget: true))?.FullName;
    }

    [System.Runtime.InteropServices.DllImport("libc", CharSet = System.Runtime.InteropServices.CharSet.Ansi)]
    static extern IntPtr realpath([System.Runtime.InteropServices.MarshalAs(System.Runtime.InteropServices.UnmanagedType.LPUTF8Str)] string path, IntPtr resolved);

    [System.Runtime.InteropServices.DllImport("libc")]
    static extern void free(IntPtr pointer);

    internal const string Undecodable = "corrupt image: not decodable as JPEG or PNG";
}
