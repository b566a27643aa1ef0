using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using AdvAA.Core.Augment;
using AdvAA.Core.Search;
using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Methods;

/// <summary>Adversarial AutoAugment (Zhang et al. 2020): the M policies come from an LSTM controller trained to raise the target's loss.</summary>
public sealed record AdversarialSpec : SampledPoliciesSpec
{
    [Parameter("embedding", "the controller's token embedding size", Min = 1, Max = 4096)]
    public int Embedding { get; init; } = 32;

    [Parameter("hidden", "the controller's LSTM hidden units", Min = 1, Max = 4096)]
    public int Hidden { get; init; } = 100;

    [Parameter("controller_lr", "the controller's Adam learning rate (one REINFORCE step per epoch)", Min = 0, MinExclusive = true, Max = 10)]
    public double ControllerLearningRate { get; init; } = 0.00035;

    [Parameter("entropy_weight", "weight of the entropy bonus in the controller's loss", Min = 0, Max = 10)]
    public double EntropyWeight { get; init; } = 1e-5;

    public override ITrainingMethod Create(MethodContext context) => new AdversarialMethod(context, this);

    /// <summary>The controller's mean entropy over the epoch's M policies, and its REINFORCE loss.</summary>
    public const string EntropyMetric = "controller_entropy", LossMetric = "controller_loss";

    public override IReadOnlyList<MetricDescription> Metrics { get; } =
    [
        new(EntropyMetric, "Controller entropy (mean over the M policies)", "entropy (nats)", Plot: "entropy", Label: "controller entropy"),
        new(LossMetric, "Controller loss (REINFORCE)", "loss", Plot: null, Label: null),
    ];
}

/// <summary>
/// Each epoch the controller samples M policies; at its end the instances' epoch-mean losses are the
/// reward of one REINFORCE step. Also records the controller's op and level distribution (paper Fig. 6)
/// from policies drawn on a stream of their own, so recording it changes no training draw.
/// </summary>
public sealed class AdversarialMethod : InstancePoliciesMethod
{
    /// <summary>Policies the controller draws for the distribution estimate.</summary>
    public const int DistributionSamples = 256;

    readonly PolicyController controller;
    readonly ControllerTrainer trainer;
    double entropy, seconds;
    ControllerDistribution? distribution;

    public AdversarialMethod(MethodContext context, AdversarialSpec spec)
        : base(context, context.Space, spec.Cutout, spec.MagnitudeScale, spec.PolicyProbability)
    {
        Spec = spec;
        controller = new PolicyController(context.Space.Ops.Count, context.Space.Levels, spec.SubPolicies, spec.OpsPerSubPolicy, spec.Embedding, spec.Hidden,
            EpochStreams.SeedOf(context.Seed, 0, EpochStreams.MethodInitStream));
        trainer = new ControllerTrainer(controller, spec.ControllerLearningRate, spec.EntropyWeight);
    }

    AdversarialSpec Spec { get; }

    protected override (Tensor Ops, Tensor Levels, Tensor? Probabilities) ChoosePolicies(EpochContext epoch)
    {
        var clock = Stopwatch.StartNew();
        using var noGrad = torch.no_grad();
        using ControllerSample sample = controller.Sample(Spec.InstancesAt(epoch.Progress), epoch.Streams.Policy);
        entropy = sample.Entropy.mean().item<float>();
        var chosen = (sample.Ops.detach(), sample.Levels.detach(), (Tensor?)null);
        distribution = Distribution(epoch.Streams.SeedFor(EpochStreams.DistributionStream));
        seconds = clock.Elapsed.TotalSeconds;
        return chosen;
    }

    /// <summary>The share of each op and level among all stages of many policies drawn with their own generator.</summary>
    ControllerDistribution Distribution(long seed)
    {
        using var generator = new Generator((ulong)seed);
        using ControllerSample sample = controller.Sample(DistributionSamples, generator);
        var space = Context.Space;
        using Tensor ops = sample.Ops.reshape(-1).bincount(null, space.Ops.Count).to_type(ScalarType.Float64);
        using Tensor levels = sample.Levels.reshape(-1).bincount(null, space.Levels).to_type(ScalarType.Float64);
        double total = sample.Ops.numel();
        double[] opCounts = ops.data<double>().ToArray();
        return new ControllerDistribution(DistributionSamples,
            space.Ops.Select((o, i) => KeyValuePair.Create(o.Name, opCounts[i] / total)).ToArray(),
            levels.data<double>().Select(c => c / total).ToArray());
    }

    public override MethodEpochRecord EndEpoch(EpochLosses losses)
    {
        var clock = Stopwatch.StartNew();
        var (ops, levels) = Current;
        (double[] normalized, double loss) = trainer.Update(ops, levels, losses.InstanceLosses);
        return base.EndEpoch(losses) with
        {
            NormalizedLosses = normalized,
            Metrics = [KeyValuePair.Create(AdversarialSpec.EntropyMetric, (MetricValue)new MetricValue.Number(entropy)), KeyValuePair.Create(AdversarialSpec.LossMetric, (MetricValue)new MetricValue.Number(loss))],
            Distribution = distribution,
            Seconds = seconds + clock.Elapsed.TotalSeconds,
        };
    }

    public override IReadOnlyList<StatePart> StateParts =>
    [
        StatePart.Of("controller", controller),
        StatePart.Of("controller_optimizer", trainer.Optimizer),
    ];

    public override void Dispose()
    {
        base.Dispose();
        controller.Dispose();
    }
}
