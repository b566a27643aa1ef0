using System;
using System.Collections.Generic;
using static TorchSharp.torch;

namespace AdvAA.Core.Data;

/// <summary>Per-epoch shuffled batches of a data set, moved to a device.</summary>
public sealed class BatchLoader
{
    readonly ImageDataset data;
    readonly int batchSize;
    readonly Device device;
    readonly bool shuffle;
    readonly long seed;
    readonly bool dropLast;

    public BatchLoader(ImageDataset data, int batchSize, Device device, bool shuffle, long seed, bool dropLast)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "the batch size must be at least 1");
        if (dropLast && data.Count < batchSize)
            throw new ArgumentException($"{data.Source}: {data.Count} images make no full batch of {batchSize} (dropLast)", nameof(batchSize));
        (this.data, this.batchSize, this.device, this.shuffle, this.seed, this.dropLast) = (data, batchSize, device, shuffle, seed, dropLast);
        BatchesPerEpoch = (int)(dropLast ? data.Count / batchSize : (data.Count + batchSize - 1) / batchSize);
    }

    public int BatchesPerEpoch { get; }

    /// <summary>
    /// The batches of epoch <paramref name="epoch"/>: uint8 [B,C,H,W] images and int64 [B] labels on
    /// the device, which the caller disposes. The order depends only on (seed, epoch), so a run
    /// resumed at an epoch sees exactly the batches an uninterrupted run would.
    /// </summary>
    public IEnumerable<(Tensor Images, Tensor Labels)> Epoch(int epoch)
    {
        Tensor order;
        if (shuffle)
        {
            using var generator = new Generator(unchecked((ulong)(seed * 1_000_003 + epoch)));
            order = randperm(data.Count, generator: generator);
        }
        else order = arange(data.Count);
        // The order is owned here, not by whatever dispose scope is open when iteration starts.
        order.DetachFromDisposeScope();
        try
        {
            for (int b = 0; b < BatchesPerEpoch; b++)
            {
                long start = (long)b * batchSize;
                using Tensor indices = order.narrow(0, start, Math.Min(batchSize, data.Count - start));
                Tensor images = data.Images.index_select(0, indices).to(device, disposeAfter: true);
                Tensor labels = data.Labels.index_select(0, indices).to(device, disposeAfter: true);
                yield return (images, labels);
            }
        }
        finally
        {
            order.Dispose();
        }
    }
}
