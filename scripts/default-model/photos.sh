#!/usr/bin/env bash
# Fetches the photographs for the built-in default model from Debian packages (apt-get
# download + dpkg -x, no other network) and records where each comes from and under which
# licence (SOURCES.tsv, and each package's copyright file as COPYRIGHT-<package>):
#   - plasma-workspace-wallpapers (KDE, GPL-2+), mate-backgrounds (GPL-2+): landscapes, water,
#     flowers, wood, night scenes;
#   - lomiri-wallpapers-16.04 / -20.04 (Ubuntu photo contest, CC-BY / CC-BY-SA / CC0 per file):
#     animals, fur, people's things, mountains, brushes, bird, bridge;
#   - python3-skimage (scikit-image sample data, CC0 / public domain per image): textures
#     (brick, grass, gravel), gray photos (camera, moon, coins), text (page, text), motorcycle;
#   - python3-scipy (scipy.misc face, public domain): a raccoon's fur.
# Illustrations in these packages are left out: the model should learn from photographs.
# The images in ../shared/data/images (scikit-image's astronaut, chelsea, coffee, hubble,
# rocket) are never fetched here: they are the project's held-out photos.
# Output: <out>/train/ and <out>/heldout/ (a held-out share of this collection, never trained
# on), SOURCES.tsv (split, file, package, version, licence).
#   bash scripts/default-model/photos.sh <output-folder>
set -euo pipefail
out=${1:?usage: photos.sh <output-folder>}
out=$(mkdir -p "$out" && cd "$out" && pwd)
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
cd "$work"
packages=(plasma-workspace-wallpapers mate-backgrounds lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 python3-skimage python3-scipy)
apt-get download -qq 2>/dev/null "${packages[@]}"
for f in *.deb; do dpkg -x "$f" x; done
mkdir -p "$out/train" "$out/heldout"
printf 'split\tfile\tpackage\tversion\tlicence\tsource path\n' > "$out/SOURCES.tsv"
for p in "${packages[@]}"; do
  cp "x/usr/share/doc/$p/copyright" "$out/COPYRIGHT-$p" 2>/dev/null || true
done
version() { dpkg-deb -f "$work/$1"_*.deb Version; }
skdata=x/usr/lib/python3/dist-packages/skimage/data
# split|package|path inside the package (a KDE wallpaper name: its largest rendition)|licence
photos=$(cat <<EOF
  train|plasma-workspace-wallpapers|BytheWater|GPL-2+
  train|plasma-workspace-wallpapers|ColdRipple|GPL-2+
  train|plasma-workspace-wallpapers|ColorfulCups|GPL-2+
  train|plasma-workspace-wallpapers|DarkestHour|GPL-2+
  heldout|plasma-workspace-wallpapers|EveningGlow|GPL-2+
  train|plasma-workspace-wallpapers|FallenLeaf|GPL-2+
  train|plasma-workspace-wallpapers|Grey|GPL-2+
  train|plasma-workspace-wallpapers|Kite|GPL-2+
  train|plasma-workspace-wallpapers|OneStandsOut|GPL-2+
  train|plasma-workspace-wallpapers|Path|GPL-2+
  train|plasma-workspace-wallpapers|Volna|GPL-2+
  train|plasma-workspace-wallpapers|summer_1am|GPL-2+
  train|mate-backgrounds|usr/share/backgrounds/mate/nature/Aqua.jpg|GPL-2+
  train|mate-backgrounds|usr/share/backgrounds/mate/nature/Blinds.jpg|GPL-2+
  train|mate-backgrounds|usr/share/backgrounds/mate/nature/Dune.jpg|GPL-2+
  train|mate-backgrounds|usr/share/backgrounds/mate/nature/FreshFlower.jpg|GPL-2+
  train|mate-backgrounds|usr/share/backgrounds/mate/nature/Garden.jpg|GPL-2+
  train|mate-backgrounds|usr/share/backgrounds/mate/nature/GreenMeadow.jpg|GPL-2+
  heldout|mate-backgrounds|usr/share/backgrounds/mate/nature/LadyBird.jpg|GPL-2+
  train|mate-backgrounds|usr/share/backgrounds/mate/nature/RainDrops.jpg|GPL-2+
  train|mate-backgrounds|usr/share/backgrounds/mate/nature/Storm.jpg|GPL-2+
  train|mate-backgrounds|usr/share/backgrounds/mate/nature/TwoWings.jpg|GPL-2+
  train|mate-backgrounds|usr/share/backgrounds/mate/nature/Wood.jpg|GPL-2+
  train|mate-backgrounds|usr/share/backgrounds/mate/nature/YellowFlower.jpg|GPL-2+
  train|lomiri-wallpapers-16.04|usr/share/backgrounds/Picture_1A_by_freespace.jpg|CC-BY-4.0
  train|lomiri-wallpapers-16.04|usr/share/backgrounds/Picture_0B_by_freespace.jpg|CC-BY-4.0
  train|lomiri-wallpapers-16.04|usr/share/backgrounds/Wine_by_Jakkub_Mede.jpg|CC-BY-4.0
  train|lomiri-wallpapers-16.04|usr/share/backgrounds/greentock_by_Peter_Nerlich.jpg|CC-BY-SA-4.0
  train|lomiri-wallpapers-16.04|usr/share/backgrounds/free_by_Peter_Nerlich.jpg|CC-BY-SA-4.0
  train|lomiri-wallpapers-16.04|usr/share/backgrounds/analogpattern_by_Peter_Nerlich.jpg|CC-BY-SA-4.0
  train|lomiri-wallpapers-16.04|usr/share/backgrounds/seeding_by_Clements_Engelhardt.jpg|CC0-1.0
  train|lomiri-wallpapers-16.04|usr/share/backgrounds/aitzgorri_by_Aitzol_Berasategi.jpg|CC-BY-4.0
  heldout|lomiri-wallpapers-16.04|usr/share/backgrounds/friends_by_Aitzol_Berasategi.jpg|CC-BY-4.0
  train|lomiri-wallpapers-16.04|usr/share/backgrounds/sunset_by_Aitzol_Berasategi.jpg|CC-BY-4.0
  heldout|lomiri-wallpapers-16.04|usr/share/backgrounds/picosdeeuropa_by_Aitzol_Berasategi.jpg|CC-BY-4.0
  train|lomiri-wallpapers-16.04|usr/share/backgrounds/life_by_Aitzol_Berasategi.jpg|CC-BY-4.0
  train|lomiri-wallpapers-16.04|usr/share/backgrounds/Dragonfly_by_Bolly.jpg|CC-BY-SA-4.0
  train|lomiri-wallpapers-16.04|usr/share/backgrounds/umang_by_Abhishek_Mudgal.jpg|CC-BY-4.0
  train|lomiri-wallpapers-16.04|usr/share/backgrounds/Bridge_by_Sander_Klootwijk.jpg|CC-BY-SA-4.0
  train|lomiri-wallpapers-20.04|usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg|CC-BY-SA-3.0
  train|python3-skimage|$skdata/camera.png|CC0-1.0
  train|python3-skimage|$skdata/brick.png|CC0-1.0
  train|python3-skimage|$skdata/grass.png|public-domain
  heldout|python3-skimage|$skdata/gravel.png|CC0-1.0
  train|python3-skimage|$skdata/text.png|public-domain
  train|python3-skimage|$skdata/page.png|public-domain
  train|python3-skimage|$skdata/coins.png|public-domain
  train|python3-skimage|$skdata/moon.png|public-domain
  train|python3-skimage|$skdata/motorcycle_left.png|public-domain
  train|python3-scipy|x/usr/lib/python3/dist-packages/scipy/misc/face.dat|public-domain
EOF
)
n=0
while IFS='|' read -r split pkg path licence; do
  split=${split//[[:space:]]/}
  if [[ $path == */* ]]; then
    src=x/${path#x/}
  else
    src=$(find x -type f -path "*/wallpapers/$path/contents/images/*" -print0 | xargs -0 -r ls -S | head -n 1)
  fi
  if [[ -z ${src:-} || ! -f $src ]]; then echo "missing: $pkg $path" >&2; exit 1; fi
  name=$(basename "$path")
  if [[ $name == face.dat ]]; then
    # scipy.misc.face: bz2-compressed raw 768×1024 RGB bytes.
    bzip2 -dc "$src" > face.rgb
    (cd "$repo" && node --input-type=module -e "
      import sharp from 'sharp';
      import { readFileSync } from 'node:fs';
      await sharp(readFileSync(process.argv[1]), { raw: { width: 1024, height: 768, channels: 3 } }).png().toFile(process.argv[2]);
    " "$work/face.rgb" "$out/$split/raccoon-face.png")
    name=raccoon-face.png
  else
    [[ $name == *.* ]] || name=$name.${src##*.}
    cp "$src" "$out/$split/$name"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$split" "$name" "$pkg" "$(version "$pkg")" "$licence" "/${src#x/}" >> "$out/SOURCES.tsv"
  n=$((n + 1))
done <<< "$photos"
echo "$n photographs in $out (train: $(ls "$out/train" | wc -l), held out: $(ls "$out/heldout" | wc -l)); sources and licences in $out/SOURCES.tsv"
