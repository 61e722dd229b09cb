#!/usr/bin/env bash
# Trains the built-in default model in a folder made by prepare.sh and bundles it as
# models/default-realsr-x4.safetensors: stage 1 (warm-started from v1), the stage-2 warm start
# (init.mjs s2), stage 2 (v2), stage 2 continued (v3), bundle. Each training resumes where it stopped (--auto_resume).
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
node "$here/bundle.mjs" experiments/default_S2b_x4/models/net_g_2400.pth
