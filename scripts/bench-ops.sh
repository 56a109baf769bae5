#!/bin/bash
# Tensor-op benchmark, daclip vs PyTorch side by side (docs/benchmarks.md, "## Tensor ops").
# Builds bench/bench_ops.c, then alternates rounds of it and bench/bench_ops_torch.py (so that load on a
# shared machine hits both alike), takes the median per row over the rounds, and prints one table:
#   vs torch  = torch ms / our ms   (>= 1: we are at least as fast)
#   vs sgemm  = raw cblas_sgemm ms / our ms for the GEMM rows (fraction of direct sgemm throughput)
# Usage: scripts/bench-ops.sh [--rounds N] [--reps N] [--threads N] [--filter SUBSTRING]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3 reps=7 threads=2 filter=""
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds=$2; shift 2 ;;
        --reps) reps=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --filter) filter=$2; shift 2 ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        *) echo "bench-ops.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
# Debian's OpenBLAS 0.3.21 misdetects this CPU as Prescott (SSE3 kernels, ~4x slower sgemm). t_init()
# corrects that for our side; PyTorch's linear also goes through OpenBLAS, so pick the core for both.
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
    if grep -qw avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
    elif grep -qw avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell; fi
fi
echo "threads $threads, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-auto}, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
make -s build/bench/bench_ops >/dev/null
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fargs=()
[ -n "$filter" ] && fargs=(--filter "$filter")
for r in $(seq 1 "$rounds"); do
    echo "round $r/$rounds ..." >&2
    DACLIP_THREADS=$threads build/bench/bench_ops --reps "$reps" "${fargs[@]}" >"$out/ours.$r.csv" 2>/dev/null
    OMP_NUM_THREADS=$threads /usr/bin/python3 bench/bench_ops_torch.py --reps "$reps" --threads "$threads" \
        "${fargs[@]}" >"$out/torch.$r.csv"
done
/usr/bin/python3 - "$out" "$rounds" <<'PY'
import csv, statistics, sys
d, rounds = sys.argv[1], int(sys.argv[2])
def load(side):
    rows, order = {}, []
    for r in range(1, rounds + 1):
        for row in csv.DictReader(open(f"{d}/{side}.{r}.csv")):
            k = (row["name"], row["shape"])
            if k not in rows:
                rows[k] = []
                order.append(k)
            rows[k].append(float(row["ms"]))
    return {k: statistics.median(v) for k, v in rows.items()}, order
ours, order = load("ours")
torch, _ = load("torch")
print(f"{'op':<18} {'shape':<30} {'ours ms':>9} {'torch ms':>9} {'vs torch':>9} {'vs sgemm':>9}")
for name, shape in order:
    if name.startswith("sgemm"):
        continue
    o = ours[(name, shape)]
    t = torch.get((name, shape))
    raw = ours.get((name.replace("linear", "sgemm").replace("matmul", "sgemm"), shape)) \
        if name.startswith(("linear", "matmul")) else None
    ts = f"{t:9.3f}" if t else f"{'-':>9}"
    vt = f"{t / o:9.2f}" if t else f"{'-':>9}"
    vs = f"{raw / o:9.2f}" if raw else ""
    print(f"{name:<18} {shape:<30} {o:9.3f} {ts} {vt} {vs}")
PY
