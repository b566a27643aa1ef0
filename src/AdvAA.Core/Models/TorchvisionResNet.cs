using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace AdvAA.Core.Models;

/// <summary>
/// The ImageNet residual networks of He et al. (2016) with torchvision's module structure and
/// parameter names, so that a state dict moves between the two unchanged: a 7×7 convolution at
/// stride 2, batch norm, ReLU and a 3×3 max-pool at stride 2; four stages <c>layer1</c>..<c>layer4</c>
/// of basic blocks (ResNet-18/34) or bottlenecks (ResNet-50, stride on the 3×3 convolution as
/// torchvision's "v1.5"), each stage but the first starting at stride 2; global average pooling and
/// <c>fc</c>. State-dict names: <c>conv1</c>, <c>bn1</c>, <c>layer{1-4}.{block}.{conv1,bn1,conv2,bn2[,conv3,bn3],downsample.{0,1}}</c>, <c>fc</c>.
/// </summary>
public sealed class TorchvisionResNet : Module<Tensor, Tensor>
{
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly Sequential layer1, layer2, layer3, layer4;
    private readonly Linear fc;

    /// <summary>Blocks per stage and whether they are bottlenecks, by depth.</summary>
    public static IReadOnlyDictionary<int, (int[] Blocks, bool Bottleneck)> Depths { get; } = new Dictionary<int, (int[], bool)>
    {
        [18] = ([2, 2, 2, 2], false),
        [34] = ([3, 4, 6, 3], false),
        [50] = ([3, 4, 6, 3], true),
    };

    public TorchvisionResNet(int depth, int numClasses) : base($"ResNet-{depth}")
    {
        if (!Depths.TryGetValue(depth, out var shape))
            throw new ArgumentException($"ResNet-{depth} is not one of torchvision's shapes here: expected depth {string.Join(", ", Depths.Keys)}", nameof(depth));
        ModelRegistry.CheckHead(numClasses, 0.0);
        int expansion = shape.Bottleneck ? TorchvisionBottleneck.Expansion : 1;
        conv1 = Conv2d(3, 64, 7, stride: 2, padding: 3, bias: false);
        bn1 = BatchNorm2d(64);
        int inChannels = 64;
        Sequential Stage(int width, int blocks, int stride)
        {
            var list = new List<(string, Module<Tensor, Tensor>)>();
            for (int i = 0; i < blocks; i++)
            {
                int s = i == 0 ? stride : 1;
                Module<Tensor, Tensor> block = shape.Bottleneck
                    ? new TorchvisionBottleneck(inChannels, width, s)
                    : new TorchvisionBasicBlock(inChannels, width, s);
                list.Add((i.ToString(CultureInfo.InvariantCulture), block));
                inChannels = width * expansion;
            }
            return Sequential(list);
        }
        layer1 = Stage(64, shape.Blocks[0], 1);
        layer2 = Stage(128, shape.Blocks[1], 2);
        layer3 = Stage(256, shape.Blocks[2], 2);
        layer4 = Stage(512, shape.Blocks[3], 2);
        fc = Linear(inChannels, numClasses);
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = functional.relu(bn1.forward(conv1.forward(input)));
        x = functional.max_pool2d(x, 3, 2, 1);
        x = layer4.forward(layer3.forward(layer2.forward(layer1.forward(x))));
        x = functional.adaptive_avg_pool2d(x, 1).flatten(1);
        return fc.forward(x).MoveToOuterDisposeScope();
    }

    /// <summary>The 1×1 projection with batch norm where a block changes shape (torchvision's <c>downsample</c>), else null.</summary>
    internal static Sequential? Downsample(int inChannels, int outChannels, int stride) =>
        inChannels == outChannels && stride == 1 ? null : Sequential(Conv2d(inChannels, outChannels, 1, stride: stride, bias: false), BatchNorm2d(outChannels));
}

/// <summary>torchvision's <c>BasicBlock</c>: conv3×3(stride)-BN-ReLU-conv3×3-BN, plus the input or its downsample, then ReLU.</summary>
internal sealed class TorchvisionBasicBlock : Module<Tensor, Tensor>
{
    private readonly Conv2d conv1, conv2;
    private readonly BatchNorm2d bn1, bn2;
    private readonly Sequential? downsample;

    public TorchvisionBasicBlock(int inChannels, int width, int stride) : base("BasicBlock")
    {
        conv1 = Conv2d(inChannels, width, 3, stride: stride, padding: 1, bias: false);
        bn1 = BatchNorm2d(width);
        conv2 = Conv2d(width, width, 3, padding: 1, bias: false);
        bn2 = BatchNorm2d(width);
        downsample = TorchvisionResNet.Downsample(inChannels, width, stride);
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = functional.relu(bn1.forward(conv1.forward(input)));
        x = bn2.forward(conv2.forward(x));
        return functional.relu(x.add_(downsample is null ? input : downsample.forward(input))).MoveToOuterDisposeScope();
    }
}

/// <summary>torchvision's <c>Bottleneck</c>: conv1×1-BN-ReLU-conv3×3(stride)-BN-ReLU-conv1×1(×4)-BN, plus the input or its downsample, then ReLU.</summary>
internal sealed class TorchvisionBottleneck : Module<Tensor, Tensor>
{
    public const int Expansion = 4;
    private readonly Conv2d conv1, conv2, conv3;
    private readonly BatchNorm2d bn1, bn2, bn3;
    private readonly Sequential? downsample;

    public TorchvisionBottleneck(int inChannels, int width, int stride) : base("Bottleneck")
    {
        conv1 = Conv2d(inChannels, width, 1, bias: false);
        bn1 = BatchNorm2d(width);
        conv2 = Conv2d(width, width, 3, stride: stride, padding: 1, bias: false);
        bn2 = BatchNorm2d(width);
        conv3 = Conv2d(width, width * Expansion, 1, bias: false);
        bn3 = BatchNorm2d(width * Expansion);
        downsample = TorchvisionResNet.Downsample(inChannels, width * Expansion, stride);
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = functional.relu(bn1.forward(conv1.forward(input)));
        x = functional.relu(bn2.forward(conv2.forward(x)));
        x = bn3.forward(conv3.forward(x));
        return functional.relu(x.add_(downsample is null ? input : downsample.forward(input))).MoveToOuterDisposeScope();
    }
}
