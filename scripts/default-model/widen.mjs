// Doubles the width of a stage-2 ×4 SR DiffIR's DIRformer (dim C → 2C, same depth and heads) so
// that the wider network computes exactly the same function as the narrow one (Net2WiderNet, Chen
// et al. 2016), and the next training run refines a working model with more capacity instead of
// starting from noise. Everything outside the DIRformer (CPEN_S2, denoiser, DDPM buffers) is copied unchanged: the
// IPR stays 256 wide.
//
// Every feature map of the wide network holds each channel of the narrow one exactly twice, so:
// - LayerNorm over channels sees the same mean and variance;
// - in channel attention every head keeps its own channels (q, k, v are duplicated within their
//   head), so each softmax weight is halved and appears twice: A·v is unchanged;
// - the PixelUnshuffle/PixelShuffle channel order keeps the rule "new channel j holds old channel
//   j mod C", so every level's main stream uses it; the skip concatenations use it per half.
// A conv reading duplicated inputs splits each old weight between the two copies as
// (½+δ, ½−δ) with a small random δ: the sum (the function) is exact, while the copies' gradients
// differ from the first step, so the duplicates do not stay identical (symmetry breaking).
//   node scripts/default-model/widen.mjs <stage-2 dim-C .safetensors|.pth> <out.safetensors> [seed]
import { readSafetensors, writeSafetensors } from '../../dist/src/weights/safetensors.js';
import { loadNetworkStateDict } from '../../dist/src/train/checkpoint.js';

const [src, out, seedArg] = process.argv.slice(2);
if (!src || !out) throw new Error('usage: widen.mjs <stage-2 checkpoint> <out.safetensors> [seed]');
const old = src.endsWith('.pth') ? loadNetworkStateDict(src, 'params_ema') : readSafetensors(src);
const get = (k) => {
  const t = old.get(k);
  if (!t) throw new Error(`${src}: missing ${k}`);
  return t;
};

// Small deterministic generator for the split δ (mulberry32).
let state = Number(seedArg ?? 1) >>> 0;
const rand = () => {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const SPLIT = 0.1; // δ ∈ [−0.1, 0.1]

/** new channel j → old channel j mod c (2c entries). */
const std = (c) => Array.from({ length: 2 * c }, (_, j) => j % c);
/** concatenation of mappings, the second shifted by the first's old width. */
const cat = (a, ca, b) => [...a, ...b.map((i) => i + ca)];
/** per-head duplication of a chunk of c channels in h heads. */
const heads = (c, h) => {
  const ch = c / h;
  const m = [];
  for (let head = 0; head < h; head++) for (let p = 0; p < 2 * ch; p++) m.push(head * ch + (p % ch));
  return m;
};
const identity = (c) => Array.from({ length: c }, (_, j) => j);

const wide = new Map();
/**
 * conv / linear weight [O, I, ...k]: new[o', i', k] = old[mo[o'], mi[i'], k] · split. `dupIn`: the
 * inputs are duplicated (split the weight between the copies); false for depthwise weights and for
 * the IPR linears (their input, the IPR, is not widened).
 */
function mapWeight(key, mo, mi, dupIn) {
  const t = get(key);
  const [O, I, ...k] = t.shape;
  const ks = k.reduce((a, b) => a * b, 1);
  const nI = mi.length;
  const data = new Float32Array(mo.length * nI * ks);
  // The split of old input i between its two copies, shared by all duplicates of an output (so the
  // copies of an output channel stay equal and the function is exact).
  const split = new Map();
  for (let o2 = 0; o2 < mo.length; o2++) {
    const o = mo[o2];
    const seen = new Map();
    for (let i2 = 0; i2 < nI; i2++) {
      const i = mi[i2];
      for (let q = 0; q < ks; q++) {
        let f = 1;
        if (dupIn) {
          const id = `${o},${i},${q}`;
          if (!split.has(id)) split.set(id, (rand() * 2 - 1) * SPLIT);
          const first = !seen.has(`${i},${q}`);
          seen.set(`${i},${q}`, true);
          f = first ? 0.5 + split.get(id) : 0.5 - split.get(id);
        }
        data[(o2 * nI + i2) * ks + q] = t.data[(o * I + i) * ks + q] * f;
      }
    }
  }
  if (dupIn ? nI !== 2 * I : nI !== I) throw new Error(`${key}: input mapping of ${nI} for ${I} inputs`);
  if (mo.length !== 2 * O && mo.length !== O) throw new Error(`${key}: output mapping of ${mo.length} for ${O} outputs`);
  wide.set(key, { dtype: 'float32', shape: [mo.length, nI, ...k], data });
}
function mapVector(key, m) {
  const t = get(key);
  wide.set(key, { dtype: 'float32', shape: [m.length, ...t.shape.slice(1)], data: Float32Array.from(m, (i) => t.data[i]) });
}
const copy = (key) => wide.set(key, get(key));

/** One Restormer block with IPR modulation: stream mapping M of old width C, h heads. */
function block(p, C, M, h) {
  const hidden = 2 * C; // ffn_expansion_factor 2
  mapVector(`${p}.norm1.body.weight`, M);
  mapVector(`${p}.norm2.body.weight`, M);
  copy(`${p}.attn.temperature`);
  // IPR linears: rows γ (C) then β (C), the input (IPR) unchanged.
  const mod = cat(M, C, M);
  mapWeight(`${p}.attn.kernel.0.weight`, mod, identity(256), false);
  mapWeight(`${p}.ffn.kernel.0.weight`, mod, identity(256), false);
  const qh = heads(C, h);
  const qkv = [...qh, ...qh.map((i) => i + C), ...qh.map((i) => i + 2 * C)];
  mapWeight(`${p}.attn.qkv.weight`, qkv, M, true);
  mapWeight(`${p}.attn.qkv_dwconv.weight`, qkv, [0], false);
  mapWeight(`${p}.attn.project_out.weight`, M, qh, true);
  const x12 = cat(std(hidden), hidden, std(hidden));
  mapWeight(`${p}.ffn.project_in.weight`, x12, M, true);
  mapWeight(`${p}.ffn.dwconv.weight`, x12, [0], false);
  mapWeight(`${p}.ffn.project_out.weight`, M, std(hidden), true);
}
function level(name, C, M, h) {
  for (let b = 0; ; b++) {
    if (!old.has(`G.${name}.${b}.norm1.body.weight`)) return;
    block(`G.${name}.${b}`, C, M, h);
  }
}

const dim = get('G.patch_embed.proj.weight').shape[0];
const inCh = get('G.patch_embed.proj.weight').shape[1];
const H = [1, 2, 4, 8];
for (const k of old.keys()) {
  if (k.startsWith('G.') && !/^G\.(patch_embed|encoder_level[123]|latent|down|up|reduce_chan|decoder_level[123]|refinement|tail)/.test(k)) {
    throw new Error(`${src}: ${k} is not part of a ×4 SR DIRformer this script knows`);
  }
  if (!k.startsWith('G.')) copy(k); // CPEN_S2, denoiser, DDPM buffers
}
const [c1, c2, c3, c4] = [dim, 2 * dim, 4 * dim, 8 * dim];
mapWeight('G.patch_embed.proj.weight', std(c1), identity(inCh), false);
level('encoder_level1', c1, std(c1), H[0]);
mapWeight('G.down1_2.body.0.weight', std(c1 / 2), std(c1), true);
level('encoder_level2', c2, std(c2), H[1]);
mapWeight('G.down2_3.body.0.weight', std(c2 / 2), std(c2), true);
level('encoder_level3', c3, std(c3), H[2]);
mapWeight('G.down3_4.body.0.weight', std(c3 / 2), std(c3), true);
level('latent', c4, std(c4), H[3]);
mapWeight('G.up4_3.body.0.weight', std(2 * c4), std(c4), true);
mapWeight('G.reduce_chan_level3.weight', std(c3), cat(std(c3), c3, std(c3)), true);
level('decoder_level3', c3, std(c3), H[2]);
mapWeight('G.up3_2.body.0.weight', std(2 * c3), std(c3), true);
mapWeight('G.reduce_chan_level2.weight', std(c2), cat(std(c2), c2, std(c2)), true);
level('decoder_level2', c2, std(c2), H[1]);
mapWeight('G.up2_1.body.0.weight', std(2 * c2), std(c2), true);
const M1 = cat(std(c1), c1, std(c1)); // cat(up2_1, encoder_level1): 2dim, no reduction
level('decoder_level1', c2, M1, H[0]);
level('refinement', c2, M1, H[0]);
mapWeight('G.tail.0.0.weight', std(4 * c2), M1, true);
mapVector('G.tail.0.0.bias', std(4 * c2));
mapWeight('G.tail.0.2.weight', std(4 * c2), std(c2), true);
mapVector('G.tail.0.2.bias', std(4 * c2));
mapWeight('G.tail.1.weight', identity(3), std(c2), true);
copy('G.tail.1.bias');

const missing = [...old.keys()].filter((k) => !wide.has(k));
if (missing.length) throw new Error(`not widened: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ' …' : ''}`);
writeSafetensors(out, wide, { source: `${src} widened from dim ${dim} to ${2 * dim} (function-preserving, split δ ±${SPLIT}, seed ${seedArg ?? 1})` });
let n = 0;
for (const t of wide.values()) n += t.data.length;
console.log(`wrote ${out}: dim ${dim} → ${2 * dim}, ${n.toLocaleString('en-US')} parameters`);
