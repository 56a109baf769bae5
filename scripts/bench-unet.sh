#!/usr/bin/env bash
# The IR-SDE ConditionalUNet (universal config, random weights): one 1×256² forward without a tape, and a
# training step at batch 4, 128² (forward, L1 loss, backward, AdamW): daclip vs PyTorch 1.13 CPU (2 threads)
# vs ONNX Runtime (forward only, 2 intra-op threads), side by side, with ratios and peak RSS.
# ROUNDS rounds (default 3) each run every side of a measure back to back; the ratios printed at the end
# are the median over rounds of each round's own ratio (the machine is shared: a round's sides see the
# same load).
# Needs: Debian python3-torch (/usr/bin/python3) and, for ONNX Runtime, Node with
#   (cd bench/onnx && ONNXRUNTIME_NODE_INSTALL=skip npm install)
# Env: ROUNDS (3), REPS (3, timed repetitions per run; each time is their median), MODES ("fwd train"),
#      TORCH_ARGS (extra bench_unet_torch.py options, e.g. --checkpoint), DACLIP_BIN (a built bench_unet
#      to use as is).
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-3}
ROUNDS=${ROUNDS:-3}
MODES=${MODES:-fwd train}
BIN=${DACLIP_BIN:-build/bench/bench_unet}
[ -n "${DACLIP_BIN:-}" ] || make -s build/bench/bench_unet
export DACLIP_THREADS=2 OMP_NUM_THREADS=2
# Debian's OpenBLAS 0.3.21 does not recognise this CPU and falls back to SSE3 kernels (~4x slower sgemm);
# daclip re-selects SkylakeX/Haswell itself, PyTorch (same OpenBLAS) gets the same kernels through this.
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  if grep -q avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
  elif grep -q avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell; fi
fi
onnx=0
model=build/bench/unet_universal.onnx
if [ -d bench/onnx/node_modules/onnxruntime-node ]; then
  onnx=1
  [ -f $model ] || /usr/bin/python3 bench/bench_unet_torch.py --export $model > /dev/null 2>&1
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), threads 2," \
     "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-auto}, $(date '+%F %T'), load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$ROUNDS"); do
  for mode in $MODES; do
    "$BIN" --mode $mode --reps "$REPS" | sed "s/^/$r /" | tee -a "$out"
    # shellcheck disable=SC2086
    /usr/bin/python3 bench/bench_unet_torch.py --mode $mode --reps "$REPS" ${TORCH_ARGS:-} | sed "s/^/$r /" | tee -a "$out"
    if [ $mode = fwd ] && [ $onnx = 1 ]; then
      node bench/bench_unet_onnx.js $model 256 "$REPS" | sed "s/^/$r /" | tee -a "$out"
    fi
  done
done
echo "$(date '+%T'), load after: $(cut -d' ' -f1-3 /proc/loadavg)"
awk -v reports='U-Net forward 1x256^2|pytorch|fwd;U-Net forward 1x256^2|onnxrt|fwd;training step 4x128^2|pytorch|train' \
    -f scripts/round-ratios.awk "$out"
