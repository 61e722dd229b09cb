#!/usr/bin/env bash
# Trains the built-in default model in a folder made by prepare.sh and bundles it as
# models/default-realsr-x4.safetensors: stage 1 (warm-started from v1), the stage-2 warm start
# (init.mjs s2), stage 2 (v2), stage 2 continued (v3), v3 widened to dim 32 and trained on (v4), bundle. Each training resumes where it stopped (--auto_resume).
#   bash scripts/default-model/train.sh <work-folder> [extra diffir train options...]
set -euo pipefail
work=${1:?usage: train.sh <work-folder>}
shift
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
diffir="node $repo/dist/src/cli/main.js"
cd "$work"
# Stage 1 of the bundled model was stopped at iteration 1000 of its 1500-iteration cosine schedule.
$diffir train -opt "$repo/options/default/train_default_S1_x4.yml" --auto_resume --force_yml train:total_iter=1000 "$@"
node "$here/init.mjs" s2 init/default-v1-bundle.safetensors experiments/default_S1_x4/models/net_g_1000.pth init/default-S2-init.safetensors
$diffir train -opt "$repo/options/default/train_default_S2_x4.yml" --auto_resume "$@"
# v3: stage 2 continued from v2's last checkpoint; the bundled model is its iteration 2400 (the
# held-out validation was flat from there: 2700 gave the same sum of PSNRs).
$diffir train -opt "$repo/options/default/train_default_S2b_x4.yml" --auto_resume --force_yml train:total_iter=2400 "$@"
# v4: v3 at twice the width (widen.mjs: the same function, so training refines v3 instead of
# starting over) trained on with the same recipe at dim 32: a fresh Adam at lr_sr 2e-4, halved every
# 1000 iterations. The bundled model is its iteration V4_ITER (see the README for the validation).
V4_ITER=${V4_ITER:-2100}
node "$here/widen.mjs" experiments/default_S2b_x4/models/net_g_2400.pth init/default-v3-wide.safetensors
$diffir train -opt "$repo/options/default/train_default_S2b_x4.yml" --auto_resume --force_yml name=default_S2c_x4 \
  network_g:dim=32 path:pretrain_network_g=init/default-v3-wide.safetensors path:param_key_g=params \
  train:lr_decay_sr=1000 train:total_iter=$V4_ITER "$@"
node "$here/bundle.mjs" experiments/default_S2c_x4/models/net_g_$V4_ITER.pth
