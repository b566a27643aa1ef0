using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using AdvAA.Core.Distributed;
using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Data;

/// <summary>
/// The encoded images of a data set that is decoded per batch rather than held in memory, and the
/// side of the square crops it gives (S).
/// </summary>
internal sealed record StreamedImages(IReadOnlyList<ImageFolders.EncodedImage> Files, int Size);

/// <summary>
/// Batches of a streamed data set decoded by worker threads into a bounded queue: each worker takes
/// the next batch number, decodes and crops its images (<see cref="CropDecoder"/>) into one uint8
/// tensor, and at most <c>prefetch</c> batches wait ahead of the training step. Every image's crop and
/// flip derive from (seed, epoch, image) alone and batches are handed out in order, so the batches
/// are the same for any number of workers. Memory is the queue's batches, not the data set's size.
/// </summary>
internal static class BatchStream
{
    /// <summary>Batches decoded ahead per worker.</summary>
    const int AheadPerWorker = 2;

    /// <summary>
    /// The batches of <paramref name="order"/> (positions into <paramref name="set"/>, <paramref name="batchSize"/>
    /// at a time, <paramref name="batches"/> of them). <paramref name="training"/>: a RandomResizedCrop and a
    /// coin-flip mirror per image, drawn from (seed, epoch, image); else the centre crop. A bad image
    /// is a <see cref="DataFormatException"/> naming it, <paramref name="during"/> and the batch, or with
    /// <paramref name="skip"/> left out of its batch and recorded there. With <paramref name="shareWith"/>
    /// this rank decodes only its slice of each batch (<see cref="SliceOf"/>) and gathers the others'.
    /// </summary>
    internal static IEnumerable<LoadedBatch> Batches(ImageDataset set, StreamedImages files, long[] order, int batchSize, int batches, bool training,
        long seed, int epoch, int workers, Device device, string during, bool withGroups, ProcessGroup? shareWith = null, SkippedImages? skip = null)
    {
        int size = files.Size;
        var gate = new object();
        var done = new Dictionary<int, (Tensor? Images, long[]? Ids, Exception? Error)>();
        using var stop = new CancellationTokenSource();
        using var room = new SemaphoreSlim(workers * AheadPerWorker);
        int next = -1;
        bool pin = device.type == DeviceType.CUDA;

        (Tensor, long[]) Decode(int batch)
        {
            int start = batch * batchSize;
            (int from, int to) = SliceOf(Math.Min(batchSize, order.Length - start), shareWith?.Rank ?? 0, shareWith?.Size ?? 1);
            Tensor images = empty(to - from, 3, size, size, ScalarType.Byte);
            try
            {
                var flipped = new List<long>();
                var kept = new List<long>();
                for (int i = 0; i < to - from; i++)
                {
                    long image = order[start + from + i];
                    using Tensor target = images[kept.Count];
                    bool flip = false;
                    try
                    {
                        CropDecoder.Decode(files.Files[(int)image], (w, h) =>
                        {
                            if (!training) return ImageCrops.Centre(w, h);
                            var draws = SplitMix.For(seed, epoch, image);
                            CropBox box = ImageCrops.RandomResized(w, h, ref draws);
                            flip = draws.NextDouble() < 0.5;
                            return box;
                        }, size, target);
                    }
                    catch (DataFormatException bad) when (skip != null)
                    {
                        skip.Add(new SkippedImage(files.Files[(int)image].Origin, during, batch + 1, bad.Message));
                        continue;
                    }
                    if (flip) flipped.Add(kept.Count);
                    kept.Add(image);
                }
                if (kept.Count < to - from)
                {
                    Tensor good = images.narrow(0, 0, kept.Count).clone();
                    images.Dispose();
                    images = good;
                }
                if (flipped.Count > 0)
                {
                    // One batched mirror of the images whose coin came up.
                    using Tensor rows = tensor(flipped.ToArray());
                    using Tensor chosen = images.index_select(0, rows);
                    using Tensor mirrored = chosen.flip(3);
                    images.index_copy_(0, rows, mirrored);
                }
                return (pin && shareWith is null ? Pinned(images) : images, kept.ToArray());
            }
            catch
            {
                images.Dispose();
                throw;
            }
        }

        void Work()
        {
            Backend.OpenMp.SerialOnThisThread();
            while (true)
            {
                try { room.Wait(stop.Token); }
                catch (OperationCanceledException) { return; }
                int batch = Interlocked.Increment(ref next);
                if (batch >= batches) return;
                (Tensor?, long[]?, Exception?) result;
                try
                {
                    (Tensor images, long[] ids) = Decode(batch);
                    result = (images, ids, null);
                }
                catch (Exception e) { result = (null, null, e); }
                lock (gate)
                {
                    done[batch] = result;
                    Monitor.PulseAll(gate);
                }
                if (result.Item3 != null) return;
            }
        }

        Task[] running = Enumerable.Range(0, workers).Select(_ => Task.Factory.StartNew(Work, TaskCreationOptions.LongRunning)).ToArray();
        try
        {
            for (int b = 0; b < batches; b++)
            {
                (Tensor? decoded, long[]? kept, Exception? error) = Take(b);
                room.Release();
                if (error is DataFormatException bad) throw new DataFormatException($"{bad.Message} ({during}, batch {b + 1} of {batches})", bad);
                if (error != null) throw new InvalidOperationException($"decoding batch {b + 1} of {batches} ({during}) failed: {error.Message}", error);
                Tensor images = decoded!, ids = tensor(kept!);
                if (shareWith != null)
                {
                    (images, ids) = (Gathered(shareWith, images), Gathered(shareWith, ids));
                    if (pin) images = Pinned(images);
                }
                using (ids)
                {
                    if (ids.shape[0] == 0)
                    {
                        images.Dispose();
                        throw new DataFormatException($"every image of batch {b + 1} of {batches} ({during}) was bad and skipped; see the skipped images listed in the run folder");
                    }
                    Tensor Rows(Tensor all) => all.index_select(0, ids).to(device, disposeAfter: true);
                    yield return new LoadedBatch(images.to(device, non_blocking: pin, disposeAfter: true), Rows(set.Labels), withGroups && set.Groups is { } groups ? Rows(groups) : null, null);
                }
            }
        }
        finally
        {
            stop.Cancel();
            Task.WaitAll(running.Select(t => t.ContinueWith(_ => { })).ToArray());
            foreach ((Tensor? images, _, _) in done.Values) images?.Dispose();
        }

        (Tensor?, long[]?, Exception?) Take(int batch)
        {
            lock (gate)
            {
                while (!done.ContainsKey(batch)) Monitor.Wait(gate);
                var result = done[batch];
                done.Remove(batch);
                return result;
            }
        }
    }

    /// <summary>
    /// The images [from, to) of a batch of <paramref name="count"/> that rank <paramref name="rank"/> of
    /// <paramref name="ranks"/> decodes: contiguous slices that together cover the batch once.
    /// </summary>
    internal static (int From, int To) SliceOf(int count, int rank, int ranks) =>
        ((int)((long)count * rank / ranks), (int)((long)count * (rank + 1) / ranks));

    /// <summary>Every rank's rows of <paramref name="mine"/>, which this disposes.</summary>
    static Tensor Gathered(ProcessGroup ranks, Tensor mine)
    {
        using (mine) return ranks.AllGatherRows(mine);
    }

    /// <summary>The batch in page-locked memory, so that the copy to the GPU can run asynchronously.</summary>
    static Tensor Pinned(Tensor images)
    {
        Tensor pinned = images.pin_memory();
        images.Dispose();
        return pinned;
    }
}
