using System;
using System.Linq;
using AdvAA.Core.Backend;
using static TorchSharp.torch;

namespace AdvAA.Core.Data;

/// <summary>Seeded class-balanced subsets of a data set, for small-data runs and validation splits.</summary>
public static class Subsets
{
    /// <summary>
    /// A class-balanced subset of <paramref name="size"/> images (all when null) and, disjoint from it,
    /// a class-balanced validation set of <paramref name="validation"/> images (none when null). Both
    /// are drawn by one fixed seed, so every run of a study trains on the same images, and keep the
    /// data's order. A class too small for its share is an error naming it.
    /// </summary>
    public static (ImageDataset Subset, ImageDataset? Validation) Split(ImageDataset set, long? size, long? validation)
    {
        if ((size is null || size >= set.Count) && validation is null) return (set.Take(set.Count), null);
        int classes = set.Classes.Count;
        using var scope = NewDisposeScope();
        using var generator = new Generator(0);
        // A seeded shuffle, then the images grouped by class (a stable sort keeps the shuffle within each class).
        var shuffled = randperm(set.Count, generator: generator);
        var byClass = shuffled.index_select(0, set.Labels.index_select(0, shuffled).sort(stable: true).Indices);
        long[] counts = HostSync.Longs(set.Labels.bincount(null, classes));
        long Share(long total, int c) => total / classes + (c < total % classes ? 1 : 0);
        var train = new Tensor[classes];
        var held = new Tensor[classes];
        long start = 0;
        for (int c = 0; c < classes; c++)
        {
            long v = validation is long n ? Share(n, c) : 0;
            long t = size is long s ? Share(Math.Min(s, set.Count), c) : counts[c] - v;
            if (t + v > counts[c])
                throw new ConfigException(
                    $"{set.Source}: class '{set.Classes[c]}' has {counts[c]} images, fewer than its share of the subset ({t}) and the validation split ({v}); take fewer images");
            train[c] = byClass.narrow(0, start, t);
            held[c] = byClass.narrow(0, start + counts[c] - v, v);
            start += counts[c];
        }
        ImageDataset Take(Tensor[] parts)
        {
            return set.Select(cat(parts).sort().Values);
        }
        return (Take(train), validation is null ? null : Take(held));
    }
}
