using System;
using System.Collections.Generic;
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
/// The policy controller of Adversarial AutoAugment: one embedding table (op tokens 0..numOps−1, then
/// magnitude tokens) shared by both kinds of token, one LSTM cell, an op head and a magnitude head. For
/// each sub-policy the LSTM state and the first input start from zero; per op: step → sample op → embed →
/// step → sample magnitude → embed. The M policies are rolled out together as a batch of M.
/// All parameters start uniform in [−0.1, 0.1] (as ENAS-style controllers do), so the first policies are
/// close to uniform. The module works on any device; <see cref="Sample"/> draws on the CPU.
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
    public PolicyController(int numOps, int numLevels, int subPolicies = 5, int opsPerSubPolicy = 2, int embeddingSize = 32, int hiddenSize = 100, long seed = 0)
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
        var (ops, levels, logProb, entropy) = Roll(m, (logProbs, _, _, _) =>
            multinomial(logProbs.detach().exp().cpu(), 1, replacement: false, generator: generator).squeeze(1).to(logProbs.device));
        return new ControllerSample(ops, levels, logProb, entropy);
    }

    /// <summary>
    /// Log-probabilities [M] and entropies [M] (as in <see cref="Sample"/>, with grad) of the given actions
    /// (int64 [M, Q, K] each) under the current parameters, by teacher forcing.
    /// </summary>
    public (Tensor LogProb, Tensor Entropy) Evaluate(Tensor ops, Tensor levels)
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
        var (_, _, logProb, entropy) = Roll((int)ops.shape[0], (_, q, k, isOp) => (isOp ? opsHere : levelsHere)[.., q, k]);
        return (logProb.MoveToOuterDisposeScope(), entropy.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The rollout shared by sampling and evaluation: <paramref name="choose"/> gets the log-probabilities
    /// [M, C] of a step, the sub-policy q, the op position k and whether it is an op (else a magnitude)
    /// step, and returns the int64 [M] actions taken.
    /// </summary>
    private (Tensor Ops, Tensor Levels, Tensor LogProb, Tensor Entropy) Roll(int m, Func<Tensor, int, int, bool, Tensor> choose)
    {
        using var scope = NewDisposeScope();
        var device = opHead.weight.device;
        var logProb = zeros(m, device: device);
        var entropy = zeros(m, device: device);
        var opColumns = new List<Tensor>();
        var levelColumns = new List<Tensor>();

        Tensor Decide(Linear head, (Tensor H, Tensor C) state, int q, int k, bool isOp)
        {
            var logProbs = functional.log_softmax(head.forward(state.H), 1);
            var action = choose(logProbs, q, k, isOp);
            logProb = logProb + logProbs.gather(1, action.unsqueeze(1)).squeeze(1);
            entropy = entropy - (logProbs.exp() * logProbs).sum(1);
            return action;
        }

        for (int q = 0; q < SubPolicies; q++)
        {
            var input = zeros(m, embeddingSize, device: device);
            var state = (zeros(m, hiddenSize, device: device), zeros(m, hiddenSize, device: device));
            for (int k = 0; k < OpsPerSubPolicy; k++)
            {
                state = cell.forward(input, state);
                var op = Decide(opHead, state, q, k, isOp: true);
                state = cell.forward(embedding.forward(op), state);
                var level = Decide(levelHead, state, q, k, isOp: false);
                input = embedding.forward(level + NumOps);
                opColumns.Add(op);
                levelColumns.Add(level);
            }
        }
        var ops = stack(opColumns, 1).reshape(m, SubPolicies, OpsPerSubPolicy);
        var levels = stack(levelColumns, 1).reshape(m, SubPolicies, OpsPerSubPolicy);
        return (ops.MoveToOuterDisposeScope(), levels.MoveToOuterDisposeScope(),
            logProb.MoveToOuterDisposeScope(), entropy.MoveToOuterDisposeScope());
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
