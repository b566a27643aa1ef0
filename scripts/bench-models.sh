#!/usr/bin/env bash
# Parameter counts and CPU speed of the models and the policy controller.
# ADVAA_BENCH_MODELS=small,resnet18 selects the models timed (default: small); ADVAA_DEVICE picks the device.
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build src/AdvAA.Cli -c Release -v quiet -nologo >/dev/null
dotnet fsi --quiet scripts/bench-models.fsx
