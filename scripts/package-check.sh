#!/usr/bin/env bash
# Proves the packages as a user meets them, from empty folders: pack into a local feed (a version of
# its own, so the NuGet cache never serves an older build of the same number), install the advaa
# tool into a temporary tool path and run `advaa info` and one epoch on the embedded sample, run an
# F# script that takes AdvAA with `#r "nuget: …"` under `dotnet fsi` and under `advaa run`, and build
# a C# console program that references the package and trains one epoch. Prints the time of each step.
# Usage: scripts/package-check.sh   (CI runs it after the tests; COLD_CACHE=1 gives the steps after
# packing an empty NuGet cache of their own, as on a machine that never restored TorchSharp)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/advaa-package-check.XXXXXX)
version="$(sed -n 's|.*<VersionPrefix>\(.*\)</VersionPrefix>.*|\1|p' "$repo/Directory.Build.props")-check.$(date +%s)"
cache=${NUGET_PACKAGES:-$HOME/.nuget/packages}
cleanup() {
  rm -rf "$work"
  # This check's packages only: the cache keeps everything else.
  for id in advaa advaa.core advaa.dsl advaa-cpu; do rm -rf "$cache/$id/$version"; done
}
trap cleanup EXIT
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
timings=()
step() {  # step NAME COMMAND...: runs it, keeps its output in $work/NAME.log, shows it on failure
  local name=$1; shift
  local start=$SECONDS
  if ! "$@" > "$work/$name.log" 2>&1; then
    echo "package check: '$name' failed:" >&2; tail -30 "$work/$name.log" >&2; exit 1
  fi
  timings+=("$(printf '%-22s %4d s' "$name" $((SECONDS - start)))")
}
expect() {  # expect NAME TEXT: the step's output has this text
  grep -qF -- "$2" "$work/$1.log" || { echo "package check: '$1' did not print '$2':" >&2; tail -30 "$work/$1.log" >&2; exit 1; }
}

feed="$work/feed"
step pack dotnet pack "$repo/AdvAA.sln" -c Release -o "$feed" -p:VersionSuffix="${version#*-}" -v q -nologo
for package in "AdvAA.Core.$version.nupkg" "AdvAA.Dsl.$version.nupkg" "AdvAA-cpu.$version.nupkg" "advaa.$version.nupkg"; do
  [ -f "$feed/$package" ] || { echo "package check: $package was not written" >&2; ls "$feed" >&2; exit 1; }
done

if [ -n "${COLD_CACHE:-}" ]; then
  export NUGET_PACKAGES="$work/nuget-packages"
  mkdir -p "$NUGET_PACKAGES"
fi

# The tool, from an empty folder.
mkdir -p "$work/empty"
cd "$work/empty"
step tool-install dotnet tool install --tool-path "$work/tools" advaa --version "$version" --add-source "$feed"
step tool-info "$work/tools/advaa" info
expect tool-info "AdvAA        $version"
step tool-train "$work/tools/advaa" train --method randaugment --model small --epochs 1 --device cpu --out "$work/empty/run"
expect tool-train "done     randaugment-small: 1 epoch"

# An F# script anywhere, with #r "nuget": under dotnet fsi, then under advaa run.
mkdir -p "$work/script"
cd "$work/script"
cat > train.fsx <<EOF
#i "nuget: $feed"
#r "nuget: AdvAA-cpu, $version"

open AdvAA.Dsl

let experiment =
    { Experiment.defaults with
        Name = "nuget-script"
        Model = "small"
        Method = Method.named "randaugment"
        Epochs = 1
        Device = "cpu" }

Experiment.main experiment
EOF
step fsi-script dotnet fsi train.fsx
expect fsi-script "done     nuget-script: 1 epoch"
step advaa-run-script "$work/tools/advaa" run train.fsx
expect advaa-run-script "done     nuget-script: 1 epoch"

# A C# program that references the package.
mkdir -p "$work/app"
cd "$work/app"
step csharp-new dotnet new console --name App --output .
cat > nuget.config <<EOF
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <add key="advaa-local" value="$feed" />
  </packageSources>
</configuration>
EOF
step csharp-add-package dotnet add package AdvAA-cpu --version "$version"
cat > Program.cs <<'EOF'
using AdvAA.Core.Data;
using AdvAA.Core.Methods;
using AdvAA.Core.Training;

// One epoch of RandAugment on the CIFAR-10 sample embedded in AdvAA, on the CPU.
var config = new TrainConfig { Method = MethodRegistry.Defaults("randaugment"), Model = "small", Epochs = 1, Device = "cpu" };
using DataSplits data = DataSources.EmbeddedSample();
using var trainer = new Trainer(config, data);
var epochs = trainer.Run(RunFolder.Create(Path.Combine(Environment.CurrentDirectory, "run")));
Console.WriteLine($"epochs {epochs.Count}, test accuracy {epochs[^1].TestAccuracy:F4}");
EOF
step csharp-run dotnet run
expect csharp-run "epochs 1, test accuracy"

echo "package check passed: AdvAA $version from a local feed ($(du -sh "$feed" | cut -f1) of packages)"
ls -l "$feed" | awk 'NR > 1 { printf "  %-40s %7.1f MB\n", $9, $5 / 1048576 }'
printf '  %s\n' "${timings[@]}"
