using System;
using System.Collections.Generic;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace AdvAA.Core.Models;

/// <summary>
/// Wide residual network for 32×32 inputs (Zagoruyko &amp; Komodakis 2016): a 3×3 stem with 16
/// channels, three stages of (depth − 4) / 6 pre-activation basic blocks with 16k, 32k and 64k
/// channels (strides 1, 2, 2), then batch norm, ReLU, global average pooling and a linear layer.
/// State-dict names: <c>conv1</c>, <c>layers.{0,1,2}.{block}.{bn1,conv1,bn2,conv2,shortcut}</c>, <c>bn</c>, <c>fc</c>.
/// </summary>
public sealed class WideResNet : Module<Tensor, Tensor>, IStochasticModel
{
    private readonly Conv2d conv1;
    private readonly ModuleList<Module<Tensor, Tensor>> layers;
    private readonly BatchNorm2d bn;
    private readonly Linear fc;

    public WideResNet(int depth, int widen, double dropout, int numClasses) : base($"WideResNet-{depth}-{widen}")
    {
        CheckShape(depth, widen);
        ModelRegistry.CheckHead(numClasses, dropout);
        int blocks = (depth - 4) / 6;
        int[] widths = [16 * widen, 32 * widen, 64 * widen];
        conv1 = Conv2d(3, 16, 3, padding: 1, bias: false);
        layers = new ModuleList<Module<Tensor, Tensor>>(
            Stage(16, widths[0], blocks, 1, dropout, Noise),
            Stage(widths[0], widths[1], blocks, 2, dropout, Noise),
            Stage(widths[1], widths[2], blocks, 2, dropout, Noise));
        bn = BatchNorm2d(widths[2]);
        fc = Linear(widths[2], numClasses);
        RegisterComponents();
    }

    /// <summary>The random source of every block's dropout.</summary>
    public DropoutNoise Noise { get; } = new();

    /// <summary>Throws unless depth = 6n + 4 (n ≥ 1) and widen ≥ 1.</summary>
    internal static void CheckShape(int depth, int widen)
    {
        if (depth < 10 || (depth - 4) % 6 != 0)
            throw new ArgumentException($"WideResNet depth {depth} is not valid: expected 6n + 4 with n ≥ 1 (10, 16, 22, 28, 34, 40, ...)", nameof(depth));
        if (widen < 1)
            throw new ArgumentException($"WideResNet widen factor {widen} is not valid: expected an integer ≥ 1", nameof(widen));
    }

    private static Sequential Stage(int inChannels, int outChannels, int blocks, int stride, double dropout, DropoutNoise noise)
    {
        var list = new List<(string, Module<Tensor, Tensor>)>();
        for (int i = 0; i < blocks; i++)
            list.Add((i.ToString(System.Globalization.CultureInfo.InvariantCulture),
                new PreActBlock(i == 0 ? inChannels : outChannels, outChannels, i == 0 ? stride : 1, dropout, noise)));
        return Sequential(list);
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = conv1.forward(input);
        foreach (var stage in layers) x = stage.forward(x);
        x = functional.relu(bn.forward(x));
        x = functional.adaptive_avg_pool2d(x, 1).flatten(1);
        return fc.forward(x).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Pre-activation basic block: BN-ReLU-conv3×3(stride)-BN-ReLU-dropout-conv3×3, plus the input,
/// or a 1×1 projection of the pre-activated input where the shape changes.
/// </summary>
internal sealed class PreActBlock : Module<Tensor, Tensor>
{
    private readonly BatchNorm2d bn1;
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn2;
    private readonly Conv2d conv2;
    private readonly Conv2d? shortcut;
    private readonly double dropout;
    private readonly DropoutNoise noise;

    public PreActBlock(int inChannels, int outChannels, int stride, double dropout, DropoutNoise noise) : base(nameof(PreActBlock))
    {
        bn1 = BatchNorm2d(inChannels);
        conv1 = Conv2d(inChannels, outChannels, 3, stride: stride, padding: 1, bias: false);
        bn2 = BatchNorm2d(outChannels);
        conv2 = Conv2d(outChannels, outChannels, 3, padding: 1, bias: false);
        shortcut = inChannels == outChannels && stride == 1
            ? null
            : Conv2d(inChannels, outChannels, 1, stride: stride, bias: false);
        this.dropout = dropout;
        this.noise = noise;
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var activated = functional.relu(bn1.forward(input));
        var identity = shortcut is null ? input : shortcut.forward(activated);
        var x = functional.relu(bn2.forward(conv1.forward(activated)));
        x = noise.Apply(x, dropout, training);
        return conv2.forward(x).add_(identity).MoveToOuterDisposeScope();
    }
}
