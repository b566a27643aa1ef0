#!/usr/bin/env bash
# Downloads the official CIFAR-10 binary release (Krizhevsky 2009, 163 MB) and unpacks it:
#
#   scripts/get-cifar10.sh [folder]        (default: ./data/cifar10; needs curl or wget, tar, md5sum)
#
# The result, <folder>/cifar-10-batches-bin/{data_batch_1..5.bin,test_batch.bin,batches.meta.txt},
# is what `advaa train --data <folder>` and CIFAR10_DIR=<folder> take. Nothing is changed if the
# download is incomplete or its checksum is wrong.
set -euo pipefail
folder=${1:-data/cifar10}
url=https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz
md5=c32a1d4ab5d03f1284b67883e8d87530

if [ -f "$folder/cifar-10-batches-bin/test_batch.bin" ]; then
  echo "CIFAR-10 is already in $folder/cifar-10-batches-bin"
  exit 0
fi
mkdir -p "$folder"
archive=$(mktemp "$folder/.cifar-10-binary.XXXXXX.tar.gz")
trap 'rm -f "$archive"' EXIT
if command -v curl >/dev/null; then curl -fL --retry 3 -o "$archive" "$url"
else wget -O "$archive" "$url"; fi
echo "$md5  $archive" | md5sum -c --quiet - || { echo "get-cifar10: checksum mismatch for $url" >&2; exit 1; }
tar xzf "$archive" -C "$folder"
echo "CIFAR-10: $folder/cifar-10-batches-bin"
echo "use it with: advaa train --data $folder    or    export CIFAR10_DIR=$folder"
