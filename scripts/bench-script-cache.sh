#!/usr/bin/env bash
# How long `advaa check` takes on a script: cold (empty script cache: compile) and warm (cached),
# medians of RUNS runs each. Usage: scripts/bench-script-cache.sh [SCRIPT] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
script=${1:-examples/quickstart.fsx}
runs=${2:-5}
dotnet build -c Release -nologo -v q src/AdvAA.Cli >/dev/null
advaa=src/AdvAA.Cli/bin/Release/net10.0/advaa
export ADVAA_SCRIPT_CACHE=$(mktemp -d)
trap 'rm -rf "$ADVAA_SCRIPT_CACHE"' EXIT
seconds() { /usr/bin/time -f %e "$advaa" check "$script" 2>&1 >/dev/null | tail -1; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
cold=$(for _ in $(seq "$runs"); do rm -rf "${ADVAA_SCRIPT_CACHE:?}"/*; seconds; done | median)
seconds >/dev/null
warm=$(for _ in $(seq "$runs"); do seconds; done | median)
echo "advaa check $script: cold ${cold} s, warm ${warm} s (medians of $runs runs)"
