/**
 * PyTorch checkpoints (`.pth`, `.pt`, `.ckpt`): reading and writing what `torch.save` produces.
 *
 * The current format (torch ≥ 1.6) is a STORED zip holding `<archive>/data.pkl` (the pickled
 * object), `<archive>/data/<key>` (one raw little-endian storage per key), `<archive>/version`
 * and `<archive>/byteorder`. The legacy format (torch < 1.6, e.g. old torchvision weights) is a
 * series of pickles followed by the raw storages; both are read. Only the zip format is written.
 */
import { baseName, readFile, sha256, writeFileAtomic } from '#host';
import { concatChunks, crc32, encodeZip, hexPrefix, openZip } from './zip.js';
import { sanitize } from '../errors.js';
import { ReadBudget } from './budget.js';
import type { ZipInput } from './zip.js';
import { skipPickle, STORAGE_ELEMENT_SIZE, unpickleAt } from './pickle.js';
import { encodeTorchPickle } from './pickle-writer.js';
import type { PthValue, StorageDtype, StorageLoader } from './pickle.js';

export { PthDtype, PthOpaque, isHostTensor } from './pickle.js';
export type { PthDict, PthValue } from './pickle.js';

/** Options for {@link loadPth}. */
export interface LoadPthOptions {
  /** Name for error messages (default: the path, or `<bytes>`). */
  readonly name?: string;
  /** Replace non-whitelisted classes by inert placeholders instead of refusing the file (default false). */
  readonly allowOpaqueGlobals?: boolean;
  /** Check zip entry CRCs (default true). */
  readonly verifyCrc?: boolean;
  /** Cap on the bytes of all tensors materialised (default: 1 GiB + 16 × the stored tensor bytes). */
  readonly maxTensorBytes?: number;
  /** Memory the reader may allocate for this file (default 64 × its size + 256 MiB; see README). */
  readonly maxBytes?: number;
}

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;

/**
 * Loads a PyTorch checkpoint from a path or from its bytes. Dicts come back as
 * `Map<string, PthValue>`, tensors as contiguous HostTensors (half / bfloat16 / double as
 * float32). Nothing in the file is ever executed; classes other than tensors, storages and
 * OrderedDict are refused. Throws a one-line Error naming the file for anything malformed.
 */
export function loadPth(source: string | Uint8Array, options: LoadPthOptions = {}): PthValue {
  const name = sanitize(options.name ?? (typeof source === 'string' ? source : '<bytes>'));
  let bytes: Uint8Array;
  if (typeof source === 'string') {
    try {
      bytes = readFile(source);
    } catch (err) {
      throw new Error(`${name}: cannot read checkpoint (${sanitize(err instanceof Error ? err.message : String(err))})`);
    }
  } else bytes = source;
  if (bytes.length >= 3 && bytes[0] === 0x80 && bytes[1] === 0x02 && bytes[2] === 0x8a) return loadLegacy(bytes, name, options);
  return loadZipCheckpoint(bytes, name, options);
}

/** Shorthand for {@link loadPth} with just a display name. */
export function readPth(source: string | Uint8Array, name?: string): PthValue {
  return loadPth(source, name === undefined ? {} : { name });
}

function loadZipCheckpoint(bytes: Uint8Array, name: string, options: LoadPthOptions): PthValue {
  const zip = openZip(bytes, name, { verifyCrc: options.verifyCrc ?? true, budget: new ReadBudget(name, bytes.length, options.maxBytes) });
  const names = zip.names();
  const firstDir = names.length > 0 ? names[0]!.split('/')[0]! : '';
  let pkl = zip.has(`${firstDir}/data.pkl`) ? `${firstDir}/data.pkl` : names.find((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pkl === undefined && zip.has('data.pkl')) pkl = 'data.pkl';
  if (pkl === undefined) throw new Error(`${name}: zip archive has no data.pkl record (not a torch.save checkpoint)`);
  const prefix = pkl.slice(0, pkl.length - 'data.pkl'.length);

  let bigEndian = false;
  if (zip.has(`${prefix}byteorder`)) {
    const order = new TextDecoder().decode(zip.read(`${prefix}byteorder`)).trim();
    if (order === 'big') bigEndian = true;
    else if (order !== 'little') throw new Error(`${name}: unknown byteorder record '${sanitize(order.slice(0, 20))}'`);
  }

  const loadStorage: StorageLoader = (key, dtype, numel) => {
    const entry = `${prefix}data/${key}`;
    if (!zip.has(entry)) throw new Error(`${name}: storage '${sanitize(key)}' is missing (no zip entry '${sanitize(entry)}')`);
    // A compressed storage may inflate to what its declared size needs, and no more.
    return zip.read(entry, numel * STORAGE_ELEMENT_SIZE[dtype]);
  };
  return unpickleAt(zip.read(pkl), 0, {
    name,
    loadStorage,
    bigEndian,
    budget: zip.budget,
    ...(options.allowOpaqueGlobals !== undefined ? { allowOpaqueGlobals: options.allowOpaqueGlobals } : {}),
    ...(options.maxTensorBytes !== undefined ? { maxTensorBytes: options.maxTensorBytes } : {}),
  }).value;
}

/** Legacy torch.save format: magic, protocol, sys_info, object, storage keys, raw storages. */
function loadLegacy(bytes: Uint8Array, name: string, options: LoadPthOptions): PthValue {
  // One memory allowance for every pickle of the file and its tensors.
  const budget = new ReadBudget(name, bytes.length, options.maxBytes);
  const magic = unpickleAt(bytes, 0, { name, budget });
  if (magic.value !== LEGACY_MAGIC) throw new Error(`${name}: not a torch checkpoint (starts with ${hexPrefix(bytes)})`);
  const proto = unpickleAt(bytes, magic.end, { name, budget });
  if (proto.value !== LEGACY_PROTOCOL) throw new Error(`${name}: unsupported legacy checkpoint protocol ${String(proto.value)}`);
  const sysInfo = unpickleAt(bytes, proto.end, { name, budget });
  if (sysInfo.value instanceof Map && sysInfo.value.get('little_endian') === false) {
    throw new Error(`${name}: big-endian legacy checkpoints are not supported`);
  }
  const mainStart = sysInfo.end;

  // Pass 1: learn each storage's type and size without materialising anything.
  const declared = new Map<string, { dtype: StorageDtype; numel: number }>();
  unpickleAt(bytes, mainStart, {
    name,
    budget,
    dryRun: true,
    ...(options.allowOpaqueGlobals !== undefined ? { allowOpaqueGlobals: options.allowOpaqueGlobals } : {}),
    loadStorage: (key, dtype, numel) => {
      declared.set(key, { dtype, numel });
      return new Uint8Array(0);
    },
  });
  const mainEnd = skipPickle(bytes, mainStart, name);
  const keysPickle = unpickleAt(bytes, mainEnd, { name, budget });
  if (!Array.isArray(keysPickle.value) || !keysPickle.value.every((k) => typeof k === 'string')) {
    throw new Error(`${name}: legacy checkpoint has a malformed storage key list`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const data = new Map<string, Uint8Array>();
  let pos = keysPickle.end;
  for (const key of keysPickle.value as string[]) {
    const d = declared.get(key);
    if (!d) throw new Error(`${name}: legacy checkpoint stores storage '${sanitize(key)}' that no tensor uses`);
    if (pos + 8 > bytes.length) throw new Error(`${name}: truncated legacy checkpoint (storage '${sanitize(key)}' header missing)`);
    const n = view.getBigInt64(pos, true);
    pos += 8;
    const es = STORAGE_ELEMENT_SIZE[d.dtype];
    if (n < 0n || n * BigInt(es) > BigInt(bytes.length - pos)) {
      throw new Error(`${name}: truncated legacy checkpoint (storage '${sanitize(key)}' declares ${n} elements, past the end of the file)`);
    }
    const len = Number(n) * es;
    data.set(key, bytes.subarray(pos, pos + len));
    pos += len;
  }
  return unpickleAt(bytes, mainStart, {
    name,
    budget,
    loadStorage: (key) => {
      const b = data.get(key);
      if (!b) throw new Error(`${name}: storage '${sanitize(key)}' is missing from the legacy checkpoint`);
      return b;
    },
    ...(options.allowOpaqueGlobals !== undefined ? { allowOpaqueGlobals: options.allowOpaqueGlobals } : {}),
    ...(options.maxTensorBytes !== undefined ? { maxTensorBytes: options.maxTensorBytes } : {}),
  }).value;
}

/** Archive folder name torch uses for a path: the file's base name without its extension. */
export function archiveNameFor(path: string): string {
  const base = baseName(path);
  const dot = base.lastIndexOf('.');
  const stem = (dot > 0 ? base.slice(0, dot) : base).replace(/[^A-Za-z0-9_.-]/g, '_');
  return stem.length > 0 && stem !== '.' && stem !== '..' ? stem : 'archive';
}

/**
 * Serialises a checkpoint value in torch's zip format as a list of chunks (storages are
 * referenced, not copied): `<archive>/data.pkl`, `.format_version`, `.storage_alignment`,
 * `byteorder`, `data/<n>` (64-byte aligned), `version` ("3\n"), `.data/serialization_id`.
 */
export function encodePthChunks(value: PthValue, archiveName = 'archive'): Uint8Array[] {
  const { pickle, storages } = encodeTorchPickle(value);
  const text = (s: string): Uint8Array => new TextEncoder().encode(s);
  const a = archiveName;
  const digest = new DataView(sha256([pickle, ...storages.map((s) => `${s.key}:${crc32(s.bytes)};`)]).buffer);
  const id = `${digest.getBigUint64(0, true).toString().padStart(20, '0')}${digest.getBigUint64(8, true).toString().padStart(20, '0')}`;
  const entries: ZipInput[] = [
    { name: `${a}/data.pkl`, data: pickle },
    { name: `${a}/.format_version`, data: text('1') },
    { name: `${a}/.storage_alignment`, data: text('64') },
    { name: `${a}/byteorder`, data: text('little') },
    ...storages.map((s) => ({ name: `${a}/data/${s.key}`, data: s.bytes })),
    { name: `${a}/version`, data: text('3\n') },
    { name: `${a}/.data/serialization_id`, data: text(id) },
  ];
  return encodeZip(entries, { alignment: 64 });
}

/** Serialises a checkpoint value in torch's zip format into one buffer (see {@link encodePthChunks}). */
export function encodePth(value: PthValue, archiveName = 'archive'): Uint8Array {
  return concatChunks(encodePthChunks(value, archiveName));
}

/**
 * Writes a checkpoint that `torch.load` reads (e.g. `new Map([['params_ema', stateDict]])`):
 * the top-level Map becomes a dict, nested Maps OrderedDicts. The file is written atomically
 * (temporary file, then rename).
 */
export function writePth(path: string, value: PthValue): void {
  writeFileAtomic(path, encodePthChunks(value, archiveNameFor(path)));
}
