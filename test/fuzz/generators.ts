/**
 * Structure-aware generators of hostile inputs for the fuzzing harness. Each case is a pure
 * function of (kind, seed, index), so any result can be rebuilt from its numbers alone.
 *
 * - `pth-zip` / `pth-legacy`: torch checkpoints (zip ≥ 1.6, legacy < 1.6) whose pickle is drawn
 *   from a grammar of the opcodes and globals torch emits (tensors with random offsets, sizes,
 *   strides and storage views, containers, calls of every allowed global, forbidden globals, memo
 *   references valid or not), sometimes with an amplification loop, then containers with lying
 *   sizes, DEFLATE entries, and byte-level damage;
 * - `safetensors`: headers with random dtypes, shapes, offsets (overlapping, empty, past the
 *   end), hostile names, JSON nesting, then byte-level damage;
 * - `image`: small PNG / JPEG / WebP / TIFF / GIF files from the encoder, then truncated, with
 *   headers claiming other sizes, or damaged.
 */
import sharp from 'sharp';
import { Rng } from '../../src/random.js';
import { crc32 } from '../../src/fs/crc32.js';
import { OP, cat, deflateZip, enc, le, legacyCheckpoint, safetensorsFile, type Part } from '../helpers/pickles.js';

/** What a case exercises. */
export type FuzzKind = 'pth-zip' | 'pth-legacy' | 'safetensors' | 'image';
export const FUZZ_KINDS: readonly FuzzKind[] = ['pth-zip', 'pth-legacy', 'safetensors', 'image'];

/** One generated input. */
export interface FuzzCase {
  readonly kind: FuzzKind;
  /** What the generator did, for reports (e.g. `amplify:torch.Size`, `truncate`). */
  readonly recipe: string;
  readonly bytes: Uint8Array;
}

/** The generator for case `index` of `seed`. */
export function caseRng(kind: FuzzKind, seed: number, index: number): Rng {
  return new Rng((Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b) ^ FUZZ_KINDS.indexOf(kind)) >>> 0);
}

const pick = <T>(r: Rng, xs: readonly T[]): T => xs[r.int(xs.length)]!;
const chance = (r: Rng, p: number): boolean => r.uniform() < p;

/** Names that try to reach the terminal (escapes, carriage returns, bidi overrides) or are absurdly long. */
const HOSTILE_NAMES = ['w\u001b[2J\u001b[31mred', 'a\rOVERWRITTEN', '\u202eexe.pth', 'x\u2066y\u2069', 'z'.repeat(5000), 'nul\u0000byte', '\ud800lone', 'ok.weight'];

function name(r: Rng): string {
  return chance(r, 0.15) ? pick(r, HOSTILE_NAMES) : pick(r, ['weight', 'bias', 'conv.weight', 'params_ema', 'params', 'state_dict', 'a', 'b', 'norm.bias']);
}

/** Integers that break naive size arithmetic. */
function wildInt(r: Rng): number {
  return pick(r, [0, 1, 2, 3, 4, 7, 16, 255, 256, 65535, 2 ** 31 - 1, -1, -(2 ** 31), 1e6, 2 ** 30, 123456789]);
}

const STORAGE_CLASSES = ['FloatStorage', 'HalfStorage', 'DoubleStorage', 'BFloat16Storage', 'LongStorage', 'IntStorage', 'ShortStorage', 'CharStorage', 'ByteStorage', 'BoolStorage', 'UntypedStorage', 'NotAStorage'];
const ELEMENT_SIZE: Record<string, number> = { FloatStorage: 4, HalfStorage: 2, DoubleStorage: 8, BFloat16Storage: 2, LongStorage: 8, IntStorage: 4, ShortStorage: 2, CharStorage: 1, ByteStorage: 1, BoolStorage: 1, UntypedStorage: 1, NotAStorage: 1 };

/** A pickle program drawn from the grammar, and the storages it refers to. */
class PickleGen {
  readonly storages = new Map<string, { cls: string; numel: number }>();
  private memo = 0;
  readonly recipe: string[] = [];

  constructor(
    private readonly r: Rng,
    private readonly legacy: boolean,
  ) {}

  private put(): Part {
    return OP.put(this.memo++);
  }

  private get(): Part {
    const r = this.r;
    return OP.get(this.memo > 0 && chance(r, 0.9) ? r.int(this.memo) : r.int(300));
  }

  private intOp(v: number): Part {
    if (v >= 0 && v < 256) return [0x4b, v];
    if (v >= 0 && v < 65536) return [0x4d, ...le(v, 2)];
    if (v >= -(2 ** 31) && v < 2 ** 31) return OP.int(v);
    const bytes: number[] = [];
    let x = BigInt(v);
    for (let i = 0; i < 8; i++, x >>= 8n) bytes.push(Number(x & 0xffn));
    return [0x8a, 8, ...bytes];
  }

  private tensor(): Part {
    const r = this.r;
    const dims = r.int(4);
    const size = Array.from({ length: dims }, () => (chance(r, 0.9) ? r.int(5) : wildInt(r)));
    const contiguous = chance(r, 0.6);
    const stride = size.map((_, d) => (contiguous ? size.slice(d + 1).reduce((a, b) => a * b, 1) : chance(r, 0.8) ? r.int(6) : wildInt(r)));
    if (chance(r, 0.05)) stride.push(1);
    const need = size.reduce((a, b) => a * b, 1);
    const cls = chance(r, 0.9) ? pick(r, STORAGE_CLASSES.slice(0, 6)) : pick(r, STORAGE_CLASSES);
    let key: string;
    if (this.storages.size > 0 && chance(r, 0.3)) key = pick(r, [...this.storages.keys()]);
    else key = chance(r, 0.05) ? pick(r, HOSTILE_NAMES) : String(this.storages.size);
    const numel = chance(r, 0.85) ? Math.max(need, 1) + r.int(3) : wildInt(r);
    if (!this.storages.has(key)) this.storages.set(key, { cls, numel });
    const offset = chance(r, 0.85) ? r.int(2) : wildInt(r);
    const view: Part = this.legacy && chance(r, 0.2) ? [OP.str(`v${r.int(9)}`), this.intOp(r.int(3)), this.intOp(r.int(8)), OP.tuple3] : [];
    const kind = r.int(10);
    const storageOps: Part = [OP.mark, OP.str('storage'), OP.global('torch', cls), OP.str(key), OP.str('cpu'), this.intOp(numel), view, OP.tuple, OP.persid];
    const sizeOps: Part = [OP.mark, size.map((v) => this.intOp(v)), OP.tuple];
    const strideOps: Part = [OP.mark, stride.map((v) => this.intOp(v)), OP.tuple];
    const hooks: Part = [OP.global('collections', 'OrderedDict'), OP.emptyTuple, OP.reduce];
    if (kind === 0) {
      this.recipe.push('rebuild_v3');
      return [OP.global('torch._utils', '_rebuild_tensor_v3'), OP.mark, storageOps, this.intOp(offset), sizeOps, strideOps, OP.newFalse, hooks, OP.global('torch', pick(r, ['float32', 'float16', 'int8', 'int64', 'bool'])), OP.tuple, OP.reduce];
    }
    const v2: Part = [OP.global('torch._utils', '_rebuild_tensor_v2'), OP.mark, storageOps, this.intOp(offset), sizeOps, strideOps, OP.newFalse, hooks, OP.tuple, OP.reduce];
    if (kind === 1) return [OP.global('torch._utils', '_rebuild_parameter'), v2, OP.newTrue, hooks, OP.tuple3, OP.reduce];
    return v2;
  }

  value(depth: number): Part {
    const r = this.r;
    const n = depth > 4 ? 6 : 15;
    switch (r.int(n)) {
      case 0:
        return this.intOp(wildInt(r));
      case 1:
        return chance(r, 0.5) ? OP.str(name(r)) : OP.sstr(name(r).slice(0, 255));
      case 2:
        return pick(r, [OP.none, OP.newTrue, OP.newFalse, [0x47, 0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18]]);
      case 3:
      case 4:
      case 5:
        return [this.tensor(), this.put()];
      case 6:
        return [0x43, 4, 1, 2, 3, 4];
      case 7: {
        const k = r.int(4);
        return [OP.emptyList, this.put(), OP.mark, Array.from({ length: k }, () => this.value(depth + 1)), OP.appends];
      }
      case 8:
      case 9: {
        const k = r.int(4);
        return [OP.global('collections', 'OrderedDict'), OP.emptyTuple, OP.reduce, this.put(), OP.mark, Array.from({ length: k }, () => [OP.str(name(r)), this.value(depth + 1)]), OP.setitems];
      }
      case 10:
        return [OP.mark, Array.from({ length: r.int(4) }, () => this.value(depth + 1)), OP.tuple, this.put()];
      case 11:
        return this.get();
      case 12:
        this.recipe.push('call');
        return pick(r, [
          [OP.global('torch', 'Size'), OP.mark, this.intOp(2), this.intOp(3), OP.tuple, OP.tuple1, OP.reduce],
          [OP.global('torch', 'device'), OP.str('cpu'), OP.tuple1, OP.reduce],
          [OP.global('_codecs', 'encode'), OP.str('abc\u00ff'), OP.str('latin1'), OP.tuple2, OP.reduce],
          [OP.global('collections', 'OrderedDict'), OP.emptyList, OP.tuple1, OP.reduce],
        ]);
      case 13:
        this.recipe.push('forbidden');
        return [OP.global(pick(r, ['os', 'builtins', 'subprocess', 'torch']), pick(r, ['system', 'eval', 'Popen', 'load'])), OP.str('id'), OP.tuple1, OP.reduce];
      default:
        return this.amplify();
    }
  }

  /** A memoised container fed many times to an allowed call that used to copy it on every call. */
  amplify(): Part {
    const r = this.r;
    const what = pick(r, ['torch.Size', 'collections.OrderedDict', '_codecs.encode', 'torch.device', 'list-append']);
    this.recipe.push(`amplify:${what}`);
    const items = 1 + r.int(chance(r, 0.5) ? 20000 : 2000);
    const calls = 1 + r.int(3000);
    const slot = this.memo;
    let build: Part;
    if (what === '_codecs.encode') build = [OP.str('\u00e9'.repeat(items)), this.put()];
    else if (what === 'collections.OrderedDict') build = [OP.emptyList, this.put(), OP.mark, Array.from({ length: items }, (_, i) => [OP.mark, OP.str(`k${i}`), [0x4b, 1], OP.tuple]), OP.appends];
    else build = [OP.emptyList, this.put(), OP.mark, new Array<number>(items).fill(0).map(() => [0x4b, 7]), OP.appends];
    const call = (): Part => {
      switch (what) {
        case '_codecs.encode':
          return [OP.global('_codecs', 'encode'), OP.get(slot), OP.str('latin1'), OP.tuple2, OP.reduce, OP.pop];
        case 'torch.device':
          return [OP.global('torch', 'device'), OP.get(slot), OP.tuple1, OP.reduce, OP.pop];
        case 'list-append':
          return [OP.get(slot), OP.get(slot), OP.append, OP.pop];
        default:
          return [what === 'torch.Size' ? OP.global('torch', 'Size') : OP.global('collections', 'OrderedDict'), OP.get(slot), OP.tuple1, OP.reduce, OP.pop];
      }
    };
    return [build, Array.from({ length: calls }, call)];
  }

  /** A whole pickle: a dict of values, usually a state dict. */
  pickle(): Uint8Array {
    const r = this.r;
    const k = 1 + r.int(5);
    const body: Part[] = [];
    for (let i = 0; i < k; i++) body.push([OP.str(name(r)), this.value(0)]);
    if (chance(r, 0.15)) body.push([OP.str('amp'), this.amplify(), OP.none]);
    return cat(OP.proto(chance(r, 0.8) ? 2 : 4), OP.emptyDict, this.put(), OP.mark, body, OP.setitems, OP.stop);
  }

  /** Raw bytes for each storage: usually the declared size, sometimes short or long. */
  storageBytes(): { key: string; numel: number; bytes: Uint8Array }[] {
    const r = this.r;
    return [...this.storages].map(([key, s]) => {
      const want = Math.max(0, Math.min(s.numel, 1 << 16)) * ELEMENT_SIZE[s.cls]!;
      const len = chance(r, 0.9) ? want : r.int(want + 16);
      const bytes = new Uint8Array(len);
      for (let i = 0; i < len; i++) bytes[i] = r.int(256);
      return { key, numel: chance(r, 0.95) ? s.numel : wildInt(r), bytes };
    });
  }
}

/** Byte-level damage: flips, truncation, insertion, repeated slices. */
function damage(r: Rng, b: Uint8Array, recipe: string[]): Uint8Array {
  const n = r.int(4);
  let out = b;
  for (let i = 0; i < n && out.length > 0; i++) {
    const op = r.int(5);
    if (op === 0) {
      recipe.push('flip');
      out = out.slice();
      for (let k = 1 + r.int(8); k > 0; k--) out[r.int(out.length)] = r.int(256);
    } else if (op === 1) {
      recipe.push('truncate');
      out = out.slice(0, r.int(out.length));
    } else if (op === 2) {
      recipe.push('insert');
      const at = r.int(out.length);
      out = cat(out.subarray(0, at), Array.from({ length: 1 + r.int(16) }, () => r.int(256)), out.subarray(at));
    } else if (op === 3) {
      recipe.push('repeat');
      const a = r.int(out.length);
      const len = Math.min(out.length - a, 1 + r.int(64));
      out = cat(out.subarray(0, a + len), out.subarray(a, a + len), out.subarray(a + len));
    } else {
      recipe.push('set-u32');
      out = out.slice();
      if (out.length >= 4) new DataView(out.buffer).setUint32(r.int(out.length - 3), pick(r, [0, 0xffffffff, 0x7fffffff, 1 << 20, 64]), true);
    }
  }
  return out;
}

function pthZip(r: Rng): FuzzCase {
  const g = new PickleGen(r, false);
  const pickle = g.pickle();
  const recipe = ['zip', ...g.recipe];
  const entries = [
    { name: 'archive/data.pkl', data: pickle, stored: !chance(r, 0.2) },
    ...(chance(r, 0.1) ? [{ name: 'archive/byteorder', data: enc.encode(pick(r, ['little', 'big', 'middle\u001b'])), stored: true }] : []),
    ...g.storageBytes().map((s) => ({ name: `archive/data/${s.key}`, data: s.bytes, stored: !chance(r, 0.2) })),
    { name: 'archive/version', data: enc.encode('3\n'), stored: true },
  ].map((e) => (!e.stored && chance(r, 0.2) ? { ...e, declaredSize: pick(r, [0, 1, e.data.length + 1, 630_000_000, 0xfffffffe, e.data.length * 1000]) } : e));
  if (entries.some((e) => !e.stored)) recipe.push('deflate');
  if (entries.some((e) => 'declaredSize' in e)) recipe.push('lying-size');
  let bytes = deflateZip(entries);
  if (chance(r, 0.4)) bytes = damage(r, bytes, recipe);
  return { kind: 'pth-zip', recipe: recipe.join(','), bytes };
}

function pthLegacy(r: Rng): FuzzCase {
  const g = new PickleGen(r, true);
  const pickle = g.pickle();
  const recipe = ['legacy', ...g.recipe];
  let bytes = legacyCheckpoint(pickle, g.storageBytes());
  if (chance(r, 0.4)) bytes = damage(r, bytes, recipe);
  return { kind: 'pth-legacy', recipe: recipe.join(','), bytes };
}

const ST_DTYPES = ['F32', 'F16', 'BF16', 'F64', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL', 'C64', 'F8_E4M3'];
const ST_SIZE: Record<string, number> = { F32: 4, F16: 2, BF16: 2, F64: 8, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1, C64: 8, F8_E4M3: 1 };

function safetensors(r: Rng): FuzzCase {
  const recipe = ['safetensors'];
  const header: Record<string, unknown> = {};
  let offset = 0;
  const k = r.int(6);
  for (let i = 0; i < k; i++) {
    const dtype = chance(r, 0.9) ? pick(r, ST_DTYPES.slice(0, 10)) : pick(r, ST_DTYPES);
    const shape = Array.from({ length: r.int(4) }, () => (chance(r, 0.9) ? r.int(5) : wildInt(r)));
    const bytes = shape.reduce((a, b) => a * b, 1) * ST_SIZE[dtype]!;
    let begin = offset;
    let end = offset + bytes;
    if (chance(r, 0.1)) {
      recipe.push('overlap');
      begin = Math.max(0, offset - 4);
      end = begin + bytes;
    }
    if (chance(r, 0.05)) [begin, end] = [wildInt(r), wildInt(r)];
    header[chance(r, 0.1) ? pick(r, HOSTILE_NAMES) : `t${i}`] = { dtype, shape, data_offsets: [begin, end] };
    offset = Math.max(offset, end);
  }
  if (chance(r, 0.2)) header['__metadata__'] = chance(r, 0.8) ? { format: 'pt', [pick(r, HOSTILE_NAMES)]: pick(r, HOSTILE_NAMES) } : { n: 3 };
  let nest = 0;
  if (chance(r, 0.05)) {
    recipe.push('json-nesting');
    nest = pick(r, [5000, 100_000]);
  }
  if (chance(r, 0.05)) {
    recipe.push('many-keys');
    for (let i = 0; i < 20000; i++) header[`k${i}`] = { dtype: 'U8', shape: [0], data_offsets: [0, 0] };
  }
  const data = new Uint8Array(Math.max(0, Math.min(offset, 1 << 20) + (chance(r, 0.1) ? r.int(9) - 4 : 0)));
  // Deep nesting is spliced in as text: building it as an object would overflow JSON.stringify.
  const json = nest ? `{"__metadata__":${'['.repeat(nest)}${']'.repeat(nest)},${JSON.stringify(header).slice(1)}` : header;
  let bytes = safetensorsFile(json, data, chance(r, 0.05) ? BigInt(wildInt(r) >>> 0) : undefined);
  if (chance(r, 0.3)) bytes = damage(r, bytes, recipe);
  return { kind: 'safetensors', recipe: recipe.join(','), bytes };
}

/** Changes the size an image's header claims (PNG IHDR with its CRC fixed, JPEG SOF, GIF screen and frame, WebP VP8L). */
function claimSize(b: Uint8Array, format: string, w: number, h: number): Uint8Array {
  const out = b.slice();
  const v = new DataView(out.buffer);
  if (format === 'png' && out.length > 33) {
    v.setUint32(16, w);
    v.setUint32(20, h);
    v.setUint32(29, crc32(out.subarray(12, 29)));
  } else if (format === 'jpeg') {
    for (let i = 2; i + 9 < out.length; i++) {
      if (out[i] === 0xff && out[i + 1]! >= 0xc0 && out[i + 1]! <= 0xc3) {
        v.setUint16(i + 5, Math.min(h, 65535));
        v.setUint16(i + 7, Math.min(w, 65535));
        break;
      }
    }
  } else if (format === 'gif' && out.length > 10) {
    v.setUint16(6, Math.min(w, 65535), true);
    v.setUint16(8, Math.min(h, 65535), true);
  } else if (format === 'tiff' && out.length > 8) {
    out[8] ^= 0xff;
  }
  return out;
}

async function image(r: Rng): Promise<FuzzCase> {
  const format = pick(r, ['png', 'jpeg', 'webp', 'tiff', 'gif'] as const);
  const recipe = ['image', format];
  const w = 1 + r.int(48);
  const h = 1 + r.int(48);
  const channels = pick(r, [1, 2, 3, 4] as const);
  const px = new Uint8Array(w * h * channels);
  for (let i = 0; i < px.length; i++) px[i] = r.int(256);
  let s = sharp(px, { raw: { width: w, height: h, channels } });
  s = format === 'png' ? s.png({ bitdepth: chance(r, 0.2) ? 16 : 8 } as never) : format === 'jpeg' ? s.jpeg({ progressive: chance(r, 0.3) }) : format === 'webp' ? s.webp() : format === 'tiff' ? s.tiff() : s.gif();
  let bytes: Uint8Array = new Uint8Array(await s.toBuffer());
  if (chance(r, 0.35)) {
    recipe.push('claim-size');
    const [cw, ch] = pick(r, [[w, 65500], [65500, 65500], [10000, 10000], [10000, 9999], [1, 1], [w * 2, h * 2], [0, h], [100000, 1000]] as const);
    bytes = claimSize(bytes, format, cw, ch);
  }
  if (chance(r, 0.25)) {
    recipe.push('truncate-tail');
    bytes = bytes.slice(0, Math.max(1, bytes.length - 1 - r.int(Math.max(1, bytes.length >> 1))));
  }
  if (chance(r, 0.3)) bytes = damage(r, bytes, recipe);
  return { kind: 'image', recipe: recipe.join(','), bytes };
}

/** Generates case `index` of `seed` for `kind`. */
export async function generate(kind: FuzzKind, seed: number, index: number): Promise<FuzzCase> {
  const r = caseRng(kind, seed, index);
  switch (kind) {
    case 'pth-zip':
      return pthZip(r);
    case 'pth-legacy':
      return pthLegacy(r);
    case 'safetensors':
      return safetensors(r);
    case 'image':
      return image(r);
  }
}
