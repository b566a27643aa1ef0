using AdvAA.Core.Augment;

namespace AdvAA.Core.Methods;

/// <summary>TrivialAugment (Müller &amp; Hutter 2021): per sample one op and one level, both uniform.</summary>
public sealed record TrivialAugmentSpec : CopiesSpec
{
    [Parameter("wide", "the wide ranges (the paper's default, torchvision's TrivialAugmentWide), else RandAugment's")]
    public bool Wide { get; init; } = true;

    public override ITrainingMethod Create(MethodContext context) =>
        new SourceMethod(context, this, Wide
            ? new Augment.TrivialAugment(Augment.TrivialAugment.WideSpace.SizedTo(context.Height, context.Width), "trivialaugment-wide")
            : new Augment.TrivialAugment(Augment.RandAugment.DefaultSpace.SizedTo(context.Height, context.Width), "trivialaugment"));
}
