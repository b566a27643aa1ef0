#!/usr/bin/env bash
# Data-parallel speed: images/s of the small model at N·M = 1024 (N = 128 images, M = 8 adversarial
# instances) with K = 1 and K = 2 MPI ranks of one CPU thread each, and the share of each step spent
# in the all-reduce (reduce_seconds / seconds of metrics.jsonl). One process with all the machine's
# threads is the reference. Epoch 2 is reported (epoch 1 warms up).
# usage: scripts/bench-distributed.sh [data folder] [out folder]   (default: the embedded sample, runs/bench-distributed)
# On a GPU machine: DEVICE=cuda MODEL=resnet18 scripts/bench-distributed.sh (K = 2 ranks share the one GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-}
out=${2:-runs/bench-distributed}
device=${DEVICE:-cpu}
model=${MODEL:-small}
command -v mpirun >/dev/null || { echo "bench-distributed: mpirun is needed (apt install openmpi-bin)" >&2; exit 1; }
dotnet build src/AdvAA.Cli -c Release -v quiet -nologo >/dev/null
advaa=src/AdvAA.Cli/bin/Release/net10.0/advaa
rm -rf "$out"; mkdir -p "$out"
args=(train --method adversarial --instances 8 --batch 128 --model "$model" --epochs 2 --train-limit 1280 --test-limit 500
      --device "$device" --frozen-bn)
[ -n "$data" ] && args+=(--data "$data")
mpi=(mpirun --oversubscribe --allow-run-as-root --bind-to core)
[ "$device" = cuda ] && mpi=(mpirun --oversubscribe --allow-run-as-root --bind-to none)

"$advaa" "${args[@]}" --out "$out/one-process" > "$out/one-process.log" 2>&1
"${mpi[@]}" -np 1 "$advaa" "${args[@]}" --out "$out/k1" --distributed > "$out/k1.log" 2>&1
"${mpi[@]}" -np 2 "$advaa" "${args[@]}" --out "$out/k2" --distributed > "$out/k2.log" 2>&1

report() {
  /usr/bin/python3 - "$1" "$2" <<'EOF'
import json, sys
name, folder = sys.argv[1], sys.argv[2]
m = [json.loads(l) for l in open(folder + "/metrics.jsonl")][-1]
reduce = m.get("reduce_seconds")
share = f"{100 * reduce / m['seconds']:5.1f}% of the epoch in all-reduce" if reduce is not None else "no all-reduce"
print(f"{name:32s} {m['images_per_second']:8.1f} img/s   {share}")
EOF
}
echo "device $device, model $model, N·M = 1024, epoch 2:"
report "one process, all threads" "$out/one-process"
report "K = 1 rank" "$out/k1"
report "K = 2 ranks" "$out/k2"
