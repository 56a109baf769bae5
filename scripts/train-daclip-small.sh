#!/usr/bin/env bash
# The DA-CLIP route on this machine (no pretrained CLIP can be downloaded here), every stage resumable:
#   1. natural photographs from Debian packages (scripts/fetch-photos.sh; the demo's photos are held out);
#   2. a mixed-degradation dataset in the official layout: each photo (fetch-photos.sh has already shrunk the
#      lossy ones by a whole factor >= 2, so they carry no codec artefacts) cut into PATCHES random crops of
#      128 px, each with the ten degradations; the train/val split is by photo;
#   3. a small CLIP (CLIP_MODEL "tiny-128": the crops' full 128 px in 16-px patches, width 128, 4 layers, 64
#      tokens; "tiny" is the same transformer on a 64-px view in 8-px patches, at the same cost, and classifies
#      worse: thin rain streaks turn into snow-like dots at 64 px) trained from scratch on clean and degraded
#      crops with their captions ("<caption>: clean" for a clean crop, "<caption>: <degradation>" for a
#      degraded one), so that its text tower knows the degradation words, as LAION's CLIP does;
#   4. the DA-CLIP controller on top of it (train-daclip), then its evaluation on the held-out photos
#      (eval-daclip: accuracy per type, confusion matrix, heat map).
# Re-running continues where it stopped: finished stages are skipped, training resumes from its checkpoint.
# Output: runs/small-<CLIP_MODEL>/ (OUT). Env: OUT, CLIP_MODEL (tiny-128: 90.2 % held out, 89.4 % with
# CROP_SCALE 0.9; tiny: 88.0 %; tiny-128-deep, 8 image layers at twice the cost: 89.3 %),
# PATCHES (32 with DACLIP_STEPS 4000; with tiny, 16 and 3000: 86.7 %, 8 and 3000: 84.0 %; models/README.md), CLIP_STEPS
# (1200: the CLIP over-fits the photos after that), DACLIP_STEPS (4000: continuing to 6000 gained 0.2 points with tiny),
# DACLIP_LR (2e-3: 5e-4 under-fits, models/README.md), BATCH (128), MIRROR (0; 1 mirrors half the controller's
# training views: 88.7 % against 89.4 % without), CROP_SCALE (1: the controller trains on the crops' own
# pixels, as evaluation sees them: 90.2 %; 0.9, open_clip's RandomResizedCrop of 90-100 % of the area resized
# back: 89.4 %),
# DACLIP_THREADS, DACLIP_BIN.
# On 2 cores: make-dataset ≈ 7-11 min (it was 15 min on one thread), the CLIP ≈ 16 min, the controller ≈ 50-60 min.
set -euo pipefail
cd "$(dirname "$0")/.."
PATCHES=${PATCHES:-32}
CLIP_MODEL=${CLIP_MODEL:-tiny-128}
OUT=${OUT:-runs/small-$CLIP_MODEL}
CLIP_STEPS=${CLIP_STEPS:-1200}
DACLIP_STEPS=${DACLIP_STEPS:-4000}
DACLIP_LR=${DACLIP_LR:-2e-3}
BATCH=${BATCH:-128}
MIRROR=${MIRROR:-0}
CROP_SCALE=${CROP_SCALE:-1}
mirror=(); [ "$MIRROR" = 1 ] && mirror=(--mirror)
D=${DACLIP_BIN:-build/daclip}   # DACLIP_BIN: a built binary to use as it is (no make)
[ -n "${DACLIP_BIN:-}" ] || make -s -j2 "$D"
mkdir -p "$OUT"
t_start=$(date +%s)
stamp() { echo "[$(date +%H:%M:%S), +$(( $(date +%s) - t_start ))s] $*"; }

stamp "== photos"
[ -f "$OUT/photos/.done" ] || bash scripts/fetch-photos.sh data-photos > "$OUT/fetch-photos.log" 2>&1 ||
  { cat "$OUT/fetch-photos.log"; exit 1; }
# one flat folder of links for make-dataset; the demo's held-out photos (data-photos/_demo) stay out
if [ ! -f "$OUT/photos/.done" ]; then
  rm -rf "$OUT/photos" && mkdir -p "$OUT/photos"
  find data-photos -mindepth 2 -maxdepth 2 -type f \( -iname '*.png' -o -iname '*.jpg' -o -iname '*.jpeg' \) \
    ! -path 'data-photos/_demo/*' | sort | while read -r f; do
      ln -s "$(pwd)/$f" "$OUT/photos/$(basename "$f")"   # names are unique across packages
    done
  touch "$OUT/photos/.done"
fi
stamp "$(ls "$OUT/photos" | wc -l) training photos"

stamp "== dataset ($PATCHES crops of 128 px per photo, ten degradations)"
if [ ! -f "$OUT/ds/daclip_val.csv" ]; then
  rm -rf "$OUT/ds"
  $D make-dataset --src "$OUT/photos" --out "$OUT/ds" --patches "$PATCHES" --patch-size 128 \
    --val-frac 0.1 --seed 0
fi
stamp "$(($(wc -l < "$OUT/ds/daclip_train.csv") - 1)) training and $(($(wc -l < "$OUT/ds/daclip_val.csv") - 1)) validation rows"

# CLIP rows: every degraded crop with its full title, and each clean crop once as "<caption>: clean"
for split in train val; do
  if [ ! -f "$OUT/clip_$split.csv" ]; then
    awk -F'\t' 'NR == 1 { print; next }
                { print }
                $1 ~ /^[a-z]+\/motion-blurry\/LQ\// { gt = $1; sub(/\/LQ\//, "/GT/", gt); t = $2; sub(/: [a-z-]+$/, ": clean", t)
                  print gt "\t" t }' "$OUT/ds/daclip_$split.csv" > "$OUT/clip_$split.csv.tmp"
    mv "$OUT/clip_$split.csv.tmp" "$OUT/clip_$split.csv"
  fi
done

train() {   # train() <subcommand> <out dir> <steps> <args...>: fresh, resumed, or already done
  local cmd=$1 dir=$2 steps=$3; shift 3
  if [ -f "$dir/model.safetensors" ] && [ -f "$dir/done" ]; then stamp "$dir: done"; return; fi
  local resume=()
  [ -f "$dir/checkpoint.safetensors" ] && resume=(--resume "$dir/checkpoint.safetensors")
  $D "$cmd" "$@" --out "$dir" --steps "$steps" "${resume[@]}"
  touch "$dir/done"
}

stamp "== CLIP ($CLIP_MODEL, $CLIP_STEPS steps, batch $BATCH)"
train train-clip "$OUT/clip" "$CLIP_STEPS" --train "$OUT/clip_train.csv" --val "$OUT/clip_val.csv" --root "$OUT/ds" \
  --model "$CLIP_MODEL" --batch "$BATCH" --lr 1e-3 --warmup 200 --val-every 500 --ckpt-every 100

stamp "== DA-CLIP controller ($DACLIP_STEPS steps, batch $BATCH, lr $DACLIP_LR)"
train train-daclip "$OUT/daclip" "$DACLIP_STEPS" --clip "$OUT/clip/model.safetensors" \
  --train "$OUT/ds/daclip_train.csv" --val "$OUT/ds/daclip_val.csv" --batch "$BATCH" --lr "$DACLIP_LR" --warmup 200 \
  --val-every 500 --ckpt-every 100 --crop-scale "$CROP_SCALE" "${mirror[@]}"

stamp "== evaluation on the held-out photos"
$D eval-daclip --model "$OUT/daclip/model.safetensors" --data "$OUT/ds/daclip_val.csv" \
  --csv "$OUT/eval-daclip.csv" --heatmap "$OUT/confusion.png" | tee "$OUT/eval-daclip.txt"
stamp "done: $OUT/eval-daclip.txt, $OUT/confusion.png, $OUT/clip/loss.png, $OUT/daclip/loss.png"
