#!/usr/bin/env bash
# Extracts real photographs from Debian packages into ./data-photos/ (git-ignored), without installing the
# packages: `apt-get download` fetches each .deb, `dpkg-deb -x` unpacks it into a temporary folder, and only
# the photos plus the licence files are kept. The sources were checked by hand (the project's reference
# list of photo sources): camera photographs, no drawings, renders or paintings.
#
#   scripts/fetch-photos.sh [DEST]        (default DEST = ./data-photos)
#   PACKAGES="tuxpaint-data jigzo-data" scripts/fetch-photos.sh     only these packages
#
# Result:
#   DEST/<package>/<name>.png     the training photos, clean: 8-bit sRGB PNG, downscaled (below)
#   DEST/<package>/COPYRIGHT      the package's Debian copyright file; LICENSE-* files beside it carry the
#                                 per-photo notes where the package has them (e.g. gcompris' READMEs)
#   DEST/<package>/SOURCES.tsv    name, path inside the package, original size, factor, saved size
#   DEST/_demo/                   the photos held out for the demo (scripts/demo-photos.txt), never for
#                                 training; with <package>.COPYRIGHT for each and their own SOURCES.tsv
# Names are unique across DEST (a folder of links to every photo needs no renaming) and made of words, as
# `daclip make-dataset` turns file names into template captions.
#
# Clean targets: most sources are lossy JPEG or WebP. Every lossy photo is shrunk by an integer factor f >= 2
# with an area (box) filter after cropping to a multiple of f, i.e. each output pixel is the mean of an f×f
# block, which averages codec artefacts away; f grows so that the long side is at most MAX_SIDE. Lossless
# sources are shrunk only to meet MAX_SIDE. Photos whose short side would fall below MIN_SIDE are dropped.
# A package already done (DEST/<package>/.done) is not fetched again; delete its folder to redo it.
#
# Needs: apt-get, dpkg-deb, ImageMagick, dwebp (package webp) and python3 (scripts/rcc-extract.py and
# scripts/jpeg-carve.py, standard library only); the missing Debian packages are installed when run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
MAX_SIDE=${MAX_SIDE:-1536}
MIN_SIDE=${MIN_SIDE:-160}
dest=${1:-data-photos}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
started=$(date +%s)

# ---- tools ------------------------------------------------------------------------------------------------

need=()
command -v dwebp >/dev/null || need+=(webp)
command -v convert-im6.q16 >/dev/null || command -v magick >/dev/null || need+=(imagemagick)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "fetch-photos: missing ${need[*]}: install them (apt-get install ${need[*]}) or run as root" >&2
    exit 1
  fi
  echo "fetch-photos: installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"; }
fi
# the ImageMagick binaries themselves (a plain `convert` on PATH may be another program of that name)
if command -v magick >/dev/null; then IM=(magick); IDENTIFY=(magick identify)
else IM=(convert-im6.q16); IDENTIFY=(identify-im6.q16); fi

# ---- helpers for the package recipes below (they run inside the unpacked package) ---------------------------

# Words of a file name for the output name: CamelCase split, lower case, anything else a single '-'.
slug() {
  sed -E 's/\.[A-Za-z0-9]+$//; s/([a-z])([A-Z])/\1-\2/g' <<< "$1" | tr '[:upper:]' '[:lower:]' | sed -E 's/[^a-z0-9]+/-/g; s/^-+//; s/-+$//'
}

# take PATH[=NAME]...: stage photos (globs allowed) under NAME, else the slug of their file name.
take() {
  local spec path name f
  for spec in "$@"; do
    path=${spec%%=*}
    name=""
    [ "$spec" != "$path" ] && name=${spec#*=}
    local found=0
    for f in $path; do
      [ -f "$f" ] || continue
      found=1
      stage "$f" "${name:-$(slug "$(basename "$f")")}"
    done
    [ $found = 1 ] || echo "  warning: $path not found in the package" >&2
  done
}

# take_dir DIR [EXCLUDED_NAME...]: every JPEG/PNG in DIR (names may contain spaces) but the excluded ones.
take_dir() {
  local dir=$1 f base x skip
  shift
  while IFS= read -r -d '' f; do
    base=$(basename "$f")
    skip=0
    for x in "$@"; do [ "$base" = "$x" ] && skip=1; done
    [ $skip = 1 ] || stage "$f" "$(slug "$base")"
  done < <(find "$dir" -maxdepth 1 -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \) -print0 | sort -z)
}

# NAME, or NAME-2, NAME-3, ... when a photo of this package is already staged under it.
free_stage_name() {
  local name=$1 k=2
  while compgen -G "$work/stage/$name.*" >/dev/null; do name="$1-$k"; k=$((k + 1)); done
  echo "$name"
}

# stage FILE NAME: queue one source image (any format ImageMagick reads) for shrinking.
stage() {
  local ext=${1##*.} name
  name=$(free_stage_name "$2")
  cp "$1" "$work/stage/$name.${ext,,}"
  printf '%s\t%s\n' "$name" "${1#./}" >> "$work/stage/.origin"
}

# licence FILE...: keep per-photo licence notes beside the photos, as LICENSE-<file name>.
licence() {
  local f
  for f in "$@"; do cp "$f" "$work/licences/LICENSE-$(basename "$f")"; done
}

# rotate_staged NAME DEGREES: turn a staged photo clockwise, kept without loss as PNG (still a lossy source).
rotate_staged() {
  local src
  src=$(find "$work/stage" -maxdepth 1 -name "$1.*" | head -n 1)
  [ -n "$src" ] || { echo "  warning: no staged photo $1 to rotate" >&2; return 0; }
  "${IM[@]}" -quiet "$src" -rotate "$2" "$work/stage/$1.rot.png"
  rm -f "$src"
  mv "$work/stage/$1.rot.png" "$work/stage/$1.png"
  case $src in *.jpg|*.jpeg|*.webp) printf '%s\n' "$1" >> "$work/stage/.lossy" ;; esac
}

# JPEGs carried inside other files: the largest complete JPEG stream (scripts/jpeg-carve.py) into DIR.
carve() {
  python3 "$repo/scripts/jpeg-carve.py" "$1" "$2" >/dev/null
}

# ---- the packages ------------------------------------------------------------------------------------------
# One function per package: pkg_<name with - and . as _>. Order: small and simple first, big last.

pkg_scratch() {   # backgrounds "Outdoors" and "Nature"; three of them are drawn
  take_dir usr/share/scratch/Media/Backgrounds/Outdoors brick-wall1.jpg school2.jpg
  take_dir usr/share/scratch/Media/Backgrounds/Nature woods-and-bench.jpg
}
pkg_kphotoalbum() {   # CategoryImages/ thumbnails are not taken; four photos are turned by the album's index.xml
  take_dir usr/share/kphotoalbum/demo
  local entry
  while read -r entry; do
    rotate_staged "$(slug "${entry%% *}")" "${entry#* }"
  done < <(sed -nE 's/.*file="([^"]+)".* angle="([0-9]+)".*/\1 \2/p' usr/share/kphotoalbum/demo/index.xml)
}
pkg_lomiri_wallpapers_16_04() {   # two of the wallpapers are art
  take_dir usr/share/backgrounds analogpattern_by_Peter_Nerlich.jpg umang_by_Abhishek_Mudgal.jpg
}
pkg_mate_backgrounds() { take_dir usr/share/backgrounds/mate/nature; }
pkg_tuxpaint_data() {   # GPL-2+ templates; two NOAA public-domain starters, their notes kept
  take 'usr/share/tuxpaint/templates/*.jpg'
  take usr/share/tuxpaint/starters/reef-back.png=coral-reef \
       usr/share/tuxpaint/starters/skyline-sf-dusk-back.jpeg=city-skyline-at-dusk
  licence usr/share/tuxpaint/starters/reef.txt usr/share/tuxpaint/starters/skyline-sf-dusk.txt
}
pkg_tuxtype_data() {   # landscapes named kcas0..11
  local i
  for i in $(seq 0 11); do take "usr/share/tuxtype/images/kcas$i.jpg=landscape-$i"; done
  take usr/share/tuxtype/images/hidden.jpg=hidden-valley
}
pkg_python3_skimage() {   # the colour photographs; licences in skimage/data/_fetchers.py, summarised here
  local d=usr/lib/python3/dist-packages/skimage/data
  take $d/astronaut.png $d/chelsea.png=cat-chelsea $d/coffee.png $d/motorcycle_left.png=motorcycle \
       $d/rocket.jpg=rocket-launch
  cat > "$work/licences/LICENSE-skimage-data.txt" << 'EOF'
From scikit-image's skimage/data/_fetchers.py (docstrings of the loaders):
astronaut.png  NASA Great Images database: no known copyright restrictions, released into the public domain.
chelsea.png    No copyright restrictions. CC0 by the photographer (Stefan van der Walt).
coffee.png     No copyright restrictions. CC0 by the photographer (Rachel Michetti).
motorcycle_left.png  Middlebury 2014 stereo dataset (Scharstein et al., GCPR 2014), down-sampled by 4.
rocket.jpg     Launch photo of DSCOVR on Falcon 9 by SpaceX, released into the public domain by SpaceX.
Everything else: BSD-3-Clause (COPYRIGHT).
EOF
}
pkg_python3_sklearn() {   # CC-BY 2.0 (see COPYRIGHT)
  take 'usr/lib/python3/dist-packages/sklearn/datasets/images/china.jpg=china-temple' \
       'usr/lib/python3/dist-packages/sklearn/datasets/images/flower.jpg'
}
pkg_python3_scipy() {   # scipy.misc.face: a public-domain raccoon photo, stored as bz2-compressed raw RGB
  bunzip2 -c usr/lib/python3/dist-packages/scipy/misc/face.dat > "$work/face.rgb"
  "${IM[@]}" -size 1024x768 -depth 8 "rgb:$work/face.rgb" "$work/stage/raccoon-face.png"
  printf 'raccoon-face\tusr/lib/python3/dist-packages/scipy/misc/face.dat\n' >> "$work/stage/.origin"
  echo "scipy.misc.face: raccoon-procyon-lotor.jpg from public-domain-image.com (public domain)" \
    > "$work/licences/LICENSE-scipy-face.txt"
}
pkg_scribus_template() {
  local d=usr/share/scribus/templates
  take $d/br2/brightness.jpg=solar-eclipse $d/br2/halfmoon.jpg=eclipse-clouds $d/br2/moon.jpg=full-moon \
       $d/br2/nature.jpg=canyon-stream $d/br2/sunset.jpg=city-sunset $d/cal2/moon.jpg=moon-branches \
       $d/menu2/pizza.jpg
}
pkg_scribus_data() { take usr/share/scribus/templates/nl1/kites.jpg usr/share/scribus/templates/nl2/flowers.jpg=mushroom-flowers; }
pkg_libjxl_testdata() {   # lossless test images; wesaturate photos are CC0
  local d=usr/share/libjxl-testdata
  take $d/jxl/flower/flower.png=flower-macro $d/jxl/hdr_room.png=room-interior \
       $d/external/wesaturate/500px/cvo9xd_keong_macan_srgb8.png=keong-macan \
       $d/external/wesaturate/500px/tmshre_riaphotographs_srgb8.png=ria-photograph \
       $d/external/wesaturate/500px/u76c0g_bliznaca_srgb8.png=bliznaca
  licence $d/external/wesaturate/LICENSE.md
}
pkg_kodi_data() {   # CC-BY-SA
  take usr/share/kodi/addons/skin.estuary/extras/home-images/movie.jpg=movie-theatre \
       usr/share/kodi/addons/skin.estuary/extras/home-images/music.jpg=music-concert \
       usr/share/kodi/addons/skin.estouchy/background/tv.jpg=television-room
}
pkg_lxqt_themes() {   # CC-BY-SA-3.0; the other wallpapers are drawn
  local d=usr/share/lxqt/wallpapers
  take $d/Butterfly-Kenneth-Wimer.jpg=butterfly-on-grass $d/Valendas.png=valendas-mountains \
       $d/after-the-rain.jpg $d/appleflower.png=apple-flower $d/beam.png=sun-beam $d/butterfly.png \
       $d/cloud.png=cloudy-sky $d/drop.png=water-drop $d/flowers.png=meadow-flowers $d/fog.jpg=fog-field \
       $d/this-is-not-windows.jpg=green-hills
  licence $d/License
}
pkg_plasma_workspace_wallpapers() {   # the largest size of each photographic wallpaper
  local d=usr/share/wallpapers w
  for w in BytheWater=by-the-water ColdRipple=cold-ripple ColorfulCups=colorful-cups DarkestHour=darkest-hour \
           EveningGlow=evening-glow FallenLeaf=fallen-leaf Grey=grey-sky Kite=kite OneStandsOut=one-stands-out \
           Path=forest-path summer_1am=summer-night; do
    take "$d/${w%%=*}/contents/images/2560x1600.jpg=${w#*=}"
  done
}
pkg_jigzo_data() {   # the photo is the top-left "image X Y W H" region of the JPEG texture inside each .pzl
  local f name geo
  for f in usr/share/games/jigzo/puzzles/00_default/*.pzl; do
    name=$(basename "$f" .pzl)
    name=${name%-*x*}
    [ "$name" = penguin ] && continue   # CC-BY-NC-SA
    carve "$f" "$work/pzl.jpg"
    geo=$(head -c 4096 "$f" | tr -d '\000' | awk '$1 == "image" { printf "%dx%d+%d+%d", $4, $5, $2, $3; exit }')
    [ -n "$geo" ] || { echo "  warning: $f: no image region" >&2; continue; }
    [ "$name" = gorilla2 ] && name=gorilla
    "${IM[@]}" "$work/pzl.jpg" -crop "$geo" +repage "$work/stage/$name.png"   # cut without loss; lossy source
    printf '%s\t%s\n' "$name" "$f" >> "$work/stage/.origin"
    printf '%s\n' "$name" >> "$work/stage/.lossy"
  done
}
pkg_qtbase5_examples() {   # BSD-3
  local d=usr/lib/x86_64-linux-gnu/qt5/examples/widgets
  take $d/painting/composition/flower.jpg=dahlia
}
pkg_puzzle_jigsaw() {   # CC0 samples
  take usr/share/puzzle-jigsaw/samples/cat-animal-cat-portrait-mackerel.jpg=cat-portrait \
       usr/share/puzzle-jigsaw/samples/pexels-photo-302304.jpeg=tiger-in-snow
}
pkg_libsixel_examples() { take usr/share/doc/libsixel-examples/examples/images/snake.png=green-snake; }
pkg_cimg_examples() { take usr/share/doc/cimg-dev/examples/img/parrot.ppm=parrot-in-cage; }
pkg_lomiri_wallpapers_20_04() { take usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg=nuthatch-on-tree; }
pkg_digikam_data() { take usr/share/digikam/about/images/body-background.jpg=lake-and-hill; }
pkg_python_matplotlib_data() {   # U.S. Navy portrait of Grace Hopper (public domain, a work of the U.S. government)
  take usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg
}
pkg_libvips_doc() { take usr/share/gtk-doc/html/libvips/owl.jpg; }
pkg_afterstep_data() { take usr/share/afterstep/desktop/tiles/rose512.jpg=rose; }
pkg_gcompris_qt_data() {   # WebP photos inside Qt resource files; per-file licences in each folder's README
  local r f name side
  for r in erase explore_monuments explore_world_animals explore_farm_animals explore_world_music clickgame; do
    python3 "$repo/scripts/rcc-extract.py" "usr/share/gcompris-qt/rcc/$r.rcc" "$work/rcc/$r" .webp README >/dev/null
    while IFS= read -r -d '' f; do
      cp "$f" "$work/licences/LICENSE-$r-$(basename "$(dirname "$f")").txt"
    done < <(find "$work/rcc/$r" -name README -print0)
    while IFS= read -r -d '' f; do
      side=$(webpinfo "$f" 2>/dev/null | awk '/Width:/ {w = $2} /Height:/ {h = $2} END {print (w < h ? w : h) + 0}')
      [ "${side:-0}" -ge 300 ] || continue   # icons and thumbnails
      name=$(free_stage_name "$(slug "$(basename "$f")")")
      dwebp -quiet "$f" -o "$work/stage/$name.png"   # decoded without loss; still a lossy source (.lossy)
      printf '%s\t%s\n' "$name" "usr/share/gcompris-qt/rcc/$r.rcc:${f#"$work/rcc/$r/"}" >> "$work/stage/.origin"
      printf '%s\n' "$name" >> "$work/stage/.lossy"
    done < <(find "$work/rcc/$r" -name '*.webp' -print0 | sort -z)
  done
}
pkg_enlightenment_data() {   # BSD-2; the 3840x2160 quality-99 JPEG inside each photographic .edj theme
  local e
  for e in Bamboo Foggy-Trees God-Rays Green-Maple Lichen-Branches Mountain Peaks Red-Maple Sea-of-Lanterns \
           Snow-Trees Spruce-Needles Sunset-Clouds White-Flower Yellow-Flower; do
    local name
    name=$(slug "$e")
    carve "usr/share/enlightenment/data/backgrounds/$e.edj" "$work/stage/$name.jpg"
    printf '%s\t%s\n' "$name" "usr/share/enlightenment/data/backgrounds/$e.edj" >> "$work/stage/.origin"
  done
}

ALL_PACKAGES="scratch kphotoalbum lomiri-wallpapers-16.04 mate-backgrounds tuxpaint-data tuxtype-data python3-skimage
python3-sklearn python3-scipy scribus-template scribus-data libjxl-testdata kodi-data lxqt-themes
plasma-workspace-wallpapers jigzo-data qtbase5-examples puzzle-jigsaw libsixel-examples cimg-examples
lomiri-wallpapers-20.04 digikam-data python-matplotlib-data libvips-doc afterstep-data gcompris-qt-data
enlightenment-data"
PACKAGES=${PACKAGES:-$ALL_PACKAGES}

# ---- shrinking and bookkeeping ------------------------------------------------------------------------------

# Held-out demo photos: "package/name" lines of scripts/demo-photos.txt. Their names are reserved for them, so
# that no other photo can take a name and push a demo photo into the training folders.
declare -A DEMO=() RESERVED=()
while read -r line; do
  line=${line%%#*}
  line=${line//[[:space:]]/}
  [ -n "$line" ] || continue
  DEMO[$line]=1
  RESERVED[${line#*/}]=${line%%/*}
done < scripts/demo-photos.txt

# unique_name NAME PACKAGE: NAME, or NAME-2, ... when a photo in DEST has it or another package reserved it.
unique_name() {
  local name=$1 k=2
  while compgen -G "$dest/*/$name.png" >/dev/null || { [ -n "${RESERVED[$name]:-}" ] && [ "${RESERVED[$name]}" != "$2" ]; }; do
    name="$1-$k"
    k=$((k + 1))
  done
  echo "$name"
}

# shrink SRC OUT.png LOSSY: prints "WxH f W'xH'" or nothing when the photo is too small.
shrink() {
  local src=$1 out=$2 lossy=$3 w h o f long
  read -r w h o < <("${IDENTIFY[@]}" -ping -format '%w %h %[orientation]\n' "${src}[0]" 2>/dev/null | head -n 1) || true
  if [ -z "${w:-}" ] || [ -z "${h:-}" ]; then echo "  warning: cannot read $src" >&2; return 0; fi
  case $o in LeftTop|RightTop|RightBottom|LeftBottom) local t=$w; w=$h; h=$t ;; esac   # EXIF rotation
  long=$((w > h ? w : h))
  f=$(( (long + MAX_SIDE - 1) / MAX_SIDE ))
  [ "$lossy" = 1 ] && [ $f -lt 2 ] && f=2
  [ $f -lt 1 ] && f=1
  local cw=$((w / f * f)) ch=$((h / f * f))
  local ow=$((cw / f)) oh=$((ch / f))
  if [ $((ow < oh ? ow : oh)) -lt "$MIN_SIDE" ]; then return 0; fi
  "${IM[@]}" -quiet "${src}[0]" +repage -auto-orient -alpha off -colorspace sRGB -crop "${cw}x${ch}+0+0" +repage \
    -filter box -resize "${ow}x${oh}!" -depth 8 -strip "PNG24:$out"
  echo "${w}x${h} $f ${ow}x${oh}"
}

for pkg in $PACKAGES; do
  out="$dest/$pkg"
  fn="pkg_${pkg//[-.]/_}"
  if ! declare -F "$fn" >/dev/null; then echo "$pkg: no recipe in this script, skipped" >&2; continue; fi
  if [ -f "$out/.done" ]; then
    echo "$pkg: already in $out ($(find "$out" -maxdepth 1 -name '*.png' | wc -l) photos)"
    continue
  fi
  t0=$(date +%s)
  # a redo replaces this package's demo photos too
  for key in "${!DEMO[@]}"; do [ "${key%%/*}" = "$pkg" ] && rm -f "$dest/_demo/${key#*/}.png"; done
  if [ -f "$dest/_demo/SOURCES.tsv" ]; then
    awk -F '\t' -v p="$pkg" '$2 != p' "$dest/_demo/SOURCES.tsv" > "$work/demo.tsv" && mv "$work/demo.tsv" "$dest/_demo/SOURCES.tsv"
  fi
  rm -rf "$work/deb" "$work/x" "$work/stage" "$work/licences" "$work/rcc" "$out"
  mkdir -p "$work/deb" "$work/x" "$work/stage" "$work/licences" "$out"
  : > "$work/stage/.origin"
  : > "$work/stage/.lossy"
  if ! (cd "$work/deb" && apt-get download "$pkg" >/dev/null 2>&1); then
    if [ "$(id -u)" = 0 ]; then apt-get update -qq >/dev/null 2>&1 || true; fi
    if ! (cd "$work/deb" && apt-get download "$pkg" >/dev/null); then
      echo "$pkg: apt-get download failed, skipped" >&2
      rmdir "$out" 2>/dev/null || true
      continue
    fi
  fi
  deb=$(ls "$work"/deb/*.deb | head -n 1)
  dpkg-deb -x "$deb" "$work/x"
  (cd "$work/x" && "$fn")
  # the licence travels with the photos
  if [ -f "$work/x/usr/share/doc/$pkg/copyright" ]; then
    cp "$work/x/usr/share/doc/$pkg/copyright" "$out/COPYRIGHT"
  else
    echo "see the Debian package $pkg ($(basename "$deb")) for licence terms" > "$out/COPYRIGHT"
  fi
  cp "$work"/licences/* "$out/" 2>/dev/null || true
  printf 'name\tsource\toriginal\tfactor\tsaved\n' > "$out/SOURCES.tsv"
  n=0 small=0
  while IFS=$'\t' read -r name origin; do
    src=$(ls "$work/stage/$name".* 2>/dev/null | head -n 1)
    [ -n "$src" ] || continue
    lossy=0
    case ${src##*.} in jpg|jpeg|webp) lossy=1 ;; esac
    grep -qx -- "$name" "$work/stage/.lossy" && lossy=1
    final=$(unique_name "$name" "$pkg")
    if [ -n "${DEMO[$pkg/$final]:-}" ]; then target="$dest/_demo"; else target="$out"; fi
    mkdir -p "$target"
    info=$(shrink "$src" "$target/$final.png" "$lossy")
    if [ -z "$info" ]; then small=$((small + 1)); continue; fi
    read -r orig f saved <<< "$info"
    if [ "$target" = "$out" ]; then
      n=$((n + 1))
      printf '%s\t%s\t%s\t%s\t%s\n' "$final" "$origin" "$orig" "$f" "$saved" >> "$out/SOURCES.tsv"
    else
      [ -f "$target/SOURCES.tsv" ] || printf 'name\tpackage\tsource\toriginal\tfactor\tsaved\n' > "$target/SOURCES.tsv"
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$final" "$pkg" "$origin" "$orig" "$f" "$saved" >> "$target/SOURCES.tsv"
      cp "$out/COPYRIGHT" "$target/$pkg.COPYRIGHT"
      for l in "$work"/licences/*; do [ -f "$l" ] && cp "$l" "$target/$pkg.$(basename "$l")"; done
      echo "  $final: held out for the demo (DEST/_demo)"
    fi
  done < "$work/stage/.origin"
  touch "$out/.done"
  extra=""
  [ $small -gt 0 ] && extra=", $small too small"
  echo "$pkg: $n photos in $out$extra ($(( $(date +%s) - t0 )) s)"
  rm -rf "$work/deb" "$work/x" "$work/stage" "$work/rcc"
done

# ---- summary ------------------------------------------------------------------------------------------------
total=$(find "$dest" -mindepth 2 -maxdepth 2 -name '*.png' -not -path "$dest/_demo/*" | wc -l)
demo=$(find "$dest/_demo" -maxdepth 1 -name '*.png' 2>/dev/null | wc -l)
missing=""
for key in "${!DEMO[@]}"; do [ -f "$dest/_demo/${key#*/}.png" ] || missing+=" $key"; done
echo "fetch-photos: $total training photos in $dest/<package>/, $demo held out in $dest/_demo/" \
     "($(( $(date +%s) - started )) s)"
if [ -n "$missing" ]; then echo "fetch-photos: demo photos not found:$missing" >&2; fi
