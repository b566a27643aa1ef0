#!/usr/bin/env bash
# Speed of batched per-sample augmentation (not a test): images/s of a random per-sample 2-op
# sub-policy (ops uniform over the paper's 16, levels uniform) over CIFAR-10 images through
# BatchAugment.Apply, after a warm-up, median of several runs; on the CPU with every core and with
# one thread, and on CUDA when a CUDA libtorch and a GPU are there (ADVAA_LIBTORCH, see the README).
# In the same run, when /usr/bin/python3 has torchvision: the same kind of policy applied image by
# image with torchvision.transforms.functional (same thread counts), and the ratio of the best rates.
# usage: scripts/bench-ops.sh [count=2048] [runs=9]   (images: $ADVAA_CIFAR10_DIR, else the embedded sample)
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-2048}
runs=${2:-9}
dotnet build src/AdvAA.Cli -c Release -v quiet -nologo >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cores=$(nproc)
for threads in $(printf '%s\n' "$cores" 1 | sort -un); do
  src/AdvAA.Cli/bin/Release/net10.0/advaa bench ops --count "$count" --runs "$runs" --threads "$threads" --dump "$work/images.u8" | tee -a "$work/advaa.txt"
done
best() { grep -o "RESULT $1_threads[0-9]*_images_per_s [0-9]*" "$2" | awk '{print $3}' | sort -n | tail -1; }
advaa=$(best advaa_cpu "$work/advaa.txt")
if /usr/bin/python3 -c "import torchvision" 2>/dev/null; then
  for threads in $(printf '%s\n' "$cores" 1 | sort -un); do
    /usr/bin/python3 scripts/bench-ops-torchvision.py "$count" 5 --images "$work/images.u8" --threads "$threads" | tee -a "$work/tv.txt"
  done
  tv=$(best torchvision "$work/tv.txt")
  awk -v a="$advaa" -v t="$tv" 'BEGIN { printf "best CPU rates: advaa %d images/s, torchvision image by image %d images/s: %.1fx\n", a, t, a / t }'
else
  echo "torchvision: not installed for /usr/bin/python3 (apt-get install python3-torchvision for the comparison)"
fi
