#!/usr/bin/env bash
# The main job, out of the box (`make demo`): restore degraded photos with the shipped small models.
#   1. install what is missing and build;
#   2. degrade six public-domain photos that no model here has seen (data/assets/demo, 192 px) with several of
#      the ten degradations (make-dataset: the official LQ/GT layout);
#   3. DA-CLIP (models/daclip-small.safetensors) names each image's degradation from its CLIP view, and the
#      IR-SDE U-Net (models/irsde-small.safetensors), steered by DA-CLIP's embeddings, restores it
#      (eval-ir: posterior sampling with STEPS steps);
#   4. prints the table (PSNR/SSIM of the degraded and the restored images, DA-CLIP's accuracy per type) and
#      writes demo/index.html (every image: degraded | restored | clean, with DA-CLIP's guess and the
#      scores), demo/grid.png and demo/metrics.csv.
# Env: OUT (demo), TYPES (default: the degradations the shipped U-Net handles, "handled-types:" in
# models/README.md), STEPS (default "demo-steps:" there; 100 is the trained schedule, twice the time of 50),
# DACLIP_THREADS. tests/test_shipped_models.c runs the same and fails if a handled type is not improved.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-demo}
TYPES=${TYPES:-$(sed -n 's/^handled-types: //p' models/README.md)}
STEPS=${STEPS:-$(sed -n 's/^demo-steps: //p' models/README.md)}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}   # no spinning threads if the machine is busy
t0=$(date +%s)
bash scripts/install-deps.sh
make -s -j2 build/daclip
D=build/daclip
echo "== the shipped models"
ls -l models/*.safetensors
if [ -e "$OUT" ] && [ ! -f "$OUT/.daclip-demo" ]; then
  echo "demo: $OUT exists and is not an earlier demo's output; set OUT to another folder" >&2
  exit 1
fi
rm -rf "$OUT" && mkdir -p "$OUT" && touch "$OUT/.daclip-demo"   # afresh: eval-ir would keep earlier results
echo "== degrading $(ls data/assets/demo/*.png | wc -l) held-out photos with: $TYPES"
$D make-dataset --src data/assets/demo --out "$OUT/data" --types "$TYPES" --val-frac 0 --seed 7 > /dev/null
echo "== DA-CLIP classifies, IR-SDE restores ($STEPS sampling steps)"
$D eval-ir --daclip models/daclip-small.safetensors --model models/irsde-small.safetensors --data "$OUT/data/train" \
  --out "$OUT" --steps "$STEPS" --grid-per-type 6
echo "demo finished in $(( $(date +%s) - t0 )) s: open $OUT/index.html (or $OUT/grid.png); numbers in $OUT/metrics.csv"
