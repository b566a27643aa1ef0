using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace AdvAA.Core.Methods;

/// <summary>
/// CAMEL's subgroup consistency (Goel et al. 2020) for an image x of a class with two subgroups and
/// its versions x̃₁, x̃₂ in them: ½ KL(p(x) ‖ p̄) + ¼ KL(p(x̃₁) ‖ p̄) + ¼ KL(p(x̃₂) ‖ p̄), with p̄ the
/// mean of the translations' predictions, averaged over the batch. Zero exactly when all three predictions agree.
/// </summary>
public static class Consistency
{
    /// <summary>The loss of logits [N, classes] of the images and of their two translations.</summary>
    public static Tensor Loss(Tensor original, Tensor first, Tensor second)
    {
        using var scope = NewDisposeScope();
        Tensor l0 = functional.log_softmax(original, 1), l1 = functional.log_softmax(first, 1), l2 = functional.log_softmax(second, 1);
        // log p̄ = log(½ (p₁ + p₂)), stably.
        Tensor logMean = stack([l1, l2]).logsumexp(0).sub(System.Math.Log(2));
        Tensor Kl(Tensor logP) => logP.exp().mul(logP.sub(logMean)).sum(1);
        return Kl(l0).mul(0.5).add(Kl(l1).mul(0.25)).add(Kl(l2).mul(0.25)).mean().MoveToOuterDisposeScope();
    }
}
