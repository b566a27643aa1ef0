using System;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace AdvAA.Core.Search;

/// <summary>
/// TANDA's discriminator: a small CNN on normalised images (three stride-2 3×3 convolutions with
/// 32/64/128 channels and leaky ReLU, then a linear layer) giving one logit per image, high for
/// real images. <see cref="Features"/> is its last hidden layer (TANDA's mse_layer = 1), where the
/// generator's diversity term can measure distance. Weights from a seeded generator.
/// </summary>
public sealed class TanDiscriminator : Module<Tensor, Tensor>
{
    readonly Sequential body;
    readonly Linear head;

    public TanDiscriminator(int channels, int height, int width, long seed = 0) : base(nameof(TanDiscriminator))
    {
        body = Sequential(
            Conv2d(channels, 32, 3, stride: 2, padding: 1), LeakyReLU(0.2),
            Conv2d(32, 64, 3, stride: 2, padding: 1), LeakyReLU(0.2),
            Conv2d(64, 128, 3, stride: 2, padding: 1), LeakyReLU(0.2),
            Flatten());
        long size = 128L * Out(Out(Out(height))) * Out(Out(Out(width)));
        head = Linear(size, 1);
        RegisterComponents();
        using var noGrad = no_grad();
        using var generator = new Generator((ulong)seed);
        foreach (var (name, p) in named_parameters())
        {
            if (name.EndsWith("bias", StringComparison.Ordinal)) p.zero_();
            else p.normal_(0, Math.Sqrt(2.0 / p.shape.Skip(1).Aggregate(1L, (a, b) => a * b)), generator);
        }
    }

    static long Out(long size) => (size + 1) / 2;

    /// <summary>The last hidden layer, float32 [N, F].</summary>
    public Tensor Features(Tensor normalised) => body.forward(normalised);

    /// <summary>Logits float32 [N].</summary>
    public override Tensor forward(Tensor normalised) => head.forward(body.forward(normalised)).squeeze(1);

    /// <summary>Logits [N] and features [N, F] in one pass.</summary>
    public (Tensor Logits, Tensor Features) LogitsAndFeatures(Tensor normalised)
    {
        var features = body.forward(normalised);
        return (head.forward(features).squeeze(1), features);
    }
}

/// <summary>The TAN objective of Ratner et al. 2017 (and their code), as functions of tensors.</summary>
public static class TanObjective
{
    /// <summary>Real images labelled 1, transformed ones 0: the mean of the two mean cross-entropies.</summary>
    public static Tensor DiscriminatorLoss(Tensor realLogits, Tensor transformedLogits) =>
        functional.binary_cross_entropy_with_logits(realLogits, ones_like(realLogits))
            .add(functional.binary_cross_entropy_with_logits(transformedLogits, zeros_like(transformedLogits))).mul(0.5);

    /// <summary>
    /// The generator's loss of each incremental image, float32 [N, L+1]: the discriminator's
    /// cross-entropy for "real" (low where it looks real) plus the diversity term
    /// <c>diversity / (distance + eps)</c> (high where the image stays close to the original).
    /// </summary>
    public static Tensor StepLosses(Tensor logits, Tensor distances, double diversity, double eps = 1e-6) =>
        functional.binary_cross_entropy_with_logits(logits, ones_like(logits), reduction: Reduction.None)
            .add(distances.add(eps).reciprocal().mul(diversity));

    /// <summary>The reward of each step [N, L]: the change in the step loss it caused (lower is better for the generator).</summary>
    public static Tensor StepDeltas(Tensor stepLosses) =>
        stepLosses.narrow(1, 1, stepLosses.shape[1] - 1).sub(stepLosses.narrow(1, 0, stepLosses.shape[1] - 1));

    /// <summary>Discounted future sums [N, L]: Σ_{s ≥ t} γ^(s−t) · deltas[:, s].</summary>
    public static Tensor Returns(Tensor deltas, double gamma)
    {
        long l = deltas.shape[1];
        var s = arange(l, device: deltas.device).unsqueeze(1);
        var t = arange(l, device: deltas.device).unsqueeze(0);
        var powers = s.sub(t).to(ScalarType.Float32);
        var discount = full_like(powers, gamma).pow(powers.clamp_min(0)).mul(s.ge(t).to(ScalarType.Float32));
        return deltas.matmul(discount);
    }

    /// <summary>REINFORCE with the batch-mean baseline per step, summed as TANDA does; minimised.</summary>
    public static Tensor PolicyLoss(Tensor logProbs, Tensor returns)
    {
        var advantages = returns.sub(returns.mean([0L], keepdim: true)).detach();
        return logProbs.mul(advantages).sum();
    }
}
