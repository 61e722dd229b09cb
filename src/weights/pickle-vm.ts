/**
 * A restricted Python pickle virtual machine: a stack machine over the opcodes `torch.save`
 * emits (protocol 2, plus the protocol 3–5 opcodes that are harmless) that never executes
 * anything. What a pickle may refer to beyond plain data (globals, calls, persistent ids, BUILD)
 * is decided by the caller's {@link PickleHooks} (the torch allow-list in `pickle.ts`). Every
 * opcode and every element it touches counts against a total-work budget, and the objects it
 * builds against the file's memory allowance, so no pickle can take more than seconds or more
 * memory than its file may use.
 */
import { sanitize } from '../errors.js';
import { FIXED_WORK, WORK_PER_PICKLE_BYTE } from './budget.js';
import type { ReadBudget } from './budget.js';

/** What a pickle may refer to beyond plain data: the allow-list's answers to the VM. */
export interface PickleHooks {
  /** GLOBAL / STACK_GLOBAL: the value to push, or a one-line refusal. */
  global(module: string, name: string): unknown;
  /** REDUCE: the result of calling `fn` with `args` (as found on the stack). */
  call(fn: unknown, args: unknown): unknown;
  /** NEWOBJ / NEWOBJ_EX: an instance of `cls`. */
  newObj(cls: unknown, args: unknown): unknown;
  /** BINPERSID: the object a persistent id stands for. */
  persistent(pid: unknown): unknown;
  /** BUILD: sets `state` on `obj` (or ignores it), or refuses. */
  build(obj: unknown, state: unknown): void;
  /** Whether `obj` silently takes SETITEM / APPEND items (placeholders of unknown classes). */
  absorbs(obj: unknown): boolean;
  /** A description of the hooks' own objects for messages, or undefined for plain values. */
  describe(v: unknown): string | undefined;
}

const MAX_MEMO = 1 << 22;
const MAX_STACK = 1 << 22;
const MAX_MARKS = 1 << 16;
/** Deepest nesting accepted in a loaded value (and written by the writer). */
export const MAX_DEPTH = 2000;
const MAX_LONG_BYTES = 4096;

/** Runs one pickle from a start offset to its STOP opcode (see {@link PickleHooks} for what it may refer to). */
export class PickleVM {
  private pos: number;
  private stack: unknown[] = [];
  private readonly marks: unknown[][] = [];
  private readonly memo = new Map<number, unknown>();
  private readonly view: DataView;
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });
  /** Steps of work left: one per opcode plus one per element an opcode touches. */
  private workLeft: number;
  private readonly workLimit: number;

  constructor(
    private readonly bytes: Uint8Array,
    start: number,
    /** The file's name as shown in messages (sanitised). */
    readonly name: string,
    /** The file's memory allowance, charged for the objects the pickle builds. */
    readonly budget: ReadBudget,
    /** What the pickle may refer to beyond plain data. */
    private readonly hooks: PickleHooks,
  ) {
    this.pos = start;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.workLimit = FIXED_WORK + WORK_PER_PICKLE_BYTE * Math.max(0, bytes.length - start);
    this.workLeft = this.workLimit;
  }

  /** Counts `n` steps of work; a pickle that needs more than its limit is refused. */
  work(n: number): void {
    this.workLeft -= n;
    if (this.workLeft < 0) {
      this.fail(`pickle needs more than ${this.workLimit} steps of work for its ${this.bytes.length} bytes; the file is corrupt or was crafted to exhaust time`);
    }
  }

  /** Charges `n` bytes of objects built by the pickle to the memory budget. */
  alloc(n: number): void {
    this.budget.charge(n, "the pickle's objects");
  }

  /** Throws the one-line error naming the file. */
  fail(msg: string): never {
    throw new Error(`${this.name}: ${msg}`);
  }

  private need(n: number, what: string): void {
    if (n < 0 || this.pos + n > this.bytes.length) this.fail(`pickle truncated while reading ${what} at byte ${this.pos}`);
  }
  private u8(): number {
    this.need(1, 'an opcode argument');
    return this.bytes[this.pos++]!;
  }
  private u16(): number {
    this.need(2, 'an opcode argument');
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }
  private u32(): number {
    this.need(4, 'an opcode argument');
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  private i32(): number {
    this.need(4, 'an opcode argument');
    const v = this.view.getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }
  private u64(): number {
    this.need(8, 'an opcode argument');
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    if (v > BigInt(this.bytes.length)) this.fail(`pickle declares a ${v}-byte item, larger than the pickle`);
    return Number(v);
  }
  private take(n: number, what: string): Uint8Array {
    this.need(n, what);
    this.work(n >> 4);
    this.alloc(2 * n + 32);
    const b = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  private utf8(b: Uint8Array): string {
    try {
      return this.decoder.decode(b);
    } catch {
      return this.fail(`pickle holds a string that is not valid UTF-8 at byte ${this.pos}`);
    }
  }
  private line(): string {
    const end = this.bytes.indexOf(0x0a, this.pos);
    if (end < 0 || end - this.pos > 1024) this.fail(`pickle truncated or corrupt while reading a text argument at byte ${this.pos}`);
    const s = this.utf8(this.bytes.subarray(this.pos, end));
    this.pos = end + 1;
    return s;
  }

  private push(v: unknown): void {
    if (this.stack.length >= MAX_STACK) this.fail('pickle stack grew too large');
    // Every push may be a new object (a dict, a list, a number): charged at its typical size.
    this.alloc(48);
    this.stack.push(v);
  }
  private pop(): unknown {
    if (this.stack.length === 0) this.fail(`pickle stack underflow at byte ${this.pos - 1}`);
    return this.stack.pop();
  }
  private top(): unknown {
    if (this.stack.length === 0) this.fail(`pickle stack underflow at byte ${this.pos - 1}`);
    return this.stack[this.stack.length - 1];
  }
  private popMark(): unknown[] {
    const items = this.stack;
    this.work(items.length);
    this.alloc(16 * items.length + 64);
    const prev = this.marks.pop();
    if (!prev) this.fail(`pickle uses MARK items without a MARK at byte ${this.pos - 1}`);
    this.stack = prev;
    return items;
  }
  private memoPut(i: number, v: unknown): void {
    if (!this.memo.has(i) && this.memo.size >= MAX_MEMO) this.fail('pickle memo grew too large');
    this.memo.set(i, v);
  }
  private memoGet(i: number): unknown {
    if (!this.memo.has(i)) this.fail(`pickle refers to memo entry ${i}, which was never stored`);
    return this.memo.get(i);
  }

  /** `v` as a safe integer, or a one-line error naming `what`. */
  int(v: unknown, what: string): number {
    if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
    if (typeof v === 'bigint' && v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
    return this.fail(`expected an integer for ${what}, got ${this.describe(v)}`);
  }
  /** `v` as a tuple of at most 64 non-negative integers (a size or a stride). */
  dims(v: unknown, what: string): number[] {
    if (!Array.isArray(v)) return this.fail(`expected a tuple for ${what}, got ${this.describe(v)}`);
    if (v.length > 64) return this.fail(`${what} has ${v.length} dimensions (at most 64)`);
    return v.map((x, i) => {
      const n = this.int(x, `${what}[${i}]`);
      if (n < 0) this.fail(`${what}[${i}] is negative (${n})`);
      return n;
    });
  }

  /** A dict key as a string (ints, bools and None stringified the way Python prints them). */
  dictKey(k: unknown): string {
    if (typeof k === 'string') return k;
    if (typeof k === 'number' || typeof k === 'bigint') return String(k);
    if (typeof k === 'boolean') return k ? 'True' : 'False';
    if (k === null) return 'None';
    return this.fail(`unsupported dict key ${this.describe(k)}`);
  }
  private setItem(d: unknown, k: unknown, v: unknown): void {
    if (d instanceof Map) d.set(this.dictKey(k), v);
    else if (!this.hooks.absorbs(d)) this.fail(`SETITEM on ${this.describe(d)}, not a dict`);
  }
  private append(l: unknown, items: unknown[]): void {
    this.work(items.length);
    this.alloc(16 * items.length);
    if (Array.isArray(l) && !Object.isFrozen(l)) {
      if (l.length + items.length > MAX_STACK) this.fail('pickle list grew too large');
      for (const x of items) l.push(x);
    } else if (!this.hooks.absorbs(l)) this.fail(`APPEND on ${this.describe(l)}, not a list`);
  }

  run(): { value: unknown; end: number } {
    const b = this.bytes;
    for (;;) {
      if (this.pos >= b.length) this.fail(`pickle truncated (no STOP opcode) after ${b.length} bytes`);
      this.work(1);
      const at = this.pos;
      const op = b[this.pos++]!;
      switch (op) {
        case 0x80: // PROTO
          if (this.u8() > 5) this.fail('pickle protocol is newer than 5');
          break;
        case 0x95: // FRAME
          this.u64();
          break;
        case 0x2e: {
          // STOP
          const v = this.pop();
          return { value: v, end: this.pos };
        }
        case 0x28: // MARK
          if (this.marks.length >= MAX_MARKS) this.fail('pickle nests too deeply');
          this.marks.push(this.stack);
          this.stack = [];
          break;
        case 0x30: // POP
          this.pop();
          break;
        case 0x31: // POP_MARK
          this.popMark();
          break;
        case 0x32: // DUP
          this.push(this.top());
          break;
        case 0x4e: // NONE
          this.push(null);
          break;
        case 0x88: // NEWTRUE
          this.push(true);
          break;
        case 0x89: // NEWFALSE
          this.push(false);
          break;
        case 0x4a: // BININT
          this.push(this.i32());
          break;
        case 0x4b: // BININT1
          this.push(this.u8());
          break;
        case 0x4d: // BININT2
          this.push(this.u16());
          break;
        case 0x8a: // LONG1
          this.push(decodeLong(this.take(this.u8(), 'a long integer')));
          break;
        case 0x8b: {
          // LONG4
          const n = this.i32();
          if (n < 0 || n > MAX_LONG_BYTES) this.fail(`pickle holds an absurd ${n}-byte integer`);
          this.push(decodeLong(this.take(n, 'a long integer')));
          break;
        }
        case 0x49: {
          // INT (text)
          const s = this.line();
          if (s === '00') this.push(false);
          else if (s === '01') this.push(true);
          else this.push(this.parseIntText(s));
          break;
        }
        case 0x4c: // LONG (text)
          this.push(this.parseIntText(this.line().replace(/L$/, '')));
          break;
        case 0x46: {
          // FLOAT (text)
          const v = Number(this.line());
          if (Number.isNaN(v)) this.fail('pickle holds a malformed float');
          this.push(v);
          break;
        }
        case 0x47: // BINFLOAT
          this.need(8, 'a float');
          this.push(this.view.getFloat64(this.pos, false));
          this.pos += 8;
          break;
        case 0x58: // BINUNICODE
          this.push(this.utf8(this.take(this.u32(), 'a string')));
          break;
        case 0x8c: // SHORT_BINUNICODE
          this.push(this.utf8(this.take(this.u8(), 'a string')));
          break;
        case 0x8d: // BINUNICODE8
          this.push(this.utf8(this.take(this.u64(), 'a string')));
          break;
        case 0x54: {
          // BINSTRING (python 2 str)
          const n = this.i32();
          this.push(latin1(this.take(n, 'a string')));
          break;
        }
        case 0x55: // SHORT_BINSTRING
          this.push(latin1(this.take(this.u8(), 'a string')));
          break;
        case 0x42: // BINBYTES
          this.push(new Uint8Array(this.take(this.u32(), 'bytes')));
          break;
        case 0x43: // SHORT_BINBYTES
          this.push(new Uint8Array(this.take(this.u8(), 'bytes')));
          break;
        case 0x8e: // BINBYTES8
        case 0x96: // BYTEARRAY8
          this.push(new Uint8Array(this.take(this.u64(), 'bytes')));
          break;
        case 0x7d: // EMPTY_DICT
          this.push(new Map<string, unknown>());
          break;
        case 0x64: {
          // DICT
          const items = this.popMark();
          if (items.length % 2) this.fail('DICT with an odd number of items');
          this.work(4 * items.length);
          const m = new Map<string, unknown>();
          for (let i = 0; i < items.length; i += 2) m.set(this.dictKey(items[i]), items[i + 1]);
          this.push(m);
          break;
        }
        case 0x5d: // EMPTY_LIST
          this.push([]);
          break;
        case 0x6c: // LIST
          this.push(this.popMark());
          break;
        case 0x29: // EMPTY_TUPLE
          this.push(Object.freeze([]));
          break;
        case 0x74: // TUPLE
          this.push(Object.freeze(this.popMark()));
          break;
        case 0x85: // TUPLE1
          this.push(Object.freeze([this.pop()]));
          break;
        case 0x86: {
          // TUPLE2
          const y = this.pop();
          const x = this.pop();
          this.push(Object.freeze([x, y]));
          break;
        }
        case 0x87: {
          // TUPLE3
          const z = this.pop();
          const y = this.pop();
          const x = this.pop();
          this.push(Object.freeze([x, y, z]));
          break;
        }
        case 0x8f: // EMPTY_SET
          this.push([]);
          break;
        case 0x90: {
          // ADDITEMS
          const items = this.popMark();
          this.append(this.top(), items);
          break;
        }
        case 0x91: // FROZENSET
          this.push(Object.freeze(this.popMark()));
          break;
        case 0x73: {
          // SETITEM
          const v = this.pop();
          const k = this.pop();
          this.setItem(this.top(), k, v);
          break;
        }
        case 0x75: {
          // SETITEMS
          const items = this.popMark();
          if (items.length % 2) this.fail('SETITEMS with an odd number of items');
          this.work(4 * items.length);
          const d = this.top();
          for (let i = 0; i < items.length; i += 2) this.setItem(d, items[i], items[i + 1]);
          break;
        }
        case 0x61: {
          // APPEND
          const v = this.pop();
          this.append(this.top(), [v]);
          break;
        }
        case 0x65: {
          // APPENDS
          const items = this.popMark();
          this.append(this.top(), items);
          break;
        }
        case 0x71: // BINPUT
          this.memoPut(this.u8(), this.top());
          break;
        case 0x72: // LONG_BINPUT
          this.memoPut(this.u32(), this.top());
          break;
        case 0x94: // MEMOIZE
          this.memoPut(this.memo.size, this.top());
          break;
        case 0x70: // PUT (text)
          this.memoPut(this.parseIndex(this.line()), this.top());
          break;
        case 0x68: // BINGET
          this.push(this.memoGet(this.u8()));
          break;
        case 0x6a: // LONG_BINGET
          this.push(this.memoGet(this.u32()));
          break;
        case 0x67: // GET (text)
          this.push(this.memoGet(this.parseIndex(this.line())));
          break;
        case 0x63: {
          // GLOBAL
          const module = this.line();
          const name = this.line();
          this.push(this.hooks.global(module, name));
          break;
        }
        case 0x93: {
          // STACK_GLOBAL
          const name = this.pop();
          const module = this.pop();
          if (typeof module !== 'string' || typeof name !== 'string') this.fail('STACK_GLOBAL with non-string names');
          this.push(this.hooks.global(module, name));
          break;
        }
        case 0x52: {
          // REDUCE
          const args = this.pop();
          const fn = this.pop();
          this.push(this.hooks.call(fn, args));
          break;
        }
        case 0x81: {
          // NEWOBJ
          const args = this.pop();
          const cls = this.pop();
          this.push(this.hooks.newObj(cls, args));
          break;
        }
        case 0x92: {
          // NEWOBJ_EX
          this.pop(); // kwargs
          const args = this.pop();
          const cls = this.pop();
          this.push(this.hooks.newObj(cls, args));
          break;
        }
        case 0x62: {
          // BUILD
          const state = this.pop();
          const obj = this.top();
          this.hooks.build(obj, state);
          break;
        }
        case 0x51: // BINPERSID
          this.push(this.hooks.persistent(this.pop()));
          break;
        default:
          this.fail(`unsupported pickle opcode 0x${op.toString(16).padStart(2, '0')} at byte ${at}`);
      }
    }
  }

  private parseIntText(s: string): number | bigint {
    if (!/^[+-]?\d{1,4000}$/.test(s)) this.fail('pickle holds a malformed integer');
    const v = BigInt(s);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }
  private parseIndex(s: string): number {
    const v = Number(s);
    if (!Number.isSafeInteger(v) || v < 0) this.fail('pickle holds a malformed memo index');
    return v;
  }


  /** A short description of a value for messages (class instances described by the hooks). */
  describe(v: unknown): string {
    const own = this.hooks.describe(v);
    if (own !== undefined) return own;
    if (v === null) return 'None';
    if (v instanceof Map) return 'a dict';
    if (Array.isArray(v)) return Object.isFrozen(v) ? `a tuple of ${v.length}` : `a list of ${v.length}`;
    if (v instanceof Uint8Array) return `${v.length} bytes`;
    if (typeof v === 'string') return `'${sanitize(v.length > 40 ? v.slice(0, 40) + '…' : v)}'`;
    return typeof v === 'object' ? 'an object' : String(v);
  }
}

/** A Python 2 `str` (bytes) as a string of the same code units. */
export function latin1(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]!);
  return s;
}

function decodeLong(b: Uint8Array): number | bigint {
  if (b.length === 0) return 0;
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
  if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/**
 * Finds the end of the pickle starting at `start` without interpreting it (used to step over
 * the main pickle of legacy checkpoints, whose storages follow it). Returns the offset past STOP.
 */
export function skipPickle(bytes: Uint8Array, start: number, name: string): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = (msg: string): never => {
    throw new Error(`${sanitize(name)}: ${msg}`);
  };
  let p = start;
  const need = (n: number): void => {
    if (n < 0 || p + n > bytes.length) fail(`pickle truncated at byte ${p}`);
  };
  const lineEnd = (): void => {
    const e = bytes.indexOf(0x0a, p);
    if (e < 0) fail(`pickle truncated at byte ${p}`);
    p = e + 1;
  };
  for (;;) {
    need(1);
    const op = bytes[p++]!;
    switch (op) {
      case 0x2e:
        return p;
      case 0x28: case 0x30: case 0x31: case 0x32: case 0x4e: case 0x88: case 0x89: case 0x7d: case 0x64: case 0x5d:
      case 0x6c: case 0x29: case 0x74: case 0x85: case 0x86: case 0x87: case 0x8f: case 0x90: case 0x91: case 0x73:
      case 0x75: case 0x61: case 0x65: case 0x94: case 0x93: case 0x52: case 0x81: case 0x92: case 0x62: case 0x51:
        break;
      case 0x80: case 0x4b: case 0x71: case 0x68:
        need(1);
        p += 1;
        break;
      case 0x4d:
        need(2);
        p += 2;
        break;
      case 0x4a: case 0x72: case 0x6a:
        need(4);
        p += 4;
        break;
      case 0x47: case 0x95:
        need(8);
        p += 8;
        break;
      case 0x8a: case 0x8c: case 0x55: case 0x43: {
        need(1);
        const n = bytes[p++]!;
        need(n);
        p += n;
        break;
      }
      case 0x8b: case 0x58: case 0x54: case 0x42: {
        need(4);
        const n = view.getUint32(p, true);
        p += 4;
        need(n);
        p += n;
        break;
      }
      case 0x8d: case 0x8e: case 0x96: {
        need(8);
        const n = view.getBigUint64(p, true);
        p += 8;
        if (n > BigInt(bytes.length)) fail('pickle declares an item larger than the file');
        need(Number(n));
        p += Number(n);
        break;
      }
      case 0x49: case 0x4c: case 0x46: case 0x70: case 0x67:
        lineEnd();
        break;
      case 0x63:
        lineEnd();
        lineEnd();
        break;
      default:
        fail(`unsupported pickle opcode 0x${op.toString(16).padStart(2, '0')} at byte ${p - 1}`);
    }
  }
}

