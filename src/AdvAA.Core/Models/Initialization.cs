using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace AdvAA.Core.Models;

/// <summary>The initialisation of He et al. and Zagoruyko &amp; Komodakis, shared by every model here.</summary>
internal static class Initialization
{
    /// <summary>
    /// Convolutions: Kaiming normal over fan-out (the papers' "MSR init", std = sqrt(2 / (k·k·out)));
    /// batch norm: weight 1, bias 0; linear layers: PyTorch's default weights, bias 0.
    /// </summary>
    public static void Apply(nn.Module model)
    {
        using var noGrad = no_grad();
        foreach (var (_, module) in model.named_modules())
        {
            switch (module)
            {
                case Conv2d conv:
                    nn.init.kaiming_normal_(conv.weight, mode: nn.init.FanInOut.FanOut, nonlinearity: nn.init.NonlinearityType.ReLU);
                    break;
                case BatchNorm2d bn:
                    nn.init.ones_(bn.weight);
                    nn.init.zeros_(bn.bias);
                    break;
                case Linear linear when linear.bias is not null:
                    nn.init.zeros_(linear.bias);
                    break;
            }
        }
    }
}
