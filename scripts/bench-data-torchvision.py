#!/usr/bin/python3
"""The torchvision side of scripts/bench-data.sh (not a test).

make FOLDER CIFAR_BIN COUNT: an ImageNet-like image folder: CIFAR-10 test images upscaled (bicubic)
    to about 500x375 (each side +-10 %), JPEG quality 90, train/<class>/ and a small test/.
time FOLDER WORKERS BATCH SIZE: one epoch of PyTorch's DataLoader over torchvision's ImageFolder
    with RandomResizedCrop(SIZE) + RandomHorizontalFlip + PILToTensor (uint8, as AdvAA's loader
    gives), WORKERS worker processes, after one warm-up epoch; prints images/s.
"""
import os, sys, time


def make(folder, cifar_bin, count):
    import numpy as np
    from PIL import Image
    raw = np.fromfile(os.path.join(cifar_bin, "test_batch.bin"), dtype=np.uint8).reshape(-1, 3073)
    names = [l.strip() for l in open(os.path.join(cifar_bin, "batches.meta.txt")) if l.strip()]
    rng = np.random.default_rng(0)
    for i in range(count + 200):
        split = "train" if i < count else "test"
        label, pixels = raw[i, 0], raw[i, 1:].reshape(3, 32, 32).transpose(1, 2, 0)
        w, h = int(500 * rng.uniform(0.9, 1.1)), int(375 * rng.uniform(0.9, 1.1))
        d = os.path.join(folder, split, names[label])
        os.makedirs(d, exist_ok=True)
        Image.fromarray(pixels).resize((w, h), Image.BICUBIC).save(os.path.join(d, f"{i:06d}.jpg"), quality=90)


def timed(folder, workers, batch, size):
    import torch
    from torchvision import datasets, transforms
    torch.set_num_threads(1)
    pipeline = transforms.Compose([transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(), transforms.PILToTensor()])
    data = datasets.ImageFolder(os.path.join(folder, "train"), pipeline)
    loader = torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                                         persistent_workers=workers > 0)
    for _ in loader:  # warm-up: workers started, files in the page cache
        pass
    start, images = time.perf_counter(), 0
    for x, _ in loader:
        images += x.shape[0]
    rate = images / (time.perf_counter() - start)
    print(f"  torchvision, {workers} worker(s): {rate:.0f} images/s ({rate / max(workers, 1):.0f} per worker)")
    print(f"RESULT torchvision_stream_workers{workers}_images_per_s {rate:.0f}")


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        timed(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
