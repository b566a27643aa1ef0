using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;

namespace AdvAA.Core.Data;

/// <summary>Reads data sets into memory: CIFAR-10/100 binary, image folders (plain or .tar.gz), metadata.csv (Waterbirds/WILDS), the embedded sample.</summary>
public static class DataSources
{
    const string SampleResource = "AdvAA.Data.cifar10-sample.tar.gz";

    static readonly string ExpectedLayouts = string.Join("\n  ",
        "expected one of:",
        $"metadata.csv (Waterbirds/WILDS): a folder with {MetadataCsv.FileName} giving each image's path, class y, subgroup and split",
        "CIFAR-10 binary: a folder with data_batch_1..5.bin (any of them) and test_batch.bin, optionally batches.meta.txt",
        "CIFAR-100 binary: a folder with train.bin and test.bin, optionally fine_label_names.txt and coarse_label_names.txt",
        $"image folders: a folder with train/{ImageFolders.Expected} and test/{ImageFolders.Expected}",
        "the same image folders in a .tar.gz (or .tgz), at its root or under one top-level folder",
        "tar shards: train-000000.tar, … and test-*.tar (optionally val-*.tar), each sample KEY.jpg|png + KEY.cls, class names in classes.txt (advaa data make-shards)",
        "(a folder holding one of these folders one level down is accepted too)");

    enum Layout { MetadataCsv, Cifar10, Cifar100, ImageFolder }

    /// <summary>
    /// The data at <paramref name="path"/> (a folder or a .tar.gz), its format detected; null or ""
    /// gives the embedded sample.
    /// </summary>
    public static DataSplits Load(string? path)
    {
        if (string.IsNullOrEmpty(path)) return EmbeddedSample();
        string full = Path.GetFullPath(path);
        if (File.Exists(full))
        {
            if (!IsArchive(full))
                throw new DataFormatException($"{full}: not a data set I can read;\n  {ExpectedLayouts}");
            FileInfo archive = ImageFiles.Regular(full);
            using Stream stream = DataFormatException.Reading(full, () => archive.OpenRead());
            return FromArchive(stream, full, "image-folder");
        }
        if (!Directory.Exists(full)) throw new DataFormatException($"{full}: no such file or folder");
        if (Shards.Holds(full)) return Shards.Load(full);
        (string folder, Layout layout) = Locate(full);
        return layout switch
        {
            Layout.Cifar10 => LoadCifar10(folder),
            Layout.Cifar100 => LoadCifar100(folder),
            Layout.MetadataCsv => LoadMetadataCsv(folder),
            _ => LoadImageFolders(folder),
        };
    }

    /// <summary>
    /// The CIFAR-10 sample compiled into AdvAA.Core (200 training and 100 test JPEG images per class),
    /// so that everything runs with no download.
    /// </summary>
    public static DataSplits EmbeddedSample()
    {
        using Stream stream = typeof(DataSources).Assembly.GetManifestResourceStream(SampleResource)
            ?? throw new InvalidOperationException($"AdvAA.Core was built without its resource {SampleResource}");
        return FromArchive(stream, "(embedded) cifar10-sample.tar.gz", "embedded-sample");
    }

    /// <summary>CIFAR-10 binary batches, concatenated in the order given; labels index <paramref name="classes"/>.</summary>
    public static ImageDataset ReadCifar10(IReadOnlyList<string> files, IReadOnlyList<string> classes) =>
        CifarBinary.Read(files, new CifarBinary.Layout(["label"], [classes.Count], 0), classes);

    /// <summary>
    /// CIFAR-100 binary files (coarse label byte, fine label byte, pixels); class names come from
    /// fine_label_names.txt or coarse_label_names.txt beside the first file, else "0", "1", ….
    /// </summary>
    public static ImageDataset ReadCifar100(IReadOnlyList<string> files, bool coarseLabels)
    {
        if (files.Count == 0) throw new ArgumentException("no files to read", nameof(files));
        string folder = Path.GetDirectoryName(Path.GetFullPath(files[0]))!;
        (string namesFile, int count) = coarseLabels ? ("coarse_label_names.txt", 20) : ("fine_label_names.txt", 100);
        IReadOnlyList<string> classes = CifarBinary.ReadNames(Path.Combine(folder, namesFile), count)
            ?? Enumerable.Range(0, count).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        var layout = new CifarBinary.Layout(["coarse label", "fine label"], [20, 100], coarseLabels ? 0 : 1);
        return CifarBinary.Read(files, layout, classes);
    }

    /// <summary><c>&lt;root&gt;/&lt;class&gt;/*.{jpg,jpeg,png}</c> decoded to RGB; classes are the sub-folder names sorted ordinally.</summary>
    public static ImageDataset ReadImageFolder(string root) => ImageFolders.Decode(ImageFolders.ListFolder(root));

    /// <summary>JPEG or PNG files of one size (<paramref name="width"/>x<paramref name="height"/>), in the order given, labelled 0.</summary>
    public static ImageDataset ReadImageFiles(IReadOnlyList<string> files, int width, int height) => ImageFolders.DecodeFiles(files, width, height);

    static bool IsArchive(string file) =>
        file.EndsWith(".tar.gz", StringComparison.OrdinalIgnoreCase) || file.EndsWith(".tgz", StringComparison.OrdinalIgnoreCase);

    /// <summary>The folder itself when it holds a data set, else the one sub-folder that does.</summary>
    static (string Folder, Layout Layout) Locate(string folder)
    {
        if (DataFormatException.Reading(folder, () => Detect(folder)) is { } own) return (folder, own);
        var found = DataFormatException.Reading(folder, () => Directory.GetDirectories(folder)
            .Order(StringComparer.Ordinal)
            // A benchmark's counterparts hold train/ and test/ too, but belong to the folder above.
            .Where(d => Path.GetFileName(d) != ImageFolders.CounterpartsFolder)
            .Select(d => (Folder: d, Layout: Detect(d)))
            .Where(c => c.Layout != null)
            .ToArray());
        return found.Length switch
        {
            1 => (found[0].Folder, found[0].Layout!.Value),
            0 => throw new DataFormatException($"{folder}: no data set found here or one level down;\n  {ExpectedLayouts}"),
            _ => throw new DataFormatException($"{folder}: several data sets one level down ({string.Join(", ", found.Select(f => Path.GetFileName(f.Folder)))}); give the path of one"),
        };
    }

    static Layout? Detect(string folder)
    {
        bool Has(string file) => File.Exists(Path.Combine(folder, file));
        if (Has(MetadataCsv.FileName)) return Layout.MetadataCsv;
        if (Has("test_batch.bin") || Directory.EnumerateFiles(folder, "data_batch_*.bin").Any()) return Layout.Cifar10;
        if (Has("train.bin") || Has("test.bin")) return Layout.Cifar100;
        if (Directory.Exists(Path.Combine(folder, "train")) || Directory.Exists(Path.Combine(folder, "test"))) return Layout.ImageFolder;
        return null;
    }

    static DataSplits LoadCifar10(string folder)
    {
        string[] train = Enumerable.Range(1, 5).Select(i => Path.Combine(folder, $"data_batch_{i}.bin")).Where(File.Exists).ToArray();
        if (train.Length == 0)
            throw new DataFormatException($"{folder}: no training batch (data_batch_1.bin … data_batch_5.bin)");
        IReadOnlyList<string> classes = CifarBinary.ReadNames(Path.Combine(folder, "batches.meta.txt"), 10) ?? CifarBinary.Cifar10Classes;
        ImageDataset trainSet = ReadCifar10(train, classes);
        try { return new DataSplits(trainSet, ReadCifar10([Required(folder, "test_batch.bin")], classes), "cifar10-binary"); }
        catch { trainSet.Dispose(); throw; }
    }

    static DataSplits LoadCifar100(string folder)
    {
        ImageDataset train = ReadCifar100([Required(folder, "train.bin")], coarseLabels: false);
        try { return new DataSplits(train, ReadCifar100([Required(folder, "test.bin")], coarseLabels: false), "cifar100-binary"); }
        catch { train.Dispose(); throw; }
    }

    static DataSplits LoadImageFolders(string folder)
    {
        ImageFolders.Listing train = ImageFolders.ListFolder(Required(folder, "train"));
        ImageFolders.Listing test = ImageFolders.ListFolder(Required(folder, "test"));
        ImageFolders.CheckSameClasses(train, test);
        string valFolder = Path.Combine(folder, "val");
        ImageFolders.Listing? val = Directory.Exists(valFolder) ? ImageFolders.ListFolder(valFolder) : null;
        if (val != null) ImageFolders.CheckSameClasses(train, val);
        string counterparts = Path.Combine(folder, ImageFolders.CounterpartsFolder);
        if (!Directory.Exists(counterparts)) return Decoded(train, test, "image-folder", val);
        if (train.Groups is null)
            throw new DataFormatException($"{counterparts}: counterparts, but {train.Source} has no subgroups; a counterpart is an image in its class's other subgroup");
        ImageFolders.Listing CounterpartsOf(ImageFolders.Listing split) => ImageFolders.ListCounterparts(split, Path.Combine(counterparts, Path.GetFileName(split.Source)));
        return Decoded(train, test, "image-folder", val,
            counterparts: new Counterparts(CounterpartsOf(train), CounterpartsOf(test), val is null ? null : CounterpartsOf(val)));
    }

    static DataSplits LoadMetadataCsv(string folder)
    {
        MetadataCsv.Listings listings = MetadataCsv.List(folder);
        return Decoded(listings.Train, listings.Test, "metadata-csv", listings.Validation, listings.Square) with { Warnings = listings.Warnings };
    }

    static DataSplits FromArchive(Stream stream, string archive, string format)
    {
        (ImageFolders.Listing train, ImageFolders.Listing test) = ImageFolders.ListArchive(stream, archive);
        ImageFolders.CheckSameClasses(train, test);
        return Decoded(train, test, format);
    }

    /// <summary>The listings of a benchmark's counterparts, aligned with the splits' listings.</summary>
    sealed record Counterparts(ImageFolders.Listing Train, ImageFolders.Listing Test, ImageFolders.Listing? Validation);

    /// <summary>
    /// The splits decoded in memory when the training images are small and of one size (or, with
    /// <paramref name="square"/>, every image resized and centre-cropped to that side); otherwise
    /// every split streamed (decoded per batch, <see cref="ImageDataset.IsStreamed"/>).
    /// </summary>
    static DataSplits Decoded(ImageFolders.Listing train, ImageFolders.Listing test, string format, ImageFolders.Listing? val = null, int? square = null,
        Counterparts? counterparts = null)
    {
        if (square is null && counterparts is null && !ImageFolders.SmallOneSize(train.Images))
            return new DataSplits(ImageFolders.Stream(train), ImageFolders.Stream(test), format, val is null ? null : ImageFolders.Stream(val));
        ImageDataset trainSet = ImageFolders.Decode(train, square, counterparts?.Train);
        ImageDataset? testSet = null;
        try
        {
            testSet = DecodedLike(test, "test", trainSet, train, square, counterparts?.Test);
            return new DataSplits(trainSet, testSet, format, val is null ? null : DecodedLike(val, "validation", trainSet, train, square, counterparts?.Validation));
        }
        catch { trainSet.Dispose(); testSet?.Dispose(); throw; }
    }

    /// <summary>Another split, which must have the training images' size.</summary>
    static ImageDataset DecodedLike(ImageFolders.Listing split, string what, ImageDataset trainSet, ImageFolders.Listing train, int? square,
        ImageFolders.Listing? counterparts)
    {
        ImageDataset set = ImageFolders.Decode(split, square, counterparts);
        if (set.Height == trainSet.Height && set.Width == trainSet.Width) return set;
        string message = $"{split.Images[0].Origin}: the {what} images are {set.Width}x{set.Height}, but the training images ({train.Source}) are {trainSet.Width}x{trainSet.Height}";
        set.Dispose();
        throw new DataFormatException(message);
    }

    /// <summary>The path of a file or folder the layout needs; its absence is an error naming it.</summary>
    static string Required(string folder, string name)
    {
        string path = Path.Combine(folder, name);
        if (!File.Exists(path) && !Directory.Exists(path))
            throw new DataFormatException($"{path}: no such file or folder (the layout of {folder} needs it)");
        return path;
    }
}
