using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
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
    /// is a <see cref="DataFormatException"/> naming it, <paramref name="during"/> and the batch.
    /// </summary>
    internal static IEnumerable<LoadedBatch> Batches(ImageDataset set, StreamedImages files, long[] order, int batchSize, int batches, bool training,
        long seed, int epoch, int workers, Device device, string during, bool withGroups)
    {
        int size = files.Size;
        long planeBytes = 3L * size * size;
        var gate = new object();
        var done = new Dictionary<int, (Tensor? Images, Exception? Error)>();
        using var stop = new CancellationTokenSource();
        using var room = new SemaphoreSlim(workers * AheadPerWorker);
        int next = -1;
        bool pin = device.type == DeviceType.CUDA;

        Tensor Decode(int batch)
        {
            int start = batch * batchSize, count = Math.Min(batchSize, order.Length - start);
            Tensor images = empty(count, 3, size, size, ScalarType.Byte);
            try
            {
                var flipped = new List<long>();
                for (int i = 0; i < count; i++)
                {
                    long image = order[start + i];
                    using Tensor target = images[i];
                    CropDecoder.Decode(files.Files[(int)image], (w, h) =>
                    {
                        if (!training) return ImageCrops.Centre(w, h);
                        var draws = SplitMix.For(seed, epoch, image);
                        CropBox box = ImageCrops.RandomResized(w, h, ref draws);
                        if (draws.NextDouble() < 0.5) flipped.Add(i);
                        return box;
                    }, size, target);
                }
                if (flipped.Count > 0)
                {
                    // One batched mirror of the images whose coin came up.
                    using Tensor rows = tensor(flipped.ToArray());
                    using Tensor chosen = images.index_select(0, rows);
                    using Tensor mirrored = chosen.flip(3);
                    images.index_copy_(0, rows, mirrored);
                }
                return pin ? Pinned(images) : images;
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
                (Tensor?, Exception?) result;
                try { result = (Decode(batch), null); }
                catch (Exception e) { result = (null, e); }
                lock (gate)
                {
                    done[batch] = result;
                    Monitor.PulseAll(gate);
                }
                if (result.Item2 != null) return;
            }
        }

        Task[] running = Enumerable.Range(0, workers).Select(_ => Task.Factory.StartNew(Work, TaskCreationOptions.LongRunning)).ToArray();
        try
        {
            for (int b = 0; b < batches; b++)
            {
                (Tensor? images, Exception? error) = Take(b);
                room.Release();
                if (error is DataFormatException bad) throw new DataFormatException($"{bad.Message} ({during}, batch {b + 1} of {batches})", bad);
                if (error != null) throw new InvalidOperationException($"decoding batch {b + 1} of {batches} ({during}) failed: {error.Message}", error);
                int start = b * batchSize, count = (int)images!.shape[0];
                using Tensor indices = tensor(order.AsSpan(start, count).ToArray());
                Tensor Rows(Tensor all) => all.index_select(0, indices).to(device, disposeAfter: true);
                yield return new LoadedBatch(images.to(device, non_blocking: pin, disposeAfter: true), Rows(set.Labels), withGroups && set.Groups is { } groups ? Rows(groups) : null, null);
            }
        }
        finally
        {
            stop.Cancel();
            Task.WaitAll(running.Select(t => t.ContinueWith(_ => { })).ToArray());
            foreach ((Tensor? images, _) in done.Values) images?.Dispose();
        }

        (Tensor?, Exception?) Take(int batch)
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

    /// <summary>The batch in page-locked memory, so that the copy to the GPU can run asynchronously.</summary>
    static Tensor Pinned(Tensor images)
    {
        Tensor pinned = images.pin_memory();
        images.Dispose();
        return pinned;
    }
}
