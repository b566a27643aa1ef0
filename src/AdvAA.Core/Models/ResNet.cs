using System;
using System.Collections.Generic;
using System.Globalization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace AdvAA.Core.Models;

/// <summary>
/// Residual network for 32×32 inputs (He et al. 2016) with the CIFAR stem: a 3×3 convolution at
/// stride 1, batch norm and ReLU, no max-pool; then stages of post-activation basic blocks (the
/// first stage at stride 1, the others at stride 2), global average pooling and a linear layer.
/// State-dict names: <c>conv1</c>, <c>bn1</c>, <c>layers.{stage}.{block}.{conv1,bn1,conv2,bn2,shortcut.{0,1}}</c>, <c>fc</c>.
/// </summary>
public sealed class ResNet : Module<Tensor, Tensor>
{
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly ModuleList<Module<Tensor, Tensor>> layers;
    private readonly Linear fc;

    /// <param name="name">The module's name (e.g. "ResNet-18").</param>
    /// <param name="widths">Channels of each stage; the stem has the first stage's width.</param>
    /// <param name="blocksPerStage">Basic blocks in each stage.</param>
    /// <param name="numClasses">Outputs of the linear layer.</param>
    public ResNet(string name, IReadOnlyList<int> widths, IReadOnlyList<int> blocksPerStage, int numClasses) : base(name)
    {
        if (widths.Count == 0 || widths.Count != blocksPerStage.Count)
            throw new ArgumentException($"ResNet needs one block count per stage width: got {widths.Count} widths and {blocksPerStage.Count} block counts");
        ModelRegistry.CheckHead(numClasses, 0.0);
        conv1 = Conv2d(3, widths[0], 3, padding: 1, bias: false);
        bn1 = BatchNorm2d(widths[0]);
        layers = new ModuleList<Module<Tensor, Tensor>>();
        int inChannels = widths[0];
        for (int s = 0; s < widths.Count; s++)
        {
            var blocks = new List<(string, Module<Tensor, Tensor>)>();
            for (int i = 0; i < blocksPerStage[s]; i++)
            {
                int stride = i == 0 && s > 0 ? 2 : 1;
                blocks.Add((i.ToString(CultureInfo.InvariantCulture), new BasicBlock(inChannels, widths[s], stride)));
                inChannels = widths[s];
            }
            layers.Add(Sequential(blocks));
        }
        fc = Linear(inChannels, numClasses);
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = functional.relu(bn1.forward(conv1.forward(input)));
        foreach (var stage in layers) x = stage.forward(x);
        x = functional.adaptive_avg_pool2d(x, 1).flatten(1);
        return fc.forward(x).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Post-activation basic block: conv3×3(stride)-BN-ReLU-conv3×3-BN, plus the input (or a 1×1
/// projection with batch norm where the shape changes), then ReLU.
/// </summary>
internal sealed class BasicBlock : Module<Tensor, Tensor>
{
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly Conv2d conv2;
    private readonly BatchNorm2d bn2;
    private readonly Sequential? shortcut;

    public BasicBlock(int inChannels, int outChannels, int stride) : base(nameof(BasicBlock))
    {
        conv1 = Conv2d(inChannels, outChannels, 3, stride: stride, padding: 1, bias: false);
        bn1 = BatchNorm2d(outChannels);
        conv2 = Conv2d(outChannels, outChannels, 3, padding: 1, bias: false);
        bn2 = BatchNorm2d(outChannels);
        shortcut = inChannels == outChannels && stride == 1
            ? null
            : Sequential(Conv2d(inChannels, outChannels, 1, stride: stride, bias: false), BatchNorm2d(outChannels));
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = functional.relu(bn1.forward(conv1.forward(input)));
        x = bn2.forward(conv2.forward(x));
        var identity = shortcut is null ? input : shortcut.forward(input);
        return functional.relu(x.add_(identity)).MoveToOuterDisposeScope();
    }
}
