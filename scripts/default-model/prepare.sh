#!/usr/bin/env bash
# Prepares the working folder of the built-in default model's training (real-world ×4 SR):
#   photos/          the free photographs of photos.sh (Debian packages, licences in SOURCES.tsv),
#                    downscaled to a 1024-pixel long side (sharper detail per crop, fewer source
#                    JPEG artifacts): photos/train (trained on), photos/heldout (never trained on)
#   val/             held-out validation pairs (clean, mild, heavy; src/data/eval-pairs.ts) from
#                    ../shared/data/images and photos/heldout, for the trainer's val_* datasets
#   init/            warm starts from the previous default model (v1, from git history; init.mjs)
# The training pairs themselves are made on the fly by the trainer (RealESRGANDataset with the
# degradation_mix of options/default/*.yml).
#   bash scripts/default-model/prepare.sh <work-folder>
set -euo pipefail
work=${1:?usage: prepare.sh <work-folder>}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
mkdir -p "$work"
work=$(cd "$work" && pwd)
[ -f "$work/originals/SOURCES.tsv" ] || bash "$here/photos.sh" "$work/originals"
(cd "$repo" && node --input-type=module -e "
  import sharp from 'sharp';
  import { readdirSync, mkdirSync } from 'node:fs';
  const [src, dst] = process.argv.slice(1);
  for (const split of ['train', 'heldout']) {
    mkdirSync(dst + '/' + split, { recursive: true });
    for (const f of readdirSync(src + '/' + split).filter((f) => /\.(jpe?g|png)$/i.test(f))) {
      await sharp(src + '/' + split + '/' + f).resize(1024, 1024, { fit: 'inside', withoutEnlargement: true }).png().toFile(dst + '/' + split + '/' + f.replace(/\.[^.]+$/, '.png'));
    }
  }
" "$work/originals" "$work/photos")
node "$here/heldout.mjs" "$work/val" --size 128 --crops 1 "$repo/../shared/data/images" "$work/photos/heldout"
mkdir -p "$work/init"
# v1: the default model as first bundled (commit 25d4a7e), the warm start of both stages.
git -C "$repo" show 25d4a7e:models/default-realsr-x4.safetensors > "$work/init/default-v1-bundle.safetensors"
node "$here/init.mjs" s1 "$work/init/default-v1-bundle.safetensors" "$work/init/default-v1.safetensors"
echo "train photos: $(ls "$work/photos/train" | wc -l), held-out photos: $(ls "$work/photos/heldout" | wc -l) (+ ../shared/data/images)"
echo "next (from $work): diffir train -opt $repo/options/default/train_default_S1_x4.yml"
