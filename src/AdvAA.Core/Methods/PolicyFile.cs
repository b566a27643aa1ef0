using System;
using AdvAA.Core.Augment;
using static TorchSharp.torch;

namespace AdvAA.Core.Methods;

/// <summary>
/// A given policy over the experiment's search space: one policy that every copy draws from
/// (sub-policies of (op, level, probability), as AutoAugment prints them), or M policies, one per
/// copy, as `advaa policy export` writes a run's learned ones.
/// </summary>
public sealed record PolicySpec : CopiesSpec
{
    [Parameter("policy", "the policy: a policy file (advaa-policy JSON, one policy or one per instance); config.json records its content")]
    public PolicyDocument? Policy { get; init; }

    public override bool UsesSearchSpace => true;

    protected override void Check(int epochs, SearchSpace space)
    {
        var policy = Policy ?? throw Bad("policy", null, "a policy file");
        if (policy.PerInstance && Instances.Description != "1" && Instances.Description != policy.Policies.Count.ToString())
            throw Bad("instances", Instances.Description, $"unset: a file of {policy.Policies.Count} policies, one per instance, trains {policy.Policies.Count} instances");
        // Binding the policy to the space checks every op name and level.
        try
        {
            // A file's stages are named by their JSON path; a policy written in a script by sub-policy and stage.
            if (policy.Source != null) PolicyJson.CheckAgainst(policy, space);
            if (policy.PerInstance) InstancePolicies.Tables(policy.Policies, space, policy.Source ?? "policy").Ops.Dispose();
            else _ = new PolicyAugment(policy.Policies[0], space, policy.Source ?? "policy");
        }
        catch (AugmentException e)
        {
            // A file's errors begin with its path; others say which parameter they are about.
            throw new ConfigException(policy.Source != null && e.Message.StartsWith(policy.Source, StringComparison.Ordinal) ? e.Message : $"{Name}.policy: {e.Message}", MethodParameter.SettingOf("policy"));
        }
    }

    public override ITrainingMethod Create(MethodContext context)
    {
        var policy = Policy ?? throw Bad("policy", null, "a policy file");
        return policy.PerInstance
            ? new FixedPoliciesMethod(context, Cutout, policy)
            : new SourceMethod(context, this, new PolicyAugment(policy.Policies[0], context.Space, "policy"));
    }
}

/// <summary>The same M policies every epoch, copy m with policy m.</summary>
public sealed class FixedPoliciesMethod : InstancePoliciesMethod
{
    readonly Tensor ops, levels;
    readonly Tensor? probabilities;

    public FixedPoliciesMethod(MethodContext context, int cutout, PolicyDocument policies)
        : base(context, context.Space, cutout, EpochSchedule.Constant(1), EpochSchedule.Constant(1))
    {
        try
        {
            (ops, levels, probabilities) = InstancePolicies.Tables(policies.Policies, context.Space, policies.Source ?? "policy");
        }
        catch (AugmentException e)
        {
            throw new ConfigException(e.Message, MethodParameter.SettingOf("policy"));
        }
        ops.DetachFromDisposeScope();
        levels.DetachFromDisposeScope();
        probabilities?.DetachFromDisposeScope();
    }

    protected override (Tensor Ops, Tensor Levels, Tensor? Probabilities) ChoosePolicies(EpochContext epoch, int window) =>
        (ops.clone(), levels.clone(), probabilities?.clone());

    public override void Dispose()
    {
        base.Dispose();
        ops.Dispose();
        levels.Dispose();
        probabilities?.Dispose();
    }
}
