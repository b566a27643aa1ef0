"""The torchvision 0.14 baseline of scripts/bench-ops.sh: the same kind of policy (per image, 2 ops drawn
uniformly from the AutoAugment paper's 16, levels uniform over 0..9, the same ranges and random signs)
applied image by image with torchvision.transforms.functional on uint8 tensors.
Usage: bench-ops-torchvision.py [count] [runs] [--images FILE] [--threads N]. Prints 'RESULT torchvision_images_per_s N'."""
import math
import os
import random
import statistics
import sys
import time

import torch
import torchvision.transforms.functional as F
from torchvision.transforms import InterpolationMode

positional = [a for i, a in enumerate(sys.argv[1:], 1) if not a.startswith("--") and sys.argv[i - 1] not in ("--images", "--threads")]
count = int(positional[0]) if positional else 2048
runs = int(positional[1]) if len(positional) > 1 else 5
torch.set_num_threads(int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else os.cpu_count() or 1)
FILL = [128.0, 128.0, 128.0]


def load_images():
    """The images bench-ops.fsx used (--images FILE: uint8 N x 3 x 32 x 32), else CIFAR-10's test batch."""
    if "--images" in sys.argv:
        path = sys.argv[sys.argv.index("--images") + 1]
        raw = torch.frombuffer(bytearray(open(path, "rb").read()), dtype=torch.uint8)
        return raw.view(-1, 3, 32, 32)[:count].clone(), path
    folder = os.environ["ADVAA_CIFAR10_DIR"]
    path = os.path.join(folder, "cifar-10-batches-bin", "test_batch.bin")
    raw = torch.frombuffer(bytearray(open(path, "rb").read()), dtype=torch.uint8).view(-1, 3073)
    index = torch.arange(count) % raw.shape[0]
    return raw[index, 1:].reshape(count, 3, 32, 32).clone(), path


def affine(img, translate=(0, 0), shear=(0.0, 0.0)):
    return F.affine(img, angle=0.0, translate=list(translate), scale=1.0, shear=list(shear),
                    interpolation=InterpolationMode.NEAREST, fill=FILL, center=[0, 0])


def cutout(img, side, _):
    h, w = img.shape[-2:]
    cy, cx = random.randrange(h), random.randrange(w)
    y0, x0 = max(0, cy - side // 2), max(0, cx - side // 2)
    y1, x1 = min(h, cy - side // 2 + side), min(w, cx - side // 2 + side)
    return F.erase(img, y0, x0, max(0, y1 - y0), max(0, x1 - x0), torch.tensor(128, dtype=torch.uint8))


def pairing(img, v, other):
    return (img.float() * (1 - v) + other.float() * v).to(torch.uint8)


# name: (low, high, signed, whole-units, apply(img, value, other))
OPS = {
    "ShearX": (0, 0.3, True, False, lambda i, v, o: affine(i, shear=(math.degrees(math.atan(v)), 0.0))),
    "ShearY": (0, 0.3, True, False, lambda i, v, o: affine(i, shear=(0.0, math.degrees(math.atan(v))))),
    "TranslateX": (0, 14.4, True, True, lambda i, v, o: affine(i, translate=(int(v), 0))),
    "TranslateY": (0, 14.4, True, True, lambda i, v, o: affine(i, translate=(0, int(v)))),
    "Rotate": (0, 30, True, False, lambda i, v, o: F.rotate(i, v, interpolation=InterpolationMode.NEAREST, fill=FILL)),
    "AutoContrast": (0, 0, False, False, lambda i, v, o: F.autocontrast(i)),
    "Invert": (0, 0, False, False, lambda i, v, o: F.invert(i)),
    "Equalize": (0, 0, False, False, lambda i, v, o: F.equalize(i)),
    "Solarize": (256, 0, False, True, lambda i, v, o: F.solarize(i, min(v, 255))),  # its threshold must be < 256
    "Posterize": (8, 4, False, True, lambda i, v, o: F.posterize(i, int(v))),
    "Contrast": (0.1, 1.9, False, False, lambda i, v, o: F.adjust_contrast(i, v)),
    "Color": (0.1, 1.9, False, False, lambda i, v, o: F.adjust_saturation(i, v)),
    "Brightness": (0.1, 1.9, False, False, lambda i, v, o: F.adjust_brightness(i, v)),
    "Sharpness": (0.1, 1.9, False, False, lambda i, v, o: F.adjust_sharpness(i, v)),
    "Cutout": (0, 6.4, False, True, cutout),
    "SamplePairing": (0, 0.4, False, False, pairing),
}
NAMES = list(OPS)


def value(name, level):
    low, high, signed, whole, _ = OPS[name]
    offset = (high - low) * level / 9
    v = low + (math.trunc(offset) if whole else offset)
    return -v if signed and random.random() < 0.5 else v


def augment(images):
    out = []
    n = images.shape[0]
    for i in range(n):
        img = images[i]
        for _ in range(2):
            name = random.choice(NAMES)
            img = OPS[name][4](img, value(name, random.randrange(10)), images[(i + 1) % n])
        out.append(img)
    return torch.stack(out)


images, source = load_images()
random.seed(1)
augment(images[:256])  # warm-up
seconds = statistics.median(
    [(lambda t0: (augment(images), time.perf_counter() - t0)[1])(time.perf_counter()) for _ in range(runs)])
print(f"torchvision {torch.__version__.split('+')[0]}/{__import__('torchvision').__version__} image by image, "
      f"{count} images from {source}, {torch.get_num_threads()} threads: {count / seconds:.0f} images/s "
      f"(median {seconds * 1000:.0f} ms of {runs} runs)")
print(f"RESULT torchvision_threads{torch.get_num_threads()}_images_per_s {count / seconds:.0f}")
