#!/usr/bin/env python3
"""PyTorch eager anchor for `advaa bench models`: images/s of the same training step (the same
CIFAR models, SGD with Nesterov momentum and weight decay, cross-entropy, channels-last input, fp32
or bf16 autocast) on the same device, median over steps after a warm-up. Prints RESULT lines that
scripts/gpu-check.sh compares with AdvAA's.

usage: bench-torch-step.py [--device cuda|cpu] [--models small resnet18 wrn-28-10] [--batch 1024] [--steps 8]
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    """Post-activation basic block (He et al.), 1x1 projection + BN where the shape changes."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class ResNet(nn.Module):
    """The CIFAR ResNet of AdvAA's ModelRegistry: 3x3 stem at stride 1, no max-pool."""

    def __init__(self, widths, blocks, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers, cin = [], widths[0]
        for s, (w, b) in enumerate(zip(widths, blocks)):
            for i in range(b):
                layers.append(BasicBlock(cin, w, 2 if i == 0 and s > 0 else 1))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class PreActBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = None if cin == cout and stride == 1 else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        a = F.relu(self.bn1(x))
        y = self.conv2(F.relu(self.bn2(self.conv1(a))))
        return y + (x if self.shortcut is None else self.shortcut(a))


class WideResNet(nn.Module):
    """WRN-depth-widen (Zagoruyko & Komodakis) with pre-activation blocks, as AdvAA's."""

    def __init__(self, depth, widen, classes=10):
        super().__init__()
        n = (depth - 4) // 6
        widths = [16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        layers, cin = [], 16
        for s, w in enumerate(widths):
            for i in range(n):
                layers.append(PreActBlock(cin, w, (1 if s == 0 else 2) if i == 0 else 1))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = F.relu(self.bn(self.layers(self.conv1(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


MODELS = {
    "small": lambda: ResNet([16, 32, 128], [1, 1, 2]),
    "resnet18": lambda: ResNet([64, 128, 256, 512], [2, 2, 2, 2]),
    "wrn-28-10": lambda: WideResNet(28, 10),
}


def images_per_second(name, batch, device, bf16, steps):
    model = MODELS[name]().to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x = torch.randn(batch, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x).float()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(logits, y).backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(2):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--models", nargs="+", default=["resnet18", "wrn-28-10"])
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}")
    for name in args.models:
        for bf16 in (False, True):
            rate = images_per_second(name, args.batch, device, bf16, args.steps)
            precision = "bf16" if bf16 else "fp32"
            print(f"  {name:9s} batch {args.batch} {precision} channels-last: {rate:.0f} images/s")
            print(f"RESULT torch_{name}_batch{args.batch}_{precision}_channels-last_images_per_s {rate:.0f}")


if __name__ == "__main__":
    main()
