// Warm starts of the default model's two stages from the previous default model (a bundled
// stage-2 safetensors file, v1), so that the short training on a 2-core machine refines a
// working network instead of starting from noise:
//   s1: its DIRformer (G.*) as it is and its CPEN_S2 (condition.*) under the stage-1 CPEN's names
//       (E.*); the stage-1 CPEN's first conv, which also sees the GT, has another shape and is left
//       to the trainer's fresh initialisation (path.strict_load_g: false).
//   s2: the new stage-1 DIRformer (params_ema of its checkpoint) with v1's CPEN_S2 and denoiser
//       (condition.*, denoise.*), which stage 2's first phase then fits to the new stage-1 IPR.
//   node scripts/default-model/init.mjs s1 <v1.safetensors> <out.safetensors>
//   node scripts/default-model/init.mjs s2 <v1.safetensors> <stage1 net_g.pth> <out.safetensors>
import { readSafetensors, writeSafetensors } from '../../dist/src/weights/safetensors.js';
import { loadNetworkStateDict } from '../../dist/src/train/checkpoint.js';

const [mode, v1, ...rest] = process.argv.slice(2);
const out = rest.at(-1);
if (!(mode === 's1' && rest.length === 1) && !(mode === 's2' && rest.length === 2)) {
  throw new Error('usage: init.mjs s1 <v1.safetensors> <out.safetensors> | init.mjs s2 <v1.safetensors> <stage1 net_g.pth> <out.safetensors>');
}
const old = readSafetensors(v1);
const init = new Map();
if (mode === 's1') {
  for (const [k, t] of old) {
    if (k.startsWith('G.')) init.set(k, t);
    else if (k.startsWith('condition.')) init.set(`E.${k.slice('condition.'.length)}`, t);
  }
} else {
  for (const [k, t] of loadNetworkStateDict(rest[0], 'params_ema')) if (k.startsWith('G.')) init.set(k, t);
  for (const [k, t] of old) if (k.startsWith('condition.') || k.startsWith('denoise.')) init.set(k, t);
}
writeSafetensors(out, init, { source: `${mode} warm start from ${v1}${mode === 's2' ? ` and ${rest[0]}` : ''}` });
console.log(`wrote ${out}: ${init.size} tensors`);
