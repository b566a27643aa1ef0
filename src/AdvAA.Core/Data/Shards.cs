using System;
using System.Collections.Generic;
using System.Formats.Tar;
using System.Globalization;
using System.IO;
using System.Linq;

namespace AdvAA.Core.Data;

/// <summary>
/// Tar shards in the layout of WebDataset, timm and LitData: <c>train-000000.tar</c>, … (and
/// <c>test-*.tar</c>, optionally <c>val-*.tar</c>), uncompressed, each sample two members
/// <c>KEY.jpg|jpeg|png</c> and <c>KEY.cls</c> (its class index as text), with the class names in
/// <c>classes.txt</c> beside them (else "0", "1", …). Reading indexes every member's offset once
/// (headers only) and the training loader reads an image where it lies, so shards take part in the
/// same seeded, resumable, worker-independent batches as image folders; they are always streamed.
/// </summary>
public static class Shards
{
    /// <summary>An image inside a shard: the shard's path, and its bytes' offset and length there.</summary>
    public sealed record Entry(string Shard, long Offset, long Length);

    /// <summary>The file of class names beside the shards, one per line in class order.</summary>
    public const string ClassesFile = "classes.txt";

    static readonly string[] ImageExtensions = [".jpg", ".jpeg", ".png"];

    /// <summary>The shards of <paramref name="split"/> in <paramref name="folder"/>, ordered by name.</summary>
    public static string[] Of(string folder, string split) =>
        Directory.GetFiles(folder, split + "-*.tar").Order(StringComparer.Ordinal).ToArray();

    /// <summary>Whether <paramref name="folder"/> holds training shards.</summary>
    internal static bool Holds(string folder) => Of(folder, "train").Length > 0;

    /// <summary>The splits of a folder of shards, streamed.</summary>
    internal static DataSplits Load(string folder)
    {
        IReadOnlyList<string>? names = ReadClasses(folder);
        var train = List(folder, "train", names);
        string[] test = Of(folder, "test");
        if (test.Length == 0) throw new DataFormatException($"{folder}: training shards but no test-*.tar beside them");
        var testSet = List(folder, "test", names);
        var val = Of(folder, "val").Length > 0 ? List(folder, "val", names) : null;
        // Without classes.txt the classes are the indices up to the largest in any split.
        int classes = names?.Count ?? 1 + new[] { train, testSet, val }.Where(s => s is not null).Max(s => s!.Max(i => i.Label));
        IReadOnlyList<string> classNames = names ?? Enumerable.Range(0, classes).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToArray();
        ImageFolders.Listing Listed(List<ImageFolders.EncodedImage> images, string split) =>
            new(classNames, images, Path.Combine(folder, split + "-*.tar"));
        return new DataSplits(ImageFolders.Stream(Listed(train, "train")), ImageFolders.Stream(Listed(testSet, "test")), "tar-shards",
            val is null ? null : ImageFolders.Stream(Listed(val, "val")));
    }

    static IReadOnlyList<string>? ReadClasses(string folder)
    {
        string file = Path.Combine(folder, ClassesFile);
        if (!File.Exists(file)) return null;
        string[] names = DataFormatException.Reading(file, () => File.ReadAllLines(file)).Where(l => l.Trim().Length > 0).Select(l => l.Trim()).ToArray();
        if (names.Length == 0) throw new DataFormatException($"{file}: no class names");
        return names;
    }

    /// <summary>Every sample of a split's shards, in shard order and then member order.</summary>
    static List<ImageFolders.EncodedImage> List(string folder, string split, IReadOnlyList<string>? names)
    {
        var images = new List<ImageFolders.EncodedImage>();
        foreach (string shard in Of(folder, split)) images.AddRange(Index(shard, names));
        if (images.Count == 0) throw new DataFormatException($"{Path.Combine(folder, split + "-*.tar")}: no images in the shards");
        return images;
    }

    /// <summary>The samples of one shard: each image member paired with its .cls by key; an image without a class, or a class without an image, is an error naming both.</summary>
    static IEnumerable<ImageFolders.EncodedImage> Index(string shard, IReadOnlyList<string>? names)
    {
        FileInfo file = ImageFiles.Regular(shard);
        var images = new List<(string Key, string Member, long Offset, long Length)>();
        var classes = new Dictionary<string, (int Label, string Member)>(StringComparer.Ordinal);
        string where = "before its first member";
        try
        {
            using var stream = new FileStream(file.FullName, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            using var tar = new TarReader(stream);
            while (tar.GetNextEntry() is { } entry)
            {
                where = $"at or after member '{entry.Name}'";
                if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile)) continue;
                string name = entry.Name;
                string extension = Path.GetExtension(name).ToLowerInvariant();
                string key = name[..^extension.Length];
                if (ImageExtensions.Contains(extension))
                    // TarReader leaves a seekable stream past the member's data and its padding to
                    // 512-byte blocks: the data starts that far back.
                {
                    images.Add((key, name, stream.Position - (entry.Length + 511) / 512 * 512, entry.Length));
                    if (images.Count == 1) CheckOffset(entry, stream, images[0].Offset, shard);
                }
                else if (extension == ".cls")
                    classes[key] = (ParseClass(entry, shard, names), name);
            }
        }
        catch (Exception e) when (e is IOException or InvalidDataException or FormatException)
        {
            throw new DataFormatException($"{shard}: not a readable tar shard (it fails {where}): {e.Message}", e);
        }
        var imageKeys = images.Select(i => i.Key).ToHashSet(StringComparer.Ordinal);
        if (classes.Keys.FirstOrDefault(k => !imageKeys.Contains(k)) is { } lonely)
            throw new DataFormatException($"{shard}: member '{classes[lonely].Member}' has no image beside it ({lonely}.jpg, .jpeg or .png)");
        foreach ((string key, string member, long offset, long length) in images)
        {
            if (!classes.TryGetValue(key, out var label))
                throw new DataFormatException($"{shard}: member '{member}' has no class beside it ({key}.cls)");
            yield return new ImageFolders.EncodedImage(label.Label, $"{shard}: member '{member}'", null, Entry: new Entry(file.FullName, offset, length));
        }
    }

    /// <summary>That the first image's bytes are where its offset says (read through TarReader's own stream, then the stream put back).</summary>
    static void CheckOffset(TarEntry entry, FileStream stream, long offset, string shard)
    {
        long resume = stream.Position;
        var expected = new byte[(int)Math.Min(16, entry.Length)];
        var found = new byte[expected.Length];
        entry.DataStream?.ReadExactly(expected);
        stream.Position = offset;
        stream.ReadExactly(found);
        stream.Position = resume;
        if (!expected.AsSpan().SequenceEqual(found))
            throw new DataFormatException($"{shard}: member '{entry.Name}' is not where its header's position says (a tar layout this reader does not know)");
    }

    /// <summary>A .cls member: a class index, within classes.txt's classes when there is one.</summary>
    static int ParseClass(TarEntry entry, string shard, IReadOnlyList<string>? names)
    {
        if (entry.Length > 64) throw new DataFormatException($"{shard}: member '{entry.Name}' is {entry.Length} bytes; a .cls holds a class index");
        using var reader = new StreamReader(entry.DataStream ?? Stream.Null);
        string text = reader.ReadToEnd().Trim();
        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int label))
            throw new DataFormatException($"{shard}: member '{entry.Name}' holds '{text}', not a class index (0, 1, …)");
        if (names is not null && label >= names.Count)
            throw new DataFormatException($"{shard}: member '{entry.Name}' gives class {label}, but {ClassesFile} names {names.Count} classes (0 to {names.Count - 1})");
        return label;
    }

    /// <summary>The bytes of a shard's image member, read where it lies (the hardening of archive entries: a plausible size for its header).</summary>
    internal static byte[] Read(Entry entry, string origin)
    {
        FileInfo file = ImageFiles.Regular(entry.Shard);
        return DataFormatException.Reading(origin, () =>
        {
            using var stream = new FileStream(file.FullName, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.RandomAccess);
            if (entry.Offset + entry.Length > stream.Length)
                throw new DataFormatException($"{origin}: the shard ends at byte {stream.Length}, inside this member (bytes {entry.Offset} to {entry.Offset + entry.Length})");
            stream.Position = entry.Offset;
            return ImageFiles.ReadEntry(stream, entry.Length, origin);
        });
    }

    /// <summary>
    /// Writes the image folders at <paramref name="source"/> (train/, test/ and val/ where present)
    /// as shards of <paramref name="perShard"/> samples into <paramref name="folder"/> (which must
    /// not exist or be empty): each split in a seeded shuffled order (so that a sequential reader
    /// sees mixed classes), the images' own bytes, and classes.txt. Returns the shards written.
    /// </summary>
    public static IReadOnlyList<string> Write(string source, string folder, int perShard)
    {
        if (perShard < 1) throw new ConfigException($"samples per shard = {perShard}: expected at least 1", "per_shard");
        folder = Path.GetFullPath(folder);
        if (Directory.Exists(folder) && Directory.EnumerateFileSystemEntries(folder).Any())
            throw new ConfigException($"{folder}: not empty; make-shards writes into a new or empty folder");
        source = Path.GetFullPath(source);
        var splits = new[] { "train", "test", "val" }.Where(s => Directory.Exists(Path.Combine(source, s))).ToArray();
        if (!splits.Contains("train") || !splits.Contains("test"))
            throw new DataFormatException($"{source}: make-shards needs image folders train/ and test/ ({source}/train/{ImageFolders.Expected})");
        var listings = splits.ToDictionary(s => s, s => ImageFolders.ListFolder(Path.Combine(source, s)));
        foreach (string split in splits.Where(s => s != "train")) ImageFolders.CheckSameClasses(listings["train"], listings[split]);
        Directory.CreateDirectory(folder);
        var written = new List<string>();
        foreach (string split in splits)
        {
            IReadOnlyList<ImageFolders.EncodedImage> images = listings[split].Images;
            int[] order = Enumerable.Range(0, images.Count).ToArray();
            new Random(0).Shuffle(order);
            for (int first = 0, shard = 0; first < order.Length; first += perShard, shard++)
            {
                string path = Path.Combine(folder, $"{split}-{shard:D6}.tar");
                AtomicFile.Write(path, temp =>
                {
                    using var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None);
                    using var tar = new TarWriter(stream, TarEntryFormat.Pax, leaveOpen: true);
                    for (int i = first; i < Math.Min(first + perShard, order.Length); i++)
                    {
                        ImageFolders.EncodedImage image = images[order[i]];
                        string key = $"{order[i]:D8}";
                        string extension = Path.GetExtension(image.Origin).ToLowerInvariant();
                        Add(tar, key + extension, image.Bytes());
                        Add(tar, key + ".cls", System.Text.Encoding.ASCII.GetBytes(image.Label.ToString(CultureInfo.InvariantCulture)));
                    }
                });
                written.Add(path);
            }
        }
        AtomicFile.Write(Path.Combine(folder, ClassesFile), string.Join("\n", listings["train"].Classes) + "\n");
        return written;
    }

    static void Add(TarWriter tar, string name, byte[] content)
    {
        var entry = new PaxTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(content, writable: false) };
        tar.WriteEntry(entry);
    }
}
