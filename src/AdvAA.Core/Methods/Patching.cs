using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using AdvAA.Core.Augment;
using AdvAA.Core.Data;
using AdvAA.Core.Search;
using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Methods;

/// <summary>
/// Model patching (Goel et al. 2020, CAMEL/CLAMP) and its baselines, for data with subgroups: the
/// target trains on the standard crop/flip of each image with a group-aware objective (ERM, group DRO
/// over all groups, or class-conditional group DRO), and, with translations, on the image's versions
/// in each subgroup of its class (the same crop and flip), tied by CAMEL's subgroup consistency loss.
/// Translations are the data's exact counterparts ("oracle": the benchmark's patch added or removed)
/// or learned in stage 1 by a CycleGAN per class between its two subgroups (in RUN/stage1).
/// </summary>
public sealed record PatchingSpec : MethodSpec
{
    [Parameter("objective", "erm (mean cross-entropy), gdro (group DRO over all groups, Sagawa et al. 2019) or sgdro (class-conditional group DRO, CAMEL's)", Text = true)]
    public string Objective { get; init; } = "sgdro";

    [Parameter("translations", "none, oracle (the data's exact counterparts in the other subgroup) or learned (stage 1: a CycleGAN per class between its two subgroups)", Text = true)]
    public string Translations { get; init; } = "none";

    [Parameter("consistency", "λ: the weight of the subgroup consistency loss (needs translations)", Min = 0, Max = 10000)]
    public double Consistency { get; init; }

    [Parameter("consistency_warmup", "epochs over which λ ramps up linearly from 0", Min = 0, Max = 10000)]
    public double ConsistencyWarmup { get; init; } = 1;

    [Parameter("dro_step", "η: the exponentiated-gradient step size of the group weights", Min = 0, MinExclusive = true, Max = 100)]
    public double DroStep { get; init; } = 0.01;

    [Parameter("dro_adjustment", "C: the generalisation adjustment C/√n_g added to each group's loss in the weights' update", Min = 0, Max = 100)]
    public double DroAdjustment { get; init; }

    [Parameter("gan_epochs", "stage 1: passes over each class's larger subgroup", Min = 1, Max = 10000)]
    public int GanEpochs { get; init; } = 5;

    [Parameter("gan_batch", "stage 1: images per subgroup per step", Min = 1, Max = 4096)]
    public int GanBatch { get; init; } = 16;

    [Parameter("gan_filters", "stage 1: the generators' and discriminators' first-layer filters", Min = 1, Max = 1024)]
    public int GanFilters { get; init; } = 16;

    [Parameter("gan_blocks", "stage 1: the generators' residual blocks", Min = 0, Max = 64)]
    public int GanBlocks { get; init; } = 3;

    [Parameter("gan_lr", "stage 1: Adam's learning rate", Min = 0, MinExclusive = true, Max = 1)]
    public double GanLr { get; init; } = 2e-4;

    [Parameter("cycle_weight", "stage 1: the weight of the cycle-consistency loss", Min = 0, Max = 1000)]
    public double CycleWeight { get; init; } = 10;

    [Parameter("identity_weight", "stage 1: the identity loss's weight relative to the cycle weight", Min = 0, Max = 100)]
    public double IdentityWeight { get; init; } = 0.5;

    static readonly string[] Objectives = ["erm", "gdro", "sgdro"], TranslationKinds = ["none", "oracle", "learned"];

    protected override void Check(int epochs, SearchSpace space)
    {
        if (!Objectives.Contains(Objective)) throw Bad("objective", Objective, string.Join(", ", Objectives));
        if (!TranslationKinds.Contains(Translations)) throw Bad("translations", Translations, string.Join(", ", TranslationKinds));
        if (Translations == "none" && Consistency > 0) throw Bad("consistency", Consistency, "0 without translations (set translations = oracle or learned)");
        if (Translations != "none" && Consistency == 0) throw Bad("consistency", Consistency, $"more than 0: translations = {Translations} serve only the consistency loss");
    }

    internal CycleGanSettings GanSettings => new(Epochs: GanEpochs, Batch: GanBatch, Filters: GanFilters, Blocks: GanBlocks,
        LearningRate: GanLr, CycleWeight: CycleWeight, IdentityWeight: IdentityWeight);

    public override ITrainingMethod Create(MethodContext context) => new PatchingMethod(context, this);

    /// <summary>Group DRO's weight of each (class/subgroup) group at the end of the epoch; the epoch's mean subgroup-consistency loss (before its weight).</summary>
    public const string GroupWeightsMetric = "group_weights", ConsistencyMetric = "consistency_loss";

    public override IReadOnlyList<MetricDescription> Metrics { get; } =
    [
        new(GroupWeightsMetric, "Group DRO weights (end of each epoch)", "weight", Plot: "group-weights", Label: null),
        new(ConsistencyMetric, "Subgroup consistency loss (mean over the epoch's steps)", "loss", Plot: "consistency", Label: "consistency"),
    ];
}

/// <summary>The patching method of a <see cref="PatchingSpec"/>.</summary>
public sealed class PatchingMethod : ITrainingMethod, IObjectiveMethod, IStagedMethod
{
    /// <summary>Stage 1's folder inside the run folder.</summary>
    public const string StageFolder = "stage1";

    readonly MethodContext context;
    readonly PatchingSpec spec;
    readonly IReadOnlyList<SubgroupName> groupNames;
    readonly GroupDro? dro;
    // Per group, its class's first subgroup (translations): int64 [G].
    readonly Tensor? firstOfClass;
    readonly CycleGanStage? translator;
    EpochContext epoch = null!;
    Tensor? consistencySum;
    int steps;

    public PatchingMethod(MethodContext context, PatchingSpec spec)
    {
        (this.context, this.spec) = (context, spec);
        groupNames = context.Groups ?? throw new ConfigException(
            $"method {spec.Name} needs data with subgroups: image folders <root>/{{train,test}}/<class>/<subgroup>/<image> or a metadata.csv (Waterbirds); the training data has no subgroups");
        long[] counts = context.GroupCounts!;
        if (Array.FindIndex(counts, c => c == 0) is int empty and >= 0)
            throw new ConfigException($"method {spec.Name}: group {groupNames[empty]} has no training images (a --train-limit too small for it?); every group needs some");
        if (spec.Objective != "erm")
            dro = new GroupDro(groupNames, counts, spec.DroStep, spec.DroAdjustment, perClass: spec.Objective == "sgdro", context.Device);
        if (spec.Translations == "none") return;
        var pairs = groupNames.GroupBy(g => g.Class).ToList();
        if (pairs.FirstOrDefault(c => c.Count() != 2) is { } odd)
            throw new ConfigException($"method {spec.Name} translates between a class's two subgroups; class '{odd.First().ClassName}' has {odd.Count()} ({string.Join(", ", odd.Select(g => g.Subgroup))})");
        if (spec.Translations == "oracle" && !context.HasCounterparts)
            throw new ConfigException(
                $"method {spec.Name} (translations = oracle) needs the data's exact counterparts, which only a constructed benchmark has (`advaa patching make-spurious` writes them in counterparts/); use translations = learned for other data");
        var ordered = groupNames.ToList();
        firstOfClass = tensor(ordered.Select(g => (long)ordered.FindIndex(h => h.Class == g.Class)).ToArray(), device: context.Device);
        if (spec.Translations == "learned")
            translator = new CycleGanStage(spec.GanSettings, groupNames, context.Channels, context.Height, context.Width, context.Device, context.Seed);
    }

    public bool TrainsStage => translator != null;

    public bool Prepare(StageContext stage)
    {
        if (translator is null) return true;
        string folder = Path.Combine(stage.RunFolder, StageFolder);
        // The target's checkpoints were trained with this stage's translations: a missing stage cannot be redone without changing the run.
        if (stage.TargetStarted && !CycleGanStage.Finished(folder, spec.GanEpochs))
            throw new RunFolderException(
                $"{folder}: the run's stage 1 (its CycleGANs) is missing or unfinished, but the target has trained on its translations; restore that folder or start a new run");
        return translator.Run(folder, stage.Train, stage.Identity, stage.Cancel, stage.Report);
    }

    public void BeginEpoch(EpochContext epoch)
    {
        this.epoch = epoch;
        consistencySum?.Dispose();
        consistencySum = firstOfClass is null ? null : zeros(1, device: epoch.Device).DetachFromDisposeScope();
        steps = 0;
    }

    public TrainingBatch BuildBatch(Tensor images, Tensor labels, StepContext step)
    {
        if (step.Groups is null) throw new InvalidOperationException($"method {spec.Name} was given a batch without groups");
        Generator draws = epoch.Streams.Augment;
        if (firstOfClass is null) return new TrainingBatch(CopiesMethod.Standard(images, spec.Cutout, draws, context.LoaderCrops), labels);
        (Tensor first, Tensor second) = Translate(images, step.Groups, step.Counterparts);
        // The image and its translations share one crop, flip (and Cutout square): only the subgroup differs between them.
        using Tensor state = draws.get_state();
        var versions = new List<Tensor>();
        foreach (Tensor version in new[] { images, first, second })
        {
            draws.set_state(state);
            versions.Add(CopiesMethod.Standard(version, spec.Cutout, draws, context.LoaderCrops));
        }
        return new TrainingBatch(cat(versions, 0), labels.repeat(3), instances: 3);
    }

    /// <summary>Each image's versions in its class's first and second subgroup (one of them is its own).</summary>
    (Tensor First, Tensor Second) Translate(Tensor images, Tensor groups, Tensor? counterparts)
    {
        // The oracle's version of an image in its own subgroup is the image itself.
        (Tensor own, Tensor other) = translator?.Versions(images, groups)
            ?? (images, counterparts ?? throw new InvalidOperationException($"method {spec.Name} was given a batch without counterparts"));
        Tensor inFirst = groups.eq(firstOfClass!.index_select(0, groups)).view(-1, 1, 1, 1);
        return (where(inFirst, own, other), where(inFirst, other, own));
    }

    public Tensor Objective(TrainingBatch batch, Tensor logits, Tensor losses, StepContext step)
    {
        Tensor groups = step.Groups!;
        long n = groups.shape[0];
        Tensor original = losses.narrow(0, 0, n);
        Tensor robust = dro?.Step(original, groups) ?? original.mean();
        steps++;
        if (firstOfClass is null) return robust;
        Tensor consistency = Consistency.Loss(logits.narrow(0, 0, n), logits.narrow(0, n, n), logits.narrow(0, 2 * n, n));
        consistencySum!.add_(consistency.detach());
        double ramp = spec.ConsistencyWarmup > 0 ? Math.Min(1, step.Progress / spec.ConsistencyWarmup) : 1;
        return robust.add(consistency.mul(spec.Consistency * ramp));
    }

    public void Observe(TrainingBatch batch, Tensor losses) { }

    public MethodEpochRecord EndEpoch(EpochLosses losses) => new()
    {
        Metrics =
        [
            .. dro is null ? [] : new[] { KeyValuePair.Create(PatchingSpec.GroupWeightsMetric, (MetricValue)new MetricValue.Named(dro.Named(groupNames))) },
            .. consistencySum is null ? [] : new[] { KeyValuePair.Create(PatchingSpec.ConsistencyMetric, (MetricValue)new MetricValue.Number(consistencySum.item<float>() / Math.Max(steps, 1))) },
        ],
    };

    public IReadOnlyList<StatePart> StateParts => dro is null ? [] : [new StatePart("group_weights", dro.Save, dro.Load)];

    public void Dispose()
    {
        dro?.Dispose();
        firstOfClass?.Dispose();
        translator?.Dispose();
        consistencySum?.Dispose();
    }
}
