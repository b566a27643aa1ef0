using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Methods;

/// <summary>A method spec whose M copies take M policies of Q sub-policies of K ops from the search space.</summary>
public abstract record SampledPoliciesSpec : CopiesSpec
{
    [Parameter("sub_policies", "Q: sub-policies per policy; each image draws one uniformly", Min = 1, Max = 1000)]
    public int SubPolicies { get; init; } = 5;

    [Parameter("ops_per_sub_policy", "K: ops per sub-policy, all applied in order", Min = 1, Max = 100)]
    public int OpsPerSubPolicy { get; init; } = 2;

    [Parameter("magnitude_scale", Describe.MagnitudeScale, Min = 0, Max = 10)]
    public EpochSchedule MagnitudeScale { get; init; } = EpochSchedule.Constant(1);

    [Parameter("policy_probability", Describe.PolicyProbability, Min = 0, Max = 1)]
    public EpochSchedule PolicyProbability { get; init; } = EpochSchedule.Constant(1);

    public override bool UsesSearchSpace => true;
}

/// <summary>The paper's "Random": M policies drawn uniformly from the search space at the start of every epoch.</summary>
public sealed record RandomSpec : SampledPoliciesSpec
{
    public override ITrainingMethod Create(MethodContext context) => new RandomPoliciesMethod(context, this);
}

public sealed class RandomPoliciesMethod(MethodContext context, RandomSpec spec)
    : InstancePoliciesMethod(context, context.Space, spec.Cutout, spec.MagnitudeScale, spec.PolicyProbability)
{
    protected override (Tensor Ops, Tensor Levels, Tensor? Probabilities) ChoosePolicies(EpochContext epoch, int window)
    {
        long[] shape = [spec.InstancesAt(epoch.Progress), spec.SubPolicies, spec.OpsPerSubPolicy];
        var ops = torch.randint(0, Context.Space.Ops.Count, shape, generator: epoch.Streams.Policy, dtype: ScalarType.Int64);
        var levels = torch.randint(0, Context.Space.Levels, shape, generator: epoch.Streams.Policy, dtype: ScalarType.Int64);
        return (ops, levels, null);
    }
}
