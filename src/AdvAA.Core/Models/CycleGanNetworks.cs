using System;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace AdvAA.Core.Models;

/// <summary>
/// CycleGAN's ResNet generator (Zhu et al. 2017) sized for small images: a 7×7 convolution to
/// <c>F</c> channels, two stride-2 downsamplings (2F, 4F), <c>B</c> residual blocks, two transposed
/// convolutions back to F and a 7×7 convolution to the image's channels, tanh. Instance norm and
/// reflection padding as CycleGAN's; images in and out in [-1, 1], any height and width divisible by 4.
/// </summary>
public sealed class CycleGanGenerator : Module<Tensor, Tensor>
{
    readonly Sequential body;

    public CycleGanGenerator(int channels, int filters, int blocks, long seed) : base(nameof(CycleGanGenerator))
    {
        var layers = new System.Collections.Generic.List<Module<Tensor, Tensor>>
        {
            ReflectionPad2d(3), Conv2d(channels, filters, 7), CycleGanInit.Norm(filters), ReLU(),
            Conv2d(filters, 2 * filters, 3, stride: 2, padding: 1), CycleGanInit.Norm(2 * filters), ReLU(),
            Conv2d(2 * filters, 4 * filters, 3, stride: 2, padding: 1), CycleGanInit.Norm(4 * filters), ReLU(),
        };
        for (int b = 0; b < blocks; b++) layers.Add(new CycleGanResidualBlock(4 * filters));
        layers.AddRange([
            ConvTranspose2d(4 * filters, 2 * filters, 3, stride: 2, padding: 1, output_padding: 1), CycleGanInit.Norm(2 * filters), ReLU(),
            ConvTranspose2d(2 * filters, filters, 3, stride: 2, padding: 1, output_padding: 1), CycleGanInit.Norm(filters), ReLU(),
            ReflectionPad2d(3), Conv2d(filters, channels, 7), Tanh(),
        ]);
        body = Sequential(layers);
        RegisterComponents();
        CycleGanInit.Apply(this, seed);
    }

    /// <summary>Images float32 [N,C,H,W] in [-1, 1] to their translations, the same shape and range.</summary>
    public override Tensor forward(Tensor images) => body.forward(images);
}

/// <summary>CycleGAN's residual block: two reflection-padded 3×3 convolutions with instance norm, and the skip.</summary>
public sealed class CycleGanResidualBlock : Module<Tensor, Tensor>
{
    readonly Sequential body;

    public CycleGanResidualBlock(int features) : base(nameof(CycleGanResidualBlock))
    {
        body = Sequential(
            ReflectionPad2d(1), Conv2d(features, features, 3), CycleGanInit.Norm(features), ReLU(),
            ReflectionPad2d(1), Conv2d(features, features, 3), CycleGanInit.Norm(features));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => x.add(body.forward(x));
}

/// <summary>
/// CycleGAN's PatchGAN discriminator, one layer shallower for 32×32 images: 4×4 convolutions of
/// stride 2 to F and 2F channels, one of stride 1 to 4F, then one to a logit per patch (a 6×6 map
/// on 32×32), leaky ReLU 0.2 and instance norm after all but the first.
/// </summary>
public sealed class PatchDiscriminator : Module<Tensor, Tensor>
{
    readonly Sequential body;

    public PatchDiscriminator(int channels, int filters, long seed) : base(nameof(PatchDiscriminator))
    {
        body = Sequential(
            Conv2d(channels, filters, 4, stride: 2, padding: 1), LeakyReLU(0.2),
            Conv2d(filters, 2 * filters, 4, stride: 2, padding: 1), CycleGanInit.Norm(2 * filters), LeakyReLU(0.2),
            Conv2d(2 * filters, 4 * filters, 4, stride: 1, padding: 1), CycleGanInit.Norm(4 * filters), LeakyReLU(0.2),
            Conv2d(4 * filters, 1, 4, stride: 1, padding: 1));
        RegisterComponents();
        CycleGanInit.Apply(this, seed);
    }

    /// <summary>Images float32 [N,C,H,W] in [-1, 1] to patch logits [N,1,h,w] (LSGAN: near 1 for real).</summary>
    public override Tensor forward(Tensor images) => body.forward(images);
}

/// <summary>CycleGAN's layer choices and initialisation, shared by its networks.</summary>
internal static class CycleGanInit
{
    /// <summary>CycleGAN's instance norm: no affine parameters, no running statistics (so train and eval agree).</summary>
    public static InstanceNorm2d Norm(int features) => InstanceNorm2d(features, affine: false, track_running_stats: false);

    /// <summary>CycleGAN's "normal" init: every (transposed) convolution's weights from N(0, 0.02), biases 0, drawn from <paramref name="seed"/>.</summary>
    public static void Apply(Module module, long seed)
    {
        using var noGrad = no_grad();
        using var generator = new Generator((ulong)seed);
        foreach (var (_, m) in module.named_modules())
        {
            var (weight, bias) = m switch
            {
                Conv2d conv => (conv.weight, conv.bias),
                ConvTranspose2d conv => (conv.weight, conv.bias),
                _ => (null, null),
            };
            weight?.normal_(0, 0.02, generator);
            bias?.zero_();
        }
    }
}
