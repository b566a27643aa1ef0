#!/usr/bin/env bash
# The paper's ablation (Table 4) on reduced CIFAR-10, not a test: the small model trained for the same
# number of epochs with baseline (standard augmentation), fixed (M=8 copies, standard augmentation +
# Cutout), random (M=8 random policies per epoch) and adversarial (M=8 policies from the controller).
#
#   scripts/ablation.sh [CIFAR-10 folder]      (default: $ADVAA_CIFAR10_DIR, else ../shared/data/cifar10)
#
# Train = data_batch_1.bin (10,000 images), test = test_batch.bin (10,000). Settings from the
# environment: EPOCHS (default 10), SEEDS (default "1"), BATCH (images per instance, default 128),
# DEVICE (default auto), OUT (default ablation-<yyyyMMdd-HHmmss>). About 5-6 minutes per epoch of all
# four methods on 2 CPU cores. Writes one run folder per method and seed, a comparison report in
# $OUT/report, and prints the final and best test accuracy of each run. Run it again with the same OUT
# after an interruption: finished runs are kept, an interrupted one resumes from its last checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
source_dir=${1:-${ADVAA_CIFAR10_DIR:-../shared/data/cifar10}}
epochs=${EPOCHS:-10}
seeds=${SEEDS:-1}
batch=${BATCH:-128}
device=${DEVICE:-auto}
out=${OUT:-ablation-$(date +%Y%m%d-%H%M%S)}
methods="baseline fixed random adversarial"

batch_file=$(find "$source_dir" -maxdepth 2 -name data_batch_1.bin -print -quit 2>/dev/null || true)
[ -n "$batch_file" ] || { echo "ablation: no data_batch_1.bin under $source_dir (a CIFAR-10 binary folder)" >&2; exit 1; }
bin_dir=$(cd "$(dirname "$batch_file")" && pwd)
[ -f "$bin_dir/test_batch.bin" ] || { echo "ablation: $bin_dir has no test_batch.bin" >&2; exit 1; }

# The reduced data set: one training batch and the test batch, linked into a folder of their own.
if [ ! -d "$out/data" ]; then
  mkdir -p "$out/data"
  ln -s "$bin_dir/data_batch_1.bin" "$bin_dir/test_batch.bin" "$out/data/"
  [ -f "$bin_dir/batches.meta.txt" ] && ln -s "$bin_dir/batches.meta.txt" "$out/data/"
fi

dotnet build -c Release src/AdvAA.Cli -v quiet -nologo >/dev/null
advaa=src/AdvAA.Cli/bin/Release/net10.0/advaa

runs=()
for seed in $seeds; do
  for method in $methods; do
    run="$out/$method-s$seed"
    runs+=("$run")
    finished=$( [ -f "$run/metrics.jsonl" ] && wc -l < "$run/metrics.jsonl" || echo 0)
    if [ "$finished" -ge "$epochs" ]; then
      echo "== $method, seed $seed: finished earlier ($finished epochs), kept"
    elif ls "$run"/checkpoint/epoch-* >/dev/null 2>&1; then
      echo "== $method, seed $seed: resuming after epoch $finished"
      "$advaa" train --resume "$run" --epochs "$epochs"
    else
      echo "== $method, seed $seed, $epochs epochs"
      # A run folder started but without a complete epoch holds nothing to keep; anything else
      # at that path is left for advaa train to refuse.
      if [ -f "$run/config.json" ]; then rm -rf "$run"; fi
      # M = 8 copies for the paper's M-instance methods; baseline trains on one.
      copies=(); case $method in fixed|random|adversarial) copies=(--instances 8);; esac
      "$advaa" train --method "$method" --model small --data "$out/data" --epochs "$epochs" \
        "${copies[@]}" --batch "$batch" --seed "$seed" --device "$device" --out "$run"
    fi
  done
done

"$advaa" report "${runs[@]}" --out "$out/report"

accuracy() { sed -E 's/.*"test_accuracy":([0-9.eE+-]+).*/\1/' "$1/metrics.jsonl"; }
echo
printf '%-12s %5s %8s %9s %9s %10s\n' method seed epochs "final %" "best %" "images/s"
for run in "${runs[@]}"; do
  name=$(basename "$run")
  final=$(accuracy "$run" | tail -n 1)
  best=$(accuracy "$run" | sort -g | tail -n 1)
  speed=$(sed -E 's/.*"images_per_second":([0-9.eE+-]+).*/\1/' "$run/metrics.jsonl" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  awk -v m="${name%-s*}" -v s="${name##*-s}" -v e="$(wc -l < "$run/metrics.jsonl")" -v f="$final" -v b="$best" -v v="$speed" \
    'BEGIN { printf "%-12s %5s %8s %9.2f %9.2f %10.0f\n", m, s, e, 100 * f, 100 * b, v }'
done
echo "report: $out/report/index.html"
