#!/usr/bin/env bash
# DA-CLIP at ViT-B-32 size, batch 8: encode_image with control (no grad) and one controller training step,
# daclip vs PyTorch 1.13 CPU running the official DaCLIP module structure (2 threads), side by side.
# ROUNDS rounds (default 3) each run both sides back to back; the ratios are the median over rounds of each
# round's own ratio (the machine is shared: a round's sides see the same load). Env: ROUNDS, REPS (5).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build/bench/bench_daclip
REPS=${REPS:-5}
ROUNDS=${ROUNDS:-3}
export DACLIP_THREADS=2 OMP_NUM_THREADS=2
# Debian's OpenBLAS 0.3.21 falls back to SSE3 kernels on this CPU; give PyTorch the kernels daclip selects.
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  if grep -q avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
  elif grep -q avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell; fi
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "threads 2, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-auto}, load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$ROUNDS"); do
  for mode in encode train; do
    build/bench/bench_daclip --mode $mode --reps "$REPS" | sed "s/^/$r /" | tee -a "$out"
    /usr/bin/python3 bench/bench_daclip_torch.py --mode $mode --reps "$REPS" | sed "s/^/$r /" | tee -a "$out"
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
awk '/s\/batch/ { t[$1, $2, $3] = $6; if ($1 > R) R = $1 }
     function median(a, n,   i, j, x) {
       for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
       return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
     }
     function report(label, mode,   r, n, v, list) {
       n = 0; list = ""
       for (r = 1; r <= R; r++) if (t[r, "pytorch", mode] && t[r, "daclip", mode]) {
         v[++n] = t[r, "pytorch", mode] / t[r, "daclip", mode]; list = list sprintf(" %.2f", v[n])
       }
       if (n) printf "%s: daclip is %.2fx pytorch (median of %d rounds; per round:%s)\n", label, median(v, n), n, list
     }
     END { report("encode with control", "encode"); report("controller train step", "train") }' "$out"
