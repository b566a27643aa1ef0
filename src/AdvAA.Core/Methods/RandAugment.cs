using AdvAA.Core.Augment;

namespace AdvAA.Core.Methods;

/// <summary>RandAugment (Cubuk et al. 2019): per sample N ops drawn uniformly from its 14, all at level M of 31.</summary>
public sealed record RandAugmentSpec : CopiesSpec
{
    [Parameter("n", "ops applied to each image, drawn uniformly", Min = 1, Max = 64)]
    public int N { get; init; } = 2;

    [Parameter("m", "the level of every op, of RandAugment's 31 (0..30)", Min = 0, Max = 30)]
    public int M { get; init; } = 9;

    public override ITrainingMethod Create(MethodContext context) =>
        new SourceMethod(context, this, new Augment.RandAugment(N, M, Augment.RandAugment.DefaultSpace.SizedTo(context.Height, context.Width)));
}
