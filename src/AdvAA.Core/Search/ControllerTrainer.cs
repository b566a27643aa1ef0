using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace AdvAA.Core.Search;

/// <summary>
/// The REINFORCE update of Adversarial AutoAugment, once per epoch: the M instances' epoch-mean target
/// losses are normalised, L̃ = (L − mean) / (std + 1e-5), with the unbiased (M − 1) standard deviation as
/// torch.std computes it by default; the controller loss is mean(−log p_m · L̃_m) − entropyWeight · mean(entropy_m),
/// and Adam takes one step. Minimising it makes high-loss policies likelier: the controller raises the target loss.
/// </summary>
public sealed class ControllerTrainer
{
    private const double StdEpsilon = 1e-5;
    private readonly PolicyController controller;
    private readonly Adam adam;

    public ControllerTrainer(PolicyController controller, double learningRate = 0.00035, double entropyWeight = 1e-5)
    {
        if (!(learningRate > 0) || double.IsInfinity(learningRate))
            throw new ArgumentException($"controller learning rate {learningRate.ToString(CultureInfo.InvariantCulture)} is not valid: expected a finite value > 0", nameof(learningRate));
        if (!double.IsFinite(entropyWeight) || entropyWeight < 0)
            throw new ArgumentException($"entropy weight {entropyWeight.ToString(CultureInfo.InvariantCulture)} is not valid: expected a finite value ≥ 0", nameof(entropyWeight));
        this.controller = controller;
        EntropyWeight = entropyWeight;
        adam = optim.Adam(controller.parameters(), learningRate);
    }

    public double EntropyWeight { get; }

    /// <summary>The Adam optimizer (its state_dict goes into checkpoints).</summary>
    public OptimizerHelper Optimizer => adam;

    /// <summary>
    /// (L − mean) / (std + 1e-5) with the unbiased standard deviation; a single instance has no spread, so it gets 0.
    /// </summary>
    /// <exception cref="ArgumentException">No losses, or one that is not finite (naming its index and value).</exception>
    public static double[] NormalizeLosses(IReadOnlyList<double> losses)
    {
        if (losses.Count == 0) throw new ArgumentException("no losses to normalise: expected one per instance", nameof(losses));
        for (int i = 0; i < losses.Count; i++)
            if (!double.IsFinite(losses[i]))
                throw new ArgumentException($"loss of instance {i} is {losses[i].ToString(CultureInfo.InvariantCulture)}: expected a finite value", nameof(losses));
        double mean = losses.Average();
        double std = losses.Count == 1 ? 0.0 : Math.Sqrt(losses.Sum(l => (l - mean) * (l - mean)) / (losses.Count - 1));
        return losses.Select(l => (l - mean) / (std + StdEpsilon)).ToArray();
    }

    /// <summary>
    /// One controller step for the policies <paramref name="ops"/>/<paramref name="levels"/> (int64 [M, Q, K], as sampled)
    /// given <paramref name="meanLosses"/>, the M instances' epoch-mean target losses (the reward).
    /// Returns the normalised losses and the controller loss before the step.
    /// </summary>
    public (double[] Normalized, double Loss) Update(Tensor ops, Tensor levels, double[] meanLosses)
    {
        if (ops.dim() < 1 || meanLosses.Length != ops.shape[0])
            throw new ArgumentException($"{meanLosses.Length} mean losses for {(ops.dim() < 1 ? 0 : ops.shape[0])} policies: expected one per policy", nameof(meanLosses));
        double[] normalized = NormalizeLosses(meanLosses);
        using var scope = NewDisposeScope();
        var (logProb, entropy) = controller.Evaluate(ops, levels);
        var advantage = tensor(normalized.Select(v => (float)v).ToArray(), device: logProb.device);
        var loss = (-logProb * advantage).mean() - EntropyWeight * entropy.mean();
        adam.zero_grad();
        loss.backward();
        adam.step();
        return (normalized, loss.item<float>());
    }
}
