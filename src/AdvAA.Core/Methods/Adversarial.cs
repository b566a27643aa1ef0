using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using AdvAA.Core.Augment;
using AdvAA.Core.Search;
using AdvAA.Core.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Methods;

/// <summary>
/// Adversarial AutoAugment (Zhang et al. 2020): the M policies come from an LSTM controller trained
/// with REINFORCE to raise the target's loss. The defaults are the paper's Algorithm 1 (one update an
/// epoch, the instances' mean losses as reward) except that the heads start at zero; the other
/// parameters make it learn within a small budget: several updates an epoch, a paired reward per
/// sub-policy, a reward bounded by an EMA teacher (TeachAugment), and a prior with a KL penalty.
/// </summary>
public sealed record AdversarialSpec : SampledPoliciesSpec
{
    [Parameter("embedding", "the controller's token embedding size", Min = 1, Max = 4096)]
    public int Embedding { get; init; } = 32;

    [Parameter("hidden", "the controller's LSTM hidden units", Min = 1, Max = 4096)]
    public int Hidden { get; init; } = 100;

    [Parameter("controller_lr", "the controller's Adam learning rate; 0 keeps it where it starts (uniform, or the prior)", Min = 0, Max = 10)]
    public double ControllerLearningRate { get; init; } = 0.00035;

    [Parameter("entropy_weight", "weight of the entropy bonus in the controller's loss", Min = 0, Max = 10)]
    public double EntropyWeight { get; init; } = 1e-5;

    [Parameter("updates_per_epoch", "the epoch's steps are cut into this many windows; each draws M fresh policies and ends with one controller step on its losses (the paper: 1)", Min = 1, Max = 100000)]
    public int UpdatesPerEpoch { get; init; } = 1;

    [Parameter("reward", "instance (the paper: each policy's mean loss) or paired (per sub-policy: the mean over the images that drew it of their loss minus the image's mean over the M instances)", Text = true)]
    public string Reward { get; init; } = InstanceReward;

    [Parameter("teacher_weight", "λ: the reward is the target's loss minus λ × the loss of an EMA teacher of the target on the same images (TeachAugment); 0 for none", Min = 0, Max = 100)]
    public double TeacherWeight { get; init; }

    [Parameter("teacher_decay", "the teacher's EMA decay per step: θ_T ← d·θ_T + (1 − d)·θ", Min = 0, Max = 1)]
    public double TeacherDecay { get; init; } = 0.99;

    [Parameter("prior", "none (uniform), autoaugment (the op marginals of AutoAugment's CIFAR-10 policy, and the level marginals of its stages with a magnitude) or op weights \"Invert:3,Solarize:2\" (unnamed ops 1): the heads start from it and the KL penalty pulls towards it", Text = true)]
    public string Prior { get; init; } = NoPrior;

    [Parameter("kl_weight", "weight of KL(controller ‖ prior) in the controller's loss, summed over a policy's choices", Min = 0, Max = 100)]
    public double KlWeight { get; init; }

    [Parameter("head_init", "zero (the op and level heads start at zero: the first policies come exactly from the prior) or uniform (±0.1 like the other weights; runs recorded before this parameter)", Text = true, Absent = UniformHeads)]
    public string HeadInit { get; init; } = ZeroHeads;

    public const string InstanceReward = "instance", PairedReward = "paired", NoPrior = "none", AutoAugmentPrior = "autoaugment", ZeroHeads = "zero", UniformHeads = "uniform";

    /// <summary>Weight every op gets in the AutoAugment prior beyond the probabilities of its stages, so that no op is ruled out.</summary>
    public const double PriorSmoothing = 0.25;

    protected override void Check(int epochs, SearchSpace space)
    {
        if (Reward is not (InstanceReward or PairedReward)) throw Bad("reward", Reward, $"{InstanceReward} or {PairedReward}");
        if (HeadInit is not (ZeroHeads or UniformHeads)) throw Bad("head_init", HeadInit, $"{ZeroHeads} or {UniformHeads}");
        if (Reward == PairedReward && Enumerable.Range(0, epochs).FirstOrDefault(e => InstancesAt(e) < 2, -1) is int single and >= 0)
            throw Bad("reward", Reward, $"instance when M < 2: a paired reward compares an image's M instances, and epoch {single + 1} has M = {InstancesAt(single)}");
        ControllerPrior(space);
    }

    /// <summary>The prior over the space's ops and levels, or null for none (uniform).</summary>
    public ControllerPrior? ControllerPrior(SearchSpace space)
    {
        if (string.Equals(Prior, NoPrior, StringComparison.OrdinalIgnoreCase)) return null;
        var ops = Enumerable.Repeat(1.0, space.Ops.Count).ToArray();
        var levels = Enumerable.Repeat(1.0, space.Levels).ToArray();
        int OpIndex(string op)
        {
            try { return space.IndexOf(op); }
            catch (AugmentException) { throw Bad("prior", Prior, $"ops of the search space ({string.Join(", ", space.Ops.Select(o => o.Name))}): it names {op}"); }
        }
        if (string.Equals(Prior, AutoAugmentPrior, StringComparison.OrdinalIgnoreCase))
        {
            Array.Fill(ops, PriorSmoothing);
            Array.Fill(levels, PriorSmoothing);
            foreach (var stage in AutoAugmentPolicy.Cifar10.SubPolicies.SelectMany(s => s.Stages))
            {
                int op = OpIndex(stage.Op);
                ops[op] += stage.Probability;
                // AutoAugment's levels are 0..9 (a space with other levels takes the nearest); an op without a magnitude has none to count.
                if (space.Ops[op].HasMagnitude) levels[(int)Math.Round(stage.Level * (space.Levels - 1) / 9.0)] += stage.Probability;
            }
            return Search.ControllerPrior.FromWeights(ops, levels);
        }
        foreach (string part in Prior.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            string[] pair = part.Split(':', StringSplitOptions.TrimEntries);
            if (pair.Length != 2 || !double.TryParse(pair[1], NumberStyles.Float, CultureInfo.InvariantCulture, out double weight) || !(weight > 0) || !double.IsFinite(weight))
                throw Bad("prior", Prior, $"{NoPrior}, {AutoAugmentPrior} or op weights like \"Invert:3,Solarize:2\" (each weight a number > 0); \"{part}\" is not one");
            ops[OpIndex(pair[0])] = weight;
        }
        return Search.ControllerPrior.FromWeights(ops, levels);
    }

    public override ITrainingMethod Create(MethodContext context)
    {
        if (context.StepsPerEpoch > 0 && UpdatesPerEpoch > context.StepsPerEpoch)
            throw Bad("updates_per_epoch", UpdatesPerEpoch, $"at most the {context.StepsPerEpoch} steps of an epoch (each window needs one)");
        if (TeacherWeight > 0 && context.Target is null)
            throw Bad("teacher_weight", TeacherWeight, "0 here: a teacher needs the target model, which only a trainer has");
        return new AdversarialMethod(context, this);
    }

    /// <summary>The controller's values of an epoch (means over its windows) and the teacher's mean loss.</summary>
    public const string EntropyMetric = "controller_entropy", LossMetric = "controller_loss", KlMetric = "controller_kl", TeacherLossMetric = "teacher_loss";

    /// <summary>The parts of the method's time in metrics.jsonl's method_seconds: sampling, the distribution and the updates; the teacher's forward passes and EMA steps.</summary>
    public const string ControllerPart = "controller", TeacherPart = "teacher";

    public override IReadOnlyList<MetricDescription> Metrics { get; } =
    [
        new(EntropyMetric, "Controller entropy (mean over the M policies)", "entropy (nats)", Plot: "entropy", Label: "controller entropy"),
        new(LossMetric, "Controller loss (REINFORCE)", "loss", Plot: null, Label: null),
        new(KlMetric, "KL(controller ‖ prior), summed over a policy's choices", "KL (nats)", Plot: "kl", Label: "KL from the prior"),
        new(TeacherLossMetric, "EMA teacher's loss on the augmented batches", "loss", Plot: null, Label: null),
    ];
}

/// <summary>
/// Each window of an epoch the controller samples M policies; when the window ends, the rewards of
/// its steps make one REINFORCE step. At the start of each epoch it records the controller's op and
/// level distribution (paper Fig. 6), exactly where that is cheap, else averaged along rollouts drawn
/// on a stream of their own, so recording it changes no training draw.
/// </summary>
public sealed class AdversarialMethod : InstancePoliciesMethod
{
    /// <summary>Sub-policies the distribution is averaged along when it is too costly to compute exactly.</summary>
    public const int DistributionRollouts = 256;

    readonly PolicyController controller;
    readonly ControllerTrainer trainer;
    readonly EmaTeacher? teacher;
    readonly bool paired;
    readonly int subPolicies;
    // Per window, on the device: the teacher-bounded instance reward sums [M], and per (instance, sub-policy) unit the sums and counts of paired differences [M·Q].
    Tensor? instanceRewards, unitSums, unitCounts;
    Tensor? teacherLossSum;
    int epochSteps, windowsDone;
    double entropySum, lossSum, klSum, controllerSeconds, teacherSeconds;
    ControllerDistribution? distribution;

    public AdversarialMethod(MethodContext context, AdversarialSpec spec)
        : base(context, context.Space, spec.Cutout, spec.MagnitudeScale, spec.PolicyProbability)
    {
        Spec = spec;
        var prior = spec.ControllerPrior(context.Space);
        controller = new PolicyController(context.Space.Ops.Count, context.Space.Levels, spec.SubPolicies, spec.OpsPerSubPolicy, spec.Embedding, spec.Hidden,
            EpochStreams.SeedOf(context.Seed, 0, EpochStreams.MethodInitStream), zeroHeads: spec.HeadInit == AdversarialSpec.ZeroHeads, prior);
        trainer = new ControllerTrainer(controller, spec.ControllerLearningRate, spec.EntropyWeight, spec.KlWeight, prior);
        teacher = spec.TeacherWeight > 0 ? new EmaTeacher(context.Target!, spec.TeacherDecay) : null;
        paired = spec.Reward == AdversarialSpec.PairedReward;
        subPolicies = spec.SubPolicies;
    }

    AdversarialSpec Spec { get; }

    protected override int WindowsFor(EpochContext epoch) => Spec.UpdatesPerEpoch;

    protected override (Tensor Ops, Tensor Levels, Tensor? Probabilities) ChoosePolicies(EpochContext epoch, int window)
    {
        var clock = Stopwatch.StartNew();
        if (window == 0)
        {
            (entropySum, lossSum, klSum, controllerSeconds, teacherSeconds, windowsDone, epochSteps) = (0, 0, 0, 0, 0, 0, 0);
            distribution = Distribution(epoch.Streams.SeedFor(EpochStreams.DistributionStream));
        }
        using var noGrad = torch.no_grad();
        using ControllerSample sample = controller.Sample(Spec.InstancesAt(epoch.Progress), epoch.Streams.Policy);
        entropySum += sample.Entropy.mean().item<float>();
        var chosen = (sample.Ops.detach(), sample.Levels.detach(), (Tensor?)null);
        controllerSeconds += clock.Elapsed.TotalSeconds;
        return chosen;
    }

    /// <summary>The controller's op and level shares among all stages of its policies.</summary>
    ControllerDistribution Distribution(long seed)
    {
        using var generator = new Generator((ulong)seed);
        var marginals = controller.Marginals(rollouts: DistributionRollouts, generator: generator);
        return new ControllerDistribution(marginals.Exact, marginals.Rollouts,
            Context.Space.Ops.Select((o, i) => KeyValuePair.Create(o.Name, marginals.Ops[i])).ToArray(), marginals.Levels);
    }

    public override void Observe(TrainingBatch batch, Tensor losses)
    {
        base.Observe(batch, losses);
        epochSteps++;
        if (teacher is null && !paired) return;
        int m = batch.Instances;
        Tensor signal = losses.view(m, -1);
        if (teacher is not null)
        {
            var clock = Stopwatch.StartNew();
            Tensor teacherLosses = teacher.Losses(batch.Images, batch.Targets).view(m, -1);
            teacher.Update();
            signal = signal - Spec.TeacherWeight * teacherLosses;
            Accumulate(ref teacherLossSum, teacherLosses.mean().unsqueeze(0), 1);
            teacherSeconds += clock.Elapsed.TotalSeconds;
        }
        if (!paired)
        {
            Accumulate(ref instanceRewards, signal.mean([1L]), m);
            return;
        }
        var (sums, counts) = PairedDifferences(signal, StepDraws, subPolicies);
        Accumulate(ref unitSums, sums, m * subPolicies);
        Accumulate(ref unitCounts, counts, m * subPolicies);
    }

    /// <summary>
    /// The paired reward's sums for one step: each copy's difference from its image's mean over the M
    /// instances (<paramref name="signal"/> float32 [M, N]), summed per (instance, sub-policy) unit it
    /// drew (<paramref name="drawn"/> int64 [M, N], −1 for a copy no policy was applied to, which
    /// counts nowhere). Returns the sums and the copies counted, float32 [M·Q] each, instance-major.
    /// </summary>
    public static (Tensor Sums, Tensor Counts) PairedDifferences(Tensor signal, Tensor drawn, int subPolicies)
    {
        long m = signal.shape[0];
        Tensor differences = signal - signal.mean([0L], keepdim: true);
        Tensor applied = drawn.ge(0);
        Tensor unit = torch.arange(m, dtype: ScalarType.Int64, device: drawn.device).unsqueeze(1).mul(subPolicies).add(drawn.clamp_min(0)).flatten();
        Tensor sums = torch.zeros(m * subPolicies, device: signal.device).index_add_(0, unit, differences.mul(applied).flatten(), 1);
        Tensor counts = torch.zeros(m * subPolicies, device: signal.device).index_add_(0, unit, applied.to_type(ScalarType.Float32).flatten(), 1);
        return (sums, counts);
    }

    /// <summary>Adds a step's values to a window's running sums (made on first use, outside the step's dispose scope).</summary>
    static void Accumulate(ref Tensor? sum, Tensor values, int size)
    {
        if (sum is null)
        {
            sum = torch.zeros(size, device: values.device);
            sum.DetachFromDisposeScope();
        }
        sum.add_(values);
    }

    protected override PolicyWindow EndWindow(IReadOnlyList<Policy> policies, double[] instanceLosses)
    {
        var clock = Stopwatch.StartNew();
        var (ops, levels) = Current;
        ControllerStep step;
        PolicyWindow window;
        if (paired)
        {
            double[] sums = Values(unitSums), counts = Values(unitCounts);
            double[] rewards = sums.Select((s, i) => counts[i] > 0 ? s / counts[i] : double.NaN).ToArray();
            // No image took a policy in the window (policy probability 0): nothing to learn from.
            step = rewards.Any(double.IsFinite) ? trainer.UpdateSubPolicies(ops, levels, rewards) : new ControllerStep(rewards, 0, 0);
            window = new PolicyWindow(policies, instanceLosses, null, step.Normalized);
        }
        else
        {
            double[] reward = teacher is null ? instanceLosses : Values(instanceRewards).Select(r => r / Math.Max(WindowSteps, 1)).ToArray();
            step = trainer.Update(ops, levels, reward);
            window = new PolicyWindow(policies, instanceLosses, step.Normalized);
        }
        Reset(ref instanceRewards);
        Reset(ref unitSums);
        Reset(ref unitCounts);
        lossSum += step.Loss;
        klSum += step.Kl;
        windowsDone++;
        controllerSeconds += clock.Elapsed.TotalSeconds;
        return window;
    }

    static double[] Values(Tensor? sum) => sum is null ? [] : sum.cpu().data<float>().Select(v => (double)v).ToArray();

    static void Reset(ref Tensor? sum)
    {
        sum?.Dispose();
        sum = null;
    }

    public override MethodEpochRecord EndEpoch(EpochLosses losses)
    {
        var record = base.EndEpoch(losses);
        int windows = Math.Max(windowsDone, 1);
        var metrics = new List<KeyValuePair<string, MetricValue>>
        {
            new(AdversarialSpec.EntropyMetric, new MetricValue.Number(entropySum / windows)),
            new(AdversarialSpec.LossMetric, new MetricValue.Number(lossSum / windows)),
            new(AdversarialSpec.KlMetric, new MetricValue.Number(klSum / windows)),
        };
        var seconds = new List<KeyValuePair<string, double>> { new(AdversarialSpec.ControllerPart, controllerSeconds) };
        if (teacher is not null)
        {
            metrics.Add(new(AdversarialSpec.TeacherLossMetric, new MetricValue.Number(Values(teacherLossSum).Single() / Math.Max(epochSteps, 1))));
            seconds.Add(new(AdversarialSpec.TeacherPart, teacherSeconds));
            Reset(ref teacherLossSum);
        }
        return record with { Distribution = distribution, Metrics = metrics, Seconds = seconds };
    }

    public override IReadOnlyList<StatePart> StateParts =>
    [
        StatePart.Of("controller", controller),
        StatePart.Of("controller_optimizer", trainer.Optimizer),
        .. teacher is null ? [] : new[] { StatePart.Of("teacher", teacher.Module) },
    ];

    public override void Dispose()
    {
        base.Dispose();
        controller.Dispose();
        teacher?.Dispose();
        Reset(ref instanceRewards);
        Reset(ref unitSums);
        Reset(ref unitCounts);
        Reset(ref teacherLossSum);
    }
}
