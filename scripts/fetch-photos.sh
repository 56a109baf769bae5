#!/usr/bin/env bash
# Extracts natural photographs from Debian packages into ./data-photos/ (git-ignored), without installing them:
# `apt-get download` fetches the .deb, `dpkg-deb -x` unpacks it into a temporary folder, and only the photos
# plus the package's copyright file are kept. Used for docs/degradations.png and for eyeballing degradations.
#
#   scripts/fetch-photos.sh [DEST]        (default DEST = ./data-photos)
#
# Result: DEST/<package>/*.{jpg,png} and DEST/<package>/COPYRIGHT (the Debian copyright/licence file).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-data-photos}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# package | folder(s) inside the package holding the photos, ':'-separated
# (scratch's "Outdoors and Nature" backgrounds are two folders in the package)
sources=(
  "scratch|usr/share/scratch/Media/Backgrounds/Outdoors:usr/share/scratch/Media/Backgrounds/Nature"
  "kphotoalbum|usr/share/kphotoalbum/demo"
  "lomiri-wallpapers-16.04|usr/share/backgrounds"
  "mate-backgrounds|usr/share/backgrounds/mate/nature"
)

for entry in "${sources[@]}"; do
  pkg=${entry%%|*}
  IFS=: read -r -a dirs <<< "${entry#*|}"
  out="$dest/$pkg"
  if [ -f "$out/COPYRIGHT" ]; then
    echo "$pkg: already in $out"
    continue
  fi
  echo "$pkg: downloading"
  if ! (cd "$work" && apt-get download "$pkg" >/dev/null 2>&1); then
    if [ "$(id -u)" = 0 ]; then apt-get update >/dev/null 2>&1 || true; fi
    if ! (cd "$work" && apt-get download "$pkg" >/dev/null); then
      echo "$pkg: apt-get download failed, skipped" >&2
      continue
    fi
  fi
  deb=$(ls "$work"/"${pkg}"_*.deb | head -n 1)
  rm -rf "$work/x"
  mkdir -p "$work/x"
  dpkg-deb -x "$deb" "$work/x"
  mkdir -p "$out"
  n=0
  # photos only (no SVG drawings, GIF cartoons or XML slideshow files); names may contain spaces
  for dir in "${dirs[@]}"; do
    while IFS= read -r -d '' f; do
      cp "$f" "$out/"
      n=$((n + 1))
    done < <(find "$work/x/$dir" -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \) -print0 2>/dev/null)
  done
  # the licence travels with the photos
  if [ -f "$work/x/usr/share/doc/$pkg/copyright" ]; then
    cp "$work/x/usr/share/doc/$pkg/copyright" "$out/COPYRIGHT"
  else
    echo "see the Debian package $pkg ($(basename "$deb")) for licence terms" > "$out/COPYRIGHT"
  fi
  echo "$pkg: $n photos in $out"
  rm -f "$deb"
done
