using System;
using System.Collections.Generic;
using System.Linq;
using AdvAA.Core.Distributed;
using static TorchSharp.torch;

namespace AdvAA.Core.Data;

/// <summary>
/// Per-epoch shuffled batches of a data set, moved to a device. A streamed data set is decoded per
/// batch by <see cref="BatchStream"/>'s workers: a shuffling loader (training) gives each image a
/// RandomResizedCrop and a coin-flip mirror, an ordered one (evaluation) the centre crop.
/// </summary>
public sealed class BatchLoader
{
    readonly ImageDataset data;
    readonly int batchSize;
    readonly Device device;
    readonly bool shuffle;
    readonly long seed;
    readonly bool dropLast;
    readonly int workers;
    readonly ProcessGroup? shareWith;
    readonly SkippedImages? skip;

    /// <summary>The decode workers of a streamed set by default: one per core.</summary>
    public static int DefaultWorkers => Environment.ProcessorCount;

    /// <param name="workers">Threads decoding a streamed set's batches (0: <see cref="DefaultWorkers"/>); the batches do not depend on it.</param>
    /// <param name="shareWith">The ranks of a data-parallel job: each decodes only its slice of a streamed set's batches and gathers the rest.</param>
    /// <param name="skip">Where a streamed set's bad images are recorded and left out of their batches; null: a bad image is an error.</param>
    public BatchLoader(ImageDataset data, int batchSize, Device device, bool shuffle, long seed, bool dropLast, int workers = 0,
        ProcessGroup? shareWith = null, SkippedImages? skip = null)
    {
        (this.shareWith, this.skip) = (shareWith, skip);
        if (workers < 0) throw new ArgumentOutOfRangeException(nameof(workers), workers, "the decode workers must be at least 1 (0: one per core)");
        this.workers = workers == 0 ? DefaultWorkers : workers;
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "the batch size must be at least 1");
        if (dropLast && data.Count < batchSize)
            throw new ArgumentException($"{data.Source}: {data.Count} images make no full batch of {batchSize} (dropLast)", nameof(batchSize));
        (this.data, this.batchSize, this.device, this.shuffle, this.seed, this.dropLast) = (data, batchSize, device, shuffle, seed, dropLast);
        BatchesPerEpoch = (int)(dropLast ? data.Count / batchSize : (data.Count + batchSize - 1) / batchSize);
    }

    public int BatchesPerEpoch { get; }

    /// <summary>
    /// Every image of <paramref name="set"/> as uint8 [N,C,H,W] on the CPU: a copy of an in-memory set's,
    /// a streamed set's centre crops (<paramref name="skipBad"/>: less its bad images, which the run lists where it trains on them).
    /// </summary>
    public static Tensor Decoded(ImageDataset set, bool skipBad = false)
    {
        if (!set.IsStreamed) return set.Images.clone();
        var loader = new BatchLoader(set, (int)set.Count, CPU, shuffle: false, 0, dropLast: false, skip: skipBad ? new SkippedImages() : null);
        (Tensor images, Tensor labels) = loader.Epoch(0).Single();
        labels.Dispose();
        return images;
    }

    /// <summary>
    /// The batches of epoch <paramref name="epoch"/>: uint8 [B,C,H,W] images and int64 [B] labels on
    /// the device, which the caller disposes. The order depends only on (seed, epoch), so a run
    /// resumed at an epoch sees exactly the batches an uninterrupted run would.
    /// </summary>
    public IEnumerable<(Tensor Images, Tensor Labels)> Epoch(int epoch)
    {
        foreach (LoadedBatch batch in Load(epoch, withGroups: false)) yield return (batch.Images, batch.Labels);
    }

    /// <summary>The batches of <see cref="Epoch"/> with the groups and counterparts of data that has them (model patching).</summary>
    public IEnumerable<LoadedBatch> Batches(int epoch) => Load(epoch, withGroups: true);

    IEnumerable<LoadedBatch> Load(int epoch, bool withGroups)
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
        if (data.Streamed is { } files)
        {
            long[] positions;
            using (order) positions = Backend.HostSync.Longs(order);
            return BatchStream.Batches(data, files, positions, batchSize, BatchesPerEpoch, training: shuffle, seed, epoch, workers, device,
                shuffle ? $"epoch {epoch}" : "evaluation", withGroups, shareWith, skip);
        }
        return FromMemory(order, withGroups);
    }

    IEnumerable<LoadedBatch> FromMemory(Tensor order, bool withGroups)
    {
        try
        {
            for (int b = 0; b < BatchesPerEpoch; b++)
            {
                long start = (long)b * batchSize;
                using Tensor indices = order.narrow(0, start, Math.Min(batchSize, data.Count - start));
                Tensor Rows(Tensor all) => all.index_select(0, indices).to(device, disposeAfter: true);
                yield return new LoadedBatch(Rows(data.Images), Rows(data.Labels),
                    withGroups && data.Groups is { } groups ? Rows(groups) : null,
                    withGroups && data.Counterparts is { } counterparts ? Rows(counterparts) : null);
            }
        }
        finally
        {
            order.Dispose();
        }
    }
}

/// <summary>
/// One batch on the device: uint8 images [B,C,H,W], int64 labels [B] and, for data with subgroups,
/// int64 groups [B] and the images' counterparts (uint8 [B,C,H,W]) when the data has them. The caller disposes them.
/// </summary>
public readonly record struct LoadedBatch(Tensor Images, Tensor Labels, Tensor? Groups, Tensor? Counterparts);
