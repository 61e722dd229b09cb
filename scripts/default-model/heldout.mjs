// Writes the held-out validation pairs of the default model (src/data/eval-pairs.ts) as
// <out>/<clean|mild|heavy>/{gt,lq}/<name>.png, for the trainer's val_* datasets.
//   node scripts/default-model/heldout.mjs <out> [--size 128] [--crops 1] <photo files or folders...>
import { readdirSync, statSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { evalPairs } from '../../dist/src/data/eval-pairs.js';
import { saveImage } from '../../dist/src/image/io.js';

const args = process.argv.slice(2);
const opt = (k, d) => {
  const i = args.indexOf(`--${k}`);
  if (i < 0) return d;
  const v = Number(args[i + 1]);
  args.splice(i, 2);
  return v;
};
const size = opt('size', 128);
const crops = opt('crops', 1);
const [out, ...inputs] = args;
if (!out || inputs.length === 0) throw new Error('usage: heldout.mjs <out> [--size 128] [--crops 1] <photos or folders...>');
const photos = inputs.flatMap((p) => (statSync(p).isDirectory() ? readdirSync(p).filter((f) => /\.(png|jpe?g)$/i.test(f)).sort().map((f) => join(p, f)) : [p]));
const pairs = await evalPairs(photos, { size, crops, seed: 0 });
for (const p of pairs) {
  for (const [k, t] of [['gt', p.gt], ['lq', p.lq]]) {
    mkdirSync(join(out, p.kind, k), { recursive: true });
    await saveImage(join(out, p.kind, k, `${p.name}.png`), { rgb: t }, { overwrite: true });
  }
}
console.log(`${pairs.length} held-out pairs from ${photos.length} photos in ${out}/{clean,mild,heavy}`);
