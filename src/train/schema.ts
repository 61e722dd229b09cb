/**
 * A small schema checker for BasicSR-style option files: every key must be known, every value
 * of the right type; errors name the key by its dotted path (`train.scheduler.gamma`) and the
 * line of the file where it is, and suggest the closest known key for a misspelt one.
 */

/** The shape of an option value. */
export type Schema =
  | { readonly t: 'int' | 'num' | 'bool' | 'str' | 'any'; readonly nullable?: boolean; readonly min?: number }
  | { readonly t: 'enum'; readonly values: readonly (string | number | boolean)[]; readonly nullable?: boolean }
  | { readonly t: 'list'; readonly of: Schema; readonly len?: number; readonly nullable?: boolean }
  | { readonly t: 'obj'; readonly fields: Readonly<Record<string, Schema>>; readonly nullable?: boolean }
  | { readonly t: 'dict'; readonly of: Schema; readonly keys?: RegExp; readonly keyHelp?: string; readonly nullable?: boolean }
  | { readonly t: 'union'; readonly of: readonly Schema[]; readonly nullable?: boolean };

/** Schema constructors. */
export const s = {
  int: (min?: number): Schema => ({ t: 'int', ...(min !== undefined ? { min } : {}) }),
  num: (min?: number): Schema => ({ t: 'num', ...(min !== undefined ? { min } : {}) }),
  bool: (): Schema => ({ t: 'bool' }),
  str: (): Schema => ({ t: 'str' }),
  any: (): Schema => ({ t: 'any', nullable: true }),
  oneOf: (...values: (string | number | boolean)[]): Schema => ({ t: 'enum', values }),
  list: (of: Schema, len?: number): Schema => ({ t: 'list', of, ...(len !== undefined ? { len } : {}) }),
  obj: (fields: Record<string, Schema>): Schema => ({ t: 'obj', fields }),
  dict: (of: Schema, keys?: RegExp, keyHelp?: string): Schema => ({ t: 'dict', of, ...(keys ? { keys } : {}), ...(keyHelp ? { keyHelp } : {}) }),
  union: (...of: Schema[]): Schema => ({ t: 'union', of }),
  nullable: (x: Schema): Schema => ({ ...x, nullable: true }),
};

/** An error in an option file, naming the key. */
export class OptionError extends Error {
  /** Every offending key, when several problems are reported at once. */
  readonly keys: readonly string[];
  constructor(
    message: string,
    /** Dotted path of the (first) offending key ('' for the file). */
    readonly key: string,
    keys?: readonly string[],
  ) {
    super(message);
    this.name = 'OptionError';
    this.keys = keys ?? (key ? [key] : []);
  }
}

/** Dotted path of a key. */
export function joinKey(path: readonly (string | number)[]): string {
  return path.map((p) => (typeof p === 'number' ? `[${p}]` : p)).join('.').replace(/\.\[/g, '[');
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return 'nothing (~)';
  if (typeof v === 'string') return `'${v.length > 40 ? `${v.slice(0, 40)}…` : v}'`;
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (typeof v === 'object') return 'a mapping';
  return String(v);
}

function expect(x: Schema): string {
  switch (x.t) {
    case 'int':
      return x.min !== undefined ? `an integer ≥ ${x.min}` : 'an integer';
    case 'num':
      return x.min !== undefined ? `a number ≥ ${x.min}` : 'a number';
    case 'bool':
      return 'true or false';
    case 'str':
      return 'a string';
    case 'any':
      return 'a value';
    case 'enum':
      return `one of ${x.values.map((v) => (typeof v === 'string' ? `'${v}'` : String(v))).join(', ')}`;
    case 'list':
      return x.len !== undefined ? `a list of ${x.len} (${expect(x.of)} each)` : `a list (${expect(x.of)} each)`;
    case 'obj':
    case 'dict':
      return 'a mapping';
    case 'union':
      return x.of.map(expect).join(' or ');
  }
}

/** Edit distance, for "did you mean" suggestions. */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length]![b.length]!;
}

function suggest(key: string, known: readonly string[]): string {
  let best = '';
  let bd = Infinity;
  for (const k of known) {
    const dd = distance(key.toLowerCase(), k.toLowerCase());
    if (dd < bd) [best, bd] = [k, dd];
  }
  return bd <= Math.max(2, Math.floor(key.length / 3)) ? `; did you mean '${best}'?` : '';
}

/** A finite number from a YAML value; numeric strings ('2e-4', as PyYAML leaves them) count. */
function asNumber(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(v.trim())) return Number(v);
  return undefined;
}

/**
 * Checks `value` against `schema`; returns the value with numbers normalised. Throws an
 * OptionError naming the first offending key; `where(path)` adds the file position.
 */
export function check(value: unknown, schema: Schema, path: (string | number)[], where: (path: readonly (string | number)[]) => string): unknown {
  const fail = (msg: string): never => {
    const key = joinKey(path);
    throw new OptionError(`${where(path)}'${key}' ${msg}`, key);
  };
  if (value === null || value === undefined) {
    if (schema.nullable || schema.t === 'any') return null;
    return fail(`must be ${expect(schema)}, got ${describe(value)}`);
  }
  switch (schema.t) {
    case 'any':
      return value;
    case 'int':
    case 'num': {
      const n = asNumber(value);
      if (n === undefined || (schema.t === 'int' && !Number.isInteger(n))) return fail(`must be ${expect(schema)}, got ${describe(value)}`);
      if (schema.min !== undefined && n < schema.min) return fail(`must be ${expect(schema)}, got ${n}`);
      return n;
    }
    case 'bool':
      if (typeof value !== 'boolean') return fail(`must be true or false, got ${describe(value)}`);
      return value;
    case 'str':
      if (typeof value !== 'string') return fail(`must be a string, got ${describe(value)}`);
      return value;
    case 'enum': {
      const n = typeof value === 'string' ? value : asNumber(value) ?? value;
      if (!schema.values.includes(n as string)) return fail(`must be ${expect(schema)}, got ${describe(value)}`);
      return n;
    }
    case 'list': {
      if (!Array.isArray(value)) return fail(`must be ${expect(schema)}, got ${describe(value)}`);
      if (schema.len !== undefined && value.length !== schema.len) return fail(`must be ${expect(schema)}, got ${value.length} values`);
      return value.map((v, i) => check(v, schema.of, [...path, i], where));
    }
    case 'obj': {
      if (typeof value !== 'object' || Array.isArray(value)) return fail(`must be a mapping, got ${describe(value)}`);
      const out: Record<string, unknown> = {};
      const known = Object.keys(schema.fields);
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        const sub = schema.fields[k];
        if (!sub) {
          const key = joinKey([...path, k]);
          throw new OptionError(`${where([...path, k])}unknown option '${key}'${suggest(k, known)}`, key);
        }
        out[k] = check(v, sub, [...path, k], where);
      }
      return out;
    }
    case 'dict': {
      if (typeof value !== 'object' || Array.isArray(value)) return fail(`must be a mapping, got ${describe(value)}`);
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (schema.keys && !schema.keys.test(k)) {
          const key = joinKey([...path, k]);
          throw new OptionError(`${where([...path, k])}unknown option '${key}'${schema.keyHelp ? ` (${schema.keyHelp})` : ''}`, key);
        }
        out[k] = check(v, schema.of, [...path, k], where);
      }
      return out;
    }
    case 'union': {
      for (const alt of schema.of) {
        try {
          return check(value, alt, path, where);
        } catch (e) {
          if (!(e instanceof OptionError)) throw e;
        }
      }
      return fail(`must be ${expect(schema)}, got ${describe(value)}`);
    }
  }
}
