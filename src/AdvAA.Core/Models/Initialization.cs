using System;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace AdvAA.Core.Models;

/// <summary>
/// The initialisation of He et al. and Zagoruyko &amp; Komodakis, shared by every model here, drawn
/// from an explicit generator so that a model's weights depend only on its seed (never on the
/// global generator another trainer in the process may be drawing from).
/// </summary>
internal static class Initialization
{
    /// <summary>
    /// Convolutions: Kaiming normal over fan-out (the papers' "MSR init", std = sqrt(2 / (k·k·out)));
    /// batch norm: weight 1, bias 0; linear layers: PyTorch's default weights (uniform ±1/sqrt(fan-in)), bias 0.
    /// </summary>
    public static void Apply(nn.Module model, Generator generator)
    {
        using var noGrad = no_grad();
        foreach (var (_, module) in model.named_modules())
        {
            switch (module)
            {
                case Conv2d conv:
                    long fanOut = conv.weight.shape[0] * conv.weight.shape.Skip(2).Aggregate(1L, (a, b) => a * b);
                    conv.weight.normal_(0, Math.Sqrt(2.0 / fanOut), generator);
                    if (conv.bias is not null) nn.init.zeros_(conv.bias);
                    break;
                case BatchNorm2d bn:
                    nn.init.ones_(bn.weight);
                    nn.init.zeros_(bn.bias);
                    break;
                case Linear linear:
                    double bound = 1.0 / Math.Sqrt(linear.weight.shape[1]);
                    linear.weight.uniform_(-bound, bound, generator);
                    if (linear.bias is not null) nn.init.zeros_(linear.bias);
                    break;
            }
        }
    }
}

/// <summary>
/// The random source of a model's dropout. The trainer gives it a generator per epoch (on the
/// model's device, seeded by (seed, epoch)); without one, dropout draws from the global generator.
/// </summary>
public sealed class DropoutNoise
{
    public Generator? Generator { get; set; }

    /// <summary>Inverted dropout of <paramref name="x"/> with rate <paramref name="p"/> in training mode.</summary>
    internal Tensor Apply(Tensor x, double p, bool training)
    {
        if (!training || p == 0) return x;
        if (Generator is null) return nn.functional.dropout(x, p, training);
        var keep = torch.empty_like(x).bernoulli_(1 - p, Generator);
        return x.mul(keep).div_(1 - p);
    }
}

/// <summary>A model whose forward pass draws random numbers (dropout), from <see cref="Noise"/>.</summary>
public interface IStochasticModel
{
    DropoutNoise Noise { get; }
}
