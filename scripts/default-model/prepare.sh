#!/usr/bin/env bash
# Prepares the training and held-out pairs of the built-in default model (real-world ×4 SR):
# the free photographs of photos.sh, downscaled to a 1024-pixel long side (more detail per
# crop), degraded with the Real-ESRGAN second-order pipeline (diffir degrade, DiffIR's RealSR
# ranges) into 128×128 GT / 32×32 LQ pairs; the held-out pairs come from ../shared/data/images
# (never trained on) with another seed.
#   bash scripts/default-model/prepare.sh <work-folder> [samples-per-photo]
set -euo pipefail
work=${1:?usage: prepare.sh <work-folder> [samples-per-photo]}
samples=${2:-60}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
diffir="node $repo/dist/src/cli/main.js"
mkdir -p "$work"
[ -d "$work/photos" ] || bash "$here/photos.sh" "$work/photos"
node --input-type=module -e "
  import sharp from 'sharp';
  import { readdirSync, mkdirSync } from 'node:fs';
  const [src, dst] = process.argv.slice(1);
  mkdirSync(dst, { recursive: true });
  for (const f of readdirSync(src).filter((f) => /\.(jpe?g|png)$/i.test(f))) {
    await sharp(src + '/' + f).resize(1024, 1024, { fit: 'inside' }).png().toFile(dst + '/' + f.replace(/\.[^.]+$/, '.png'));
  }
" "$work/photos" "$work/photos1024"
split() { # <samples-folder> <pairs-folder>
  mkdir -p "$2/gt" "$2/lq"
  for f in "$1"/*_gt.png; do b=$(basename "$f" _gt.png); mv "$f" "$2/gt/$b.png"; mv "$1/${b}_lq.png" "$2/lq/$b.png"; done
}
$diffir degrade "$work/photos1024" --out "$work/samples" --size 128 --samples "$samples" --seed 1 --overwrite
split "$work/samples" "$work/train"
$diffir degrade "$repo/../shared/data/images" --out "$work/heldout-samples" --size 256 --samples 4 --seed 1000 --overwrite
split "$work/heldout-samples" "$work/heldout"
echo "train pairs: $(ls "$work/train/gt" | wc -l), held-out pairs: $(ls "$work/heldout/gt" | wc -l)"
