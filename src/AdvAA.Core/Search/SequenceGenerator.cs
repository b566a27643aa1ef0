using System;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace AdvAA.Core.Search;

/// <summary>
/// TANDA's generator of TF sequences of length L over T TFs: per position a categorical over the
/// TFs whose logits are bounded to (−range, range) by range · tanh(·) (TANDA's logit_range).
/// <see cref="Sample"/> draws N sequences at once, one per sample, on the CPU from a seeded
/// generator; <see cref="LogProbs"/> gives the log-probability of every step of given sequences with
/// gradients (TANDA's re-run of the sampled actions), so a REINFORCE update needs no stored graph.
/// </summary>
public abstract class SequenceGenerator : Module
{
    protected SequenceGenerator(string name, int tfs, int length, double logitRange) : base(name)
    {
        if (tfs < 1) throw new ArgumentException($"the TF set is empty: a generator needs at least one TF", nameof(tfs));
        if (length < 1) throw new ArgumentException($"sequence length {length} is not valid: expected at least 1", nameof(length));
        if (!(logitRange > 0)) throw new ArgumentException($"logit range {logitRange} is not valid: expected a positive bound", nameof(logitRange));
        Tfs = tfs;
        Length = length;
        LogitRange = logitRange;
    }

    public int Tfs { get; }
    public int Length { get; }
    public double LogitRange { get; }

    /// <summary>
    /// The rollout: <paramref name="choose"/> gets step t's log-probabilities [N, T] and returns the
    /// int64 [N] TFs taken; returns the sequences [N, L] and log-probabilities [N, L] (with grad).
    /// </summary>
    protected abstract (Tensor Sequences, Tensor LogProbs) Roll(int n, Func<Tensor, int, Tensor> choose);

    /// <summary>Bounded log-probabilities of raw logits.</summary>
    protected Tensor Bounded(Tensor raw) => functional.log_softmax(raw.tanh().mul(LogitRange), 1);

    /// <summary>N sequences int64 [N, L] (on the CPU) drawn with <paramref name="generator"/> (a CPU generator).</summary>
    public Tensor Sample(int n, Generator? generator)
    {
        if (n < 1) throw new ArgumentException($"{n} sequences: expected at least 1", nameof(n));
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var (sequences, _) = Roll(n, (logProbs, _) =>
            multinomial(logProbs.exp().cpu(), 1, replacement: false, generator: generator).squeeze(1).to(logProbs.device));
        return sequences.cpu().MoveToOuterDisposeScope();
    }

    /// <summary>The log-probability float32 [N, L] of each step of <paramref name="sequences"/> int64 [N, L], with gradients.</summary>
    public Tensor LogProbs(Tensor sequences)
    {
        if (sequences.dtype != ScalarType.Int64 || sequences.dim() != 2 || sequences.shape[1] != Length)
            throw new ArgumentException($"sequences must be int64 [N, {Length}]; got {sequences.dtype} [{string.Join(",", sequences.shape)}]", nameof(sequences));
        using var scope = NewDisposeScope();
        var here = sequences.to(Device);
        var (_, logProbs) = Roll((int)sequences.shape[0], (_, t) => here.select(1, t));
        return logProbs.MoveToOuterDisposeScope();
    }

    /// <summary>The probabilities float32 [L, T] of each TF at each position for a mean-field generator, or averaged over <paramref name="n"/> samples' contexts otherwise.</summary>
    public Tensor Marginals(int n, Generator? generator)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var rows = new Tensor[Length];
        Roll(n, (logProbs, t) =>
        {
            // Out of the rollout's scope into this one.
            rows[t] = logProbs.exp().mean([0L]).MoveToOuterDisposeScope();
            return multinomial(logProbs.exp().cpu(), 1, replacement: false, generator: generator).squeeze(1).to(logProbs.device);
        });
        return stack(rows, 0).cpu().MoveToOuterDisposeScope();
    }

    protected abstract Device Device { get; }
}

/// <summary>Mean field: an independent categorical per position (TANDA's mean-field generator); starts uniform.</summary>
public sealed class MeanFieldGenerator : SequenceGenerator
{
    readonly Parameter logits;

    public MeanFieldGenerator(int tfs, int length, double logitRange = 6.0) : base(nameof(MeanFieldGenerator), tfs, length, logitRange)
    {
        logits = new Parameter(zeros(length, tfs));
        register_parameter("logits", logits);
    }

    protected override Device Device => logits.device;

    protected override (Tensor Sequences, Tensor LogProbs) Roll(int n, Func<Tensor, int, Tensor> choose)
    {
        using var scope = NewDisposeScope();
        var taken = new Tensor[Length];
        var logProbs = new Tensor[Length];
        for (int t = 0; t < Length; t++)
        {
            var step = Bounded(logits[t].unsqueeze(0).expand(n, Tfs));
            taken[t] = choose(step, t);
            logProbs[t] = step.gather(1, taken[t].unsqueeze(1)).squeeze(1);
        }
        return (stack(taken, 1).MoveToOuterDisposeScope(), stack(logProbs, 1).MoveToOuterDisposeScope());
    }
}

/// <summary>
/// An LSTM that feeds its previous action back as a one-hot input (TANDA's lstm with feed_actions and
/// a trained initial input), then a linear head to the TF logits. Parameters start uniform in
/// [−0.1, 0.1] from a seeded generator, so the first sequences are close to uniform.
/// State-dict names: <c>start</c>, <c>cell</c>, <c>head</c>.
/// </summary>
public sealed class LstmGenerator : SequenceGenerator
{
    readonly Parameter start;
    readonly LSTMCell cell;
    readonly Linear head;
    readonly int hidden;

    public LstmGenerator(int tfs, int length, int hidden = 100, double logitRange = 6.0, long seed = 0) : base(nameof(LstmGenerator), tfs, length, logitRange)
    {
        if (hidden < 1) throw new ArgumentException($"hidden size {hidden} is not valid: expected at least 1", nameof(hidden));
        this.hidden = hidden;
        start = new Parameter(zeros(1, tfs));
        cell = LSTMCell(tfs, hidden);
        head = Linear(hidden, tfs);
        register_parameter("start", start);
        RegisterComponents();
        using var noGrad = no_grad();
        using var generator = new Generator((ulong)seed);
        foreach (var p in parameters()) p.uniform_(-0.1, 0.1, generator);
    }

    protected override Device Device => head.weight.device;

    protected override (Tensor Sequences, Tensor LogProbs) Roll(int n, Func<Tensor, int, Tensor> choose)
    {
        using var scope = NewDisposeScope();
        var device = Device;
        var input = start.expand(n, Tfs);
        var state = (zeros(n, hidden, device: device), zeros(n, hidden, device: device));
        var taken = new Tensor[Length];
        var logProbs = new Tensor[Length];
        for (int t = 0; t < Length; t++)
        {
            state = cell.forward(input, state);
            var step = Bounded(head.forward(state.Item1));
            taken[t] = choose(step, t);
            logProbs[t] = step.gather(1, taken[t].unsqueeze(1)).squeeze(1);
            input = functional.one_hot(taken[t], Tfs).to(ScalarType.Float32);
        }
        return (stack(taken, 1).MoveToOuterDisposeScope(), stack(logProbs, 1).MoveToOuterDisposeScope());
    }
}
