using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace AdvAA.Core.Search;

/// <summary>
/// The REINFORCE update of Adversarial AutoAugment, once per window of an epoch (the paper: one window).
/// Per instance (the paper): the M instances' mean target losses are normalised,
/// L̃ = (L − mean) / (std + 1e-5), with the unbiased (M − 1) standard deviation as torch.std computes it
/// by default, and the controller loss is mean(−log p_m · L̃_m). Per sub-policy: the rewards of the
/// M·Q (instance, sub-policy) units that images drew are normalised alike and weight each unit's own
/// log-probability. Both subtract entropyWeight · mean(entropy_m) and add klWeight · mean(KL_m), the
/// policies' summed KL from the prior; Adam takes one step. Minimising it makes high-reward policies
/// likelier: the controller raises the target loss.
/// </summary>
public sealed class ControllerTrainer
{
    private const double StdEpsilon = 1e-5;
    private readonly PolicyController controller;
    private readonly Adam adam;
    private readonly ControllerPrior? prior;

    /// <param name="learningRate">Adam's learning rate; 0 keeps the controller where it starts (its prior).</param>
    /// <param name="klWeight">Weight of KL(controller ‖ prior) in the loss (the prior is uniform when null).</param>
    public ControllerTrainer(PolicyController controller, double learningRate = 0.00035, double entropyWeight = 1e-5, double klWeight = 0, ControllerPrior? prior = null)
    {
        if (!(learningRate >= 0) || double.IsInfinity(learningRate))
            throw new ArgumentException($"controller learning rate {learningRate.ToString(CultureInfo.InvariantCulture)} is not valid: expected a finite value ≥ 0", nameof(learningRate));
        if (!double.IsFinite(entropyWeight) || entropyWeight < 0)
            throw new ArgumentException($"entropy weight {entropyWeight.ToString(CultureInfo.InvariantCulture)} is not valid: expected a finite value ≥ 0", nameof(entropyWeight));
        if (!double.IsFinite(klWeight) || klWeight < 0)
            throw new ArgumentException($"KL weight {klWeight.ToString(CultureInfo.InvariantCulture)} is not valid: expected a finite value ≥ 0", nameof(klWeight));
        this.controller = controller;
        this.prior = prior;
        EntropyWeight = entropyWeight;
        KlWeight = klWeight;
        adam = optim.Adam(controller.parameters(), learningRate);
    }

    public double EntropyWeight { get; }
    public double KlWeight { get; }

    /// <summary>The Adam optimizer (its state_dict goes into checkpoints).</summary>
    public OptimizerHelper Optimizer => adam;

    /// <summary>
    /// (L − mean) / (std + 1e-5) with the unbiased standard deviation over the finite values; NaN marks
    /// a unit without a reward (it stays NaN). A single value has no spread, so it gets 0.
    /// </summary>
    /// <exception cref="ArgumentException">No finite value, or an infinite one (naming its index and value).</exception>
    public static double[] NormalizeLosses(IReadOnlyList<double> losses)
    {
        for (int i = 0; i < losses.Count; i++)
            if (double.IsInfinity(losses[i]))
                throw new ArgumentException($"loss of unit {i} is {losses[i].ToString(CultureInfo.InvariantCulture)}: expected a finite value", nameof(losses));
        var present = losses.Where(double.IsFinite).ToArray();
        if (present.Length == 0) throw new ArgumentException("no losses to normalise: expected one per instance", nameof(losses));
        double mean = present.Average();
        double std = present.Length == 1 ? 0.0 : Math.Sqrt(present.Sum(l => (l - mean) * (l - mean)) / (present.Length - 1));
        return losses.Select(l => double.IsFinite(l) ? (l - mean) / (std + StdEpsilon) : double.NaN).ToArray();
    }

    /// <summary>
    /// One controller step for the policies <paramref name="ops"/>/<paramref name="levels"/> (int64 [M, Q, K], as sampled)
    /// given <paramref name="meanLosses"/>, the M instances' mean target losses (the reward).
    /// </summary>
    /// <exception cref="ArgumentException">Not one loss per policy, or a loss that is not finite.</exception>
    public ControllerStep Update(Tensor ops, Tensor levels, double[] meanLosses)
    {
        if (ops.dim() < 1 || meanLosses.Length != ops.shape[0])
            throw new ArgumentException($"{meanLosses.Length} mean losses for {(ops.dim() < 1 ? 0 : ops.shape[0])} policies: expected one per policy", nameof(meanLosses));
        for (int i = 0; i < meanLosses.Length; i++)
            if (!double.IsFinite(meanLosses[i]))
                throw new ArgumentException($"loss of instance {i} is {meanLosses[i].ToString(CultureInfo.InvariantCulture)}: expected a finite value", nameof(meanLosses));
        double[] normalized = NormalizeLosses(meanLosses);
        return Step(ops, levels, normalized, e => (-e.PolicyLogProb * Advantage(normalized, e.PolicyLogProb.device)).mean());
    }

    /// <summary>
    /// One controller step with a reward per (instance, sub-policy) unit: <paramref name="rewards"/> is
    /// M·Q values, instance-major, NaN for a unit no image drew. Returns the normalised rewards (NaN kept).
    /// </summary>
    public ControllerStep UpdateSubPolicies(Tensor ops, Tensor levels, double[] rewards)
    {
        if (ops.dim() != 3 || rewards.Length != ops.shape[0] * ops.shape[1])
            throw new ArgumentException($"{rewards.Length} rewards for policies [{string.Join(", ", ops.shape)}]: expected one per instance and sub-policy", nameof(rewards));
        double[] normalized = NormalizeLosses(rewards);
        return Step(ops, levels, normalized, e =>
        {
            var advantage = Advantage(normalized.Select(v => double.IsNaN(v) ? 0 : v).ToArray(), e.LogProb.device).view(e.LogProb.shape);
            return (-e.LogProb * advantage).sum().div(normalized.Count(double.IsFinite));
        });
    }

    static Tensor Advantage(double[] values, Device device) => tensor(values.Select(v => (float)v).ToArray(), device: device);

    ControllerStep Step(Tensor ops, Tensor levels, double[] normalized, Func<ControllerEvaluation, Tensor> policyGradientLoss)
    {
        using var scope = NewDisposeScope();
        var evaluation = controller.EvaluateSubPolicies(ops, levels, prior);
        var kl = evaluation.Kl.sum(1).mean();
        var loss = policyGradientLoss(evaluation) - EntropyWeight * evaluation.PolicyEntropy.mean();
        if (KlWeight > 0) loss = loss + KlWeight * kl;
        adam.zero_grad();
        loss.backward();
        adam.step();
        return new ControllerStep(normalized, loss.item<float>(), kl.item<float>());
    }
}

/// <summary>What one controller step did: the normalised rewards, the controller's loss before the step and its mean KL from the prior.</summary>
public sealed record ControllerStep(double[] Normalized, double Loss, double Kl);
