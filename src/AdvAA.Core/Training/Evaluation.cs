using System;
using System.Collections.Generic;
using System.Linq;
using AdvAA.Core.Data;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace AdvAA.Core.Training;

/// <summary>
/// A model's mean loss, accuracy and confusion matrix on un-augmented images (the trainer's test,
/// validation and clean-train numbers, and <c>advaa evaluate</c>).
/// </summary>
/// <param name="Confusion">Image counts, rows the true class, columns the predicted one.</param>
/// <param name="GroupImages">For data with subgroups, the images of each group (in the order of the set's GroupNames); else null.</param>
/// <param name="GroupCorrect">For data with subgroups, the images of each group predicted right; else null.</param>
public sealed record Evaluation(long Images, double Loss, double Accuracy, long[,] Confusion, long[]? GroupImages = null, long[]? GroupCorrect = null)
{
    /// <summary>Per group, the share predicted right (NaN for an empty group); null without subgroups.</summary>
    public double[]? GroupAccuracy =>
        GroupImages is null || GroupCorrect is null ? null : GroupImages.Select((n, g) => n == 0 ? double.NaN : GroupCorrect[g] / (double)n).ToArray();

    /// <summary>Per true class, the share of its images predicted as it (NaN for a class without images).</summary>
    public double[] PerClassAccuracy =>
        Enumerable.Range(0, Confusion.GetLength(0)).Select(c =>
        {
            long row = Enumerable.Range(0, Confusion.GetLength(1)).Sum(p => Confusion[c, p]);
            return row == 0 ? double.NaN : Confusion[c, c] / (double)row;
        }).ToArray();

    /// <summary>
    /// Evaluates <paramref name="logits"/> (normalised images → float32 logits over
    /// <paramref name="classes"/>) on every image of <paramref name="set"/>, in batches, without gradients.
    /// </summary>
    public static Evaluation Of(Func<Tensor, Tensor> logits, int classes, Normalizer normalizer, bool channelsLast,
        ImageDataset set, int batchSize, Device device, SkippedImages? skip = null)
    {
        using var noGrad = no_grad();
        var loader = new BatchLoader(set, batchSize, device, shuffle: false, 0, dropLast: false, skip: skip);
        double lossSum = 0;
        long total = 0;
        using Tensor counts = zeros(classes * classes, ScalarType.Int64, device);
        int groupCount = set.GroupNames?.Count ?? 0;
        using Tensor groupRight = zeros(Math.Max(groupCount, 1), ScalarType.Int64, device);
        foreach (LoadedBatch batch in loader.Batches(0))
        {
            using var scope = NewDisposeScope();
            (Tensor images, Tensor labels) = (batch.Images, batch.Labels);
            Tensor output = logits(normalizer.Apply(images, channelsLast));
            lossSum += functional.cross_entropy(output, labels, reduction: Reduction.Sum).item<float>();
            Tensor predicted = output.argmax(1);
            counts.add_(labels.mul(classes).add(predicted).bincount(null, classes * classes));
            if (batch.Groups is { } groups)
                groupRight.add_(groups.masked_select(predicted.eq(labels)).bincount(null, groupCount));
            total += labels.shape[0];
            images.Dispose();
            labels.Dispose();
            batch.Groups?.Dispose();
            batch.Counterparts?.Dispose();
        }
        long[] flat = counts.cpu().data<long>().ToArray();
        var confusion = new long[classes, classes];
        for (int i = 0; i < flat.Length; i++) confusion[i / classes, i % classes] = flat[i];
        long correct = Enumerable.Range(0, classes).Sum(c => confusion[c, c]);
        return new Evaluation(total, lossSum / Math.Max(total, 1), correct / (double)Math.Max(total, 1), confusion,
            set.Groups is null ? null : set.GroupCounts(), set.Groups is null ? null : groupRight.cpu().data<long>().ToArray());
    }
}
