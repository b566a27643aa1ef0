using AdvAA.Core.Augment;

namespace AdvAA.Core.Methods;

/// <summary>AutoAugment's published CIFAR-10 policy (Cubuk et al. 2018) on every copy, then standard augmentation.</summary>
public sealed record AutoAugmentSpec : CopiesSpec
{
    public override ITrainingMethod Create(MethodContext context) => new SourceMethod(context, this,
            new PolicyAugment(AutoAugmentPolicy.Cifar10, SearchSpace.Default.SizedTo(context.Height, context.Width), "autoaugment-cifar10"));
}
