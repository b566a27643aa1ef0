using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Formats.Tar;
using System.IO;
using System.IO.Compression;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using SkiaSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Data;

/// <summary>
/// Image folders as torchvision's ImageFolder reads them: <c>&lt;root&gt;/&lt;class&gt;/*.{jpg,jpeg,png}</c>,
/// classes sorted ordinally, images sorted by class and then file name; on disk or inside a .tar.gz
/// holding <c>[&lt;top&gt;/]{train,test}/&lt;class&gt;/…</c>.
/// </summary>
internal static class ImageFolders
{
    internal const string Expected = "<class>/<image>.jpg|jpeg|png";
    internal const string ExpectedGrouped = "<class>/<subgroup>/<image>.jpg|jpeg|png";
    static readonly string[] Extensions = [".jpg", ".jpeg", ".png"];
    static readonly string[] Splits = ["train", "test"];
    /// <summary>The benchmark's folder of counterparts beside its splits: <c>counterparts/&lt;split&gt;/&lt;class&gt;/&lt;subgroup&gt;/…</c>.</summary>
    internal const string CounterpartsFolder = "counterparts";

    /// <summary>An encoded image to decode.</summary>
    /// <param name="Label">Index of its class.</param>
    /// <param name="Origin">Where it came from, for messages: a full path, or an archive path and entry name.</param>
    /// <param name="Content">The encoded bytes when they came from an archive; null for a file on disk, read at decode time.</param>
    /// <param name="Group">Index of its (class, subgroup) group in a listing with subgroups, else -1.</param>
    /// <param name="Entry">Where a tar shard holds it (read at decode time); null otherwise.</param>
    internal sealed record EncodedImage(int Label, string Origin, byte[]? Content, int Group = -1, Shards.Entry? Entry = null)
    {
        /// <summary>The encoded bytes: held, read from its shard, or read from its file.</summary>
        internal byte[] Bytes() => Content ?? (Entry is { } entry ? Shards.Read(entry, Origin) : ImageFiles.Read(Origin));
    }

    /// <summary>The classes and images of one split, before decoding.</summary>
    internal sealed record Listing(IReadOnlyList<string> Classes, IReadOnlyList<EncodedImage> Images, string Source, IReadOnlyList<SubgroupName>? Groups = null)
    {
        /// <summary>int64 [N]: each image's class.</summary>
        internal Tensor LabelTensor() => tensor(Images.Select(e => (long)e.Label).ToArray());

        /// <summary>int64 [N]: each image's group, or null for a listing without subgroups.</summary>
        internal Tensor? GroupTensor() => Groups is null ? null : tensor(Images.Select(e => (long)e.Group).ToArray());
    }

    static bool IsImage(string name) => Extensions.Any(e => name.EndsWith(e, StringComparison.OrdinalIgnoreCase));

    /// <summary>
    /// Lists <c>&lt;root&gt;/&lt;class&gt;/*.{jpg,jpeg,png}</c>, or, when the class folders hold only
    /// sub-folders, <c>&lt;root&gt;/&lt;class&gt;/&lt;subgroup&gt;/*.{jpg,jpeg,png}</c> (data with subgroups: every
    /// class needs two or more, none empty); an image anywhere else under root is an error.
    /// </summary>
    internal static Listing ListFolder(string root)
    {
        root = Path.GetFullPath(root);
        if (!Directory.Exists(root)) throw new DataFormatException($"{root}: no such folder");
        return DataFormatException.Reading(root, () =>
        {
            string? stray = Directory.EnumerateFiles(root).Where(IsImage).Order(StringComparer.Ordinal).FirstOrDefault();
            if (stray != null)
                throw new DataFormatException($"{stray}: an image outside a class folder; expected {root}/{Expected}");
            string[] classes = Directory.GetDirectories(root).Select(d => Path.GetFileName(d)).Order(StringComparer.Ordinal).ToArray();
            if (classes.Length == 0)
                throw new DataFormatException($"{root}: no class folders; expected {root}/{Expected}");
            bool HasOwnImages(string c) => Directory.EnumerateFiles(Path.Combine(root, c)).Any(IsImage);
            bool grouped = !classes.Any(HasOwnImages) && classes.All(c => Directory.EnumerateDirectories(Path.Combine(root, c)).Any());
            if (grouped) return ListGrouped(root, classes);
            var images = new List<EncodedImage>();
            for (int label = 0; label < classes.Length; label++)
            {
                string folder = Path.Combine(root, classes[label]);
                string[] files = Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).Where(IsImage).ToArray();
                string? nested = files.Where(f => Path.GetDirectoryName(f) != folder).Order(StringComparer.Ordinal).FirstOrDefault();
                if (nested != null)
                    throw new DataFormatException($"{nested}: an image in a sub-folder of the class folder {folder}; expected {root}/{Expected}");
                if (files.Length == 0)
                    throw new DataFormatException($"{folder}: empty class folder (no .jpg, .jpeg or .png files)");
                images.AddRange(files.Order(StringComparer.Ordinal).Select(f => new EncodedImage(label, f, null)));
            }
            return new Listing(classes, images, root);
        });
    }

    static Listing ListGrouped(string root, string[] classes)
    {
        var images = new List<EncodedImage>();
        var groups = new List<SubgroupName>();
        for (int label = 0; label < classes.Length; label++)
        {
            string folder = Path.Combine(root, classes[label]);
            string[] subgroups = Directory.GetDirectories(folder).Select(d => Path.GetFileName(d)).Order(StringComparer.Ordinal).ToArray();
            if (subgroups.Length < 2)
                throw new DataFormatException($"{folder}: class '{classes[label]}' has {(subgroups.Length == 0 ? "no subgroup" : "one subgroup (" + subgroups[0] + ")")}; data with subgroups needs two or more per class ({root}/{ExpectedGrouped})");
            foreach (string subgroup in subgroups)
            {
                string groupFolder = Path.Combine(folder, subgroup);
                string? nested = Directory.EnumerateDirectories(groupFolder).Order(StringComparer.Ordinal).FirstOrDefault();
                if (nested != null)
                    throw new DataFormatException($"{nested}: a folder inside the subgroup folder {groupFolder}; expected {root}/{ExpectedGrouped}");
                string[] files = Directory.EnumerateFiles(groupFolder).Where(IsImage).Order(StringComparer.Ordinal).ToArray();
                if (files.Length == 0)
                    throw new DataFormatException($"{groupFolder}: empty subgroup '{classes[label]}/{subgroup}' (no .jpg, .jpeg or .png files)");
                int group = groups.Count;
                groups.Add(new SubgroupName(label, classes[label], subgroup));
                images.AddRange(files.Select(f => new EncodedImage(label, f, null, group)));
            }
        }
        return new Listing(classes, images, root, groups);
    }

    /// <summary>
    /// Lists the train and test splits of a .tar.gz, streaming it once: entries are read into memory
    /// (no extraction to disk), then ordered by class and file name.
    /// </summary>
    internal static (Listing Train, Listing Test) ListArchive(Stream compressed, string archive)
    {
        List<ArchiveEntry> entries = ReadEntries(compressed, archive);
        string prefix = SplitParent(entries, archive);
        // split -> class -> its images; a class folder entry with no images stays an empty list.
        var splits = Splits.ToDictionary(s => s, _ => new SortedDictionary<string, List<ArchiveImage>>(StringComparer.Ordinal));
        foreach (ArchiveEntry e in entries)
        {
            bool underPrefix = e.Path.StartsWith(prefix, StringComparison.Ordinal);
            string[] parts = underPrefix ? e.Path[prefix.Length..].Split('/') : [];
            bool inClass = parts.Length >= 2 && splits.ContainsKey(parts[0]);
            if (e.Content == null)
            {
                if (inClass && parts.Length == 2) ClassOf(splits[parts[0]], parts[1]);
                continue;
            }
            if (!IsImage(e.Path)) continue;
            if (!inClass || parts.Length != 3)
                throw new DataFormatException($"{archive}: entry '{e.Name}': an image outside {prefix}train|test/<class>/; expected {prefix}train|test/{Expected}");
            ClassOf(splits[parts[0]], parts[1]).Add(new ArchiveImage(parts[2], e.Name, e.Content));
        }
        return (Listed(splits["train"], archive, prefix + "train"), Listed(splits["test"], archive, prefix + "test"));
    }

    /// <summary>An image inside an archive: its file name (the sort key), its entry name and its bytes.</summary>
    sealed record ArchiveImage(string File, string Entry, byte[] Content);

    static List<ArchiveImage> ClassOf(SortedDictionary<string, List<ArchiveImage>> split, string name)
    {
        if (!split.TryGetValue(name, out var files)) split[name] = files = [];
        return files;
    }

    static Listing Listed(SortedDictionary<string, List<ArchiveImage>> split, string archive, string folder)
    {
        if (split.Count == 0)
            throw new DataFormatException($"{archive}: no class folders under '{folder}/'; expected {folder}/{Expected}");
        var images = new List<EncodedImage>();
        int label = 0;
        foreach ((string name, var files) in split)
        {
            if (files.Count == 0)
                throw new DataFormatException($"{archive}: entry '{folder}/{name}/': empty class folder (no .jpg, .jpeg or .png files)");
            images.AddRange(files.OrderBy(f => f.File, StringComparer.Ordinal)
                .Select(f => new EncodedImage(label, $"{archive}: entry '{f.Entry}'", f.Content)));
            label++;
        }
        return new Listing(split.Keys.ToArray(), images, $"{archive}:{folder}");
    }

    /// <summary>One archive member: its normalised path ("a/b/c"), its name as stored, and its bytes (null for a folder).</summary>
    sealed record ArchiveEntry(string Path, string Name, byte[]? Content);

    /// <summary>
    /// The folders and images of a .tar.gz, streamed entry by entry: other files are skipped unread,
    /// and an image is read whole only once its header is plausible (<see cref="ImageFiles.ReadEntry"/>).
    /// </summary>
    static List<ArchiveEntry> ReadEntries(Stream compressed, string archive)
    {
        var entries = new List<ArchiveEntry>();
        string where = "before its first entry";
        try
        {
            using var gzip = new GZipStream(compressed, CompressionMode.Decompress);
            using var tar = new TarReader(gzip);
            while (tar.GetNextEntry() is { } entry)
            {
                where = $"at or after entry '{entry.Name}'";
                string path = string.Join('/', entry.Name.Split('/', StringSplitOptions.RemoveEmptyEntries).Where(p => p != "."));
                switch (entry.EntryType)
                {
                    case TarEntryType.Directory:
                        entries.Add(new ArchiveEntry(path, entry.Name, null));
                        break;
                    case TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile:
                        if (!IsImage(path)) break; // skipped unread: the next entry's header follows its data
                        byte[] content = entry.DataStream is { } data
                            ? ImageFiles.ReadEntry(data, entry.Length, $"{archive}: entry '{entry.Name}'")
                            : throw new DataFormatException($"{archive}: entry '{entry.Name}': empty entry; expected a JPEG or PNG image");
                        entries.Add(new ArchiveEntry(path, entry.Name, content));
                        break;
                    default:
                        if (IsImage(path))
                            throw new DataFormatException($"{archive}: entry '{entry.Name}' is a {entry.EntryType}, not a regular file (links are not followed)");
                        break;
                }
            }
        }
        catch (Exception e) when (e is IOException or InvalidDataException or FormatException)
        {
            throw new DataFormatException($"{archive}: not a readable .tar.gz (it fails {where}): {e.Message}", e);
        }
        return entries;
    }

    /// <summary>"" when train/ and test/ sit at the archive's root, else "top/" for its single top-level folder.</summary>
    static string SplitParent(List<ArchiveEntry> entries, string archive)
    {
        static bool HasSplitAt(ArchiveEntry e, int depth)
        {
            string[] parts = e.Path.Split('/');
            return parts.Length > depth && Splits.Contains(parts[depth]) && (parts.Length > depth + 1 || e.Content == null);
        }
        if (entries.Any(e => HasSplitAt(e, 0))) return "";
        string[] tops = entries.Where(e => e.Content == null || e.Path.Contains('/')).Select(e => e.Path.Split('/')[0]).Distinct().ToArray();
        if (tops.Length == 1 && entries.Any(e => HasSplitAt(e, 1))) return tops[0] + "/";
        throw new DataFormatException(
            $"{archive}: no train/ and test/ folders at the archive's root or under one top-level folder; expected [<top>/]train|test/{Expected}");
    }

    /// <summary>
    /// Decodes to RGB in parallel; the result is in listing order whatever the scheduling. All images
    /// must have the size of the first; the first that does not (in listing order) is the error. With
    /// <paramref name="square"/>, images of any sizes are instead resized so that their shorter side is
    /// that many pixels and centre-cropped to a square. With <paramref name="counterparts"/> (a listing
    /// aligned with this one, see <see cref="ListCounterparts"/>), those images too, of the same size.
    /// </summary>
    internal static ImageDataset Decode(Listing listing, int? square = null, Listing? counterparts = null)
    {
        (int width, int height) = square is { } side ? (side, side) : SizeOf(listing.Images[0]);
        using var scope = NewDisposeScope();
        Tensor pixels = DecodePixels(listing.Images, listing.Images[0], width, height, square != null);
        Tensor? counterpartPixels = counterparts is null ? null : DecodePixels(counterparts.Images, listing.Images[0], width, height, square != null);
        Tensor labels = listing.LabelTensor();
        Tensor? groups = listing.GroupTensor();
        return new ImageDataset(pixels, labels, listing.Classes, listing.Source, groups, listing.Groups, counterpartPixels);
    }

    /// <summary>uint8 [N,3,height,width]; an image that does not decode to that size names itself and <paramref name="first"/>.</summary>
    static Tensor DecodePixels(IReadOnlyList<EncodedImage> images, EncodedImage first, int width, int height, bool resize)
    {
        long planeBytes = (long)width * height;
        Tensor pixels = empty(images.Count, 3, height, width, ScalarType.Byte);
        int firstFailure = int.MaxValue;
        string? failure = null;
        var gate = new object();
        int chunk = Math.Max(16, Math.Min(256, images.Count / (4 * Environment.ProcessorCount)));
        Parallel.ForEach(Partitioner.Create(0, images.Count, chunk), range =>
        {
            if (range.Item1 > Volatile.Read(ref firstFailure)) return;
            var rgba = new byte[checked((int)(planeBytes * 4))];
            using Tensor slice = pixels.narrow(0, range.Item1, range.Item2 - range.Item1);
            Span<byte> planes = slice.bytes;
            for (int i = range.Item1; i < range.Item2; i++)
            {
                try { DecodeOne(images[i], first, width, height, resize, rgba, planes.Slice((int)((i - range.Item1) * 3 * planeBytes), (int)(3 * planeBytes))); }
                catch (DataFormatException e)
                {
                    lock (gate)
                        if (i < firstFailure) (firstFailure, failure) = (i, e.Message);
                    return;
                }
            }
        });
        if (failure != null) throw new DataFormatException(failure);
        return pixels;
    }

    /// <summary>
    /// Whether these images are small (sides at most <see cref="ImageCrops.SmallSide"/>) and all of
    /// one size, read from their headers: the first image decides at once when it is large, so a
    /// large data set is not opened file by file here.
    /// </summary>
    internal static bool SmallOneSize(IReadOnlyList<EncodedImage> images)
    {
        (int width, int height) = SizeOf(images[0]);
        return width <= ImageCrops.SmallSide && height <= ImageCrops.SmallSide && OneSize(images);
    }

    /// <summary>The split as a streamed data set: its files decoded per batch into crops of <see cref="StreamedSize"/> until the trainer sizes it.</summary>
    internal static ImageDataset Stream(Listing listing) =>
        new(new StreamedImages(listing.Images, StreamedSize), listing.LabelTensor(), listing.Classes, listing.Source, listing.GroupTensor(), listing.Groups);

    /// <summary>The crop side of a streamed set before a trainer sizes it to its model (ImageNet's 224).</summary>
    internal const int StreamedSize = 224;

    /// <summary>Whether all these images have one size (read from their headers, in parallel); an undecodable one is named.</summary>
    internal static bool OneSize(IReadOnlyList<EncodedImage> images)
    {
        var sizes = new (int Width, int Height)[images.Count];
        var failures = new string?[images.Count];
        Parallel.For(0, images.Count, i =>
        {
            try { sizes[i] = SizeOf(images[i]); }
            catch (DataFormatException e) { failures[i] = e.Message; }
        });
        if (failures.FirstOrDefault(f => f != null) is { } failure) throw new DataFormatException(failure);
        return sizes.All(s => s == sizes[0]);
    }

    /// <summary>
    /// Decodes image files that must all be <paramref name="width"/>x<paramref name="height"/> (the
    /// inputs of a trained model); a missing, undecodable or other-sized file is named.
    /// </summary>
    internal static ImageDataset DecodeFiles(IReadOnlyList<string> files, int width, int height)
    {
        if (files.Count == 0) throw new DataFormatException("no image files given");
        var images = new List<EncodedImage>();
        foreach (string file in files)
        {
            var image = new EncodedImage(0, Path.GetFullPath(file), null);
            (int w, int h) = SizeOf(image);
            if (w != width || h != height)
                throw new DataFormatException($"{image.Origin}: the image is {w}x{h}, but the model was trained on {width}x{height} images; resize it to {width}x{height} first");
            images.Add(image);
        }
        return Decode(new Listing(["?"], images, "image files"));
    }

    /// <summary>The image's dimensions from its header alone (a file is checked to be a regular one first), within the pixel limit.</summary>
    static (int Width, int Height) SizeOf(EncodedImage image)
    {
        if (image.Content is { } content) return ImageFiles.Dimensions(new MemoryStream(content, writable: false), image.Origin);
        FileInfo file = ImageFiles.Regular(image.Origin);
        using Stream stream = DataFormatException.Reading(image.Origin, file.OpenRead);
        return ImageFiles.Dimensions(stream, image.Origin);
    }

    /// <summary>
    /// Decodes one image into its three planes (<paramref name="resize"/>: resized and centre-cropped to
    /// <paramref name="width"/>x<paramref name="height"/>, a square). The header's size is checked
    /// against the pixel limit before decoding; what is wrong is a <see cref="DataFormatException"/> naming the image.
    /// </summary>
    static unsafe void DecodeOne(EncodedImage image, EncodedImage first, int width, int height, bool resize, byte[] rgba, Span<byte> planes)
    {
        byte[] encoded = image.Bytes();
        using SKData data = SKData.CreateCopy(encoded);
        using SKCodec? codec = SKCodec.Create(data);
        if (codec == null) throw new DataFormatException($"{image.Origin}: {ImageFiles.Undecodable}");
        (int w, int h) = ImageFiles.Checked(codec.Info.Width, codec.Info.Height, image.Origin);
        if (!resize && (w != width || h != height))
            throw new DataFormatException($"{image.Origin}: the image is {w}x{h}, but {first.Origin} (the first) is {width}x{height}; all images of a data set must have one size");
        // No colour space on the target: pixel values are taken as stored, as PIL's convert("RGB") does.
        var target = new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        byte[] decoded = resize ? new byte[checked((int)((long)w * h * 4))] : rgba;
        SKCodecResult result;
        fixed (byte* p = decoded) result = codec.GetPixels(target, (IntPtr)p);
        if (result != SKCodecResult.Success) throw new DataFormatException($"{image.Origin}: corrupt image: decoding stopped with {result}");
        if (codec.Info.AlphaType != SKAlphaType.Opaque) CropDecoder.Composite(decoded.AsSpan(0, w * h * 4));
        if (resize && !CentreSquare(decoded, target, rgba, width)) throw new DataFormatException($"{image.Origin}: the {w}x{h} image could not be resized to {width}x{width}");
        int plane = width * height;
        Span<byte> r = planes[..plane], g = planes.Slice(plane, plane), b = planes.Slice(2 * plane, plane);
        for (int i = 0, at = 0; i < plane; i++, at += 4)
        {
            r[i] = rgba[at];
            g[i] = rgba[at + 1];
            b[i] = rgba[at + 2];
        }
    }

    /// <summary>
    /// The image resized so that its shorter side is <paramref name="side"/>, centre-cropped to
    /// side x side, into <paramref name="rgba"/>: the centre square of the original, scaled.
    /// </summary>
    static unsafe bool CentreSquare(byte[] decoded, SKImageInfo info, byte[] rgba, int side)
    {
        int crop = Math.Min(info.Width, info.Height);
        var subset = SKRectI.Create((info.Width - crop) / 2, (info.Height - crop) / 2, crop, crop);
        // Skia's high quality: trilinear mipmaps when shrinking (no aliasing), an interpolating cubic when enlarging.
        var sampling = crop > side ? new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.Linear) : new SKSamplingOptions(SKCubicResampler.CatmullRom);
        fixed (byte* s = decoded, d = rgba)
        {
            using var source = new SKPixmap(info, (IntPtr)s);
            using SKPixmap? square = source.ExtractSubset(subset);
            if (square is null) return false;
            using var target = new SKPixmap(new SKImageInfo(side, side, SKColorType.Rgba8888, SKAlphaType.Unpremul), (IntPtr)d);
            // Already the size: copied, since even a cubic filter would blur it.
            return crop == side ? square.ReadPixels(target) : square.ScalePixels(target, sampling);
        }
    }

    /// <summary>
    /// The counterparts of a split with subgroups: for each of its images, the file of the same
    /// relative path under <paramref name="folder"/> (<c>counterparts/&lt;split&gt;</c>), in the split's
    /// order; a missing file, or an image there that is no image's counterpart, is an error naming it.
    /// </summary>
    internal static Listing ListCounterparts(Listing split, string folder)
    {
        string root = Path.GetFullPath(folder);
        if (!Directory.Exists(root)) throw new DataFormatException($"{root}: no such folder; the counterparts of {split.Source} belong there");
        return DataFormatException.Reading(root, () =>
        {
            EncodedImage[] images = split.Images.Select(image =>
            {
                string path = Path.Combine(root, Path.GetRelativePath(split.Source, image.Origin));
                return File.Exists(path) ? image with { Origin = path } : throw new DataFormatException($"{path}: no such file; it is the counterpart of {image.Origin}");
            }).ToArray();
            var expected = images.Select(i => i.Origin).ToHashSet(StringComparer.Ordinal);
            string? extra = Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories).Where(IsImage).Where(f => !expected.Contains(f)).Order(StringComparer.Ordinal).FirstOrDefault();
            if (extra != null)
                throw new DataFormatException($"{extra}: a counterpart of no image (no {Path.Combine(split.Source, Path.GetRelativePath(root, extra))})");
            return split with { Images = images, Source = root };
        });
    }

    /// <summary>Train and test must name the same classes, or labels would mean different things.</summary>
    internal static void CheckSameClasses(Listing train, Listing test)
    {
        if (train.Classes.SequenceEqual(test.Classes, StringComparer.Ordinal))
        {
            if ((train.Groups is null) != (test.Groups is null))
                throw new DataFormatException($"{(train.Groups is null ? test.Source : train.Source)} has subgroup folders, but {(train.Groups is null ? train.Source : test.Source)} has none: both splits need the same layout");
            if (train.Groups is { } a && test.Groups is { } b && !a.Select(g => g.ToString()).SequenceEqual(b.Select(g => g.ToString()), StringComparer.Ordinal))
                throw new DataFormatException(
                    $"the subgroups of {train.Source} and {test.Source} differ: only in {Path.GetFileName(train.Source)}: [{string.Join(", ", a.Select(g => g.ToString()).Except(b.Select(g => g.ToString())))}]; " +
                    $"only in {Path.GetFileName(test.Source)}: [{string.Join(", ", b.Select(g => g.ToString()).Except(a.Select(g => g.ToString())))}]");
            return;
        }
        string onlyTrain = string.Join(", ", train.Classes.Except(test.Classes, StringComparer.Ordinal));
        string onlyTest = string.Join(", ", test.Classes.Except(train.Classes, StringComparer.Ordinal));
        throw new DataFormatException(
            $"the class folders of {train.Source} and {test.Source} differ: only in train: [{onlyTrain}]; only in test: [{onlyTest}]");
    }
}
