#!/usr/bin/env bash
# AdvAA's packages into one folder, a local NuGet feed: AdvAA.Core, AdvAA.Dsl, AdvAA-cpu and the
# advaa tool, each with its symbols (.snupkg), at the version of Directory.Build.props.
# Usage: scripts/pack.sh [FOLDER] [SUFFIX]   (default artifacts/packages; SUFFIX, e.g. dev.2, makes
# 0.1.0-dev.2: NuGet caches a version once, so a rebuilt package needs a version of its own)
set -euo pipefail
out=$(realpath -m "${1:-$(dirname "$0")/../artifacts/packages}")  # relative to where it is called from
cd "$(dirname "$0")/.."
mkdir -p "$out"
dotnet pack AdvAA.sln -c Release -o "$out" -v q -nologo ${2:+-p:VersionSuffix="$2"}
ls -l "$out"
