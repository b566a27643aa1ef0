using TorchSharp;

namespace AdvAA.Core.Augment;

/// <summary>
/// A user op (what the F# DSL registers), batched over the samples that chose it. Pair it with an
/// <see cref="OpDefinition.Custom"/> of the same name in a <see cref="SearchSpace"/>; it is then sampled,
/// applied and named in policy files like a built-in op.
/// </summary>
public interface ICustomOp
{
    string Name { get; }

    /// <summary>
    /// images: uint8 [n,C,H,W] on the batch's device; magnitudes: float32 [n], raw values after the sign.
    /// Returns uint8 [n,C,H,W] on the same device.
    /// </summary>
    torch.Tensor Apply(torch.Tensor images, torch.Tensor magnitudes);
}
