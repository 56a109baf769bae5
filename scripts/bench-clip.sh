#!/usr/bin/env bash
# ViT-B/32 encode_image (batch 8, no grad) and a forward+backward training step of the image tower:
# daclip vs PyTorch 1.13 CPU (2 threads) vs ONNX Runtime (2 intra-op threads), side by side, with ratios.
# Needs: Debian python3-torch (/usr/bin/python3) and, for ONNX Runtime, Node with
#   (cd bench/onnx && ONNXRUNTIME_NODE_INSTALL=skip npm install)
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build/bench/bench_clip_image
REPS=${REPS:-5}
export DACLIP_THREADS=2 OMP_NUM_THREADS=2
# Debian's OpenBLAS 0.3.21 does not recognise this CPU and falls back to SSE3 kernels (~4x slower sgemm).
# daclip's t_init() re-selects SkylakeX/Haswell kernels; give PyTorch (which uses the same OpenBLAS for
# its matmuls) the same kernels, so the comparison is fair.
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  if grep -q avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
  elif grep -q avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell; fi
fi
out=$(mktemp)
for mode in fwd train; do
  build/bench/bench_clip_image --mode $mode --reps "$REPS" | tee -a "$out"
  /usr/bin/python3 bench/bench_clip_image_torch.py --mode $mode --reps "$REPS" | tee -a "$out"
done
if [ -d bench/onnx/node_modules/onnxruntime-node ]; then
  model=build/bench/vit_b32.onnx
  [ -f $model ] || /usr/bin/python3 bench/bench_clip_image_torch.py --export $model > /dev/null
  node bench/bench_clip_image_onnx.js $model 8 "$REPS" | tee -a "$out"
fi
awk '/s\/batch/ { split($0, a, ":"); split(a[2], b, " "); t[$1 " " $2] = b[1] }
     END {
       if (t["pytorch fwd"])   printf "encode_image: daclip is %.2fx PyTorch\n", t["pytorch fwd"] / t["daclip fwd"];
       if (t["onnxrt fwd"])    printf "encode_image: daclip is %.2fx ONNX Runtime\n", t["onnxrt fwd"] / t["daclip fwd"];
       if (t["pytorch train"]) printf "train step:   daclip is %.2fx PyTorch\n", t["pytorch train"] / t["daclip train"];
     }' "$out"
rm -f "$out"
