#!/usr/bin/env bash
# The model-patching benchmark (scripts/patching-study.fsx): ERM, GDRO, SGDRO, CAMEL with oracle
# translations and CAMEL with learned (CycleGAN) translations on the spurious-patch benchmark, 2
# seeds; writes the benchmark first when its folder does not exist; resumes after an interruption.
# usage: scripts/patching-study.sh [benchmark folder] [study folder] [CIFAR-10 folder]
#   (defaults: runs/spurious-benchmark, runs/patching-study, $ADVAA_CIFAR10_DIR or ../shared/data/cifar10)
set -euo pipefail
cd "$(dirname "$0")/.."
benchmark=${1:-runs/spurious-benchmark}
out=${2:-runs/patching-study}
cifar=${3:-${ADVAA_CIFAR10_DIR:-../shared/data/cifar10}}
dotnet build src/AdvAA.Cli -c Release -v quiet -nologo >/dev/null
advaa=src/AdvAA.Cli/bin/Release/net10.0/advaa
[ -d "$benchmark" ] || "$advaa" patching make-spurious --data "$cifar" --out "$benchmark"
STUDY=scripts/patching-study.fsx exec scripts/study.sh "$benchmark" "$out"
