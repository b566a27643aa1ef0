using TorchSharp;

namespace AdvAA.Core.Methods;

/// <summary>
/// Standard augmentation only (random crop of the 4-pixel padded image, horizontal flip, optional
/// Cutout) on M copies: the registry's baseline (M = 1), cutout (Cutout 16) and fixed (the
/// paper's "Fixed", Table 4: M = 8 copies with the standard augmentation only, no Cutout).
/// </summary>
public sealed record StandardSpec : CopiesSpec
{
    public override ITrainingMethod Create(MethodContext context) => new StandardMethod(context, this);
}

public sealed class StandardMethod(MethodContext context, StandardSpec spec) : CopiesMethod(context, spec.Cutout)
{
    protected override int InstancesFor(EpochContext epoch) => spec.InstancesAt(epoch.Progress);

    protected override torch.Tensor Augment(torch.Tensor copies, int n, StepContext step) => copies;
}
