using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using SkiaSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Data;

/// <summary>
/// Model patching's benchmark from real images, in the spirit of the paper's MNIST-Correlation and
/// ISIC bandages: two classes of CIFAR-10 (animal vs vehicle by default), subgroups "clean" and
/// "patch" (a coloured square, the "bandage", pasted at a random place). In training, a share
/// <see cref="Settings.Correlation"/> (99 %) of the first class's images carry the patch and the same
/// share of the second class's do not, so the patch predicts the class; validation and test are
/// balanced over the four groups. Written as an image folder with subgroups
/// (<c>{train,val,test}/&lt;class&gt;/{clean,patch}/*.png</c>) plus manifest.json: for every image its
/// CIFAR-10 source and where its patch is. Every image's counterpart, the same image in its class's
/// other subgroup (the exact add/remove of an oracle translation), is written under
/// <c>counterparts/</c> at the image's relative path: a patched image's is its clean source, a clean
/// image's carries the patch at a seeded random place (in the manifest too).
/// </summary>
public static class SpuriousBenchmark
{
    /// <param name="First">The class most of whose training images carry the patch: its CIFAR-10 class names.</param>
    /// <param name="Second">The class most of whose training images do not.</param>
    /// <param name="TrainPerClass">Training images per class.</param>
    /// <param name="ValPerGroup">Validation images per group (drawn from the CIFAR-10 test split, disjoint from the test images).</param>
    /// <param name="TestPerGroup">Test images per group.</param>
    /// <param name="Correlation">The share of each class's training images in its majority subgroup.</param>
    /// <param name="PatchSize">The side of the square patch, in pixels.</param>
    public sealed record Settings(
        string FirstName, IReadOnlyList<string> First, string SecondName, IReadOnlyList<string> Second,
        int TrainPerClass = 2500, int ValPerGroup = 250, int TestPerGroup = 500, double Correlation = 0.99, int PatchSize = 8, long Seed = 0)
    {
        /// <summary>The default task: animals (mostly patched) vs vehicles (mostly clean).</summary>
        public static Settings AnimalVsVehicle { get; } = new(
            "animal", ["bird", "cat", "deer", "dog", "frog", "horse"], "vehicle", ["airplane", "automobile", "ship", "truck"]);
    }

    public const string Clean = "clean", Patched = "patch", ManifestFile = "manifest.json", CounterpartsFolder = ImageFolders.CounterpartsFolder;

    /// <summary>The patch's colour: a saturated orange that CIFAR-10's images rarely show in a flat square.</summary>
    static readonly byte[] PatchColour = [255, 128, 0];

    /// <summary>What was written: images per split and group, in the order train, val, test.</summary>
    public sealed record Written(string Folder, IReadOnlyDictionary<string, IReadOnlyDictionary<string, int>> Counts);

    /// <summary>
    /// Writes the benchmark from <paramref name="data"/> (CIFAR-10: its training split for training, its
    /// test split for validation and test) into <paramref name="folder"/>, which must not exist or be
    /// empty. The folder is built beside and renamed into place at the end, so a failure leaves nothing.
    /// </summary>
    public static Written Write(DataSplits data, string folder, Settings settings)
    {
        Check(settings);
        string full = Path.GetFullPath(folder);
        if (File.Exists(full) || (Directory.Exists(full) && Directory.EnumerateFileSystemEntries(full).Any()))
            throw new RunFolderException($"{full} already exists and is not empty; choose another --out");
        int[] firstLabels = Labels(data.Train, settings.First), secondLabels = Labels(data.Train, settings.Second);
        string temp = full + AtomicFile.TempMarker + Guid.NewGuid().ToString("N")[..8];
        var manifest = new JsonArray();
        var counts = new Dictionary<string, IReadOnlyDictionary<string, int>>();
        int seed = (int)(settings.Seed & 0x7fffffff) ^ (int)(settings.Seed >> 32);
        var random = new Random(seed);
        // The counterparts' patches have their own stream, so the benchmark's images do not depend on them.
        var draws = (Images: random, Counterparts: new Random(seed ^ 0x2545f491));
        try
        {
            // Training: each class's images, seeded; the first Correlation share in its majority subgroup.
            var train = new Dictionary<string, int>();
            foreach ((string name, int[] labels, bool majorityPatched) in new[] { (settings.FirstName, firstLabels, true), (settings.SecondName, secondLabels, false) })
            {
                int[] picked = Pick(data.Train, labels, settings.TrainPerClass, random, "training", name);
                int majority = (int)Math.Round(settings.Correlation * picked.Length);
                for (int i = 0; i < picked.Length; i++)
                {
                    bool patched = (i < majority) == majorityPatched;
                    WriteImage(temp, "train", name, patched, data.Train, picked[i], settings, draws, manifest);
                }
                train[$"{name}/{(majorityPatched ? Patched : Clean)}"] = majority;
                train[$"{name}/{(majorityPatched ? Clean : Patched)}"] = picked.Length - majority;
            }
            counts["train"] = train;
            // Validation and test: balanced groups from the test split, disjoint.
            var val = new Dictionary<string, int>();
            var test = new Dictionary<string, int>();
            foreach ((string name, int[] labels) in new[] { (settings.FirstName, Labels(data.Test, settings.First)), (settings.SecondName, Labels(data.Test, settings.Second)) })
            {
                int perClass = 2 * (settings.ValPerGroup + settings.TestPerGroup);
                int[] picked = Pick(data.Test, labels, perClass, random, "test", name);
                int at = 0;
                foreach ((string split, int perGroup, Dictionary<string, int> tally) in new[] { ("val", settings.ValPerGroup, val), ("test", settings.TestPerGroup, test) })
                    foreach (bool patched in new[] { false, true })
                    {
                        for (int i = 0; i < perGroup; i++) WriteImage(temp, split, name, patched, data.Test, picked[at++], settings, draws, manifest);
                        tally[$"{name}/{(patched ? Patched : Clean)}"] = perGroup;
                    }
            }
            counts["val"] = val;
            counts["test"] = test;
            var description = new JsonObject
            {
                ["format"] = "advaa-spurious-benchmark",
                ["source"] = data.Train.Source,
                ["classes"] = new JsonObject
                {
                    [settings.FirstName] = new JsonArray(settings.First.Select(c => (JsonNode?)c).ToArray()),
                    [settings.SecondName] = new JsonArray(settings.Second.Select(c => (JsonNode?)c).ToArray()),
                },
                ["majority_patched"] = settings.FirstName,
                ["correlation"] = settings.Correlation,
                ["patch"] = new JsonObject { ["size"] = settings.PatchSize, ["rgb"] = new JsonArray(PatchColour.Select(b => (JsonNode?)(int)b).ToArray()) },
                ["seed"] = settings.Seed,
                ["counts"] = new JsonObject(counts.Select(s => KeyValuePair.Create(s.Key, (JsonNode?)new JsonObject(s.Value.Select(g => KeyValuePair.Create(g.Key, (JsonNode?)g.Value)))))),
                ["images"] = manifest,
            };
            File.WriteAllText(Path.Combine(temp, ManifestFile), description.ToJsonString(JsonOptions.Indented) + "\n");
            if (Directory.Exists(full)) Directory.Delete(full);
            Directory.Move(temp, full);
            return new Written(full, counts);
        }
        catch
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
            throw;
        }
    }

    static void Check(Settings s)
    {
        if (s.First.Count == 0 || s.Second.Count == 0) throw new ConfigException("each of the two classes needs at least one CIFAR-10 class");
        if (s.First.Intersect(s.Second, StringComparer.OrdinalIgnoreCase).FirstOrDefault() is { } both)
            throw new ConfigException($"'{both}' is in both classes");
        if (string.Equals(s.FirstName, s.SecondName, StringComparison.OrdinalIgnoreCase)) throw new ConfigException($"the two classes are both named '{s.FirstName}'");
        if (s.Correlation is <= 0.5 or > 1) throw new ConfigException($"correlation {s.Correlation}: expected more than 0.5 and at most 1");
        if (s.TrainPerClass < 2 || s.ValPerGroup < 1 || s.TestPerGroup < 1)
            throw new ConfigException("expected at least 2 training images per class and 1 validation and test image per group");
        if (s.TrainPerClass - (int)Math.Round(s.Correlation * s.TrainPerClass) < 1)
            throw new ConfigException($"correlation {s.Correlation} of {s.TrainPerClass} training images per class leaves none in the minority subgroup; every group needs an image");
        if (s.PatchSize is < 1 or > 16) throw new ConfigException($"patch size {s.PatchSize}: expected 1 to 16 pixels");
    }

    /// <summary>The labels of these class names in the data; an unknown name lists the data's classes.</summary>
    static int[] Labels(ImageDataset set, IReadOnlyList<string> names) =>
        names.Select(n =>
        {
            int label = set.Classes.ToList().FindIndex(c => string.Equals(c, n, StringComparison.OrdinalIgnoreCase));
            return label >= 0 ? label : throw new DataFormatException($"{set.Source}: no class '{n}'; its classes are {string.Join(", ", set.Classes)}");
        }).ToArray();

    /// <summary>A seeded choice of <paramref name="count"/> images with one of these labels, in a random order.</summary>
    static int[] Pick(ImageDataset set, int[] labels, int count, Random random, string split, string name)
    {
        long[] all = set.Labels.data<long>().ToArray();
        int[] candidates = Enumerable.Range(0, all.Length).Where(i => labels.Contains((int)all[i])).ToArray();
        if (candidates.Length < count)
            throw new DataFormatException($"{set.Source}: the {split} split has {candidates.Length} images of class '{name}', fewer than the {count} asked for");
        random.Shuffle(candidates);
        return candidates[..count];
    }

    /// <summary>Writes one image, patched or clean, and its counterpart (the other), and adds them to the manifest.</summary>
    static void WriteImage(string root, string split, string className, bool patched, ImageDataset set, int index, Settings settings,
        (Random Images, Random Counterparts) draws, JsonArray manifest)
    {
        string relative = Path.Combine(split, className, patched ? Patched : Clean);
        string folder = Path.Combine(root, relative), counterpartFolder = Path.Combine(root, CounterpartsFolder, relative);
        Directory.CreateDirectory(folder);
        Directory.CreateDirectory(counterpartFolder);
        int h = set.Height, w = set.Width;
        using Tensor image = set.Images[index].contiguous();
        byte[] chw = image.data<byte>().ToArray(), counterpart = (byte[])chw.Clone();
        (int X, int Y)? patch = patched ? Paste(chw, h, w, settings.PatchSize, draws.Images) : null;
        (int X, int Y)? counterpartPatch = patched ? null : Paste(counterpart, h, w, settings.PatchSize, draws.Counterparts);
        string file = $"{index:D5}.png";
        File.WriteAllBytes(Path.Combine(folder, file), EncodePng(chw, h, w));
        File.WriteAllBytes(Path.Combine(counterpartFolder, file), EncodePng(counterpart, h, w));
        manifest.Add(new JsonObject
        {
            ["file"] = $"{split}/{className}/{(patched ? Patched : Clean)}/{file}",
            ["source_split"] = split == "train" ? "train" : "test",
            ["source_index"] = index,
            ["source_class"] = set.Classes[(int)set.Labels[index].item<long>()],
            ["patch_x"] = patch?.X,
            ["patch_y"] = patch?.Y,
            ["counterpart"] = $"{CounterpartsFolder}/{split}/{className}/{(patched ? Patched : Clean)}/{file}",
            ["counterpart_patch_x"] = counterpartPatch?.X,
            ["counterpart_patch_y"] = counterpartPatch?.Y,
        });
    }

    /// <summary>Pastes the patch into the planes (C·H·W) at a random place; returns its top-left corner.</summary>
    static (int X, int Y) Paste(byte[] chw, int h, int w, int size, Random random)
    {
        (int px, int py) = (random.Next(0, w - size + 1), random.Next(0, h - size + 1));
        for (int c = 0; c < 3; c++)
            for (int y = py; y < py + size; y++)
                for (int x = px; x < px + size; x++)
                    chw[(c * h + y) * w + x] = PatchColour[c];
        return (px, py);
    }

    /// <summary>One RGB image (planes C·H·W) as PNG bytes.</summary>
    static byte[] EncodePng(byte[] chw, int h, int w)
    {
        var rgba = new byte[h * w * 4];
        for (int i = 0; i < h * w; i++)
        {
            rgba[4 * i] = chw[i];
            rgba[4 * i + 1] = chw[h * w + i];
            rgba[4 * i + 2] = chw[2 * h * w + i];
            rgba[4 * i + 3] = 255;
        }
        using var bitmap = new SKBitmap(new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Opaque));
        Marshal.Copy(rgba, 0, bitmap.GetPixels(), rgba.Length);
        using var encoded = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        return encoded.ToArray();
    }
}
