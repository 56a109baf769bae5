#!/usr/bin/env bash
# The main job at this stage of the project, end to end on this machine:
#   1. install what is missing and build;
#   2. extract natural photographs from Debian packages (scripts/fetch-photos.sh);
#   3. synthesise the ten DA-CLIP degradations into a mixed-degradation dataset in the official layout
#      (ROOT/{train,val}/<degradation>/{LQ,GT}, daclip_{train,val}.csv) and a contact sheet;
#   4. tokenise the ten degradation names with the official CLIP vocabulary (shipped in data/assets/);
#   5. train a small CLIP from scratch on the captions and report held-out image->text accuracy;
#   6. zero-shot-classify one held-out image's degradation, and measure PSNR/SSIM of the degraded inputs.
# Output goes to runs/demo/. PHOTOS (default 30), STEPS (default 400) and DACLIP_THREADS can be set.
set -euo pipefail
cd "$(dirname "$0")/.."
PHOTOS=${PHOTOS:-30}
STEPS=${STEPS:-400}
OUT=${OUT:-runs/demo}
bash scripts/install-deps.sh
make -j2 build/daclip
D=build/daclip

echo "== photos"
bash scripts/fetch-photos.sh
mkdir -p $OUT/photos
find data-photos/scratch data-photos/kphotoalbum -type f \( -iname '*.jpg' -o -iname '*.png' \) | sort | head -n "$PHOTOS" |
  while read -r f; do ln -sf "$PWD/$f" "$OUT/photos/$(basename "$f")"; done

echo "== dataset ($PHOTOS photos x 10 degradations)"
if [ ! -f $OUT/ds/daclip_val.csv ]; then
  $D make-dataset --src $OUT/photos --out $OUT/ds --seed 1 --val-frac 0.15
fi
first=$(find $OUT/photos -type l | sort | head -1)
$D degrade --sheet --seed 2 "$first" $OUT/degradations.png
echo "contact sheet: $OUT/degradations.png"

echo "== tokenizer"
VOCAB=data/assets/clip/bpe_simple_vocab_16e6.txt.gz   # the official vocabulary, shipped (data/assets/LICENSES.md)
$D tokenize --vocab "$VOCAB" motion-blurry hazy jpeg-compressed low-light noisy raindrop rainy shadowed snowy uncompleted |
  cut -d' ' -f1-6

echo "== train a tiny CLIP ($STEPS steps)"
$D train-clip --train $OUT/ds/daclip_train.csv --val $OUT/ds/daclip_val.csv --out $OUT/clip \
  --model tiny --vocab "$VOCAB" --steps "$STEPS" --batch 64 --lr 1e-3 --warmup 40 --val-every 100

echo "== zero-shot degradation of a held-out image"
img=$(find $OUT/ds/val/rainy/LQ -name '*.png' | sort | head -1)
echo "$img"
$D clip-classify --model $OUT/clip/model.safetensors --image "$img" \
  --labels "motion-blurry,hazy,jpeg-compressed,low-light,noisy,raindrop,rainy,shadowed,snowy,uncompleted"

echo "== PSNR/SSIM of the degraded inputs (val, noisy) against ground truth"
$D metrics --gt $OUT/ds/val/noisy/GT --pred $OUT/ds/val/noisy/LQ --csv $OUT/metrics_noisy.csv | tail -3
echo "done: see $OUT/"
