#!/usr/bin/env bash
# U-Net blocks, C vs PyTorch side by side (issue #3 speed target): SpatialTransformer(256) on 32×32 with a
# [4,1,512] context, and ResBlock 128->128 on 64×64, batch 4, forward and forward+backward, 2 threads.
# The two implementations alternate for several rounds (the machine may be shared; alternating spreads
# load changes over both). The summary takes, per implementation, the minimum over rounds of the best
# iteration (wall ms), of the round-mean (wall ms) and of the CPU ms per iteration.
# Usage: scripts/bench-unet-blocks.sh [--threads N] [--rounds N] [--iters N]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=2; rounds=3; iters=5
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --iters) iters="$2"; shift 2 ;;
    *) echo "usage: $0 [--threads N] [--rounds N] [--iters N]" >&2; exit 2 ;;
  esac
done
make -s build/bench/bench_unet_blocks >/dev/null
# OpenBLAS 0.3.21 does not recognise recent Xeons (e.g. Sapphire Rapids under a generic "Intel Xeon
# Processor" CPUID) and falls back to its SSE3 "Prescott" kernels, 2-3x slower. Both sides use OpenBLAS
# (torch's libblas.so.3 is OpenBLAS here), so pick the right kernels for both unless the caller chose.
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  if grep -qw avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
  elif grep -qw avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell; fi
fi
out=$(mktemp); trap 'rm -f "$out"' EXIT
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), threads $threads, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-auto}, load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$rounds"); do
  DACLIP_THREADS=$threads OMP_NUM_THREADS=$threads build/bench/bench_unet_blocks --iters "$iters" --warmup 1 | tail -n +2 | tee -a "$out"
  OMP_NUM_THREADS=$threads /usr/bin/python3 bench/bench_unet_blocks_torch.py --threads "$threads" --iters "$iters" --warmup 1 \
    | tail -n +2 | tee -a "$out"
done
echo
echo "block,mode,c_best_ms,torch_best_ms,speedup_best,c_mean_ms,torch_mean_ms,speedup_mean,c_cpu_ms,torch_cpu_ms"
awk -F, 'function upd(a, k, v) { if (!(k in a) || v < a[k]) a[k] = v }
         { k = $2 "," $3; order[k] = 1
           if ($1 == "c") { upd(cm, k, $6 + 0); upd(cb, k, $7 + 0); upd(cc, k, $8 + 0) }
           if ($1 == "torch") { upd(tm, k, $6 + 0); upd(tb, k, $7 + 0); upd(tc, k, $8 + 0) } }
         END { for (k in order) if ((k in cb) && (k in tb))
                 printf "%s,%.1f,%.1f,%.2f,%.1f,%.1f,%.2f,%.1f,%.1f\n", k, cb[k], tb[k], tb[k] / cb[k],
                        cm[k], tm[k], tm[k] / cm[k], cc[k], tc[k] }' "$out" | sort
