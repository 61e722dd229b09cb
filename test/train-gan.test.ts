/**
 * DiffIR's GAN stage (DiffIRGANS2Model) against the official code: the gan_x4 fixture (one
 * `optimize_parameters` call in float64) reproduced through `diffir grad -opt` and through the
 * GanIteration API — every loss, D output, spectral-norm vector and gradient within the
 * fixture's tolerances — and shown to fail when a `*_gt_usm` flag is flipped. The losses on
 * their own: GANLoss's five types and the perceptual/style criteria against closed forms and a
 * float64 VGG on the host; the VGG19 lookup; D's checkpoint layout; the `is False` flags.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Graph } from '../src/graph/ir.js';
import * as op from '../src/graph/ops.js';
import { compile } from '../src/runtime/compile.js';
import { discriminatorStateShapes } from '../src/models/discriminator.js';
import { VGG_LAYER_NAMES, IMAGENET_MEAN, IMAGENET_STD } from '../src/models/vgg.js';
import { usmSharp } from '../src/data/degrade/runtime.js';
import { GanIteration, usmTargets } from '../src/train/gan.js';
import { ganLoss, GAN_TYPES, perceptualLoss, type PerceptualSpec } from '../src/train/gan-losses.js';
import { frozenWeights, ganSpec, loadDiscriminator } from '../src/train/gan-setup.js';
import { readOptions, resolveOptions } from '../src/train/options.js';
import { loadNetworkStateDict } from '../src/train/checkpoint.js';
import { findVggWeights, vggSearchPaths } from '../src/train/vgg-weights.js';
import { selectWeights } from '../src/models/params.js';
import { readSafetensors } from '../src/weights/safetensors.js';
import { f32, type HostTensor, type TensorMap } from '../src/tensor.js';
import { Rng } from '../src/random.js';
import { FIXTURES_DIR, synthWeights } from './helpers/synth.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const bin = join(root, 'dist/src/cli/main.js');
const F = join(FIXTURES_DIR, 'gan_x4');
const have = existsSync(join(F, 'out.safetensors'));

/** The fixture's working directory, laid out as its README says (checkpoints relative to it). */
function fixtureWorkdir(): string {
  const w = mkdtempSync(join(tmpdir(), 'diffir-gan-'));
  mkdirSync(join(w, 'experiments/gan_x4'), { recursive: true });
  mkdirSync(join(w, 'experiments/pretrained_models'), { recursive: true });
  copyFileSync(synthWeights('gan_x4/net_g.manifest.json'), join(w, 'experiments/gan_x4/net_g.pth'));
  copyFileSync(synthWeights('gan_x4/net_s1.manifest.json'), join(w, 'experiments/gan_x4/net_s1.pth'));
  copyFileSync(join(F, 'net_d.pth'), join(w, 'experiments/gan_x4/net_d.pth'));
  copyFileSync(synthWeights('gan_x4/vgg19.manifest.json', { format: 'legacy' }), join(w, 'experiments/pretrained_models/vgg19-dcbb9e9d.pth'));
  return w;
}

/** Names outside the tolerances: values |a−b| ≤ 1e-4, gradients (g.*, d.*) ≤ 1e-3·max|b| + 1e-6. */
function mismatches(ours: ReadonlyMap<string, HostTensor>, ref: TensorMap): string[] {
  const bad: string[] = [];
  for (const [k, b] of ref) {
    const a = ours.get(k);
    if (!a) {
      bad.push(`${k} missing`);
      continue;
    }
    let md = 0;
    let mb = 0;
    const x = a.data as Float32Array;
    const y = b.data as Float32Array;
    if (x.length !== y.length) {
      bad.push(`${k}: ${x.length} values, expected ${y.length}`);
      continue;
    }
    for (let i = 0; i < y.length; i++) {
      md = Math.max(md, Math.abs(x[i]! - y[i]!));
      mb = Math.max(mb, Math.abs(y[i]!));
    }
    const grad = k.startsWith('g.') || k.startsWith('d.');
    if (!(grad ? md <= 1e-3 * mb + 1e-6 : md <= 1e-4)) bad.push(`${k} (${md.toExponential(2)} vs max ${mb.toExponential(2)})`);
  }
  return bad;
}

test('diffir grad -opt reproduces the official GAN-stage iteration (gan_x4)', { skip: !have && 'no gan_x4 fixture' }, () => {
  const w = fixtureWorkdir();
  const r = spawnSync(process.execPath, [bin, 'grad', '-opt', join(F, 'train_gan_x4.yml'), '--in', join(F, 'inputs.safetensors'), '--out', 'out.safetensors', '--threads', '2'], { cwd: w, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const ref = readSafetensors(join(F, 'out.safetensors'));
  assert.deepEqual(mismatches(readSafetensors(join(w, 'out.safetensors')), ref), []);
});

test('the GAN iteration fails the fixture when a *_gt_usm flag is flipped', { skip: !have && 'no gan_x4 fixture' }, async () => {
  const w = fixtureWorkdir();
  const plan = resolveOptions(readOptions(join(F, 'train_gan_x4.yml')), { cwd: w });
  const io = readSafetensors(join(F, 'inputs.safetensors'));
  const ref = readSafetensors(join(F, 'out.safetensors'));
  const it = await GanIteration.create(ganSpec(plan), 2, 16, 16, frozenWeights(plan, plan.pretrainS1!, w), { threads: 2 });
  try {
    const g = selectWeights(loadNetworkStateDict(plan.pretrainG!, 'params_ema'), plan.config, 2);
    const gt = io.get('gt') as HostTensor<'float32'>;
    const batch = { lq: io.get('lq') as HostTensor<'float32'>, gt, gtUsm: await usmSharp(gt), eps: io.get('noise') as HostTensor<'float32'> };
    const run = async (usm: ReturnType<typeof usmTargets>) => {
      const d = loadDiscriminator(plan, plan.gan!.pretrainD!);
      const gG = new Float32Array(it.generatorLayout.total);
      const dG = new Float32Array(it.discriminatorLayout.total);
      const r = await it.run(it.generatorLayout.views(it.generatorLayout.pack(g)), it.discriminatorLayout.views(it.discriminatorLayout.pack(d.weights)), d.sn, batch, gG, dG, { usm, generatorStep: true });
      const out = new Map<string, HostTensor>(Object.entries(r.tensors));
      for (const [k, v] of Object.entries(r.logs)) out.set(k, f32([1], [v]));
      for (const [tag, buf] of Object.entries(r.sn)) for (const [c, s] of buf) out.set(`sn.${c}.u_${tag}`, f32([s.u.length], s.u)).set(`sn.${c}.v_${tag}`, f32([s.v.length], s.v));
      for (const [k, v] of it.generatorLayout.views(gG)) out.set(`g.${k}`, v);
      for (const [k, v] of it.discriminatorLayout.views(dG)) out.set(`d.${k}`, v);
      return mismatches(out, ref).filter((m) => !m.endsWith('missing'));
    };
    assert.deepEqual(await run(plan.gan!.usm), []);
    assert.deepEqual(plan.gan!.usm, { l1: true, percep: true, gan: false });
    for (const flip of ['l1', 'percep', 'gan'] as const) {
      const bad = await run({ ...plan.gan!.usm, [flip]: !plan.gan!.usm[flip] });
      assert.ok(bad.length > 0, `flipping ${flip}_gt_usm must break the fixture`);
    }
  } finally {
    await it.release();
  }
});

test('GANLoss: the five types against their closed forms; loss_weight on the generator term only', async () => {
  const x = Float32Array.from([-3, -0.5, 0, 0.25, 2, 7]);
  const sp = (v: number) => Math.log1p(Math.exp(-Math.abs(v))) + Math.max(v, 0);
  const mean = (f: (v: number) => number) => [...x].reduce((a, v) => a + f(v), 0) / x.length;
  const real = 0.9;
  const fake = 0.1;
  const want: Record<string, (isReal: boolean, isDisc: boolean) => number> = {
    vanilla: (r) => mean((v) => sp(v) - v * (r ? real : fake)),
    lsgan: (r) => mean((v) => (v - (r ? real : fake)) ** 2),
    wgan: (r) => (r ? -mean((v) => v) : mean((v) => v)),
    wgan_softplus: (r) => (r ? mean((v) => sp(-v)) : mean((v) => sp(v))),
    hinge: (r, d) => (d ? (r ? mean((v) => Math.max(0, 1 - v)) : mean((v) => Math.max(0, 1 + v))) : -mean((v) => v)),
  };
  for (const type of GAN_TYPES) {
    const g = new Graph('ganloss');
    const p = g.input('p', [1, 1, 2, 3]);
    const cases = [[true, true], [false, true], [true, false]] as const;
    cases.forEach(([r, d], i) => g.output(ganLoss(p, r, d, { ganType: type, realLabel: real, fakeLabel: fake, weight: 0.5 }), `o${i}`));
    const s = await compile(g, { params: 'initializers' }, { threads: 1 });
    const out = await s.run({ p: f32([1, 1, 2, 3], x) });
    await s.release();
    cases.forEach(([r, d], i) => {
      const v = (out[`o${i}`]!.data as Float32Array)[0]!;
      const w = want[type]!(r, d) * (d ? 1 : 0.5);
      assert.ok(Math.abs(v - w) < 1e-5, `${type} real=${r} disc=${d}: ${v} vs ${w}`);
    });
  }
});

/** VGG19's first block on the host in float64: conv1_1, relu1_1, conv1_2, relu1_2, pool1. */
function hostVgg(x: Float32Array, n: number, h: number, w: number, weights: TensorMap): Map<string, { c: number; h: number; w: number; d: Float64Array }> {
  const conv = (inp: Float64Array, cin: number, wt: HostTensor, b: HostTensor) => {
    const cout = wt.shape[0]!;
    const out = new Float64Array(n * cout * h * w);
    const W = wt.data as Float32Array;
    const B = b.data as Float32Array;
    for (let i = 0; i < n; i++)
      for (let o = 0; o < cout; o++)
        for (let y = 0; y < h; y++)
          for (let xx = 0; xx < w; xx++) {
            let s = B[o]!;
            for (let c = 0; c < cin; c++)
              for (let ky = 0; ky < 3; ky++)
                for (let kx = 0; kx < 3; kx++) {
                  const yy = y + ky - 1;
                  const xk = xx + kx - 1;
                  if (yy < 0 || yy >= h || xk < 0 || xk >= w) continue;
                  s += W[((o * cin + c) * 3 + ky) * 3 + kx]! * inp[((i * cin + c) * h + yy) * w + xk]!;
                }
            out[((i * cout + o) * h + y) * w + xx] = s;
          }
    return out;
  };
  const norm = Float64Array.from(x, (v, i) => {
    const c = Math.floor(i / (h * w)) % 3;
    return (v - IMAGENET_MEAN[c]!) / IMAGENET_STD[c]!;
  });
  const c11 = conv(norm, 3, weights.get('features.0.weight')!, weights.get('features.0.bias')!);
  const r11 = c11.map((v) => Math.max(v, 0));
  const c12 = conv(r11, 64, weights.get('features.2.weight')!, weights.get('features.2.bias')!);
  const r12 = c12.map((v) => Math.max(v, 0));
  const pool = new Float64Array((n * 64 * h * w) / 4);
  for (let i = 0; i < n * 64; i++)
    for (let y = 0; y < h / 2; y++)
      for (let xx = 0; xx < w / 2; xx++) {
        const at = (dy: number, dx: number) => r12[(i * h + 2 * y + dy) * w + 2 * xx + dx]!;
        pool[(i * (h / 2) + y) * (w / 2) + xx] = Math.max(at(0, 0), at(0, 1), at(1, 0), at(1, 1));
      }
  return new Map([
    ['conv1_2', { c: 64, h, w, d: c12 }],
    ['relu1_2', { c: 64, h, w, d: r12 }],
    ['pool1', { c: 64, h: h / 2, w: w / 2, d: pool }],
  ]);
}

test('PerceptualLoss: before-ReLU features, l1 / l2 / fro and the Gram style term match a float64 VGG on the host', async () => {
  const vgg = readNetworkVgg();
  const n = 2;
  const h = 8;
  const w = 8;
  const rng = new Rng(5);
  const x = Float32Array.from({ length: n * 3 * h * w }, () => rng.uniform());
  const y = Float32Array.from({ length: n * 3 * h * w }, () => rng.uniform());
  const fx = hostVgg(x, n, h, w, vgg);
  const fy = hostVgg(y, n, h, w, vgg);
  const layerWeights = { conv1_2: 0.3, relu1_2: 1, pool1: 0.7 };
  for (const criterion of ['l1', 'l2', 'fro'] as const) {
    const spec: PerceptualSpec = { layerWeights, vggType: 'vgg19', useInputNorm: true, rangeNorm: false, perceptualWeight: 1.5, styleWeight: 2, criterion };
    const g = new Graph('percep');
    const a = g.input('x', [n, 3, h, w]);
    const b = g.input('y', [n, 3, h, w]);
    const p = perceptualLoss(g, a, b, spec);
    g.output(p.percep!, 'percep');
    g.output(p.style!, 'style');
    const s = await compile(g, { params: 'initializers', weights: vgg }, { threads: 2 });
    const out = await s.run({ x: f32([n, 3, h, w], x), y: f32([n, 3, h, w], y) });
    await s.release();
    const crit = (u: Float64Array, v: Float64Array) => {
      let acc = 0;
      for (let i = 0; i < u.length; i++) acc += criterion === 'l1' ? Math.abs(u[i]! - v[i]!) : (u[i]! - v[i]!) ** 2;
      return criterion === 'fro' ? Math.sqrt(acc) : acc / u.length;
    };
    const gram = (f: { c: number; h: number; w: number; d: Float64Array }) => {
      const hw = f.h * f.w;
      const out2 = new Float64Array(n * f.c * f.c);
      for (let i = 0; i < n; i++)
        for (let p1 = 0; p1 < f.c; p1++)
          for (let q = 0; q < f.c; q++) {
            let s2 = 0;
            for (let k = 0; k < hw; k++) s2 += f.d[(i * f.c + p1) * hw + k]! * f.d[(i * f.c + q) * hw + k]!;
            out2[(i * f.c + p1) * f.c + q] = s2 / (f.c * hw);
          }
      return out2;
    };
    let percep = 0;
    let style = 0;
    for (const [k, wk] of Object.entries(layerWeights)) {
      percep += wk * crit(fx.get(k)!.d, fy.get(k)!.d);
      style += wk * crit(gram(fx.get(k)!), gram(fy.get(k)!));
    }
    const got = (k: string) => (out[k]!.data as Float32Array)[0]!;
    assert.ok(Math.abs(got('percep') - 1.5 * percep) <= 1e-5 * Math.abs(percep) + 1e-6, `${criterion} percep ${got('percep')} vs ${1.5 * percep}`);
    assert.ok(Math.abs(got('style') - 2 * style) <= 1e-4 * Math.abs(style) + 1e-7, `${criterion} style ${got('style')} vs ${2 * style}`);
  }
});

/** The fixture's VGG19 features.0 and .2 (the first block). */
function readNetworkVgg(): TensorMap {
  const sd = loadNetworkStateDict(synthWeights('gan_x4/vgg19.manifest.json', { format: 'legacy' }), 'params');
  return new Map([...sd].filter(([k]) => k === 'features.0.weight' || k === 'features.0.bias' || k === 'features.2.weight' || k === 'features.2.bias'));
}

test('VGG19 weights are found where BasicSR and torchvision look; missing, the error names the file and both places', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'diffir-vgg-'));
  const home = mkdtempSync(join(tmpdir(), 'diffir-torch-'));
  const env = { TORCH_HOME: home };
  const [local, cache] = vggSearchPaths(cwd, env);
  assert.equal(local, join(cwd, 'experiments/pretrained_models/vgg19-dcbb9e9d.pth'));
  assert.equal(cache, join(home, 'hub/checkpoints/vgg19-dcbb9e9d.pth'));
  assert.throws(
    () => findVggWeights(null, cwd, env),
    (e: Error) => !e.message.includes('\n') && e.message.includes('vgg19-dcbb9e9d.pth') && e.message.includes(local!) && e.message.includes(cache!) && e.message.includes('download.pytorch.org'),
  );
  mkdirSync(dirname(cache!), { recursive: true });
  copyFileSync(join(F, 'net_d.pth'), cache!);
  assert.equal(findVggWeights(null, cwd, env), cache);
  mkdirSync(dirname(local!), { recursive: true });
  copyFileSync(join(F, 'net_d.pth'), local!);
  assert.equal(findVggWeights(null, cwd, env), local, 'the working directory comes first, as in BasicSR');
  assert.throws(() => findVggWeights(join(cwd, 'nope.pth'), cwd, env), /vgg_weights: .*nope\.pth does not exist/);
  assert.deepEqual(VGG_LAYER_NAMES.vgg19.indexOf('conv5_4'), 34);
});

test('UNetDiscriminatorSN state dict: the keys, order and shapes of the official net_d (weight_orig, weight_u, weight_v)', () => {
  const sd = loadNetworkStateDict(join(F, 'net_d.pth'), 'params');
  const ours = discriminatorStateShapes({ numInCh: 3, numFeat: 8, skipConnection: true });
  assert.deepEqual([...ours.keys()], [...sd.keys()]);
  for (const [k, s] of ours) assert.deepEqual(sd.get(k)!.shape, s, k);
});

test('*_gt_usm flags follow `is False`: only a literal false selects the plain GT', () => {
  assert.deepEqual(usmTargets(false, 0, null), { l1: false, percep: true, gan: true });
  assert.deepEqual(usmTargets(true, undefined, 'False'), { l1: true, percep: true, gan: true });
  const base = join(root, 'options/DiffIR-RealSR/train_DiffIRS2_GAN_x4_V2.yml');
  const plan = resolveOptions(readOptions(base, ['l1_gt_usm=0', 'percep_gt_usm=~', 'gan_gt_usm=false']), { cwd: '/data' });
  assert.deepEqual(plan.gan!.usm, { l1: true, percep: true, gan: false });
});
