using System;
using System.Collections.Generic;
using System.Linq;
using AdvAA.Core.Backend;
using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Augment;

/// <summary>
/// Batched per-sample application: every sample carries its own op and magnitude per stage. A stage
/// sorts the samples by op (one host synchronisation for the counts), computes all geometric ops as one
/// pixel gather, all table ops (Invert, Solarize, Posterize, AutoContrast, Equalize, Contrast,
/// Brightness) as one table gather and every other op once on its own samples, then scatters the
/// results back. No loop over images.
/// </summary>
public static class BatchAugment
{
    /// <summary>
    /// Applies stages k = 0..K−1 in order. opIds: int64 [N,K], indices into space.Ops, or −1 for "no op at
    /// this stage"; levels: float32 or int64 [N,K], whole numbers in 0..space.Levels−1. Signed ops draw a
    /// random sign per sample and stage. Random draws use <paramref name="generator"/> (the default CPU
    /// generator when null) on its own device and move to the images' device in one copy. The host
    /// reads the per-op counts of all stages at once (one wait for a GPU per call); ids and levels are
    /// checked first (another wait) unless <paramref name="trusted"/> says the caller made them valid.
    /// </summary>
    public static Tensor Apply(Tensor images, SearchSpace space, Tensor opIds, Tensor levels, torch.Generator? generator, bool trusted = false)
    {
        CheckImages(images);
        long n = images.shape[0];
        if (opIds.dtype != ScalarType.Int64 || opIds.dim() != 2 || opIds.shape[0] != n)
            throw new AugmentException($"opIds must be int64 [N,K] with N = {n} (the images); got {Describe(opIds)}");
        if ((levels.dtype != ScalarType.Float32 && levels.dtype != ScalarType.Int64) || !levels.shape.SequenceEqual(opIds.shape))
            throw new AugmentException($"levels must be float32 or int64 [{n},{opIds.shape[1]}] like opIds; got {Describe(levels)}");

        using var scope = torch.NewDisposeScope();
        var device = images.device;
        var tables = space.TablesOn(device);
        var ids = opIds.to(device);
        var lv = levels.to(device).to(ScalarType.Float32);
        if (!trusted)
        {
            var badId = ids.lt(-1).logical_or_(ids.ge(space.Ops.Count));
            var badLevel = lv.ge(0).logical_and_(lv.le(space.Levels - 1)).logical_and_(lv.eq(lv.floor())).logical_not_();
            if (HostSync.Item<bool>(badId.logical_or(badLevel).any()))
                throw BadStageInput(space, ids, lv, badId, badLevel);
        }

        long stages = ids.shape[1];
        if (stages == 0) return images.clone().MoveToOuterDisposeScope();
        var safeIds = ids.clamp_min(0);
        var cells = safeIds.mul(space.Levels).add_(lv.to(ScalarType.Int64));
        // Per sample and stage: the sign, and two uniforms for ops that place something (Cutout's centre).
        var uniforms = Draw.Uniform(new[] { n, stages, 3 }, generator, device);
        var negate = uniforms.select(2, 0).lt(0.5);
        var values = torch.where(negate, tables.Reflected.take(cells), tables.Values.take(cells));
        // Every stage's op ranks and, in one read, how many samples chose each op at each stage.
        long rankCount = space.Ops.Count + 1;
        var ranks = tables.RankOfId.take(ids.add(1));
        long[] counts = HostSync.Longs(torch.bincount(ranks.add(torch.arange(stages, device: device).mul_(rankCount)).flatten(), minlength: stages * rankCount));

        var x = images;
        for (long k = 0; k < stages; k++)
            x = Stage(x, space, tables, ranks.select(1, k), counts.AsSpan((int)(k * rankCount), (int)rankCount).ToArray(),
                ids.select(1, k), values.select(1, k), uniforms.select(1, k).narrow(1, 1, 2));
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// One stage with raw values: opIds int64 [N] (−1 = no op), values float32 [N] after the sign, each
    /// within its op's valid range (<see cref="OpDefinition.Min"/>..<see cref="OpDefinition.Max"/>).
    /// </summary>
    public static Tensor ApplyValues(Tensor images, SearchSpace space, Tensor opIds, Tensor values, torch.Generator? generator)
    {
        CheckImages(images);
        long n = images.shape[0];
        if (opIds.dtype != ScalarType.Int64 || opIds.dim() != 1 || opIds.shape[0] != n)
            throw new AugmentException($"opIds must be int64 [{n}] (one per image); got {Describe(opIds)}");
        if (values.dtype != ScalarType.Float32 || values.dim() != 1 || values.shape[0] != n)
            throw new AugmentException($"values must be float32 [{n}] (one per image); got {Describe(values)}");
        using var scope = torch.NewDisposeScope();
        var device = images.device;
        var tables = space.TablesOn(device);
        var ids = opIds.to(device);
        var vs = values.to(device);
        CheckValues(space, tables, ids, vs);
        var uniforms = Draw.Uniform(new[] { n, 2L }, generator, device);
        var ranks = tables.RankOfId.index_select(0, ids.add(1));
        long[] counts = HostSync.Longs(torch.bincount(ranks, minlength: space.Ops.Count + 1));
        return Stage(images, space, tables, ranks, counts, ids, vs, uniforms).MoveToOuterDisposeScope();
    }

    /// <summary>Throws unless images are uint8 [N,C,H,W] with C = 1 or 3.</summary>
    public static void CheckImages(Tensor images)
    {
        if (images.dtype != ScalarType.Byte || images.dim() != 4 || (images.shape[1] != 1 && images.shape[1] != 3)
            || images.shape[2] < 1 || images.shape[3] < 1)
            throw new AugmentException($"images must be uint8 [N,C,H,W] with C = 1 or 3; got {Describe(images)}");
    }

    /// <summary>
    /// One stage: sorts the samples by op, computes each pass on its samples and scatters the results back.
    /// <paramref name="host"/> holds how many samples chose the op of each rank (read by the caller).
    /// Every sample reads the whole stage input (SamplePairing's partner).
    /// </summary>
    static Tensor Stage(Tensor x, SearchSpace space, SpaceTables tables, Tensor ranks, long[] host, Tensor ids, Tensor values, Tensor uniforms)
    {
        var (_, order) = ranks.sort(0, descending: false, stable: true);

        long active = host.Take(tables.ActiveRanks).Sum();
        if (active == 0) return x.clone();
        var activeOrder = order.narrow(0, 0, active);
        var xs = x.index_select(0, activeOrder);
        var vs = values.index_select(0, activeOrder);
        var us = uniforms.index_select(0, activeOrder);
        long h = x.shape[2], w = x.shape[3];

        var parts = new List<Tensor>();
        long start = 0;
        int rank = 0;
        while (rank < tables.ActiveRanks)
        {
            var compute = space.ComputeOf(tables.RankOrder[rank]);
            if (compute is AffineCompute or LutCompute)
            {
                // All ops of this pass, each on its contiguous run of samples, then one gather for the pass.
                long groupStart = start;
                var pieces = new List<Tensor>();
                for (; rank < tables.ActiveRanks && space.ComputeOf(tables.RankOrder[rank]).GetType() == compute.GetType(); rank++)
                {
                    long c = host[rank];
                    if (c == 0) continue;
                    var op = space.ComputeOf(tables.RankOrder[rank]);
                    pieces.Add(op is AffineCompute a
                        ? a.Matrix(vs.narrow(0, start, c), h, w)
                        : ((LutCompute)op).Lut(xs.narrow(0, start, c), vs.narrow(0, start, c)));
                    start += c;
                }
                if (start == groupStart) continue;
                var group = xs.narrow(0, groupStart, start - groupStart);
                var table = pieces.Count == 1 ? pieces[0] : torch.cat(pieces);
                parts.Add(compute is AffineCompute
                    ? ImageKernels.AffineNearest(group, table, ImageKernels.Fill)
                    : ImageKernels.ApplyLut(group, table));
            }
            else
            {
                long c = host[rank];
                if (c > 0)
                {
                    var slice = new StageSlice(xs.narrow(0, start, c), vs.narrow(0, start, c), x, activeOrder.narrow(0, start, c), us.narrow(0, start, c));
                    parts.Add(((DirectCompute)compute).Apply(slice));
                    start += c;
                }
                rank++;
            }
        }
        var result = parts.Count == 1 ? parts[0] : torch.cat(parts);
        return x.index_copy(0, activeOrder, result);
    }

    static void CheckValues(SearchSpace space, SpaceTables tables, Tensor ids, Tensor values)
    {
        int opCount = space.Ops.Count;
        var safe = ids.clamp(0, opCount - 1);
        var valid = values.isfinite()
            .logical_and_(values.ge(tables.Min.index_select(0, safe)))
            .logical_and_(values.le(tables.Max.index_select(0, safe)));
        var badId = ids.lt(-1).logical_or_(ids.ge(opCount));
        var badValue = ids.ge(0).logical_and_(tables.HasMagnitude.index_select(0, safe)).logical_and_(valid.logical_not_());
        var bad = badId.logical_or_(badValue);
        if (HostSync.Item<bool>(bad.any()))
            throw BadValues(space, ids, values, bad);
    }

    static AugmentException BadStageInput(SearchSpace space, Tensor ids, Tensor levels, Tensor badId, Tensor badLevel)
    {
        var where = badId.logical_or(badLevel).nonzero()[0].cpu().data<long>().ToArray();
        long sample = where[0], stage = where[1];
        long id = ids[sample, stage].item<long>();
        if (badId[sample, stage].item<bool>())
            return new AugmentException($"sample {sample}, stage {stage}: op id {id} is outside -1..{space.Ops.Count - 1} (the space has {space.Ops.Count} ops)");
        float level = levels[sample, stage].item<float>();
        return new AugmentException(
            $"sample {sample}, stage {stage}: level {OpDefinition.Format(level)} is not a whole number in 0..{space.Levels - 1} " +
            $"(op {(id >= 0 ? space.Ops[(int)id].Name : "none")}; the space has {space.Levels} levels)");
    }

    static AugmentException BadValues(SearchSpace space, Tensor ids, Tensor values, Tensor bad)
    {
        long sample = bad.nonzero()[0, 0].item<long>();
        long id = ids[sample].item<long>();
        if (id < -1 || id >= space.Ops.Count)
            return new AugmentException($"sample {sample}: op id {id} is outside -1..{space.Ops.Count - 1} (the space has {space.Ops.Count} ops)");
        float value = values[sample].item<float>();
        return new AugmentException($"sample {sample}: {space.Ops[(int)id].ValueProblem(value, "value")!}");
    }

    static string Describe(Tensor t) => $"{t.dtype} [{string.Join(",", t.shape)}]";
}
