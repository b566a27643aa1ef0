using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Data;

/// <summary>
/// Images with int64 class labels: either decoded in memory (uint8 NCHW on the CPU, one size: small
/// data such as CIFAR) or streamed, i.e. encoded files decoded per batch into S×S crops
/// (<see cref="IsStreamed"/>: images of varying or large sizes). For data with subgroups
/// (model patching), an int64 group per image: an index into <see cref="GroupNames"/>, whose groups
/// are (class, subgroup) pairs. A constructed benchmark may also know each image's counterpart: the
/// same image in its class's other subgroup (model patching's oracle translation).
/// </summary>
public sealed class ImageDataset : IDisposable
{
    /// <summary>
    /// Takes ownership of the tensors: they are detached from any dispose scope and disposed with
    /// the data set, so a data set made inside a scope outlives it.
    /// </summary>
    public ImageDataset(Tensor images, Tensor labels, IReadOnlyList<string> classes, string source, Tensor? groups = null, IReadOnlyList<SubgroupName>? groupNames = null,
        Tensor? counterparts = null)
    {
        if (images.dtype != ScalarType.Byte || images.Dimensions != 4)
            throw new ArgumentException($"images must be uint8 [N,C,H,W], not {images.dtype} [{string.Join(",", images.shape)}]", nameof(images));
        if (labels.dtype != ScalarType.Int64 || labels.Dimensions != 1 || labels.shape[0] != images.shape[0])
            throw new ArgumentException($"labels must be int64 [{images.shape[0]}], not {labels.dtype} [{string.Join(",", labels.shape)}]", nameof(labels));
        if (images.device_type != DeviceType.CPU || labels.device_type != DeviceType.CPU)
            throw new ArgumentException("an ImageDataset lives on the CPU; BatchLoader moves batches to the device");
        if (images.shape[0] < 1)
            throw new ArgumentException("an ImageDataset needs at least one image", nameof(images));
        if (classes.Count < 1)
            throw new ArgumentException("an ImageDataset needs at least one class", nameof(classes));
        long low, high;
        using (Tensor min = labels.min(), max = labels.max()) (low, high) = (min.item<long>(), max.item<long>());
        if (low < 0 || high >= classes.Count)
            throw new ArgumentException($"labels span {low}..{high}, outside 0..{classes.Count - 1} for {classes.Count} classes", nameof(labels));
        if ((groups is null) != (groupNames is null))
            throw new ArgumentException("groups and their names come together", nameof(groupNames));
        if (groups is not null && groupNames is not null)
        {
            if (groups.dtype != ScalarType.Int64 || groups.Dimensions != 1 || groups.shape[0] != images.shape[0])
                throw new ArgumentException($"groups must be int64 [{images.shape[0]}], not {groups.dtype} [{string.Join(",", groups.shape)}]", nameof(groups));
            using Tensor gmin = groups.min(), gmax = groups.max();
            if (gmin.item<long>() < 0 || gmax.item<long>() >= groupNames.Count)
                throw new ArgumentException($"groups span {gmin.item<long>()}..{gmax.item<long>()}, outside 0..{groupNames.Count - 1}", nameof(groups));
            using Tensor classOfGroup = tensor(groupNames.Select(g => (long)g.Class).ToArray());
            using Tensor mismatched = classOfGroup.index_select(0, groups).ne(labels).any();
            if (mismatched.item<bool>()) throw new ArgumentException("an image's group belongs to another class than its label", nameof(groups));
            Groups = groups.DetachFromDisposeScope();
            GroupNames = groupNames;
        }
        if (counterparts is not null)
        {
            if (groups is null)
                throw new ArgumentException("counterparts need groups: each is an image in its class's other subgroup", nameof(counterparts));
            if (counterparts.dtype != ScalarType.Byte || !counterparts.shape.SequenceEqual(images.shape) || counterparts.device_type != DeviceType.CPU)
                throw new ArgumentException($"counterparts must be uint8 [{string.Join(",", images.shape)}] on the CPU, not {counterparts.dtype} [{string.Join(",", counterparts.shape)}]", nameof(counterparts));
            Counterparts = counterparts.DetachFromDisposeScope();
        }
        pixels = images.DetachFromDisposeScope();
        Labels = labels.DetachFromDisposeScope();
        Classes = classes;
        Source = source;
    }

    /// <summary>A streamed data set: <paramref name="files"/> decoded per batch, labelled by <paramref name="labels"/> (int64 [N], taken over).</summary>
    internal ImageDataset(StreamedImages files, Tensor labels, IReadOnlyList<string> classes, string source, Tensor? groups = null, IReadOnlyList<SubgroupName>? groupNames = null)
    {
        if (files.Files.Count < 1) throw new ArgumentException("an ImageDataset needs at least one image", nameof(files));
        if (labels.dtype != ScalarType.Int64 || labels.Dimensions != 1 || labels.shape[0] != files.Files.Count)
            throw new ArgumentException($"labels must be int64 [{files.Files.Count}], not {labels.dtype} [{string.Join(",", labels.shape)}]", nameof(labels));
        streamed = files;
        Labels = labels.DetachFromDisposeScope();
        Groups = groups?.DetachFromDisposeScope();
        GroupNames = groupNames;
        Classes = classes;
        Source = source;
    }

    readonly Tensor? pixels;
    readonly StreamedImages? streamed;

    /// <summary>Whether the images are decoded per batch (read by <see cref="BatchLoader"/>) rather than held in <see cref="Images"/>.</summary>
    public bool IsStreamed => streamed is not null;

    /// <summary>The encoded images and crop size of a streamed set; null for one in memory.</summary>
    internal StreamedImages? Streamed => streamed;

    /// <summary>This set when its images are in memory; for a streamed one an error saying that <paramref name="purpose"/> needs them there.</summary>
    /// <exception cref="ConfigException">The set is streamed.</exception>
    public ImageDataset InMemory(string purpose) => IsStreamed
        ? throw new ConfigException($"{Source}: {purpose} needs the images decoded in memory, but these are read per batch (images of varying sizes or larger than {ImageCrops.SmallSide}x{ImageCrops.SmallSide}, cropped to {Height}x{Width}); use data of one small size for it")
        : this;

    /// <summary>
    /// A streamed set with crops of <paramref name="size"/>×<paramref name="size"/> (sharing its
    /// files); an in-memory set of that size itself; for another size an error naming the setting.
    /// </summary>
    /// <exception cref="ConfigException">An in-memory set of another size.</exception>
    public ImageDataset Sized(int size)
    {
        if (size < 1) throw new ConfigException($"image size = {size}: expected at least 1 pixel", "image_size");
        if (streamed is { } files) return new ImageDataset(files with { Size = size }, Labels.alias(), Classes, Source, Groups?.alias(), GroupNames);
        if (Height == size && Width == size) return Take(Count);
        throw new ConfigException(
            $"image size = {size}: the images of {Source} are all {Width}x{Height} and are used at that size (padded crops and flips, in memory); the image size applies to data of varying or larger images", "image_size");
    }

    /// <summary>int64 [N], indices into <see cref="GroupNames"/>; null for data without subgroups.</summary>
    public Tensor? Groups { get; }
    /// <summary>The (class, subgroup) groups, ordered by class and then subgroup name; null without subgroups.</summary>
    public IReadOnlyList<SubgroupName>? GroupNames { get; }
    /// <summary>uint8 [N,C,H,W]: each image as it is in its class's other subgroup (two subgroups per class); null unless the data knows it.</summary>
    public Tensor? Counterparts { get; }

    /// <summary>The images at these indices (int64 [K]), with their labels and groups.</summary>
    public ImageDataset Select(Tensor indices)
    {
        if (streamed is { } files)
        {
            long[] chosen = Backend.HostSync.Longs(indices);
            return new ImageDataset(files with { Files = chosen.Select(i => files.Files[(int)i]).ToArray() }, Labels.index_select(0, indices), Classes, Source,
                Groups?.index_select(0, indices), GroupNames);
        }
        return new(Images.index_select(0, indices), Labels.index_select(0, indices), Classes, Source, Groups?.index_select(0, indices), GroupNames,
            Counterparts?.index_select(0, indices));
    }

    /// <summary>Images per group, in the order of <see cref="GroupNames"/> (empty without subgroups).</summary>
    public long[] GroupCounts() =>
        Groups is null || GroupNames is null ? [] : Backend.HostSync.Longs(Groups.bincount(null, GroupNames.Count));

    /// <summary>uint8 [N,C,H,W]; a streamed set has none in memory (<see cref="InMemory"/> says so to the user).</summary>
    public Tensor Images => pixels ?? throw new InvalidOperationException($"{Source}: the images are read per batch (streamed); call InMemory first where they are needed whole");
    /// <summary>int64 [N], indices into <see cref="Classes"/>.</summary>
    public Tensor Labels { get; }
    public IReadOnlyList<string> Classes { get; }
    /// <summary>The file or folder the images came from.</summary>
    public string Source { get; }
    public long Count => Labels.shape[0];
    public int Channels => streamed is null ? (int)Images.shape[1] : 3;
    /// <summary>The images' height: in memory their own, streamed the crop's side.</summary>
    public int Height => streamed is { } files ? files.Size : (int)Images.shape[2];
    public int Width => streamed is { } files ? files.Size : (int)Images.shape[3];

    /// <summary>The first <paramref name="count"/> images (all of them when there are fewer), sharing memory with this set.</summary>
    public ImageDataset Take(long count)
    {
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, "Take needs a count of at least 1");
        return Slice(0, Math.Min(count, Count));
    }

    /// <summary>The <paramref name="count"/> images from <paramref name="start"/> on, sharing memory with this set.</summary>
    public ImageDataset Slice(long start, long count)
    {
        if (start < 0 || count < 1 || start + count > Count)
            throw new ArgumentOutOfRangeException(nameof(count), count, $"a slice of {count} images from {start} does not fit {Count} images");
        if (streamed is { } files)
            return new ImageDataset(files with { Files = files.Files.Skip((int)start).Take((int)count).ToArray() }, Labels.narrow(0, start, count), Classes, Source,
                Groups?.narrow(0, start, count), GroupNames);
        return new ImageDataset(Images.narrow(0, start, count), Labels.narrow(0, start, count), Classes, Source, Groups?.narrow(0, start, count), GroupNames,
            Counterparts?.narrow(0, start, count));
    }

    /// <summary>
    /// A cheap identity of the data, so a resumed run can tell that it reads the same: in memory,
    /// SHA-256 over the shape, the class names, every label and every k-th image (at most 1024
    /// images); streamed, over the listing (<see cref="ListingHash"/>), never the files' contents.
    /// </summary>
    public string ContentHash()
    {
        if (streamed is { } files) return ListingHash(files);
        using var scope = NewDisposeScope();
        long step = Math.Max(1, (Count + 1023) / 1024);
        var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        hash.AppendData(System.Text.Encoding.UTF8.GetBytes($"{string.Join(",", Images.shape)}|{string.Join("\u0001", Classes)}|"));
        hash.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(Labels.contiguous().data<long>().ToArray().AsSpan()));
        hash.AppendData(Images.index_select(0, arange(0, Count, step)).contiguous().data<byte>().ToArray());
        if (Groups is not null && GroupNames is not null)
        {
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes(string.Join("\u0001", GroupNames)));
            hash.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(Groups.contiguous().data<long>().ToArray().AsSpan()));
        }
        if (Counterparts is not null) hash.AppendData(Counterparts.index_select(0, arange(0, Count, step)).contiguous().data<byte>().ToArray());
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>
    /// SHA-256 over the count, the class names, each image's path, size and modification time (or,
    /// for an archive's entry, its name and length) and label: a listing of a terabyte hashes in the
    /// time it takes to stat its files.
    /// </summary>
    string ListingHash(StreamedImages files)
    {
        var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        hash.AppendData(System.Text.Encoding.UTF8.GetBytes($"streamed|{Count}|{string.Join("\u0001", Classes)}|"));
        long[] labels = Backend.HostSync.Longs(Labels);
        for (int i = 0; i < files.Files.Count; i++)
        {
            ImageFolders.EncodedImage image = files.Files[i];
            string stamp = image.Content is { } bytes ? $"{bytes.Length}"
                : image.Entry is { } entry ? $"{entry.Offset}\u0001{entry.Length}\u0001{ListingStamp(entry.Shard)}"
                : ListingStamp(image.Origin);
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes($"{image.Origin}\u0001{stamp}\u0001{labels[i]}\n"));
        }
        if (GroupNames is not null) hash.AppendData(System.Text.Encoding.UTF8.GetBytes(string.Join("\u0001", GroupNames)));
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>A file's size and modification time, or "missing".</summary>
    static string ListingStamp(string path)
    {
        var info = new System.IO.FileInfo(path);
        return info.Exists ? $"{info.Length}\u0001{info.LastWriteTimeUtc.Ticks}" : "missing";
    }

    public void Dispose()
    {
        pixels?.Dispose();
        Labels.Dispose();
        Groups?.Dispose();
        Counterparts?.Dispose();
    }
}

/// <summary>A group of data with subgroups: a class (index and name) and one of its subgroups.</summary>
public sealed record SubgroupName(int Class, string ClassName, string Subgroup)
{
    public override string ToString() => $"{ClassName}/{Subgroup}";
}
