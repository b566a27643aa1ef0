#!/usr/bin/env bash
# A fixed-seed CPU run of every method of the registry (2 epochs, fp32, tiny data) and the SHA-256 of
# each run's metrics.jsonl (timing fields and fields that are null removed, keys sorted) and
# policies.jsonl: what a refactoring that must not change behaviour compares before and after. Prints
# "method metrics-hash policies-hash" lines; a folder that holds finished runs is only hashed again.
# usage: scripts/method-fingerprints.sh ADVAA_BINARY OUT_FOLDER
set -euo pipefail
advaa=$1 out=$2
mkdir -p "$out"
common=(--epochs 2 --batch 16 --train-limit 64 --test-limit 40 --device cpu --precision fp32 --seed 7)
run() { # name, then its flags
  local name=$1; shift
  [ -f "$out/$name/metrics.jsonl" ] && [ "$(wc -l < "$out/$name/metrics.jsonl")" -ge 2 ] && return
  rm -rf "${out:?}/$name"
  "$advaa" train "${common[@]}" --out "$out/$name" "$@" > "$out/$name.log" 2>&1 || { echo "$name failed:"; tail -5 "$out/$name.log"; exit 1; }
}
policy=$out/policy.json
echo '{ "format": "advaa-policy", "version": 1, "subPolicies": [ [ { "op": "Rotate", "level": 3 }, { "op": "Color", "level": 6 } ] ] }' > "$policy"
[ -d "$out/spurious" ] || "$advaa" patching make-spurious --out "$out/spurious" --train-per-class 40 --correlation 0.9 --val-per-group 4 --test-per-group 6 > /dev/null
for m in baseline cutout autoaugment randaugment trivialaugment fixed uncertainty uncertainty-space; do run "$m" --method "$m"; done
run random --method random --instances 2
run adversarial --method adversarial --instances 2
run policy --method policy --policy "$policy"
run transfer --method transfer --from "$out/adversarial"
run tanda --method tanda --instances 2 --param tan_epochs=1 --param length=3
for m in gdro sgdro camel-oracle; do run "$m" --method "$m" --data "$out/spurious"; done
run camel --method camel --data "$out/spurious" --param gan_epochs=1 --param gan_filters=4 --param gan_blocks=1
for folder in "$out"/*/; do
  name=$(basename "$folder")
  [ -f "$folder/metrics.jsonl" ] || continue
  metrics=$(python3 -c '
import json, sys
timing = {"seconds", "images_per_second", "augment_seconds", "controller_seconds", "reduce_seconds", "method_seconds"}
for line in open(sys.argv[1]):
    record = json.loads(line)
    print(json.dumps({k: v for k, v in record.items() if k not in timing and v is not None}, sort_keys=True))' "$folder/metrics.jsonl" | sha256sum | cut -c1-16)
  policies=$( [ -f "$folder/policies.jsonl" ] && sha256sum < "$folder/policies.jsonl" | cut -c1-16 || echo none)
  echo "$name $metrics $policies"
done
