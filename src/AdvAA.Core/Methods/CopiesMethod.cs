using System;
using System.Collections.Generic;
using System.Linq;
using AdvAA.Core.Training;
using AdvAA.Core.Augment;
using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Methods;

/// <summary>Parameter texts shared by several specs, so that each reads the same everywhere.</summary>
internal static class Describe
{
    public const string Instances = "M: augmented copies of each batch per step, each with its own draws (a schedule over epochs)";
    public const string MagnitudeScale = "multiplies every sampled level (rounded down, clamped to the levels), e.g. to ramp magnitudes up";
    public const string PolicyProbability = "probability that a sample's policy is applied at all (standard augmentation always is)";
}

/// <summary>A method spec that trains on M copies of each batch.</summary>
public abstract record CopiesSpec : MethodSpec
{
    [Parameter("instances", Describe.Instances, Min = 1, Max = 4096)]
    public EpochSchedule Instances { get; init; } = EpochSchedule.Constant(1);

    /// <summary>M at a (fractional) epoch, rounded to the nearest whole number (halves away from zero).</summary>
    public int InstancesAt(double progress) => (int)Math.Round(Instances.At(progress), MidpointRounding.AwayFromZero);
}

/// <summary>
/// The shape every copy method shares: each batch of N images becomes M copies (instance-major),
/// each copy augmented by <see cref="Augment"/> with its own draws, then standard crop/flip and,
/// when the spec asks, Cutout.
/// </summary>
public abstract class CopiesMethod(MethodContext context, int cutout) : ITrainingMethod
{
    protected MethodContext Context { get; } = context;
    /// <summary>The current epoch (set by <see cref="BeginEpoch"/>).</summary>
    protected EpochContext Epoch { get; private set; } = null!;
    /// <summary>M for the current epoch.</summary>
    protected int Instances { get; private set; } = 1;

    /// <summary>M for an epoch.</summary>
    protected abstract int InstancesFor(EpochContext epoch);

    /// <summary>Augments M·N copies (copy-major) of N images; the standard pipeline follows.</summary>
    protected abstract Tensor Augment(Tensor copies, int n, StepContext step);

    public virtual void BeginEpoch(EpochContext epoch)
    {
        Epoch = epoch;
        Instances = InstancesFor(epoch);
    }

    public TrainingBatch BuildBatch(Tensor images, Tensor labels, StepContext step)
    {
        int m = Instances;
        Tensor copies = m > 1 ? images.repeat(m, 1, 1, 1) : images;
        Tensor targets = m > 1 ? labels.repeat(m) : labels;
        Tensor augmented = Augment(copies, (int)images.shape[0], step);
        return new TrainingBatch(Standard(augmented, cutout, Epoch.Streams.Augment, Context.LoaderCrops), targets, m);
    }

    /// <summary>
    /// Crop/flip (unless <paramref name="loaderCrops"/>: streamed data's loader already took a
    /// RandomResizedCrop and a flip, before the policies, as the ImageNet recipe does), then Cutout
    /// of <paramref name="size"/> pixels unless 0.
    /// </summary>
    internal static Tensor Standard(Tensor batch, int size, Generator generator, bool loaderCrops)
    {
        Tensor cropped = loaderCrops ? batch : StandardAugment.CropFlip(batch, generator);
        return size > 0 ? StandardAugment.Cutout(cropped, size, generator) : cropped;
    }

    public virtual void Observe(TrainingBatch batch, Tensor losses) { }

    public virtual MethodEpochRecord EndEpoch(EpochLosses losses) => MethodEpochRecord.Empty;

    public virtual IReadOnlyList<StatePart> StateParts => [];

    public virtual void Dispose() { }
}

/// <summary>Copies augmented by a policy source (AutoAugment, RandAugment, TrivialAugment, a policy): each copy draws on its own.</summary>
public sealed class SourceMethod(MethodContext context, CopiesSpec spec, IPolicySource source) : CopiesMethod(context, spec.Cutout)
{
    protected override int InstancesFor(EpochContext epoch) => spec.InstancesAt(epoch.Progress);

    protected override Tensor Augment(Tensor copies, int n, StepContext step) => source.Augment(copies, Epoch.Streams.Augment);
}

/// <summary>
/// Copies augmented by M policies of the search space, one per copy, chosen by
/// <see cref="ChoosePolicies"/> (random draws, the controller, a recorded run, a file) at the start of
/// each window of an epoch: the epoch's S steps are cut into <see cref="WindowsFor"/> windows, step s
/// in window ⌊s·W/S⌋ (one window unless a method learns within epochs). Each window's policies and
/// instance losses go into policies.jsonl; <see cref="EndWindow"/> lets a method learn from them.
/// </summary>
/// <param name="space">The space the policies are over (the run's, or a transfer source's).</param>
public abstract class InstancePoliciesMethod(MethodContext context, SearchSpace space, int cutout, EpochSchedule magnitudeScale, EpochSchedule policyProbability)
    : CopiesMethod(context, cutout)
{
    Tensor? ops, levels, probabilities, windowLosses;
    int windows = 1, window, windowSteps;
    readonly List<PolicyWindow> finished = [];

    /// <summary>The [M, Q, K] op ids and levels (CPU, int64) and stage probabilities (or null) of a window of the epoch.</summary>
    protected abstract (Tensor Ops, Tensor Levels, Tensor? Probabilities) ChoosePolicies(EpochContext epoch, int window);

    /// <summary>How many windows the epoch is cut into (each draws its own policies).</summary>
    protected virtual int WindowsFor(EpochContext epoch) => 1;

    /// <summary>A finished window's record, after the method learned from it: its policies and each instance's mean loss over its steps.</summary>
    protected virtual PolicyWindow EndWindow(IReadOnlyList<Policy> policies, double[] instanceLosses) => new(policies, instanceLosses);

    protected override int InstancesFor(EpochContext epoch)
    {
        finished.Clear();
        windows = WindowsFor(epoch);
        Choose(epoch, 0);
        return (int)ops!.shape[0];
    }

    void Choose(EpochContext epoch, int chosen)
    {
        ReleasePolicies();
        (ops, levels, probabilities) = ChoosePolicies(epoch, chosen);
        ops.DetachFromDisposeScope();
        levels.DetachFromDisposeScope();
        probabilities?.DetachFromDisposeScope();
        window = chosen;
        windowSteps = 0;
    }

    /// <summary>Steps observed in the current window (still the finished window's in <see cref="EndWindow"/>).</summary>
    protected int WindowSteps => windowSteps;

    /// <summary>The current window's policies (valid between BeginEpoch and EndEpoch).</summary>
    protected (Tensor Ops, Tensor Levels) Current => (ops!, levels!);

    /// <summary>The sub-policy each copy of the current step drew, int64 [M, N] on the device, −1 where no policy was applied; valid in <see cref="Observe"/>.</summary>
    protected Tensor StepDraws { get; private set; } = null!;

    protected override Tensor Augment(Tensor copies, int n, StepContext step)
    {
        int now = (int)((long)step.Step * windows / Math.Max(step.Steps, 1));
        if (now != window)
        {
            FinishWindow();
            Choose(Epoch, now);
            if (ops!.shape[0] != Instances)
                throw new InvalidOperationException($"window {now + 1} of epoch {Epoch.Epoch} has {ops.shape[0]} policies, the epoch {Instances}: every window of an epoch must have the same M");
        }
        (Tensor augmented, StepDraws) = InstancePolicies.ApplyDrawn(copies, space, ops!, levels!, probabilities, Epoch.Streams.Augment,
            magnitudeScale.At(Epoch.Progress), policyProbability.At(Epoch.Progress));
        return augmented;
    }

    /// <summary>Counts the step; with several windows, adds its per-instance mean losses to its window's (as the trainer sums the epoch's, which a single window takes).</summary>
    public override void Observe(TrainingBatch batch, Tensor losses)
    {
        windowSteps++;
        if (windows == 1) return;
        int m = batch.Instances;
        if (windowLosses is null)
        {
            windowLosses = torch.zeros(m, device: losses.device);
            windowLosses.DetachFromDisposeScope();
        }
        windowLosses.add_(m > 1 ? losses.view(m, -1).mean([1L]) : losses.mean().unsqueeze(0));
    }

    /// <param name="epochLosses">The trainer's instance losses of the epoch: a single window's own.</param>
    void FinishWindow(double[]? epochLosses = null)
    {
        double[] losses = windows == 1 && epochLosses is not null ? epochLosses
            : windowLosses is null ? new double[ops!.shape[0]]
            : windowLosses.div(Math.Max(windowSteps, 1)).cpu().data<float>().Select(v => (double)v).ToArray();
        windowLosses?.Dispose();
        windowLosses = null;
        finished.Add(EndWindow(InstancePolicies.Describe(ops!, levels!, space), losses));
    }

    public override MethodEpochRecord EndEpoch(EpochLosses losses)
    {
        FinishWindow(losses.InstanceLosses);
        return new() { Windows = finished.ToArray() };
    }

    void ReleasePolicies()
    {
        ops?.Dispose();
        levels?.Dispose();
        probabilities?.Dispose();
    }

    public override void Dispose()
    {
        ReleasePolicies();
        windowLosses?.Dispose();
    }
}
