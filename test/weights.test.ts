import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateRawSync } from 'node:zlib';
import { OP, cat, enc, f32bytes, le, dictPickle, safetensorsFile, tensorOps, torchZip, type Part } from './helpers/pickles.js';
import { bf16ToFloat, f32, floatToHalf, halfToFloat } from '../src/tensor.js';
import type { HostTensor, TensorMap } from '../src/tensor.js';
import { concatChunks, encodeZip, openZip } from '../src/weights/zip.js';
import { PthDtype, PthOpaque, unpickle } from '../src/weights/pickle.js';
import { encodeTorchPickle } from '../src/weights/pickle-writer.js';
import type { PthDict, PthValue } from '../src/weights/pickle.js';
import { encodePth, loadPth, writePth } from '../src/weights/pth.js';
import { encodeSafetensors, readSafetensors, readSafetensorsWithMetadata, writeSafetensors } from '../src/weights/safetensors.js';
import { diffStateDict, extractStateDict, loadStateDict, strictMatch } from '../src/weights/statedict.js';

// dist/test/weights.test.js → repo root is two levels up; fixtures live beside the repo.
const FIXTURES = fileURLToPath(new URL('../../../shared/fixtures/', import.meta.url));
const FIXTURE_NAMES = ['realsr_x4', 'realsr_x2', 'realsr_x1', 'deblur', 'inpaint'].filter((n) => existsSync(join(FIXTURES, n, 's1.pth')));
const TMP = mkdtempSync(join(tmpdir(), 'diffir-weights-'));
after(() => rmSync(TMP, { recursive: true, force: true }));

/** Asserts `fn` throws an Error whose message is one line and matches `re`. */
function throwsOneLine(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof Error, 'not an Error');
    assert.ok(!e.message.includes('\n'), `multi-line message: ${JSON.stringify(e.message)}`);
    assert.match(e.message, re);
    return true;
  });
}

function asDict(v: PthValue | undefined): PthDict {
  assert.ok(v instanceof Map, 'expected a dict');
  return v;
}

function asTensor(v: PthValue | undefined): HostTensor {
  assert.ok(v !== undefined && typeof v === 'object' && v !== null && 'data' in v && 'shape' in v, 'expected a tensor');
  return v as HostTensor;
}

function values(t: HostTensor): (number | bigint)[] {
  return Array.from(t.data as ArrayLike<number | bigint>);
}

function sameTensor(a: HostTensor, b: HostTensor, what: string): void {
  assert.equal(a.dtype, b.dtype, `${what}: dtype`);
  assert.deepEqual([...a.shape], [...b.shape], `${what}: shape`);
  assert.deepEqual(values(a), values(b), `${what}: data`);
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

// ---------------------------------------------------------------------------------------------

describe('official fixtures', () => {
  test('fixtures are present', (t) => {
    if (FIXTURE_NAMES.length === 0) t.skip(`no fixtures under ${FIXTURES}`);
    else assert.ok(FIXTURE_NAMES.length >= 1);
  });

  for (const fx of FIXTURE_NAMES) {
    test(`${fx}: s1/s2 load with sane shapes`, () => {
      const config = JSON.parse(readFileSync(join(FIXTURES, fx, 'config.json'), 'utf8')) as {
        task: string;
        scale: number;
        network: { dim: number; inp_channels?: number };
        params_also_present?: boolean;
      };
      const dim = config.network.dim;
      const inCh = config.task === 'sr' ? 3 * (4 / config.scale) ** 2 : (config.network.inp_channels ?? 3);
      for (const stage of ['s1', 's2']) {
        const path = join(FIXTURES, fx, `${stage}.pth`);
        const top = asDict(loadPth(path));
        assert.ok(top.has('params_ema'), `${stage}: no params_ema`);
        const sd = extractStateDict(top, path);
        assert.ok(sd.size > 50, `${stage}: only ${sd.size} tensors`);
        const w = sd.get('G.patch_embed.proj.weight');
        assert.ok(w, 'G.patch_embed.proj.weight missing');
        assert.deepEqual([...w.shape], [dim, inCh, 3, 3]);
        for (const [k, t] of sd) {
          assert.equal(t.dtype, 'float32', k);
          assert.equal(t.data.length, t.shape.reduce((a, b) => a * b, 1), k);
          for (const x of t.data as Float32Array) assert.ok(Number.isFinite(x), `${k} has a non-finite value`);
        }
        // loadStateDict picks the same tensors.
        const again = loadStateDict(path);
        assert.deepEqual([...again.keys()], [...sd.keys()]);
        sameTensor(again.get('G.patch_embed.proj.weight')!, w, 'loadStateDict');
      }
    });

    test(`${fx}: s2 alias keys share the values of denoise.* / condition.*`, () => {
      const sd = loadStateDict(join(FIXTURES, fx, 's2.pth'));
      let aliases = 0;
      for (const [k, t] of sd) {
        let target: string | undefined;
        if (k.startsWith('diffusion.model.')) target = `denoise.${k.slice('diffusion.model.'.length)}`;
        if (k.startsWith('diffusion.condition.')) target = `condition.${k.slice('diffusion.condition.'.length)}`;
        if (target === undefined) continue;
        const u = sd.get(target);
        assert.ok(u, `${k} has no counterpart ${target}`);
        sameTensor(t, u, k);
        assert.notEqual(t.data, u.data, 'aliases are materialised as separate arrays');
        aliases++;
      }
      assert.ok(aliases > 10, `only ${aliases} alias keys`);
      const buffers = [...sd.keys()].filter((k) => /^diffusion\.[a-z_0-9]+$/.test(k));
      assert.equal(buffers.length, 12);
      for (const k of buffers) assert.deepEqual([...sd.get(k)!.shape], [4], k);
      assert.ok(sd.has('diffusion.betas'));
    });
  }

  test('realsr_x4: params = params_ema + 0.01 for every float parameter (schedule buffers equal)', (t) => {
    if (!FIXTURE_NAMES.includes('realsr_x4')) return t.skip('fixture missing');
    for (const stage of ['s1', 's2']) {
      const path = join(FIXTURES, 'realsr_x4', `${stage}.pth`);
      const top = asDict(loadPth(path));
      const ema = extractStateDict(top, path);
      const params = extractStateDict(top, path, { key: 'params' });
      assert.deepEqual([...params.keys()].sort(), [...ema.keys()].sort());
      let checked = 0;
      for (const [k, e] of ema) {
        const p = params.get(k)!;
        assert.equal(e.dtype, 'float32');
        if (/^diffusion\.[a-z_0-9]+$/.test(k)) {
          sameTensor(p, e, k); // the 12 diffusion schedule buffers are not perturbed
          continue;
        }
        const pd = p.data as Float32Array;
        (e.data as Float32Array).forEach((x, i) => {
          assert.ok(Math.abs(pd[i]! - (x + 0.01)) <= 1e-6, `${stage} ${k}[${i}]: ${pd[i]} vs ${x} + 0.01`);
        });
        checked++;
      }
      assert.ok(checked > 100);
    }
  });

  test('a fixture state dict survives writePth → loadPth bit for bit', (t) => {
    const fx = FIXTURE_NAMES[0];
    if (fx === undefined) return t.skip('fixtures missing');
    const src = join(FIXTURES, fx, 's2.pth');
    const sd = loadStateDict(src);
    const out = join(TMP, 'copy.pth');
    writePth(out, new Map<string, PthValue>([['params_ema', sd]]));
    const back = loadStateDict(out);
    assert.deepEqual([...back.keys()], [...sd.keys()]);
    for (const [k, v] of sd) sameTensor(back.get(k)!, v, k);
  });
});

describe('pth round trips', () => {
  test('writePth → loadPth keeps structure, values and dtypes', () => {
    const shared = Float32Array.from([1, 2, 3, 4, 5, 6]);
    const sd: PthDict = new Map<string, PthValue>([
      ['conv.weight', f32([2, 3, 1, 1], range(6).map((i) => i / 3 - 1))],
      ['a', { dtype: 'float32', shape: [6], data: shared }],
      ['b', { dtype: 'float32', shape: [2, 3], data: shared }],
      ['half', { dtype: 'float16', shape: [3], data: Uint16Array.from([1, -2.5, 65504].map(floatToHalf)) }],
      ['long', { dtype: 'int64', shape: [3], data: BigInt64Array.from([-(2n ** 40n), 0n, 2n ** 62n]) }],
      ['int', { dtype: 'int32', shape: [2], data: Int32Array.from([-7, 9]) }],
      ['u8', { dtype: 'uint8', shape: [2], data: Uint8Array.from([0, 255]) }],
      ['flag', { dtype: 'bool', shape: [3], data: Uint8Array.from([1, 0, 1]) }],
      ['scalar', f32([], [3.25])],
      ['empty', f32([0, 4])],
    ]);
    const top: PthDict = new Map<string, PthValue>([
      ['params_ema', sd],
      ['iter', 1234],
      ['lr', 2e-4],
      ['neg', -100000],
      ['huge', 2n ** 70n],
      ['name', 'DiffIR ✓'],
      ['list', [1, 'two', null, true, false, [2.5]]],
      ['dtype', new PthDtype('float16')],
      ['raw', Uint8Array.from([0, 128, 255])],
    ]);
    const path = join(TMP, 'round.pth');
    writePth(path, top);
    assert.deepEqual(readdirSync(TMP).filter((f) => f.endsWith('.tmp')), [], 'temporary file left behind');

    const zip = openZip(readFileSync(path), path);
    assert.equal(zip.names()[0], 'round/data.pkl');
    assert.equal(new TextDecoder().decode(zip.read('round/version')), '3\n');
    assert.equal(new TextDecoder().decode(zip.read('round/byteorder')), 'little');
    for (const e of zip.entries.values()) assert.equal(e.dataOffset % 64, 0, `${e.name} not 64-byte aligned`);
    assert.equal([...zip.entries.keys()].filter((n) => n.startsWith('round/data/')).length, 9, 'shared arrays share one storage');

    const back = asDict(loadPth(path));
    assert.deepEqual([...back.keys()], [...top.keys()]);
    const bsd = asDict(back.get('params_ema'));
    for (const [k, v] of sd) {
      const t = asTensor(v);
      const got = asTensor(bsd.get(k));
      if (t.dtype === 'float16') {
        assert.equal(got.dtype, 'float32');
        assert.deepEqual(values(got), Array.from(t.data as Uint16Array, halfToFloat));
      } else sameTensor(got, t, k);
    }
    assert.equal(back.get('iter'), 1234);
    assert.equal(back.get('lr'), 2e-4);
    assert.equal(back.get('neg'), -100000);
    assert.equal(back.get('huge'), 2n ** 70n);
    assert.equal(back.get('name'), 'DiffIR ✓');
    assert.deepEqual(back.get('list'), [1, 'two', null, true, false, [2.5]]);
    const dt = back.get('dtype');
    assert.ok(dt instanceof PthDtype && dt.name === 'float16');
    assert.deepEqual(back.get('raw'), Uint8Array.from([0, 128, 255]));
  });

  test('the written pickle uses only what torch.save emits', () => {
    const { pickle, storages } = encodeTorchPickle(new Map<string, PthValue>([['params', new Map<string, PthValue>([['w', f32([2], [1, 2])]])]]));
    const text = new TextDecoder('latin1').decode(pickle);
    assert.deepEqual([pickle[0], pickle[1]], [0x80, 2]);
    assert.ok(text.includes('ccollections\nOrderedDict\n'));
    assert.ok(text.includes('ctorch._utils\n_rebuild_tensor_v2\n'));
    assert.ok(text.includes('ctorch\nFloatStorage\n'));
    assert.equal(storages.length, 1);
    assert.deepEqual(Array.from(new Float32Array(storages[0]!.bytes.slice().buffer)), [1, 2]);
  });

  test('hand-built pickle: strides, offsets, stride 0, shared storage and dtype conversion', () => {
    const storage0 = f32bytes(range(24));
    const half = new Uint8Array(Uint16Array.from([1, -2, 0.5, 65504].map(floatToHalf)).buffer);
    const bf16 = new Uint8Array(Uint16Array.from([0x3f80, 0xc040, 0x4049]).buffer);
    const dbl = new Uint8Array(Float64Array.from([1.5, -2.25]).buffer);
    const long = new Uint8Array(BigInt64Array.from([-(2n ** 40n), 7n]).buffer);
    const chars = Uint8Array.from([0xfd, 4]);
    const bools = Uint8Array.from([0, 2, 1]);
    const pickle = dictPickle([
      ['transposed', tensorOps('FloatStorage', '0', 24, 0, [4, 3], [1, 4])],
      ['offset', tensorOps('FloatStorage', '0', 24, 5, [2, 2], [6, 2])],
      ['expanded', tensorOps('FloatStorage', '0', 24, 20, [3, 2], [0, 1])],
      ['contig', tensorOps('FloatStorage', '0', 24, 12, [3], [1])],
      ['half', tensorOps('HalfStorage', '1', 4, 0, [4], [1])],
      ['bf16', tensorOps('BFloat16Storage', '2', 3, 0, [3], [1])],
      ['double', tensorOps('DoubleStorage', '3', 2, 0, [2], [1])],
      ['long', tensorOps('LongStorage', '4', 2, 0, [2], [1])],
      ['char', tensorOps('CharStorage', '5', 2, 0, [2], [1])],
      ['bool', tensorOps('BoolStorage', '6', 3, 0, [3], [1])],
    ]);
    const bytes = torchZip(pickle, { '0': storage0, '1': half, '2': bf16, '3': dbl, '4': long, '5': chars, '6': bools });
    const d = asDict(loadPth(bytes, { name: 'hand.pth' }));
    const get = (k: string): HostTensor => asTensor(d.get(k));
    assert.deepEqual([...get('transposed').shape], [4, 3]);
    assert.deepEqual(values(get('transposed')), [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
    assert.deepEqual(values(get('offset')), [5, 7, 11, 13]);
    assert.deepEqual(values(get('expanded')), [20, 21, 20, 21, 20, 21]);
    assert.deepEqual(values(get('contig')), [12, 13, 14]);
    assert.equal(get('half').dtype, 'float32');
    assert.deepEqual(values(get('half')), [1, -2, 0.5, 65504]);
    assert.deepEqual(values(get('bf16')), [1, -3, bf16ToFloat(0x4049)]);
    assert.deepEqual(values(get('double')), [1.5, -2.25]);
    assert.equal(get('long').dtype, 'int64');
    assert.ok(get('long').data instanceof BigInt64Array);
    assert.deepEqual(values(get('long')), [-(2n ** 40n), 7n]);
    assert.equal(get('char').dtype, 'int32');
    assert.deepEqual(values(get('char')), [-3, 4]);
    assert.equal(get('bool').dtype, 'bool');
    assert.deepEqual(values(get('bool')), [0, 1, 1]);
  });

  test('big-endian storages, protocol 4 opcodes and _rebuild_parameter', () => {
    const be = new Uint8Array(8);
    new DataView(be.buffer).setFloat32(0, 1.5, false);
    new DataView(be.buffer).setFloat32(4, -3, false);
    const pickle = cat(
      OP.proto(4),
      [0x95, ...le(0, 8)], // FRAME (length ignored)
      OP.emptyDict,
      OP.memoize,
      OP.sstr('w'),
      OP.memoize,
      OP.sstr('torch._utils'),
      OP.sstr('_rebuild_parameter'),
      OP.stackGlobal,
      tensorOps('FloatStorage', '0', 2, 0, [2], [1]),
      OP.newTrue,
      OP.global('collections', 'OrderedDict'),
      OP.emptyTuple,
      OP.reduce,
      [0x87], // TUPLE3
      OP.reduce,
      OP.setitem,
      OP.stop,
    );
    const d = asDict(loadPth(torchZip(pickle, { '0': be }, { byteorder: 'big' })));
    assert.deepEqual(values(asTensor(d.get('w'))), [1.5, -3]);
  });

  test('legacy (pre-1.6) torch.save format with a storage view', () => {
    const magic = cat(OP.proto(2), [0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19], OP.stop);
    const proto = cat(OP.proto(2), [0x4d, ...le(1001, 2)], OP.stop);
    const sys = cat(OP.proto(2), OP.emptyDict, OP.str('little_endian'), OP.newTrue, OP.setitem, OP.stop);
    const view: Part = [OP.str('view1'), OP.int(2), OP.int(3), [0x87]];
    const main = dictPickle([
      ['a', tensorOps('FloatStorage', 'root', 6, 0, [2, 3], [3, 1], OP.none)],
      ['v', tensorOps('FloatStorage', 'root', 6, 1, [2], [1], view)],
      ['i', tensorOps('IntStorage', 'ints', 2, 0, [2], [1], OP.none)],
    ]);
    const keys = cat(OP.proto(2), OP.emptyList, OP.mark, OP.str('root'), OP.str('ints'), OP.appends, OP.stop);
    const data = cat([...le(6, 8)], f32bytes([0, 1, 2, 3, 4, 5]), [...le(2, 8)], new Uint8Array(Int32Array.from([-1, 9]).buffer));
    const d = asDict(loadPth(cat(magic, proto, sys, main, keys, data), { name: 'legacy.pth' }));
    assert.deepEqual(values(asTensor(d.get('a'))), [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(values(asTensor(d.get('v'))), [3, 4]); // view starts at element 2, tensor offset 1
    assert.deepEqual(values(asTensor(d.get('i'))), [-1, 9]);
  });
});

describe('zip container', () => {
  test('zip64 records and extra fields are read', () => {
    const chunks = encodeZip(
      [
        { name: 'x/a', data: enc.encode('hello') },
        { name: 'x/b', data: new Uint8Array(100).fill(7) },
      ],
      { forceZip64: true },
    );
    const zip = openZip(concatChunks(chunks), 'z64.zip');
    assert.equal(new TextDecoder().decode(zip.read('x/a')), 'hello');
    assert.deepEqual(zip.read('x/b'), new Uint8Array(100).fill(7));
  });

  test('DEFLATE entries are inflated', () => {
    const name = enc.encode('d/data.txt');
    const body = enc.encode('diffir '.repeat(50));
    const comp = deflateRawSync(body);
    const crc = crc32Of(body);
    const local = cat([0x50, 0x4b, 3, 4], le(20, 2), le(0, 2), le(8, 2), le(0, 4), le(crc, 4), le(comp.length, 4), le(body.length, 4), le(name.length, 2), le(0, 2), name);
    const cen = cat([0x50, 0x4b, 1, 2], le(20, 2), le(20, 2), le(0, 2), le(8, 2), le(0, 4), le(crc, 4), le(comp.length, 4), le(body.length, 4), le(name.length, 2), le(0, 6), le(0, 6), le(0, 4), name);
    const eocd = cat([0x50, 0x4b, 5, 6], le(0, 4), le(1, 2), le(1, 2), le(cen.length, 4), le(local.length + comp.length, 4), le(0, 2));
    const zip = openZip(cat(local, comp, cen, eocd), 'deflate.zip');
    assert.deepEqual(zip.read('d/data.txt'), body);
  });
});

function crc32Of(b: Uint8Array): number {
  let c = ~0 >>> 0;
  for (const x of b) {
    c ^= x;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return ~c >>> 0;
}

describe('safetensors', () => {
  test('writeSafetensors → readSafetensors is exact, with metadata', () => {
    const m: TensorMap = new Map<string, HostTensor>([
      ['w', f32([2, 2], [1.5, -2, 3e-8, 1e30])],
      ['idx', { dtype: 'int64', shape: [2], data: BigInt64Array.from([-5n, 2n ** 50n]) }],
      ['i32', { dtype: 'int32', shape: [1], data: Int32Array.from([-3]) }],
      ['mask', { dtype: 'bool', shape: [2], data: Uint8Array.from([1, 0]) }],
      ['img', { dtype: 'uint8', shape: [3], data: Uint8Array.from([0, 7, 255]) }],
      ['h', { dtype: 'float16', shape: [2], data: Uint16Array.from([floatToHalf(0.5), floatToHalf(-4)]) }],
      ['s', f32([], [7])],
      ['e', f32([0])],
    ]);
    const path = join(TMP, 'round.safetensors');
    writeSafetensors(path, m, { format: 'pt', note: 'x' });
    const bytes = readFileSync(path);
    const headerLen = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    assert.equal(headerLen % 8, 0, 'header is padded to 8 bytes');
    const { tensors, metadata } = readSafetensorsWithMetadata(path);
    assert.deepEqual(Object.fromEntries(metadata), { format: 'pt', note: 'x' });
    assert.deepEqual([...tensors.keys()].sort(), [...m.keys()].sort());
    for (const [k, t] of m) {
      const got = tensors.get(k)!;
      if (t.dtype === 'float16') assert.deepEqual(values(got), [0.5, -4]);
      else sameTensor(got, t, k);
    }
  });

  test('F16 / BF16 / F64 / I16 / I8 become float32 / int32', () => {
    const header = {
      a: { dtype: 'F16', shape: [2], data_offsets: [0, 4] },
      b: { dtype: 'BF16', shape: [2], data_offsets: [4, 8] },
      c: { dtype: 'F64', shape: [1], data_offsets: [8, 16] },
      d: { dtype: 'I16', shape: [2], data_offsets: [16, 20] },
      e: { dtype: 'I8', shape: [2], data_offsets: [20, 22] },
    };
    const data = cat(
      new Uint8Array(Uint16Array.from([floatToHalf(1.25), floatToHalf(-2)]).buffer),
      new Uint8Array(Uint16Array.from([0x3f80, 0xc000]).buffer),
      new Uint8Array(Float64Array.from([0.1]).buffer),
      new Uint8Array(Int16Array.from([-300, 300]).buffer),
      Uint8Array.from([0xff, 5]),
    );
    const m = readSafetensors(safetensorsFile(header, data));
    assert.deepEqual(values(m.get('a')!), [1.25, -2]);
    assert.deepEqual(values(m.get('b')!), [1, -2]);
    assert.deepEqual(values(m.get('c')!), [Math.fround(0.1)]);
    assert.equal(m.get('d')!.dtype, 'int32');
    assert.deepEqual(values(m.get('d')!), [-300, 300]);
    assert.deepEqual(values(m.get('e')!), [-1, 5]);
  });

  test('the fixture io.safetensors reads', (t) => {
    const fx = FIXTURE_NAMES[0];
    if (fx === undefined) return t.skip('fixtures missing');
    const m = readSafetensors(join(FIXTURES, fx, 'io.safetensors'));
    assert.ok(m.has('input') && m.has('s1_out'));
    const bytes = encodeSafetensors(m);
    const again = readSafetensors(bytes);
    for (const [k, v] of m) sameTensor(again.get(k)!, v, k);
  });
});

describe('hostile files', () => {
  const marker = join(TMP, 'pwned');
  const goodZip = (): Uint8Array => torchZip(dictPickle([['w', tensorOps('FloatStorage', '0', 4, 0, [4], [1])]]), { '0': f32bytes([1, 2, 3, 4]) });

  test('truncated checkpoints', (t) => {
    const full = FIXTURE_NAMES[0] ? readFileSync(join(FIXTURES, FIXTURE_NAMES[0], 's1.pth')) : goodZip();
    if (!FIXTURE_NAMES[0]) t.diagnostic('using a generated checkpoint');
    throwsOneLine(() => loadPth(full.subarray(0, Math.floor(full.length / 2)), { name: 'half.pth' }), /^half\.pth: truncated zip archive/);
    throwsOneLine(() => loadPth(full.subarray(0, full.length - 10), { name: 'cut.pth' }), /^cut\.pth: .*(truncated|corrupt)/);
    throwsOneLine(() => loadPth(new Uint8Array(0), { name: 'empty.pth' }), /empty\.pth: not a zip archive/);
  });

  test('wrong magic: random bytes and a PNG', () => {
    let seed = 12345;
    const random = Uint8Array.from({ length: 4096 }, () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 24) & 0xff);
    throwsOneLine(() => loadPth(random, { name: 'random.pth' }), /^random\.pth: not a zip archive \(starts with/);
    const png = cat([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], new Uint8Array(64));
    throwsOneLine(() => loadPth(png, { name: 'image.png' }), /^image\.png: not a zip archive \(starts with 89 50 4e 47/);
    const path = join(TMP, 'notweights.pth');
    writeFileSync(path, png);
    throwsOneLine(() => loadStateDict(path), /notweights\.pth: not a zip archive/);
    throwsOneLine(() => readSafetensors(png, 'image.png'), /image\.png: safetensors header length \d+ is absurd/);
  });

  test('pickles asking for os.system or builtins.eval are refused and nothing runs', () => {
    const osSystem = cat(OP.proto(2), OP.global('os', 'system'), OP.str(`touch ${marker}`), OP.tuple1, OP.reduce, OP.stop);
    throwsOneLine(() => unpickle(osSystem, { name: 'evil.pth' }), /^evil\.pth: refusing to load global 'os\.system' \(only tensors and dicts are allowed\)$/);
    throwsOneLine(() => loadPth(torchZip(osSystem, {}), { name: 'evil.pth' }), /refusing to load global 'os\.system'/);
    const evalP = cat(OP.proto(4), OP.sstr('builtins'), OP.sstr('eval'), OP.stackGlobal, OP.sstr(`require('fs').writeFileSync('${marker}', '')`), OP.tuple1, OP.reduce, OP.stop);
    throwsOneLine(() => loadPth(torchZip(evalP, {}), { name: 'eval.pth' }), /^eval\.pth: refusing to load global 'builtins\.eval'/);
    // Hidden inside an otherwise valid state dict, after some tensors.
    const sneaky = dictPickle([
      ['w', tensorOps('FloatStorage', '0', 4, 0, [4], [1])],
      ['x', [OP.global('subprocess', 'Popen'), OP.str('id'), OP.tuple1, OP.reduce]],
    ]);
    throwsOneLine(() => loadPth(torchZip(sneaky, { '0': f32bytes([1, 2, 3, 4]) }), { name: 's.pth' }), /refusing to load global 'subprocess\.Popen'/);
    // Opt-in placeholders record the call without performing it.
    const inert = unpickle(osSystem, { name: 'evil.pth', allowOpaqueGlobals: true });
    assert.ok(inert instanceof PthOpaque);
    assert.equal(inert.global, 'os.system');
    assert.equal(existsSync(marker), false, 'the payload ran');
  });

  test('tensors larger than their storage', () => {
    const tooBig = dictPickle([['w', tensorOps('FloatStorage', '0', 4, 0, [10], [1])]]);
    throwsOneLine(() => loadPth(torchZip(tooBig, { '0': f32bytes([1, 2, 3, 4]) }), { name: 'big.pth' }), /^big\.pth: tensor of size \[10\].*needs 10 elements but the storage holds only 4/);
    const badStride = dictPickle([['w', tensorOps('FloatStorage', '0', 4, 1, [2, 2], [2, 1])]]);
    throwsOneLine(() => loadPth(torchZip(badStride, { '0': f32bytes([1, 2, 3, 4]) }), { name: 'stride.pth' }), /needs 5 elements but the storage holds only 4/);
    const lying = dictPickle([['w', tensorOps('FloatStorage', '0', 1_000_000_000, 0, [4], [1])]]);
    throwsOneLine(() => loadPth(torchZip(lying, { '0': f32bytes([1, 2, 3, 4]) }), { name: 'lie.pth' }), /^lie\.pth: storage '0' declares 1000000000 float32 elements .* but holds only 16 bytes/);
    const expanded = dictPickle([['w', tensorOps('FloatStorage', '0', 1, 0, [100000, 100000], [0, 0])]]);
    throwsOneLine(() => loadPth(torchZip(expanded, { '0': f32bytes([1]) }), { name: 'bomb.pth' }), /^bomb\.pth: tensor of size \[100000, 100000\].*would need 40000000000 bytes/);
    const missing = dictPickle([['w', tensorOps('FloatStorage', '7', 4, 0, [4], [1])]]);
    throwsOneLine(() => loadPth(torchZip(missing, {}), { name: 'm.pth' }), /^m\.pth: storage '7' is missing/);
  });

  test('malformed pickles', () => {
    throwsOneLine(() => unpickle(cat(OP.proto(2), OP.emptyDict), { name: 'p' }), /^p: pickle truncated/);
    throwsOneLine(() => unpickle(cat(OP.proto(2), [0x68, 9], OP.stop), { name: 'p' }), /memo entry 9/);
    throwsOneLine(() => unpickle(cat(OP.proto(2), [0xff], OP.stop), { name: 'p' }), /unsupported pickle opcode 0xff/);
    throwsOneLine(() => unpickle(cat(OP.proto(2), OP.str('x').slice(0, 3)), { name: 'p' }), /truncated/);
    throwsOneLine(() => unpickle(cat(OP.proto(2), [0x58, 0xff, 0xff, 0xff, 0x7f], OP.stop), { name: 'p' }), /truncated/);
    throwsOneLine(() => unpickle(cat(OP.proto(2), new Array<number>(70000).fill(OP.mark), OP.stop), { name: 'p' }), /nests too deeply/);
    throwsOneLine(() => unpickle(cat(OP.proto(2), OP.stop), { name: 'p' }), /stack underflow/);
  });

  test('zip entries pointing past the end of the file, and corrupt data', () => {
    const good = goodZip();
    const cdAt = (b: Uint8Array): number => {
      for (let i = 0; i + 4 <= b.length; i++) if (b[i] === 0x50 && b[i + 1] === 0x4b && b[i + 2] === 1 && b[i + 3] === 2) return i;
      throw new Error('no central directory');
    };
    const offsetPastEnd = good.slice();
    new DataView(offsetPastEnd.buffer).setUint32(cdAt(offsetPastEnd) + 42, 0x7fff0000, true);
    throwsOneLine(() => loadPth(offsetPastEnd, { name: 'off.pth' }), /^off\.pth: zip entry 'archive\/data\.pkl' header offset 2147418112 is past the end of the file/);
    const sizePastEnd = good.slice();
    const v = new DataView(sizePastEnd.buffer);
    v.setUint32(cdAt(sizePastEnd) + 20, 50_000_000, true);
    v.setUint32(cdAt(sizePastEnd) + 24, 50_000_000, true);
    throwsOneLine(() => loadPth(sizePastEnd, { name: 'size.pth' }), /^size\.pth: zip entry 'archive\/data\.pkl' data \(50000000 bytes at offset \d+\) extends past the end of the file/);
    const cdPastEnd = good.slice();
    const eocd = cdPastEnd.length - 22;
    new DataView(cdPastEnd.buffer).setUint32(eocd + 16, 0x10000000, true);
    throwsOneLine(() => loadPth(cdPastEnd, { name: 'cd.pth' }), /^cd\.pth: truncated or corrupt zip archive \(central directory/);
    const flipped = good.slice();
    const zip = openZip(good, 'x');
    flipped[zip.entries.get('archive/data/0')!.dataOffset] ^= 0xff;
    throwsOneLine(() => loadPth(flipped, { name: 'crc.pth' }), /^crc\.pth: zip entry 'archive\/data\/0' is corrupt \(CRC-32/);
    assert.equal(loadPth(torchZip(cat(OP.proto(2), OP.none, OP.stop), {})), null);
    const noPickle = concatChunks(encodeZip([{ name: 'a/b.txt', data: enc.encode('hi') }]));
    throwsOneLine(() => loadPth(noPickle, { name: 'plain.zip' }), /^plain\.zip: zip archive has no data\.pkl record/);
  });

  test('safetensors: absurd header length, offsets past the end, overlaps, bad sizes', () => {
    const data = f32bytes([1, 2, 3, 4]);
    const ok = { w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } };
    assert.deepEqual(values(readSafetensors(safetensorsFile(ok, data)).get('w')!), [1, 2, 3, 4]);
    throwsOneLine(() => readSafetensors(safetensorsFile(ok, data, 2n ** 60n), 'huge.safetensors'), /^huge\.safetensors: safetensors header length 1152921504606846976 is absurd/);
    throwsOneLine(() => readSafetensors(safetensorsFile(ok, data, 5000n), 'long.safetensors'), /^long\.safetensors: safetensors header length 5000 exceeds the file/);
    throwsOneLine(() => readSafetensors(Uint8Array.from([1, 2, 3]), 'tiny.safetensors'), /^tiny\.safetensors: truncated safetensors file/);
    const past = { w: { dtype: 'F32', shape: [4], data_offsets: [16, 32] } };
    throwsOneLine(() => readSafetensors(safetensorsFile(past, data), 'past.safetensors'), /^past\.safetensors: tensor 'w' data \[16, 32\) lies past the end of the data \(16 bytes\)/);
    const wrongSize = { w: { dtype: 'F32', shape: [5], data_offsets: [0, 16] } };
    throwsOneLine(() => readSafetensors(safetensorsFile(wrongSize, data), 'sz.safetensors'), /tensor 'w' of shape \[5\] F32 needs 20 bytes but its data_offsets span 16/);
    const overlap = { a: { dtype: 'F32', shape: [3], data_offsets: [0, 12] }, b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } };
    throwsOneLine(() => readSafetensors(safetensorsFile(overlap, data), 'ov.safetensors'), /tensors 'a' and 'b' overlap/);
    const badDtype = { w: { dtype: 'C64', shape: [2], data_offsets: [0, 16] } };
    throwsOneLine(() => readSafetensors(safetensorsFile(badDtype, data), 'dt.safetensors'), /tensor 'w' has unsupported dtype "C64"/);
    throwsOneLine(() => readSafetensors(cat(le(4, 8), enc.encode('{{{{'), data), 'json.safetensors'), /^json\.safetensors: safetensors header is not valid JSON/);
  });
});

describe('state dicts', () => {
  const t1 = (): HostTensor => f32([2], [1, 2]);

  test('extractStateDict prefers params_ema, then params, then state_dict, then the dict itself', () => {
    const a = new Map<string, PthValue>([['x', t1()]]);
    const b = new Map<string, PthValue>([['y', t1()]]);
    const c = new Map<string, PthValue>([['z', t1()]]);
    assert.deepEqual([...extractStateDict(new Map<string, PthValue>([['params', b], ['params_ema', a]]), 'f').keys()], ['x']);
    assert.deepEqual([...extractStateDict(new Map<string, PthValue>([['params', b], ['state_dict', c]]), 'f').keys()], ['y']);
    assert.deepEqual([...extractStateDict(new Map<string, PthValue>([['epoch', 3], ['state_dict', c]]), 'f').keys()], ['z']);
    assert.deepEqual([...extractStateDict(a, 'f').keys()], ['x']);
    assert.deepEqual([...extractStateDict(new Map<string, PthValue>([['params', b], ['params_ema', a]]), 'f', { key: 'params' }).keys()], ['y']);
    throwsOneLine(() => extractStateDict(new Map<string, PthValue>([['epoch', 3], ['opt', new Map()]]), 'opt.pth'), /^opt\.pth: no state dict found .*'epoch', 'opt'/);
    throwsOneLine(() => extractStateDict(new Map<string, PthValue>([['state_dict', new Map<string, PthValue>([['w', 'text']])]]), 'bad.pth'), /^bad\.pth: 'state_dict' entry 'w' is not a tensor/);
    throwsOneLine(() => extractStateDict(a, 'k.pth', { key: 'nope' }), /^k\.pth: checkpoint has no key 'nope'/);
    throwsOneLine(() => extractStateDict(null, 'none.pth'), /^none\.pth: checkpoint holds no dict/);
  });

  test('module. and generator. prefixes are removed', () => {
    const dp = new Map<string, PthValue>([
      ['module.G.w', t1()],
      ['module.E.b', t1()],
    ]);
    assert.deepEqual([...extractStateDict(new Map<string, PthValue>([['params', dp]]), 'f').keys()], ['G.w', 'E.b']);
    const lightning = new Map<string, PthValue>([
      ['generator.G.w', t1()],
      ['generator.module.condition.b', t1()],
      ['discriminator.conv.w', t1()],
      ['loss_pl.impl.w', t1()],
    ]);
    const sd = extractStateDict(new Map<string, PthValue>([['state_dict', lightning], ['epoch', 4]]), 'inpaint.ckpt');
    assert.deepEqual([...sd.keys()], ['G.w', 'condition.b']);
    const clash = new Map<string, PthValue>([
      ['module.w', t1()],
      ['w', t1()],
    ]);
    throwsOneLine(() => extractStateDict(clash, 'c.pth'), /^c\.pth: keys collide on 'w'/);
  });

  test('loadStateDict picks the reader by extension or content', () => {
    const sd: TensorMap = new Map([['module.a', t1()]]);
    const st = join(TMP, 'w.safetensors');
    writeSafetensors(st, sd);
    assert.deepEqual([...loadStateDict(st).keys()], ['a']);
    const pth = join(TMP, 'w.pth');
    writePth(pth, new Map<string, PthValue>([['params_ema', sd]]));
    assert.deepEqual([...loadStateDict(pth).keys()], ['a']);
    const odd = join(TMP, 'weights.data');
    writeFileSync(odd, encodePth(new Map<string, PthValue>([['params', sd]])));
    assert.deepEqual([...loadStateDict(odd).keys()], ['a']);
    const odd2 = join(TMP, 'weights2.data');
    writeFileSync(odd2, encodeSafetensors(sd));
    assert.deepEqual([...loadStateDict(odd2).keys()], ['a']);
    throwsOneLine(() => loadStateDict(join(TMP, 'absent.pth')), /absent\.pth: cannot read checkpoint/);
  });

  test('strictMatch lists missing, unexpected and mismatched keys on one line', () => {
    const expected = new Map<string, readonly number[]>([
      ['a', [2]],
      ['b', [3, 3]],
      ['c', [1]],
    ]);
    const ok: TensorMap = new Map([
      ['a', f32([2])],
      ['b', f32([3, 3])],
      ['c', f32([1])],
    ]);
    strictMatch(expected, ok);
    const bad: TensorMap = new Map([
      ['a', f32([2])],
      ['b', f32([3, 4])],
      ['extra', f32([1])],
    ]);
    throwsOneLine(
      () => strictMatch(expected, bad, undefined, 'model.pth'),
      /^model\.pth: state dict does not match the model: 1 missing key\(s\): 'c'; 1 unexpected key\(s\): 'extra'; 1 shape mismatch\(es\): 'b' model \[3, 3\] vs checkpoint \[3, 4\]$/,
    );
    strictMatch(expected, bad, (k) => k === 'c' || k === 'extra' || k === 'b');
    const many = new Map<string, readonly number[]>(range(30).map((i) => [`k${i}`, [1]]));
    throwsOneLine(() => strictMatch(many, new Map()), /30 missing key\(s\): 'k0', 'k1', .*'k7', … and 22 more$/);
    const diff = diffStateDict(expected, bad);
    assert.deepEqual(diff.missing, ['c']);
    assert.deepEqual(diff.unexpected, ['extra']);
    assert.deepEqual(diff.mismatched.map((m) => m.key), ['b']);
  });
});
