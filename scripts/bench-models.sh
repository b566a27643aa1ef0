#!/usr/bin/env bash
# Training-step speed of the models (fp32 and bf16, NCHW and channels-last) and of the policy
# controller, on this machine (not a test): `advaa bench models`.
# usage: scripts/bench-models.sh [advaa bench models flags, e.g. --models small resnet18 --batches 128 1024 --device cuda]
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build src/AdvAA.Cli -c Release -v quiet -nologo >/dev/null
exec src/AdvAA.Cli/bin/Release/net10.0/advaa bench models "$@"
