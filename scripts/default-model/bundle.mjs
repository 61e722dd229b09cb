// Turns the final stage-2 checkpoint of the default-model recipe into the bundled weights:
// the model's parameters (params_ema, strictly checked) as safetensors with a description.
//   node scripts/default-model/bundle.mjs <work>/experiments/default_S2_x4/models/net_g_latest.pth
import { loadCheckpoint } from '../../dist/src/models/checkpoint.js';
import { describeConfig } from '../../dist/src/models/config.js';
import { writeSafetensors } from '../../dist/src/weights/safetensors.js';
import { DEFAULT_MODEL_PATH } from '../../dist/src/models/default-model.js';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

const src = process.argv[2];
if (!src) throw new Error('usage: bundle.mjs <net_g.pth>');
const ck = loadCheckpoint(src);
if (ck.stage !== 2 || ck.config.task !== 'sr' || ck.config.scale !== 4) throw new Error(`${src}: expected a stage-2 ×4 SR checkpoint`);
mkdirSync(dirname(DEFAULT_MODEL_PATH), { recursive: true });
writeSafetensors(DEFAULT_MODEL_PATH, ck.weights, {
  model: 'DiffIRS2',
  config: describeConfig(ck.config),
  recipe: 'options/default/train_default_S1_x4.yml then train_default_S2_x4.yml on scripts/default-model/prepare.sh data',
  license: 'trained on Debian plasma-workspace-wallpapers and mate-backgrounds photographs (free licences)',
});
console.log(`wrote ${DEFAULT_MODEL_PATH}: ${ck.parameterCount.toLocaleString('en-US')} parameters, ${describeConfig(ck.config)}`);
