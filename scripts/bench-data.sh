#!/usr/bin/env bash
# Data speed (not a test), in two parts:
# 1. loading CIFAR-10 into memory: the binary batches and the 60,000-image JPEG archive (and the
#    embedded sample), in images/s, median of several loads after a warm-up load;
# 2. streaming ImageNet-like JPEGs (CIFAR-10 test images upscaled to about 500x375, quality 90,
#    $STREAM_IMAGES of them, default 3000): decode + RandomResizedCrop(224) + flip images/s with 1 and
#    every core's workers, and feeding the small model's training step (the share of time it waits
#    for data); against PyTorch's DataLoader over torchvision's ImageFolder + RandomResizedCrop +
#    flip on the same files with the same workers (Debian's python3-torchvision).
# usage: scripts/bench-data.sh [folder with cifar-10-batches-bin/ and cifar10-jpeg.tar.gz]
#        (default: $ADVAA_CIFAR10_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
folder=${1:-${ADVAA_CIFAR10_DIR:-}}
[ -n "$folder" ] || { echo "usage: scripts/bench-data.sh <cifar10 folder> (or set ADVAA_CIFAR10_DIR)" >&2; exit 2; }
[ -d "$folder/cifar-10-batches-bin" ] && [ -f "$folder/cifar10-jpeg.tar.gz" ] ||
  { echo "bench-data: $folder must hold cifar-10-batches-bin/ and cifar10-jpeg.tar.gz" >&2; exit 1; }
dotnet build src/AdvAA.Cli -c Release -v quiet -nologo >/dev/null
dotnet fsi scripts/bench-data.fsx "$(cd "$folder" && pwd)"
echo "first (cold) load in a fresh process, as advaa data reports it:"
for data in "$folder/cifar-10-batches-bin" "$folder/cifar10-jpeg.tar.gz"; do
  printf '  %-60s' "$data"
  src/AdvAA.Cli/bin/Release/net10.0/advaa data --data "$data" | grep '^load time'
done

echo
echo "streaming ImageNet-like JPEGs ($(src/AdvAA.Cli/bin/Release/net10.0/advaa info | grep -m1 '^machine')):"
if ! /usr/bin/python3 -c "import torchvision, PIL" 2>/dev/null; then
  echo "  skipped: /usr/bin/python3 has no torchvision/PIL to build the set and compare with (apt-get install python3-torchvision)"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 scripts/bench-data-torchvision.py make "$work/set" "$folder/cifar-10-batches-bin" "${STREAM_IMAGES:-3000}"
cores=$(nproc)
src/AdvAA.Cli/bin/Release/net10.0/advaa bench data --data "$work/set" --workers $(printf '%s\n' "$cores" 1 | sort -un) | tee "$work/advaa.txt"
for workers in $(printf '%s\n' "$cores" 1 | sort -un); do
  /usr/bin/python3 scripts/bench-data-torchvision.py time "$work/set" "$workers" 64 224 | tee -a "$work/tv.txt"
done
for workers in $(printf '%s\n' "$cores" 1 | sort -un); do
  a=$(grep -o "RESULT advaa_stream_workers${workers}_images_per_s [0-9]*" "$work/advaa.txt" | awk '{print $3}')
  t=$(grep -o "RESULT torchvision_stream_workers${workers}_images_per_s [0-9]*" "$work/tv.txt" | awk '{print $3}')
  awk -v w="$workers" -v a="$a" -v t="$t" 'BEGIN { printf "%d worker(s): advaa %d images/s, torchvision %d images/s: %.2fx\n", w, a, t, a / t }'
done

echo
echo "memory: one process's peak RSS after an epoch over N and 10·N of these images (1 worker, decoding alone):"
/usr/bin/python3 scripts/bench-data-torchvision.py make "$work/small" "$folder/cifar-10-batches-bin" "$(( ${STREAM_IMAGES:-3000} / 10 ))"
for set in small set; do
  printf '  %5d images: ' "$(find "$work/$set/train" -type f | wc -l)"
  src/AdvAA.Cli/bin/Release/net10.0/advaa bench data --data "$work/$set" --workers 1 --steps 0 | grep -o 'peak RSS after the epoch: [0-9]* MB'
done
