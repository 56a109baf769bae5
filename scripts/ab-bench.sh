#!/usr/bin/env bash
# A/B of two builds of bench_clip_image (or any bench printing "... batch N: <seconds> s/batch ..."):
# each round runs both, in an order that flips every round; prints every round's time ratio A/B and their
# median (> 1: B is faster). On this shared machine single runs drift by ±15%, so a change is kept only
# when B wins most rounds. Usage: scripts/ab-bench.sh BIN_A BIN_B [fwd|train] [ROUNDS=10] [REPS=5]
# (BIN may be a wrapper script, e.g. one that sets an environment variable before exec'ing the bench.)
set -euo pipefail
A=$1 B=$2 mode=${3:-fwd} rounds=${4:-10} reps=${5:-5}
export DACLIP_THREADS=${DACLIP_THREADS:-2}
t() { "$1" --mode "$mode" --reps "$reps" | awk '/s\/batch/ {print $5}'; }
ratios=()
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) = 0 ]; then a=$(t "$A"); b=$(t "$B"); else b=$(t "$B"); a=$(t "$A"); fi
  ratios+=("$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.3f", a / b}')")
done
echo "A/B time ratios (> 1: B faster): ${ratios[*]}"
printf '%s\n' "${ratios[@]}" | sort -n | awk '{v[NR] = $1; if ($1 > 1) w++}
  END {printf "median %.3f; B faster in %d of %d rounds\n", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2, w, NR}'
