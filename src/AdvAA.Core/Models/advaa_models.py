"""AdvAA's target networks in PyTorch, with the state-dict names AdvAA writes.

The networks take normalised float32 [N, 3, H, W] images (32x32 for the CIFAR networks), (pixel / 255 - MEAN) / STD per channel,
and return logits [N, classes]. Written by `advaa export RUN --format pytorch`; the definitions
mirror src/AdvAA.Core/Models (ResNet.cs, WideResNet.cs).
"""
import torch
from torch import nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    """Post-activation: conv3x3(stride)-BN-ReLU-conv3x3-BN, plus the input or a 1x1 projection, then ReLU."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if cin != cout or stride != 1:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.shortcut is None else self.shortcut(x)))


class ResNet(nn.Module):
    """ResNet with the CIFAR stem (3x3 conv at stride 1, no max-pool); stage s > 0 starts at stride 2."""

    def __init__(self, widths, blocks, classes):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        stages, cin = [], widths[0]
        for s, (width, count) in enumerate(zip(widths, blocks)):
            stage = []
            for i in range(count):
                stage.append(BasicBlock(cin, width, 2 if i == 0 and s > 0 else 1))
                cin = width
            stages.append(nn.Sequential(*stage))
        self.layers = nn.ModuleList(stages)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        for stage in self.layers:
            x = stage(x)
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class PreActBlock(nn.Module):
    """Pre-activation: BN-ReLU-conv3x3(stride)-BN-ReLU-dropout-conv3x3, plus the input or a 1x1 projection of the activated input."""

    def __init__(self, cin, cout, stride, dropout):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = None
        if cin != cout or stride != 1:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)
        self.dropout = dropout

    def forward(self, x):
        activated = F.relu(self.bn1(x))
        identity = x if self.shortcut is None else self.shortcut(activated)
        out = F.relu(self.bn2(self.conv1(activated)))
        out = F.dropout(out, self.dropout, self.training)
        return self.conv2(out) + identity


class WideResNet(nn.Module):
    """WideResNet-depth-widen (Zagoruyko & Komodakis): (depth - 4) / 6 pre-activation blocks per stage."""

    def __init__(self, depth, widen, dropout, classes):
        super().__init__()
        count = (depth - 4) // 6
        widths = [16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        stages, cin = [], 16
        for width, stride in zip(widths, [1, 2, 2]):
            stages.append(nn.Sequential(*[PreActBlock(cin if i == 0 else width, width, stride if i == 0 else 1, dropout) for i in range(count)]))
            cin = width
        self.layers = nn.ModuleList(stages)
        self.bn = nn.BatchNorm2d(widths[2])
        self.fc = nn.Linear(widths[2], classes)

    def forward(self, x):
        x = self.conv1(x)
        for stage in self.layers:
            x = stage(x)
        x = F.relu(self.bn(x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def normalise(images, mean, std):
    """uint8 [N, C, H, W] images (a tensor) to the networks' input: (pixel / 255 - mean) / std per channel."""
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (images.to(torch.float32) / 255 - m) / s


def torchvision_resnet(depth, classes):
    """torchvision's ImageNet ResNet of this depth (18, 34, 50): AdvAA's resnet18-imagenet, resnet34 and resnet50 have its parameter names."""
    import torchvision

    return getattr(torchvision.models, "resnet%d" % depth)(num_classes=classes)

