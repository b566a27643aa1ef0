// STAND-IN, augment branch only. DELETE THIS FILE WHEN MERGING with the real AdvAA.Core.Data.
// A minimal copy of the Data API that `advaa preview` codes against (DataSources.Load, DataSplits,
// ImageDataset), so that the preview builds and runs before the Data issue lands. It reads one
// CIFAR-10 binary batch (test_batch.bin) and has no embedded sample.
using System;
using System.Collections.Generic;
using System.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Data;

public sealed record DataSplits(ImageDataset Train, ImageDataset Test, string Format);

public sealed class ImageDataset(Tensor images, Tensor labels, IReadOnlyList<string> classes, string source)
{
    public Tensor Images { get; } = images;
    public Tensor Labels { get; } = labels;
    public IReadOnlyList<string> Classes { get; } = classes;
    public string Source { get; } = source;
}

public static class DataSources
{
    public static DataSplits Load(string? path)
    {
        if (path == null) return EmbeddedSample();
        string[] candidates = { path, Path.Combine(path, "test_batch.bin"), Path.Combine(path, "cifar-10-batches-bin", "test_batch.bin") };
        string file = Array.Find(candidates, File.Exists) ?? throw new InvalidDataException($"{path}: no CIFAR-10 test_batch.bin there");
        byte[] bytes = File.ReadAllBytes(file);
        if (bytes.Length == 0 || bytes.Length % 3073 != 0)
            throw new InvalidDataException($"{file}: {bytes.Length} bytes is not a whole number of 3073-byte CIFAR-10 records");
        long n = bytes.Length / 3073;
        var records = torch.tensor(bytes, new long[] { n, 3073 });
        var images = records.narrow(1, 1, 3072).reshape(n, 3, 32, 32).contiguous();
        var labels = records.select(1, 0).to(ScalarType.Int64);
        var set = new ImageDataset(images, labels, Array.Empty<string>(), file);
        return new DataSplits(set, set, "cifar10-binary");
    }

    public static DataSplits EmbeddedSample() =>
        throw new InvalidDataException("this build has no embedded sample yet: pass --data with a CIFAR-10 folder or test_batch.bin");
}
