#!/usr/bin/env bash
# One restoration (DA-CLIP once on the 224 view + STEPS posterior-sampling steps of the universal U-Net, random
# weights) of a SIZE×SIZE image, side by side at 2 threads:
#   daclip   build/bench/bench_restore: the functions `daclip restore` runs, reading the random-weight official
#            files (build/official/daclip_ViT-B-32.pt and universal-ir.pth, bench/gen_official_checkpoints.py);
#            the default tiling (whole image up to 512², 384-px tiles above)
#   pytorch  bench/bench_restore_torch.py: the official test.py loop (clip_transform, encode_image(control=True),
#            noise_state, reverse_posterior) in the reference mirrors' module structure, same files, PyTorch 1.13
#   onnxrt   bench/bench_restore_onnx.js: the same loop in JS around DaCLIP.encode_image and the U-Net exported to
#            ONNX (random weights of the exports), ONNX Runtime, 2 intra-op threads
# Times: the restoration's wall time (DA-CLIP + sampling; model loading printed apart), the time per step; the
# ratios at the end are the median over rounds of each round's own ratio of restoration times. Memory: the
# process's peak RSS (loading included: PyTorch reads the whole 1.74 GB checkpoint) and the peak while
# restoring (VmHWM reset after loading; models included).
# Every side runs under `ulimit -v` of the memory available at the start minus 1 GB (MEM_CAP_GB overrides), so
# that a side that does not fit fails with its own out-of-memory error instead of waking the OOM killer: the
# official U-Net's self-attention at H/8 needs 16 heads × (H/8·W/8)² floats per softmax (17 GB at 1024²).
# A failed side is reported as such and the others go on.
# Needs: Debian python3-torch (/usr/bin/python3); for ONNX Runtime, Node with
#   (cd bench/onnx && ONNXRUNTIME_NODE_INSTALL=skip npm install)
# Env: ROUNDS (3), STEPS (100; fewer for a quick check: the official sample_T rescaling on every side),
#      SIZES ("256"), PEERS ("pytorch onnxrt"), PEER_MAX (largest size the peers run at; default: all),
#      MEM_CAP_GB, ORT_SPIN (0: ONNX Runtime's pool does not spin), DACLIP_BIN (a built bench_restore to use).
# Expected time on a quiet machine, per round: 256² ≈ 8–10 min (three sides, ~3.5 min of it PyTorch);
# 512² ≈ 40 min; 1024² ≈ 45 min (ours; the peers fail after a minute or two). So: `scripts/bench-restore.sh`
# (3 rounds of 256², ~30 min), then `ROUNDS=1 SIZES="512 1024" scripts/bench-restore.sh` (~1.5 h).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-100}
SIZES=${SIZES:-256}
PEERS=${PEERS:-pytorch onnxrt}
PEER_MAX=${PEER_MAX:-1000000}
BIN=${DACLIP_BIN:-build/bench/bench_restore}
[ -n "${DACLIP_BIN:-}" ] || make -s "$BIN"
export DACLIP_THREADS=2 OMP_NUM_THREADS=2
# Debian's OpenBLAS 0.3.21 falls back to SSE3 kernels on this CPU; give PyTorch the kernels daclip selects.
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  if grep -q avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
  elif grep -q avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell; fi
fi
daclip_pt=build/official/daclip_ViT-B-32.pt unet_pth=build/official/universal-ir.pth
if [ ! -f $daclip_pt ] || [ ! -f $unet_pth ]; then
  echo "writing the random-weight official files into build/official (a few minutes)"
  /usr/bin/python3 bench/gen_official_checkpoints.py build/official
fi
unet_onnx=build/bench/unet_universal.onnx daclip_onnx=build/bench/daclip_encode.onnx
if [[ " $PEERS " == *" onnxrt "* ]]; then
  if [ -d bench/onnx/node_modules/onnxruntime-node ]; then
    [ -f $unet_onnx ] || /usr/bin/python3 bench/bench_unet_torch.py --export $unet_onnx > /dev/null 2>&1
    [ -f $daclip_onnx ] || /usr/bin/python3 bench/bench_restore_torch.py --export-daclip $daclip_onnx > /dev/null 2>&1
  else
    echo "no bench/onnx/node_modules: ONNX Runtime side skipped"
    PEERS=${PEERS//onnxrt/}
  fi
fi
if [ -n "${MEM_CAP_GB:-}" ]; then cap_kb=$((MEM_CAP_GB * 1024 * 1024))
else cap_kb=$(( $(awk '/MemAvailable/ { print $2 }' /proc/meminfo) - 1024 * 1024 )); fi
out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT

# side SIZE ROUND: one run of one side; its line (prefixed with the round) goes to stdout and $out, or a
# "failed" line with the last thing it said on stderr.
run() {
  local side=$1 size=$2 r=$3 line rc=0
  local -a cmd
  case $side in
    daclip)  cmd=("$BIN" --size "$size" --steps "$STEPS" --daclip "$daclip_pt" --model "$unet_pth") ;;
    pytorch) cmd=(/usr/bin/python3 bench/bench_restore_torch.py --size "$size" --steps "$STEPS" --daclip "$daclip_pt"
                  --model "$unet_pth") ;;
    onnxrt)  cmd=(node bench/bench_restore_onnx.js "$daclip_onnx" "$unet_onnx" "$size" "$STEPS") ;;
  esac
  line=$( (ulimit -v $cap_kb; exec "${cmd[@]}") 2> "$err") || rc=$?
  line=$(grep 's/image' <<< "$line" | tail -n 1 || true)
  if [ $rc = 0 ] && [ -n "$line" ]; then
    echo "$r $line" | tee -a "$out"
  else
    printf '%s %-8s %sx%s restore: failed (exit %s, memory cap %s GB): %s\n' "$r" "$side" "$size" "$size" $rc \
      "$(awk -v k=$cap_kb 'BEGIN { printf "%.1f", k / 1048576 }')" \
      "$(tr '\r' '\n' < "$err" | grep -v '^ *$' | tail -n 1 | cut -c1-200)" | tee -a "$out"
  fi
}

echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), threads 2," \
     "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-auto}, ORT_SPIN=${ORT_SPIN:-1}, steps $STEPS, $(date '+%F %T')," \
     "load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$ROUNDS"); do
  for size in $SIZES; do
    run daclip "$size" "$r"
    if [ "$size" -le "$PEER_MAX" ]; then
      for peer in $PEERS; do run $peer "$size" "$r"; done
    fi
  done
done
echo "$(date '+%T'), load after: $(cut -d' ' -f1-3 /proc/loadavg)"
reports=""
for size in $SIZES; do
  for peer in $PEERS; do reports="$reports${reports:+;}restore ${size}x${size}|$peer|${size}x${size}"; done
done
# round-ratios.awk reads the time before "s/batch": one restoration is a batch of one image here
sed 's#s/image#s/batch#' "$out" | awk -v reports="$reports" -f scripts/round-ratios.awk
# per side and size: median restoration time and time per step over rounds, highest peaks
awk '/s\/image/ {
       k = $2 " " $3; n[k]++; if (!(k in seen)) { seen[k] = 1; order[++K] = k }
       for (i = 4; i <= NF; i++) {
         if ($i ~ /^s\/image/) img[k, n[k]] = $(i - 1)
         if ($i ~ /^s\/step/) step[k, n[k]] = $(i - 1)
         if ($i == "RSS" && $(i + 1) + 0 > peak[k]) peak[k] = $(i + 1)
         if ($i == "restoring" && $(i + 1) + 0 > rest[k]) rest[k] = $(i + 1)
       }
     }
     function median(a, k, m,   i, j, x, v) {
       for (i = 1; i <= m; i++) v[i] = a[k, i]
       for (i = 2; i <= m; i++) { x = v[i]; for (j = i - 1; j >= 1 && v[j] > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
       return m % 2 ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
     }
     END {
       for (q = 1; q <= K; q++) {
         k = order[q]
         printf "%-8s %-10s %8.1f s/image %7.3f s/step (median of %d), peak RSS %5.0f MB, while restoring %5.0f MB\n",
                substr(k, 1, index(k, " ") - 1), substr(k, index(k, " ") + 1), median(img, k, n[k]),
                median(step, k, n[k]), n[k], peak[k], rest[k]
       }
     }' "$out"
