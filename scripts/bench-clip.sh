#!/usr/bin/env bash
# ViT-B/32 encode_image (batch 8, no grad) and a forward+backward training step of the image tower:
# daclip vs PyTorch 1.13 CPU (2 threads) vs ONNX Runtime (2 intra-op threads), side by side, with ratios.
# ROUNDS rounds (default 3) each run every side back to back; the ratios printed at the end are the
# median over rounds of each round's own ratio (the machine is shared: a round's sides see the same load).
# Needs: Debian python3-torch (/usr/bin/python3) and, for ONNX Runtime, Node with
#   (cd bench/onnx && ONNXRUNTIME_NODE_INSTALL=skip npm install)
# Env: ROUNDS (3), REPS (5, timed repetitions per run; each time is their median).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build/bench/bench_clip_image
REPS=${REPS:-5}
ROUNDS=${ROUNDS:-3}
export DACLIP_THREADS=2 OMP_NUM_THREADS=2
# Debian's OpenBLAS 0.3.21 does not recognise this CPU and falls back to SSE3 kernels (~4x slower sgemm).
# daclip's t_init() re-selects SkylakeX/Haswell kernels; give PyTorch (which uses the same OpenBLAS for
# its matmuls) the same kernels, so the comparison is fair.
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  if grep -q avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
  elif grep -q avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell; fi
fi
onnx=0
if [ -d bench/onnx/node_modules/onnxruntime-node ]; then
  onnx=1
  model=build/bench/vit_b32.onnx
  [ -f $model ] || /usr/bin/python3 bench/bench_clip_image_torch.py --export $model > /dev/null
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "threads 2, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-auto}, load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$ROUNDS"); do
  # each measure's sides back to back (encode: daclip, PyTorch, ONNX Runtime), so a round's ratios compare
  # runs seconds apart
  for mode in fwd train; do
    build/bench/bench_clip_image --mode $mode --reps "$REPS" | sed "s/^/$r /" | tee -a "$out"
    /usr/bin/python3 bench/bench_clip_image_torch.py --mode $mode --reps "$REPS" | sed "s/^/$r /" | tee -a "$out"
    if [ $mode = fwd ] && [ $onnx = 1 ]; then
      node bench/bench_clip_image_onnx.js $model 8 "$REPS" | sed "s/^/$r /" | tee -a "$out"
    fi
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
# lines: "<round> <impl> <mode> batch 8: <seconds> s/batch, ..."
awk '/s\/batch/ { t[$1, $2, $3] = $6; if ($1 > R) R = $1 }
     function median(a, n,   i, j, x) {
       for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
       return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
     }
     function report(label, peer, mode,   r, n, v, list) {
       n = 0; list = ""
       for (r = 1; r <= R; r++) if (t[r, peer, mode] && t[r, "daclip", mode]) {
         v[++n] = t[r, peer, mode] / t[r, "daclip", mode]; list = list sprintf(" %.2f", v[n])
       }
       if (n) printf "%s: daclip is %.2fx %s (median of %d rounds; per round:%s)\n", label, median(v, n), peer, n, list
     }
     END {
       report("encode_image", "pytorch", "fwd"); report("encode_image", "onnxrt", "fwd");
       report("train step  ", "pytorch", "train")
     }' "$out"
