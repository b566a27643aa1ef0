#!/usr/bin/env bash
# AdvAA's packages into one folder, a local NuGet feed: AdvAA.Core, AdvAA.Dsl, AdvAA-cpu and the
# advaa tool, each with its symbols (.snupkg). Usage: scripts/pack.sh [FOLDER] (default artifacts/packages).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-artifacts/packages}")
mkdir -p "$out"
dotnet pack AdvAA.sln -c Release -o "$out" -v q -nologo
ls -l "$out"
