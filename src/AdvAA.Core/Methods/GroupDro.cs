using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using AdvAA.Core.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Methods;

/// <summary>
/// Group DRO's adversarial weights over the (class, subgroup) groups (Sagawa et al. 2019), updated
/// every step by exponentiated gradient: q_g ← q_g · exp(η (ℓ_g + C/√n_g)), ℓ_g the batch's mean loss
/// of group g (0 when absent) and n_g its training images. Over all groups (GDRO) the weights sum to
/// 1 and the robust loss is Σ_g q_g ℓ_g; class-conditional (CAMEL's SGDRO) they sum to 1 within each
/// class and the robust loss is Σ_y (n_y/n) Σ_{g∈y} q_g ℓ_g, each class weighted by its frequency.
/// </summary>
public sealed class GroupDro : IDisposable
{
    readonly Tensor classOfGroup, adjustment, classWeight;
    readonly int groups, classes;
    readonly double step;
    readonly bool perClass;
    Tensor weights;

    /// <param name="groupCounts">Training images per group (n_g).</param>
    /// <param name="step">η, the exponentiated-gradient step size.</param>
    /// <param name="adjustment">C of the generalisation adjustment C/√n_g.</param>
    /// <param name="perClass">Class-conditional weights (SGDRO) rather than one distribution over all groups.</param>
    public GroupDro(IReadOnlyList<SubgroupName> groupNames, long[] groupCounts, double step, double adjustment, bool perClass, Device device)
    {
        if (groupNames.Count != groupCounts.Length) throw new ArgumentException($"{groupNames.Count} groups but {groupCounts.Length} counts");
        if (groupCounts.Any(c => c < 1)) throw new ArgumentException($"group {groupNames[Array.FindIndex(groupCounts, c => c < 1)]} has no training images");
        (groups, this.step, this.perClass) = (groupNames.Count, step, perClass);
        classes = groupNames.Max(g => g.Class) + 1;
        using var scope = NewDisposeScope();
        classOfGroup = tensor(groupNames.Select(g => (long)g.Class).ToArray(), device: device).DetachFromDisposeScope();
        var counts = tensor(groupCounts.Select(c => (float)c).ToArray(), device: device);
        this.adjustment = counts.rsqrt().mul(adjustment).DetachFromDisposeScope();
        var classCounts = zeros(classes, device: device).index_add_(0, classOfGroup, counts, 1);
        classWeight = classCounts.div(classCounts.sum()).DetachFromDisposeScope();
        weights = Normalised(ones(groups, device: device)).DetachFromDisposeScope();
    }

    /// <summary>The current weights (float32 [G]).</summary>
    public Tensor Weights => weights;

    /// <summary>The weights by group name, for the epoch's record.</summary>
    public IReadOnlyList<KeyValuePair<string, double>> Named(IReadOnlyList<SubgroupName> groupNames)
    {
        float[] q = weights.cpu().data<float>().ToArray();
        return groupNames.Select((g, i) => KeyValuePair.Create(g.ToString(), (double)q[i])).ToList();
    }

    /// <summary>
    /// Updates the weights with this batch's per-sample losses (float32 [B], with gradients) of images
    /// in these groups (int64 [B]) and returns the robust loss, differentiable in the losses.
    /// </summary>
    public Tensor Step(Tensor losses, Tensor sampleGroups)
    {
        Tensor groupLoss = GroupLosses(losses, sampleGroups);
        using (no_grad())
        {
            Tensor updated = weights.mul(groupLoss.detach().add(adjustment).mul(step).exp());
            weights.Dispose();
            weights = Normalised(updated).DetachFromDisposeScope();
        }
        Tensor weighted = groupLoss.mul(weights);
        return perClass ? weighted.mul(classWeight.index_select(0, classOfGroup)).sum() : weighted.sum();
    }

    /// <summary>Each group's mean loss in the batch (0 for a group without images in it): float32 [G].</summary>
    public Tensor GroupLosses(Tensor losses, Tensor sampleGroups)
    {
        Tensor sums = zeros(groups, device: losses.device).index_add(0, sampleGroups, losses, 1);
        Tensor counts = zeros(groups, device: losses.device).index_add_(0, sampleGroups, ones_like(losses), 1);
        return sums.div(counts.clamp_min(1));
    }

    /// <summary>Weights that sum to 1 overall, or within each class.</summary>
    Tensor Normalised(Tensor q)
    {
        if (!perClass) return q.div(q.sum());
        Tensor totals = zeros(classes, device: q.device).index_add_(0, classOfGroup, q, 1);
        return q.div(totals.index_select(0, classOfGroup));
    }

    public void Save(Stream stream)
    {
        using var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true);
        float[] q = weights.cpu().data<float>().ToArray();
        writer.Write(q.Length);
        foreach (float v in q) writer.Write(v);
    }

    public void Load(Stream stream)
    {
        using var reader = new BinaryReader(stream, System.Text.Encoding.UTF8, leaveOpen: true);
        int count = reader.ReadInt32();
        if (count != groups) throw new InvalidDataException($"group DRO weights for {count} groups; this data has {groups}");
        var q = new float[count];
        for (int i = 0; i < count; i++) q[i] = reader.ReadSingle();
        Tensor loaded = tensor(q, device: classOfGroup.device);
        weights.Dispose();
        weights = loaded.DetachFromDisposeScope();
    }

    public void Dispose()
    {
        weights.Dispose();
        classOfGroup.Dispose();
        adjustment.Dispose();
        classWeight.Dispose();
    }
}
