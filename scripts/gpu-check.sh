#!/usr/bin/env bash
# The GPU check: one prepared run, at most about 8 minutes on one H100/H200, that prints one
# summary table. The GPU machine needs PyTorch with CUDA in python3 and nothing else (no .NET):
#
#   scripts/gpu-check.sh pack                  here: writes .device-pack/ (the tests and the app
#                                              without the CPU libtorch and the .NET runtime in one xz
#                                              archive, PIL's golden outputs, CIFAR-10 as JPEG; ~61 MB,
#                                              2 minutes) and ignores it in git
#   bash scripts/gpu-check.sh run              there, in the repository root, with .device-pack carried
#   scripts/gpu-check.sh run --device cpu      here: a dry run of every step at CPU sizes
#
# Steps: advaa info; the golden op tests on the device (PIL-exactness there); bench ops; the
# training step of ResNet-18 and WRN-28-10 at N·M = 1024 in fp32 and bf16 against PyTorch eager on
# the same device (scripts/bench-torch-step.py); one epoch of adversarial CIFAR-10 training with the
# share of augmentation and of the controller.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:?usage: scripts/gpu-check.sh pack | run [--device cuda|cpu]}
shift
device=cuda
[ "${1:-}" = "--device" ] && device=${2:?--device cuda|cpu}
pack=.device-pack

if [ "$mode" = pack ]; then
  # The published tests (which hold the app) without the CPU libtorch, and the .NET runtime, in one
  # xz archive: with the data it stays under the device tool's 64 MiB.
  rm -rf "$pack" && mkdir -p "$pack"
  bash ../shared/tools/pack-for-device.sh tests/AdvAA.Tests/AdvAA.Tests.fsproj "$pack/staging" >/dev/null
  rm -f "$pack"/staging/app/*.pdb "$pack"/staging/app/*.xml
  mkdir -p "$pack/staging/bundle/dotnet"
  tar xzf "$pack/staging/dotnet.tgz" -C "$pack/staging/bundle/dotnet"
  mv "$pack/staging/app" "$pack/staging/bundle/app"
  tar -cf - -C "$pack/staging/bundle" . | xz -T0 -9 > "$pack/bundle.tar.xz"
  rm -rf "$pack/staging"
  cp -r "${ADVAA_GOLDEN_OPS:-../shared/golden/ops}" "$pack/golden"
  cp "${ADVAA_CIFAR10_JPEG:-../shared/data/cifar10/cifar10-jpeg.tar.gz}" "$pack/cifar10-jpeg.tar.gz"
  grep -qx '/.device-pack/' .git/info/exclude 2>/dev/null || echo /.device-pack/ >> .git/info/exclude
  # The publish rebuilt the CLI's Release folder without its host and CPU libtorch: restore it.
  dotnet build src/AdvAA.Cli -c Release -v quiet -nologo >/dev/null
  du -sh "$pack"
  exit 0
fi
[ "$mode" = run ] || { echo "gpu-check.sh: unknown mode '$mode' (pack or run)" >&2; exit 2; }

# The app: the pack on a GPU machine (it carries no CPU libtorch), else this checkout's Release build.
if [ "$device" = cuda ] && [ -f "$pack/bundle.tar.xz" ]; then
  unpacked=/tmp/advaa-gpu-check
  [ -f "$unpacked/app/AdvAA.Tests.dll" ] || { mkdir -p "$unpacked" && tar xJf "$pack/bundle.tar.xz" -C "$unpacked"; }
  app=$unpacked/app
  export DOTNET_ROOT=$unpacked/dotnet PATH=$unpacked/dotnet:$PATH
  golden=$pack/golden data=$pack/cifar10-jpeg.tar.gz
else
  dotnet build tests/AdvAA.Tests -c Release -v quiet -nologo >/dev/null
  app=tests/AdvAA.Tests/bin/Release/net10.0/linux-x64
  golden=${ADVAA_GOLDEN_OPS:-../shared/golden/ops} data=${ADVAA_CIFAR10_JPEG:-../shared/data/cifar10/cifar10-jpeg.tar.gz}
fi
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
if [ "$device" = cuda ]; then
  lib=$(python3 -c "import torch,os;print(os.path.dirname(torch.__file__)+'/lib')")
  export ADVAA_LIBTORCH=${ADVAA_LIBTORCH:-$lib} LD_LIBRARY_PATH=$lib:${LD_LIBRARY_PATH:-}
  models=(resnet18 wrn-28-10) batch=1024 epoch=(--model wrn-28-10)
else
  models=(small) batch=128 epoch=(--model small --train-limit 512 --test-limit 200 --instances 2 --batch 64)
fi
advaa() { dotnet "$app/advaa.dll" "$@"; }
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
step() { echo; echo "== $1"; }
result() { grep -ho "RESULT $1 [0-9.]*" "$log"/*.txt | awk '{print $3}' | tail -1; }
start=$(date +%s)

step "advaa info --device $device"
advaa info --device "$device" | tee "$log/info.txt"

step "golden op tests on $device"
ADVAA_DEVICE=$device ADVAA_GOLDEN_OPS=$golden dotnet "$app/AdvAA.Tests.dll" --filter-test-list golden 2>&1 | tee "$log/golden.txt" | grep -E "golden ops on|passed" || true
golden_line=$(grep -o "[0-9]* of [0-9]* cases passed" "$log/golden.txt" | tail -1 || true)

step "bench ops on $device"
advaa bench ops --device "$device" --count 8192 --runs 9 | tee "$log/ops.txt"

step "training step, AdvAA (advaa bench models) and PyTorch eager (scripts/bench-torch-step.py)"
advaa bench models --device "$device" --models "${models[@]}" --batches "$batch" | tee "$log/models.txt"
if python3 -c "import torch" 2>/dev/null; then
  PYTHONUNBUFFERED=1 python3 scripts/bench-torch-step.py --device "$device" --models "${models[@]}" --batch "$batch" --steps 6 | tee "$log/torch.txt"
else
  echo "python3 has no torch: no PyTorch anchor"
fi

step "one epoch of adversarial CIFAR-10 (M = 8, N = 128 unless a dry run)"
run=$(mktemp -d)/epoch
advaa train --method adversarial "${epoch[@]}" --data "$data" --epochs 1 --device "$device" --out "$run" | tee "$log/epoch.txt"
metrics=$(tail -1 "$run/metrics.jsonl")
field() { echo "$metrics" | sed -E "s/.*\"$1\":([0-9.eE+-]+).*/\1/"; }

step "data parallel: K = 1 and 2 ranks sharing the $device (NCCL on a GPU), the same epoch"
ranks=()
if command -v mpirun >/dev/null; then
  for k in 1 2; do
    mpirun --oversubscribe --allow-run-as-root --bind-to none -np "$k" dotnet "$app/advaa.dll" train --method adversarial "${epoch[@]}" \
      --data "$data" --epochs 1 --device "$device" --frozen-bn --out "$run-k$k" --distributed | tee "$log/k$k.txt" && ranks+=("$k")
  done
else
  echo "no mpirun on this machine (apt install openmpi-bin): the distributed path is not checked"
fi

echo
echo "== summary ($device, $(( $(date +%s) - start )) s)"
printf '%-44s %s\n' "golden ops (PIL 9.4, MAE <= 0.5, max <= 2)" "${golden_line:-not run}"
cuda_ops=$(result advaa_cuda_batch1024_images_per_s || true)
printf '%-44s %s\n' "augmentation, random 2-op sub-policies" "${cuda_ops:-$(result 'advaa_cpu_threads[0-9]*_images_per_s')} images/s (batch ${cuda_ops:+1024}${cuda_ops:-8192})"
for m in "${models[@]}"; do
  for p in fp32 bf16; do
    ours=$(result "${m}_batch${batch}_${p}_channels-last_images_per_s" || true)
    theirs=$(result "torch_${m}_batch${batch}_${p}_channels-last_images_per_s" || true)
    ratio=$([ -n "$ours" ] && [ -n "$theirs" ] && awk -v a="$ours" -v b="$theirs" 'BEGIN{printf "%.2fx PyTorch", a/b}' || echo "")
    printf '%-44s %s\n' "train step $m $p, batch $batch" "AdvAA ${ours:-–} images/s, PyTorch ${theirs:-–} images/s $ratio"
  done
done
awk -v s="$(field seconds)" -v a="$(field augment_seconds)" -v c="$(field controller_seconds)" -v r="$(field images_per_second)" -v t="$(field test_accuracy)" \
  'BEGIN { printf "%-44s %.0f images/s, epoch %.1f s: augmentation %.1f%%, controller %.2f%%, test acc %.2f%%\n", "adversarial epoch", r, s, 100*a/s, 100*c/s, 100*t }'
for k in "${ranks[@]}"; do
  metrics=$(tail -1 "$run-k$k/metrics.jsonl")
  awk -v s="$(field seconds)" -v d="$(field reduce_seconds)" -v r="$(field images_per_second)" -v k="$k" \
    'BEGIN { printf "%-44s %.0f images/s, all-reduce %.1f%% of the epoch\n", "adversarial epoch, K = " k " ranks", r, 100*d/s }'
done
