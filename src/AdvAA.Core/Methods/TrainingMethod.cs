using System;
using System.Collections.Generic;
using System.IO;
using AdvAA.Core.Augment;
using AdvAA.Core.Data;
using AdvAA.Core.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Methods;

/// <summary>
/// A training method (DESIGN.md "Training methods"): it turns each batch of N images into the batch
/// the target trains on and may learn from the losses it sees. The trainer calls, per epoch:
/// <see cref="BeginEpoch"/>, then per step <see cref="BuildBatch"/> and <see cref="Observe"/>,
/// then <see cref="EndEpoch"/>; <see cref="StateParts"/> go into every checkpoint.
/// </summary>
public interface ITrainingMethod : IDisposable
{
    void BeginEpoch(EpochContext epoch);

    /// <summary>images: uint8 [N,C,H,W] and labels: int64 [N] on the device; the result lives in the step's dispose scope.</summary>
    TrainingBatch BuildBatch(Tensor images, Tensor labels, StepContext step);

    /// <summary>The per-sample losses (float32 [B], detached) of the batch this method built.</summary>
    void Observe(TrainingBatch batch, Tensor losses);

    /// <summary>Ends the epoch; <paramref name="losses"/> has each instance's epoch-mean loss.</summary>
    MethodEpochRecord EndEpoch(EpochLosses losses);

    /// <summary>Named state to checkpoint (a controller, its optimiser, ...); empty for stateless methods.</summary>
    IReadOnlyList<StatePart> StateParts { get; }
}

/// <summary>
/// A method that sets the training objective itself (group DRO, subgroup consistency) instead of the
/// mean cross-entropy of its batch. Such a method needs the whole batch in one process and its
/// labels as built (no label mixing after it).
/// </summary>
public interface IObjectiveMethod
{
    /// <summary>
    /// The scalar to minimise for the batch this method built: <paramref name="logits"/> float32
    /// [B, classes] and <paramref name="losses"/> its per-sample cross-entropy [B], both with gradients.
    /// </summary>
    Tensor Objective(TrainingBatch batch, Tensor logits, Tensor losses, StepContext step);
}

/// <summary>
/// A method with a stage before the target trains (TANDA's generator): the trainer calls
/// <see cref="Prepare"/> before the first epoch of every session; the stage keeps its own
/// checkpoints in the run folder and continues from them, or just loads its result when done.
/// </summary>
public interface IStagedMethod
{
    /// <summary>Runs or resumes the stage; false when it was cancelled before it finished (the target does not train then).</summary>
    bool Prepare(StageContext stage);

    /// <summary>Whether <see cref="Prepare"/> trains (and writes) a stage, rather than only reading one (a reused generator).</summary>
    bool TrainsStage { get; }
}

/// <summary>
/// What a stage gets: the run folder, the training images (as the target trains on them), their
/// normalisation, the run's identity (a stage's checkpoints must match it), cancellation, and a sink
/// for its progress lines.
/// </summary>
/// <param name="TargetStarted">Whether the target has checkpoints already: a stage that is missing then cannot be trained anew.</param>
public sealed record StageContext(string RunFolder, ImageDataset Train, Normalizer Normalizer, System.Text.Json.Nodes.JsonObject Identity,
    System.Threading.CancellationToken Cancel, Action<string> Report, bool TargetStarted = false);

/// <summary>What a method knows of the run it trains in, when it is made.</summary>
/// <param name="Space">The search space, sized to the data's images (<see cref="SearchSpace.SizedTo"/>).</param>
/// <param name="Groups">The training data's (class, subgroup) groups, or null for data without subgroups.</param>
/// <param name="GroupCounts">Training images per group, in the order of <paramref name="Groups"/>.</param>
/// <param name="HasCounterparts">Whether the training data knows each image's counterpart in its class's other subgroup.</param>
/// <param name="StepsPerEpoch">Optimiser steps in an epoch (0 when unknown, outside a trainer).</param>
/// <param name="Target">The target model, for methods that learn with a copy of it (a teacher); null outside a trainer.</param>
public sealed record MethodContext(SearchSpace Space, int Classes, int Channels, int Height, int Width, Device Device, int Epochs, long Seed,
    IReadOnlyList<SubgroupName>? Groups = null, long[]? GroupCounts = null, bool HasCounterparts = false, int StepsPerEpoch = 0, TargetModel? Target = null,
    bool LoaderCrops = false);

/// <summary>
/// The start of an epoch. <paramref name="Epoch"/> counts from 1; <paramref name="Progress"/> is the
/// epochs done before it. <paramref name="Score"/> gives the model's per-sample losses (float32 [B],
/// no gradients, evaluation mode) of uint8 images and their targets.
/// </summary>
public sealed record EpochContext(int Epoch, double Progress, EpochStreams Streams, Func<Tensor, Tensor, Tensor> Score, Device Device);

/// <summary>
/// One step of an epoch; <paramref name="Progress"/> is fractional epochs since the start of training.
/// For data with subgroups, <paramref name="Groups"/> (int64 [N]) and, when the data has them,
/// <paramref name="Counterparts"/> (uint8 [N,C,H,W]) belong to the step's N images.
/// </summary>
public readonly record struct StepContext(int Step, int Steps, double Progress, Tensor? Groups = null, Tensor? Counterparts = null);

/// <summary>
/// The batch the target trains on. Images: uint8 [B,C,H,W]; Targets: int64 [B] class labels or
/// float32 [B, classes] soft targets. Samples are in instance-major order: sample i belongs to
/// instance i / (B / Instances), so instance m's loss is the mean over its contiguous block.
/// </summary>
public sealed record TrainingBatch
{
    public TrainingBatch(Tensor images, Tensor targets, int instances = 1)
    {
        BatchAugment.CheckImages(images);
        long b = images.shape[0];
        bool hard = targets.dtype == ScalarType.Int64 && targets.dim() == 1;
        bool soft = targets.dtype == ScalarType.Float32 && targets.dim() == 2;
        if (!(hard || soft) || targets.shape[0] != b)
            throw new ArgumentException($"targets must be int64 [{b}] or float32 [{b}, classes]; got {targets.dtype} [{string.Join(",", targets.shape)}]", nameof(targets));
        if (instances < 1 || b % instances != 0)
            throw new ArgumentException($"{b} samples cannot be split into {instances} equal instances", nameof(instances));
        Images = images;
        Targets = targets;
        Instances = instances;
    }

    public Tensor Images { get; }
    public Tensor Targets { get; }
    public int Instances { get; }
}

/// <summary>Each instance's mean training loss over the epoch.</summary>
public sealed record EpochLosses(double[] InstanceLosses);

/// <summary>
/// What a method reports at the end of an epoch, for metrics.jsonl and policies.jsonl: the M policies
/// of each window it applied (null for methods without policies) with what it learned from them, the
/// controller's distribution and its own metrics.
/// </summary>
public sealed record MethodEpochRecord
{
    public ControllerDistribution? Distribution { get; init; }
    /// <summary>The epoch's windows (each with its M policies and what the method learned from them); null for methods without policies.</summary>
    public IReadOnlyList<PolicyWindow>? Windows { get; init; }
    /// <summary>The method's own values of the epoch, by name (described by its spec's <see cref="MethodSpec.Metrics"/>).</summary>
    public IReadOnlyList<KeyValuePair<string, MetricValue>> Metrics { get; init; } = [];
    /// <summary>Seconds the method's own work took in the epoch, by part (e.g. "controller", "teacher"); timings, so not compared between runs.</summary>
    public IReadOnlyList<KeyValuePair<string, double>> Seconds { get; init; } = [];

    public static MethodEpochRecord Empty { get; } = new();
}

