#!/usr/bin/env bash
# Regenerates docs/degradations.png: one natural photo (from scripts/fetch-photos.sh), clean + the ten DA-CLIP
# degradations at their default parameters + one mixed chain, labelled, 256x256 tiles.
#
#   scripts/make-contact-sheet.sh [PHOTO] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
photo=${1:-data-photos/lomiri-wallpapers-16.04/picosdeeuropa_by_Aitzol_Berasategi.jpg}
seed=${2:-2}
if [ ! -f "$photo" ]; then
  scripts/fetch-photos.sh
fi
make -s build/daclip
build/daclip degrade --sheet --seed "$seed" "$photo" docs/degradations.png
echo "wrote docs/degradations.png from $photo (seed $seed)"
