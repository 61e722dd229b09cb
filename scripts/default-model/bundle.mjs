// Turns the final stage-2 checkpoint of the default-model recipe into the bundled weights:
// the model's parameters (params_ema, strictly checked) as safetensors with a description. The
// weights are stored as float16 (read back as float32) to keep the package small: the 5 M
// parameters of v4 take 10 MB instead of 20 MB; bench/default-model measures the bundled file.
//   node scripts/default-model/bundle.mjs <work>/experiments/default_S2c_x4/models/net_g_<iter>.pth
import { loadCheckpoint } from '../../dist/src/models/checkpoint.js';
import { describeConfig } from '../../dist/src/models/config.js';
import { writeSafetensors } from '../../dist/src/weights/safetensors.js';
import { DEFAULT_MODEL_PATH } from '../../dist/src/models/default-model.js';
import { floatToHalf } from '../../dist/src/tensor.js';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

const src = process.argv[2];
if (!src) throw new Error('usage: bundle.mjs <net_g.pth>');
const ck = loadCheckpoint(src);
if (ck.stage !== 2 || ck.config.task !== 'sr' || ck.config.scale !== 4) throw new Error(`${src}: expected a stage-2 ×4 SR checkpoint`);
mkdirSync(dirname(DEFAULT_MODEL_PATH), { recursive: true });
const half = new Map();
for (const [k, t] of ck.weights) half.set(k, t.dtype === 'float32' ? { dtype: 'float16', shape: t.shape, data: Uint16Array.from(t.data, floatToHalf) } : t);
writeSafetensors(DEFAULT_MODEL_PATH, half, {
  model: 'DiffIRS2',
  config: describeConfig(ck.config),
  version: '4',
  recipe: 'scripts/default-model/prepare.sh then train.sh: options/default/train_default_S1_x4.yml (warm-started from v1), train_default_S2_x4.yml, then train_default_S2b_x4.yml (stage 2 continued, v3), widen.mjs (v3 at twice the width, same function) and train_default_S2b_x4.yml at dim 32 (v4), degradation mix of clean bicubic, mild and Real-ESRGAN',
  license: 'trained on photographs from Debian packages plasma-workspace-wallpapers, mate-backgrounds (GPL-2+), lomiri-wallpapers-16.04/-20.04 (CC-BY/CC-BY-SA/CC0), python3-skimage (CC0/public domain), python3-scipy (public domain); see scripts/default-model/photos.sh',
});
console.log(`wrote ${DEFAULT_MODEL_PATH}: ${ck.parameterCount.toLocaleString('en-US')} parameters, ${describeConfig(ck.config)}`);
