#!/usr/bin/env bash
# Fetches the training photographs for the built-in default model: the photographic
# wallpapers of two Debian packages (KDE Plasma and MATE backgrounds, free licences; see
# /usr/share/doc/<package>/copyright inside each package). The illustrations in those
# packages are left out: the model should learn from photographs.
#   bash scripts/default-model/photos.sh <output-folder>
set -euo pipefail
out=${1:?usage: photos.sh <output-folder>}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
chmod 755 "$work"
cd "$work"
apt-get download -qq plasma-workspace-wallpapers mate-backgrounds
for f in *.deb; do dpkg -x "$f" x; done
# Photographs only (largest rendition of each KDE wallpaper).
photos=(
  Aqua.jpg Blinds.jpg Dune.jpg FreshFlower.jpg Garden.jpg GreenMeadow.jpg LadyBird.jpg RainDrops.jpg
  Storm.jpg TwoWings.jpg Wood.jpg YellowFlower.jpg
  BytheWater ColdRipple ColorfulCups DarkestHour EveningGlow FallenLeaf Grey Kite OneStandsOut Path
  Volna summer_1am
)
n=0
for p in "${photos[@]}"; do
  if [[ $p == *.* ]]; then
    src=$(find x -type f -name "$p" | head -n 1)
  else
    src=$(find x -type f -path "*/$p/contents/images/*" -print0 | xargs -0 -r ls -S | head -n 1)
  fi
  if [[ -z ${src:-} ]]; then echo "missing: $p" >&2; continue; fi
  cp "$src" "$out/${p%%.*}.${src##*.}"
  n=$((n + 1))
done
cp x/usr/share/doc/plasma-workspace-wallpapers/copyright "$out/COPYRIGHT-plasma-workspace-wallpapers" 2>/dev/null || true
cp x/usr/share/doc/mate-backgrounds/copyright "$out/COPYRIGHT-mate-backgrounds" 2>/dev/null || true
echo "$n photographs in $out"
