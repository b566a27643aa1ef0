using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace AdvAA.Core.Search;

/// <summary>
/// M sampled policies. <paramref name="Ops"/> and <paramref name="Levels"/>: int64 [M, Q, K] (op index and
/// magnitude level of op k of sub-policy q of policy m); <paramref name="LogProb"/>: float32 [M], the sum of the
/// log-probabilities of all Q·K op and magnitude choices; <paramref name="Entropy"/>: float32 [M], the sum of the
/// per-step entropies. LogProb and Entropy carry the controller's autograd graph.
/// </summary>
public sealed record ControllerSample(Tensor Ops, Tensor Levels, Tensor LogProb, Tensor Entropy) : IDisposable
{
    public void Dispose()
    {
        Ops.Dispose();
        Levels.Dispose();
        LogProb.Dispose();
        Entropy.Dispose();
    }
}

/// <summary>
/// Given policies under the current parameters, per sub-policy: float32 [M, Q] log-probabilities of
/// its K op and K magnitude choices (they sum over Q to the policy's), entropies, and the KL divergence
/// of each step's distribution from the prior's, Σ p (log p − log prior); all carry the autograd graph.
/// <paramref name="PolicyLogProb"/> and <paramref name="PolicyEntropy"/> [M] are the policies' sums, accumulated step by step as sampling does.
/// </summary>
public sealed record ControllerEvaluation(Tensor LogProb, Tensor Entropy, Tensor Kl, Tensor PolicyLogProb, Tensor PolicyEntropy) : IDisposable
{
    public void Dispose()
    {
        LogProb.Dispose();
        Entropy.Dispose();
        Kl.Dispose();
        PolicyLogProb.Dispose();
        PolicyEntropy.Dispose();
    }
}

/// <summary>
/// A prior over the controller's choices: normalised log-probabilities of each op and each magnitude
/// level. The controller's head biases start from it; a KL penalty keeps the controller near it.
/// </summary>
public sealed record ControllerPrior(double[] OpLogProbs, double[] LevelLogProbs)
{
    /// <summary>Every op and level equally likely.</summary>
    public static ControllerPrior Uniform(int ops, int levels) =>
        new(Enumerable.Repeat(-Math.Log(ops), ops).ToArray(), Enumerable.Repeat(-Math.Log(levels), levels).ToArray());

    /// <summary>The prior of positive weights (normalised here).</summary>
    public static ControllerPrior FromWeights(IReadOnlyList<double> ops, IReadOnlyList<double> levels)
    {
        static double[] Log(IReadOnlyList<double> w, string name)
        {
            if (w.Count == 0 || w.Any(x => !(x > 0) || !double.IsFinite(x)))
                throw new ArgumentException($"{name} weights must be finite and > 0", name);
            double total = w.Sum();
            return w.Select(x => Math.Log(x / total)).ToArray();
        }
        return new(Log(ops, nameof(ops)), Log(levels, nameof(levels)));
    }

    /// <summary>The op and level probabilities.</summary>
    public (double[] Ops, double[] Levels) Probabilities => (OpLogProbs.Select(Math.Exp).ToArray(), LevelLogProbs.Select(Math.Exp).ToArray());
}

/// <summary>The controller's op and level marginals over all stages of a policy, and whether they are exact (else a mean over rollouts).</summary>
public sealed record ControllerMarginals(double[] Ops, double[] Levels, bool Exact, int Rollouts);

/// <summary>
/// The policy controller of Adversarial AutoAugment: one embedding table (op tokens 0..numOps−1, then
/// magnitude tokens) shared by both kinds of token, one LSTM cell, an op head and a magnitude head. For
/// each sub-policy the LSTM state and the first input start from zero; per op: step → sample op → embed →
/// step → sample magnitude → embed. The M policies are rolled out together as a batch of M.
/// All parameters start uniform in [−0.1, 0.1] (as ENAS-style controllers do); with <c>zeroHeads</c> the
/// op and level heads start at zero, so the first policies are exactly uniform (or exactly the prior:
/// a prior adds its log-probabilities to the head biases). The module works on any device; <see cref="Sample"/> draws on the CPU.
/// State-dict names: <c>embedding</c>, <c>cell</c>, <c>opHead</c>, <c>levelHead</c>.
/// </summary>
public sealed class PolicyController : Module
{
    private readonly Embedding embedding;
    private readonly LSTMCell cell;
    private readonly Linear opHead;
    private readonly Linear levelHead;
    private readonly int embeddingSize;
    private readonly int hiddenSize;

    /// <param name="seed">Seeds the generator the initial parameters are drawn from (never the global one).</param>
    /// <param name="zeroHeads">Start the op and level heads' weights and biases at zero (the other parameters are drawn as without it).</param>
    /// <param name="prior">Added to the head biases, so the untrained controller with zero heads draws from it.</param>
    public PolicyController(int numOps, int numLevels, int subPolicies = 5, int opsPerSubPolicy = 2, int embeddingSize = 32, int hiddenSize = 100, long seed = 0,
        bool zeroHeads = false, ControllerPrior? prior = null)
        : base(nameof(PolicyController))
    {
        RequirePositive(numOps, nameof(numOps));
        RequirePositive(numLevels, nameof(numLevels));
        RequirePositive(subPolicies, nameof(subPolicies));
        RequirePositive(opsPerSubPolicy, nameof(opsPerSubPolicy));
        RequirePositive(embeddingSize, nameof(embeddingSize));
        RequirePositive(hiddenSize, nameof(hiddenSize));
        NumOps = numOps;
        NumLevels = numLevels;
        SubPolicies = subPolicies;
        OpsPerSubPolicy = opsPerSubPolicy;
        this.embeddingSize = embeddingSize;
        this.hiddenSize = hiddenSize;
        embedding = Embedding(numOps + numLevels, embeddingSize);
        cell = LSTMCell(embeddingSize, hiddenSize);
        opHead = Linear(hiddenSize, numOps);
        levelHead = Linear(hiddenSize, numLevels);
        RegisterComponents();
        using var noGrad = no_grad();
        using var generator = new Generator((ulong)seed);
        foreach (var p in parameters()) p.uniform_(-0.1, 0.1, generator);
        if (zeroHeads)
            foreach (var p in opHead.parameters().Concat(levelHead.parameters())) p.zero_();
        if (prior is not null)
        {
            if (prior.OpLogProbs.Length != numOps || prior.LevelLogProbs.Length != numLevels)
                throw new ArgumentException($"the prior has {prior.OpLogProbs.Length} ops and {prior.LevelLogProbs.Length} levels: expected {numOps} and {numLevels}", nameof(prior));
            opHead.bias!.add_(tensor(prior.OpLogProbs.Select(v => (float)v).ToArray()));
            levelHead.bias!.add_(tensor(prior.LevelLogProbs.Select(v => (float)v).ToArray()));
        }
    }

    public int NumOps { get; }
    public int NumLevels { get; }
    public int SubPolicies { get; }
    public int OpsPerSubPolicy { get; }

    /// <summary>
    /// Samples <paramref name="m"/> policies. Draws use <paramref name="generator"/> (a CPU generator; the
    /// global one when null) on the CPU, so a seed gives the same policies whatever device the controller is on.
    /// Ops and Levels are on the controller's device.
    /// </summary>
    public ControllerSample Sample(int m, Generator? generator = null)
    {
        RequirePositive(m, nameof(m));
        if (generator is not null && generator.device.type != DeviceType.CPU)
            throw new ArgumentException($"the sampling generator must be a CPU generator, got one on {generator.device}", nameof(generator));
        using var scope = NewDisposeScope();
        var roll = Roll(m, (logProbs, _, _, _) =>
            multinomial(logProbs.detach().exp().cpu(), 1, replacement: false, generator: generator).squeeze(1).to(logProbs.device));
        return new ControllerSample(roll.Ops.MoveToOuterDisposeScope(), roll.Levels.MoveToOuterDisposeScope(),
            roll.LogProb.MoveToOuterDisposeScope(), roll.Entropy.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Log-probabilities [M] and entropies [M] (as in <see cref="Sample"/>, with grad) of the given actions
    /// (int64 [M, Q, K] each) under the current parameters, by teacher forcing.
    /// </summary>
    public (Tensor LogProb, Tensor Entropy) Evaluate(Tensor ops, Tensor levels)
    {
        var evaluation = EvaluateSubPolicies(ops, levels);
        evaluation.LogProb.Dispose();
        evaluation.Entropy.Dispose();
        evaluation.Kl.Dispose();
        return (evaluation.PolicyLogProb, evaluation.PolicyEntropy);
    }

    /// <summary>
    /// The given actions (int64 [M, Q, K] each) under the current parameters, by teacher forcing, per
    /// sub-policy; the KL is against <paramref name="prior"/> (uniform when null).
    /// </summary>
    public ControllerEvaluation EvaluateSubPolicies(Tensor ops, Tensor levels, ControllerPrior? prior = null)
    {
        CheckActions(ops, nameof(ops), NumOps);
        CheckActions(levels, nameof(levels), NumLevels);
        if (!ops.shape.AsSpan().SequenceEqual(levels.shape))
            throw new ArgumentException($"ops has shape [{string.Join(", ", ops.shape)}] but levels has [{string.Join(", ", levels.shape)}]: expected the same", nameof(levels));
        // A scope, not `using`: to() may hand back the caller's own tensor, which must stay alive.
        using var scope = NewDisposeScope();
        var device = opHead.weight.device;
        var opsHere = ops.to(device);
        var levelsHere = levels.to(device);
        prior ??= ControllerPrior.Uniform(NumOps, NumLevels);
        var opPrior = tensor(prior.OpLogProbs.Select(v => (float)v).ToArray(), device: device);
        var levelPrior = tensor(prior.LevelLogProbs.Select(v => (float)v).ToArray(), device: device);
        var roll = Roll((int)ops.shape[0], (_, q, k, isOp) => (isOp ? opsHere : levelsHere)[.., q, k], (opPrior, levelPrior));
        return new ControllerEvaluation(roll.SubLogProb.MoveToOuterDisposeScope(), roll.SubEntropy.MoveToOuterDisposeScope(), roll.SubKl!.MoveToOuterDisposeScope(),
            roll.LogProb.MoveToOuterDisposeScope(), roll.Entropy.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The share of each op and each level among all stages of the controller's policies: the
    /// expectation over every history of each step's softmax probabilities, computed exactly while the
    /// histories of a sub-policy number at most <paramref name="maxHistories"/> (sub-policies are
    /// independent: each starts from a zero state), else the mean of those probabilities along
    /// <paramref name="rollouts"/> sampled sub-policies drawn with <paramref name="generator"/>.
    /// </summary>
    public ControllerMarginals Marginals(int maxHistories = 1 << 16, int rollouts = 256, Generator? generator = null)
    {
        RequirePositive(maxHistories, nameof(maxHistories));
        RequirePositive(rollouts, nameof(rollouts));
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var device = opHead.weight.device;
        // Histories before the last level step: (ops · levels)^(K−1) · ops.
        double largest = Math.Pow((double)NumOps * NumLevels, OpsPerSubPolicy - 1) * NumOps;
        bool exact = largest <= maxHistories;
        int rows = exact ? 1 : rollouts;
        var weight = full(rows, 1.0 / rows, dtype: ScalarType.Float64, device: device);
        var input = zeros(rows, embeddingSize, device: device);
        var state = (zeros(rows, hiddenSize, device: device), zeros(rows, hiddenSize, device: device));
        var opShare = zeros(NumOps, dtype: ScalarType.Float64, device: device);
        var levelShare = zeros(NumLevels, dtype: ScalarType.Float64, device: device);

        // One decision for every history: adds its expected probabilities, then either branches every
        // history into all choices (weighted by their probabilities) or follows one sampled choice.
        Tensor Decide(Linear head, int choices, Tensor share, bool last)
        {
            var p = functional.softmax(head.forward(state.Item1), 1).to_type(ScalarType.Float64);
            share.add_(weight.unsqueeze(1).mul(p).sum([0L]));
            if (last) return empty(0, dtype: ScalarType.Int64, device: device);
            if (exact)
            {
                weight = weight.unsqueeze(1).mul(p).reshape(-1);
                state = (state.Item1.repeat_interleave(choices, 0), state.Item2.repeat_interleave(choices, 0));
                return arange(choices, device: device).repeat(p.shape[0]);
            }
            return multinomial(p.cpu(), 1, replacement: true, generator: generator).squeeze(1).to(device);
        }

        for (int k = 0; k < OpsPerSubPolicy; k++)
        {
            state = cell.forward(input, state);
            var op = Decide(opHead, NumOps, opShare, last: false);
            state = cell.forward(embedding.forward(op), state);
            bool lastStep = k == OpsPerSubPolicy - 1;
            var level = Decide(levelHead, NumLevels, levelShare, lastStep);
            if (!lastStep) input = embedding.forward(level + NumOps);
        }
        double[] Shares(Tensor share) => share.div(OpsPerSubPolicy).cpu().data<double>().ToArray();
        return new ControllerMarginals(Shares(opShare), Shares(levelShare), exact, exact ? 0 : rollouts);
    }

    /// <summary>The rollout's actions [M, Q, K], its policy sums [M] and its per-sub-policy values [M, Q] (KL only with a prior).</summary>
    private sealed record Rollout(Tensor Ops, Tensor Levels, Tensor LogProb, Tensor Entropy, Tensor SubLogProb, Tensor SubEntropy, Tensor? SubKl);

    /// <summary>
    /// The rollout shared by sampling and evaluation: <paramref name="choose"/> gets the log-probabilities
    /// [M, C] of a step, the sub-policy q, the op position k and whether it is an op (else a magnitude)
    /// step, and returns the int64 [M] actions taken. With <paramref name="prior"/> (log-probabilities of
    /// ops and levels), each step's KL from it is summed per sub-policy.
    /// </summary>
    private Rollout Roll(int m, Func<Tensor, int, int, bool, Tensor> choose, (Tensor Ops, Tensor Levels)? prior = null)
    {
        using var scope = NewDisposeScope();
        var device = opHead.weight.device;
        var logProb = zeros(m, device: device);
        var entropy = zeros(m, device: device);
        var opColumns = new List<Tensor>();
        var levelColumns = new List<Tensor>();
        var subLogProbs = new List<Tensor>();
        var subEntropies = new List<Tensor>();
        var subKls = new List<Tensor>();

        for (int q = 0; q < SubPolicies; q++)
        {
            var subLogProb = zeros(m, device: device);
            var subEntropy = zeros(m, device: device);
            var subKl = zeros(m, device: device);

            Tensor Decide(Linear head, (Tensor H, Tensor C) state, int k, bool isOp)
            {
                var logProbs = functional.log_softmax(head.forward(state.H), 1);
                var action = choose(logProbs, q, k, isOp);
                var chosen = logProbs.gather(1, action.unsqueeze(1)).squeeze(1);
                var stepEntropy = -(logProbs.exp() * logProbs).sum(1);
                logProb = logProb + chosen;
                entropy = entropy + stepEntropy;
                subLogProb = subLogProb + chosen;
                subEntropy = subEntropy + stepEntropy;
                if (prior is { } p)
                    subKl = subKl + (logProbs.exp() * (logProbs - (isOp ? p.Ops : p.Levels).unsqueeze(0))).sum(1);
                return action;
            }

            var input = zeros(m, embeddingSize, device: device);
            var state = (zeros(m, hiddenSize, device: device), zeros(m, hiddenSize, device: device));
            for (int k = 0; k < OpsPerSubPolicy; k++)
            {
                state = cell.forward(input, state);
                var op = Decide(opHead, state, k, isOp: true);
                state = cell.forward(embedding.forward(op), state);
                var level = Decide(levelHead, state, k, isOp: false);
                input = embedding.forward(level + NumOps);
                opColumns.Add(op);
                levelColumns.Add(level);
            }
            subLogProbs.Add(subLogProb);
            subEntropies.Add(subEntropy);
            subKls.Add(subKl);
        }
        var ops = stack(opColumns, 1).reshape(m, SubPolicies, OpsPerSubPolicy);
        var levels = stack(levelColumns, 1).reshape(m, SubPolicies, OpsPerSubPolicy);
        return new Rollout(ops.MoveToOuterDisposeScope(), levels.MoveToOuterDisposeScope(),
            logProb.MoveToOuterDisposeScope(), entropy.MoveToOuterDisposeScope(),
            stack(subLogProbs, 1).MoveToOuterDisposeScope(), stack(subEntropies, 1).MoveToOuterDisposeScope(),
            prior is null ? null : stack(subKls, 1).MoveToOuterDisposeScope());
    }

    private void CheckActions(Tensor actions, string name, int count)
    {
        if (actions.dtype != ScalarType.Int64 || actions.dim() != 3 || actions.shape[0] < 1
            || actions.shape[1] != SubPolicies || actions.shape[2] != OpsPerSubPolicy)
            throw new ArgumentException(
                $"{name} is {actions.dtype} [{string.Join(", ", actions.shape)}]: expected Int64 [M, {SubPolicies}, {OpsPerSubPolicy}] with M ≥ 1", name);
        using var min = actions.min();
        using var max = actions.max();
        long low = min.item<long>(), high = max.item<long>();
        if (low < 0 || high >= count)
            throw new ArgumentException($"{name} holds values {low}..{high}: expected 0..{count - 1}", name);
    }

    private static void RequirePositive(int value, string name)
    {
        if (value < 1) throw new ArgumentException($"{name} {value} is not valid: expected at least 1", name);
    }
}
