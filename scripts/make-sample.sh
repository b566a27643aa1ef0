#!/usr/bin/env bash
# Writes data/cifar10-sample.tar.gz, the sample embedded in AdvAA.Core: from a CIFAR-10 image-folder
# archive (cifar10-jpeg/{train,test}/<class>/NNNN.jpg), the first 200 training and 100 test images
# of each class by file name, as cifar10-sample/{train,test}/<class>/NNNN.jpg. The output is
# byte-for-byte reproducible (sorted entries, fixed owner and times, no gzip timestamp).
set -euo pipefail
usage="usage: scripts/make-sample.sh <cifar10-jpeg.tar.gz>"
archive=${1:?$usage}
[ -f "$archive" ] || { echo "make-sample: $archive: no such file" >&2; exit 1; }
repo=$(cd "$(dirname "$0")/.." && pwd)
out="$repo/data/cifar10-sample.tar.gz"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Member names as "<top>/<split>/<class>/<file>"; keep the first N files of each split/class.
tar -tzf "$archive" | LC_ALL=C sort | awk -F/ '
  NF == 4 && ($2 == "train" || $2 == "test") && $4 ~ /\.(jpg|jpeg|png)$/ {
    key = $2 "/" $3
    if (++taken[key] <= ($2 == "train" ? 200 : 100)) print
  }' > "$work/members"
[ -s "$work/members" ] || { echo "make-sample: $archive has no <top>/train|test/<class>/<image> members" >&2; exit 1; }

mkdir "$work/tree"
tar -xzf "$archive" -C "$work/tree" -T "$work/members"
top=$(head -n1 "$work/members" | cut -d/ -f1)
mv "$work/tree/$top" "$work/tree/cifar10-sample"
(cd "$work/tree" && find cifar10-sample -print0 | LC_ALL=C sort -z |
  tar --no-recursion --owner=0 --group=0 --numeric-owner --mtime=2020-01-01T00:00:00Z --mode=u=rwX,go=rX --format=gnu --null -T - -cf -) |
  gzip -n -9 > "$out"
echo "$out: $(wc -l < "$work/members") images, $(stat -c %s "$out") bytes"
