#!/usr/bin/env bash
# The CPU-scale study (scripts/study.fsx): every method of the paper's comparison on a small-data
# CIFAR-10 setting, 2 seeds; resumes after an interruption (finished runs are kept, an interrupted
# one continues) and writes <folder>/summary.md, summary.json and plots.
# usage: scripts/study.sh [CIFAR-10 folder] [study folder]   (default: $ADVAA_CIFAR10_DIR, runs/study)
# STUDY=another-study.fsx runs that study script the same way (scripts/tanda-study.sh does).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-${ADVAA_CIFAR10_DIR:-../shared/data/cifar10}}
out=${2:-runs/study}
script=${STUDY:-scripts/study.fsx}
dotnet build src/AdvAA.Cli -c Release -v quiet -nologo >/dev/null
advaa=src/AdvAA.Cli/bin/Release/net10.0/advaa
if [ -d "$out" ] && [ -n "$(ls -A "$out")" ]; then
  exec "$advaa" run "$script" "$data" --resume "$out"
else
  exec "$advaa" run "$script" "$data" --out "$out"
fi
