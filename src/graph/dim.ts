/**
 * Tensor dimensions: concrete integers, or symbolic monomials such as `H`, `H/2`,
 * `4*H` or `H*W` for graphs exported with dynamic spatial size. Symbolic dims carry
 * no additive constants: layers that would need them (padding that changes size)
 * reject symbolic inputs, which DiffIR never needs because inputs are padded to a
 * multiple of 8/16/32 first.
 */

function gcd(a: number, b: number): number {
  a = Math.abs(a);
  b = Math.abs(b);
  while (b) [a, b] = [b, a % b];
  return a;
}

/** A symbolic dimension `num/den * v1 * v2 * …`. */
export class Sym {
  readonly num: number;
  readonly den: number;
  readonly vars: readonly string[];
  constructor(num: number, den: number, vars: readonly string[]) {
    const g = gcd(num, den) || 1;
    this.num = num / g;
    this.den = den / g;
    this.vars = [...vars].sort();
  }
  /** The ONNX `dim_param` spelling, e.g. `H/2`, `4*H`, `H*W`. */
  toString(): string {
    const v = this.vars.join('*');
    const head = this.num === 1 ? v : `${this.num}*${v}`;
    return this.den === 1 ? head : `${head}/${this.den}`;
  }
}

/** A tensor dimension. */
export type Dim = number | Sym;
/** A tensor shape. */
export type Shape = readonly Dim[];

/** A fresh symbolic dimension named `name`. */
export function sym(name: string): Sym {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`invalid symbolic dim name '${name}'`);
  return new Sym(1, 1, [name]);
}

/** True when `d` is a concrete integer. */
export function isStatic(d: Dim): d is number {
  return typeof d === 'number';
}

/** True when all dims are concrete. */
export function isStaticShape(s: Shape): s is readonly number[] {
  return s.every(isStatic);
}

/** Structural equality of two dims. */
export function dimEq(a: Dim, b: Dim): boolean {
  if (typeof a === 'number' || typeof b === 'number') return a === b;
  return a.num === b.num && a.den === b.den && a.vars.length === b.vars.length && a.vars.every((v, i) => v === b.vars[i]);
}

/** Structural equality of two shapes. */
export function shapeEq(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => dimEq(d, b[i]!));
}

/** Product of two dims. */
export function dimMul(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return a * b;
  if (typeof a === 'number') return a === 0 ? 0 : new Sym((b as Sym).num * a, (b as Sym).den, (b as Sym).vars);
  if (typeof b === 'number') return b === 0 ? 0 : new Sym(a.num * b, a.den, a.vars);
  return new Sym(a.num * b.num, a.den * b.den, [...a.vars, ...b.vars]);
}

/** Exact division of a dim by a positive integer; throws when a concrete dim is not divisible. */
export function dimDiv(a: Dim, k: number, what = 'dimension'): Dim {
  if (typeof a === 'number') {
    if (a % k !== 0) throw new Error(`${what} ${a} is not divisible by ${k}`);
    return a / k;
  }
  return new Sym(a.num, a.den * k, a.vars);
}

/** Product of a list of dims. */
export function dimProd(ds: readonly Dim[]): Dim {
  return ds.reduce<Dim>((p, d) => dimMul(p, d), 1);
}

/** Adds an integer to a dim; symbolic dims only accept 0. */
export function dimAdd(a: Dim, k: number, what = 'dimension'): Dim {
  if (k === 0) return a;
  if (typeof a === 'number') return a + k;
  throw new Error(`${what}: symbolic size ${a} cannot change by ${k} (pad the input to a fixed multiple instead)`);
}

/** Formats a shape for error messages: `[2,3,H,W]`. */
export function fmtShape(s: Shape): string {
  return `[${s.map(String).join(',')}]`;
}

/** Number of elements of a static shape. */
export function staticNumel(s: Shape, what = 'tensor'): number {
  if (!isStaticShape(s)) throw new Error(`${what} needs a static shape, got ${fmtShape(s)}`);
  return s.reduce((p, d) => p * d, 1);
}
