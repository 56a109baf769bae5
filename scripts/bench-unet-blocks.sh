#!/usr/bin/env bash
# U-Net blocks, C vs PyTorch side by side (issue #3 speed target): SpatialTransformer(256) on 32×32 with a
# [4,1,512] context, and ResBlock 128->128 on 64×64, batch 4, forward and forward+backward, 2 threads.
# The machine may be shared, so the two implementations run as close pairs (per round and block: C, then
# torch, a few seconds apart) and the summary gives, over rounds, the median of each pair's speed ratio
# (torch ms / C ms on the best iteration; > 1 means C is faster), the median best-iteration times, and the
# median CPU ms per iteration (process CPU time: less sensitive to other load than wall time).
# Usage: scripts/bench-unet-blocks.sh [--threads N] [--rounds N] [--iters N]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=2; rounds=3; iters=3
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
# (torch's libblas.so.3 is OpenBLAS here); daclip's t_init corrects this itself, and this sets it for
# PyTorch too (set OPENBLAS_CORETYPE yourself to override).
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  if grep -qw avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
  elif grep -qw avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell; fi
fi
out=$(mktemp); trap 'rm -f "$out"' EXIT
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), threads $threads, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-auto}, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "round,impl,block,mode,threads,batch,ms_per_iter,ms_best,cpu_ms_per_iter,peak_rss_mb"
for r in $(seq "$rounds"); do
  for blk in st resblock; do
    DACLIP_THREADS=$threads OMP_NUM_THREADS=$threads build/bench/bench_unet_blocks --only $blk --iters "$iters" --warmup 1 \
      | tail -n +2 | sed "s/^/$r,/" | tee -a "$out"
    OMP_NUM_THREADS=$threads /usr/bin/python3 bench/bench_unet_blocks_torch.py --only $blk --threads "$threads" \
      --iters "$iters" --warmup 1 | tail -n +2 | sed "s/^/$r,/" | tee -a "$out"
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "block,mode,median_speedup(torch/c),c_best_ms,torch_best_ms,c_cpu_ms,torch_cpu_ms"
/usr/bin/python3 - "$out" <<'PY'
import csv, statistics, sys
rows = list(csv.reader(open(sys.argv[1])))
by = {}
for rnd, impl, blk, mode, _t, _b, _mean, best, cpu, _rss in rows:
    by.setdefault((blk, mode), {}).setdefault(rnd, {})[impl] = (float(best), float(cpu))
for (blk, mode), rounds in sorted(by.items()):
    pairs = [v for v in rounds.values() if "c" in v and "torch" in v]
    med = lambda xs: statistics.median(xs)
    print("%s,%s,%.2f,%.1f,%.1f,%.1f,%.1f" % (blk, mode, med([p["torch"][0] / p["c"][0] for p in pairs]),
          med([p["c"][0] for p in pairs]), med([p["torch"][0] for p in pairs]),
          med([p["c"][1] for p in pairs]), med([p["torch"][1] for p in pairs])))
PY
