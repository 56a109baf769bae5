#!/usr/bin/env bash
# Side-by-side benchmark of the 12-layer ViT-B/32-sized transformer stack: daclip (bench/bench_vit_stack.c)
# against PyTorch CPU (bench/bench_vit_stack_torch.py), forward (no grad) and forward+backward, each
# measurement in its own process (so peak RSS is per mode), alternating the two implementations for
# ROUNDS rounds so that background load hits both alike.
# usage: scripts/bench-vit-stack.sh            env: THREADS=2 ROUNDS=3 ITERS=5 BATCH=8
# Both sides use the same OpenBLAS. Debian's OpenBLAS 0.3.21 does not recognise some newer Xeons and
# falls back to its slow Prescott kernels; daclip's t_init corrects that itself, and this script sets
# OPENBLAS_CORETYPE so that PyTorch gets the same kernels (set it yourself to override).
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
ITERS=${ITERS:-5}
BATCH=${BATCH:-8}
make -s build/bench/bench_vit_stack >/dev/null
export OMP_NUM_THREADS=$THREADS DACLIP_THREADS=$THREADS
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
    if grep -qw avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
    elif grep -qw avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell; fi
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "impl,mode,threads,batch,seconds_per_iter,images_per_s,peak_rss_mb"
for r in $(seq "$ROUNDS"); do
    for mode in fwd fwdbwd; do
        build/bench/bench_vit_stack --mode "$mode" --iters "$ITERS" --batch "$BATCH" --threads "$THREADS" | cut -d, -f1-7
        /usr/bin/python3 bench/bench_vit_stack_torch.py --mode "$mode" --iters "$ITERS" --batch "$BATCH" \
            --threads "$THREADS"
    done
done | tee "$out"
echo
echo "summary over $ROUNDS rounds (OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-auto}, load average $(cut -d' ' -f1-3 /proc/loadavg)):"
awk -F, '
    { k = $1 "," $2; n[k]++; v[k, n[k]] = $6; if ($6 > best[k]) best[k] = $6; if ($7 > mem[k]) mem[k] = $7 }
    function median(k,   i, j, t, a, m) {
        m = n[k]; for (i = 1; i <= m; i++) a[i] = v[k, i]
        for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
    }
    END {
        printf "%-7s %-13s %-13s %-13s %-13s %-9s %-9s %-11s %-11s\n", "mode", "daclip img/s", "torch img/s",
               "daclip best", "torch best", "ratio", "ratio best", "daclip MiB", "torch MiB"
        split("fwd fwdbwd", modes, " ")
        for (i = 1; i <= 2; i++) {
            d = "daclip," modes[i]; t = "torch," modes[i]
            if (!n[d] || !n[t]) continue
            printf "%-7s %-13.2f %-13.2f %-13.2f %-13.2f %-9.2f %-9.2f %-11.0f %-11.0f\n", modes[i], median(d),
                   median(t), best[d], best[t], median(d) / median(t), best[d] / best[t], mem[d], mem[t]
        }
    }' "$out"
