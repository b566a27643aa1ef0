#!/usr/bin/env bash
# Times loading CIFAR-10 into memory: the binary batches and the 60,000-image JPEG archive
# (and the embedded sample), in images/s, median of several loads after a warm-up load.
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
