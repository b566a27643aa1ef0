#!/usr/bin/env python3
"""PyTorch eager anchor for `advaa bench models`: images/s of the same training step (the same
CIFAR models, SGD with Nesterov momentum and weight decay, cross-entropy, channels-last input, fp32
or bf16 autocast) on the same device, median over steps after a warm-up. Prints RESULT lines that
scripts/gpu-check.sh compares with AdvAA's.

usage: bench-torch-step.py [--device cuda|cpu] [--models small resnet18 wrn-28-10] [--batch 1024] [--steps 8]
"""
import argparse
import importlib.util
import pathlib
import statistics
import time

import torch
import torch.nn.functional as F


# The networks as AdvAA defines them (the module `advaa export` writes beside a model's weights).
_spec = importlib.util.spec_from_file_location(
    "advaa_models", pathlib.Path(__file__).resolve().parent.parent / "src/AdvAA.Core/Models/advaa_models.py")
advaa_models = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(advaa_models)

MODELS = {
    "small": lambda: advaa_models.ResNet([16, 32, 128], [1, 1, 2], 10),
    "resnet18": lambda: advaa_models.ResNet([64, 128, 256, 512], [2, 2, 2, 2], 10),
    "wrn-28-10": lambda: advaa_models.WideResNet(28, 10, 0.0, 10),
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
