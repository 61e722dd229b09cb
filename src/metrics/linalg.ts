/**
 * Dense float64 linear algebra for the metrics (row-major square matrices): the symmetric
 * eigenvalue problem (Householder tridiagonalisation + implicit QL, and Jacobi rotations when
 * the eigenvectors are needed), pivoted Cholesky of a positive semi-definite matrix, and the
 * Moore–Penrose pseudo-inverse of a symmetric matrix as `np.linalg.pinv` cuts it off.
 */

/** Eigenvalues of a symmetric n×n matrix (ascending). `a` is not modified. */
export function symmetricEigenvalues(a: Float64Array, n: number): Float64Array {
  const m = Float64Array.from(a);
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  tridiagonalize(m, n, d, e);
  tridiagonalQL(d, e, n);
  return d.sort();
}

/**
 * Householder reduction of the symmetric `a` (destroyed; only its lower triangle is used) to
 * tridiagonal form: diagonal in `d`, sub-diagonal in `e[1..n-1]`. Memory-bound at large n, so
 * each step makes one pass over the lower triangle: the rank-2 update of row j is fused with
 * that row's share of the next step's product A·u (a dot product and an axpy, both along rows).
 */
function tridiagonalize(a: Float64Array, n: number, d: Float64Array, e: Float64Array): void {
  let u = new Float64Array(n);
  let p = new Float64Array(n);
  let un = new Float64Array(n);
  let pn = new Float64Array(n);
  const q = new Float64Array(n);
  // Householder vector of row i from its first i entries (returns h, or 0 when there is nothing to do).
  const reflect = (i: number, out: Float64Array): number => {
    const l = i - 1;
    const ri = i * n;
    let scale = 0;
    for (let k = 0; k <= l; k++) scale += Math.abs(a[ri + k]!);
    if (l === 0 || scale === 0) {
      e[i] = a[ri + l]!;
      return 0;
    }
    let h = 0;
    for (let k = 0; k <= l; k++) {
      out[k] = a[ri + k]! / scale;
      h += out[k]! * out[k]!;
    }
    const f = out[l]!;
    const g = f >= 0 ? -Math.sqrt(h) : Math.sqrt(h);
    e[i] = scale * g;
    h -= f * g;
    out[l] = f - g;
    return h;
  };
  // p = A u over the leading (l+1)×(l+1) block, from the lower triangle.
  const product = (l: number, uu: Float64Array, pp: Float64Array): void => {
    pp.fill(0, 0, l + 1);
    for (let j = 0; j <= l; j++) {
      const rj = j * n;
      const uj = uu[j]!;
      let s = 0;
      for (let k = 0; k < j; k++) {
        const v = a[rj + k]!;
        s += v * uu[k]!;
        pp[k] = pp[k]! + v * uj;
      }
      pp[j] = pp[j]! + s + a[rj + j]! * uj;
    }
  };
  let h = n > 1 ? reflect(n - 1, u) : 0;
  if (h !== 0) product(n - 2, u, p);
  for (let i = n - 1; i > 0; i--) {
    const l = i - 1;
    if (h === 0) {
      // Nothing to reduce in this row; the next step starts afresh.
      if (l >= 1) {
        h = reflect(l, u);
        if (h !== 0) product(l - 1, u, p);
      }
      continue;
    }
    // q = p/h − K u with K = uᵀp / 2h².
    let up = 0;
    for (let j = 0; j <= l; j++) {
      p[j] = p[j]! / h;
      up += u[j]! * p[j]!;
    }
    const kk = up / (2 * h);
    for (let j = 0; j <= l; j++) q[j] = p[j]! - kk * u[j]!;
    // Update row l first: it defines the next step's reflection.
    const rl = l * n;
    for (let k = 0; k <= l; k++) a[rl + k] = a[rl + k]! - u[l]! * q[k]! - q[l]! * u[k]!;
    const hn = l >= 1 ? reflect(l, un) : 0;
    const ln = l - 1;
    if (hn !== 0) pn.fill(0, 0, ln + 1);
    for (let j = 0; j < l; j++) {
      const rj = j * n;
      const uj = u[j]!;
      const qj = q[j]!;
      if (hn === 0) {
        for (let k = 0; k <= j; k++) a[rj + k] = a[rj + k]! - uj * q[k]! - qj * u[k]!;
        continue;
      }
      // Fused: update row j (k ≤ j), then add its share of A'·u' (rows/cols ≤ ln).
      const unj = un[j]!;
      let s = 0;
      for (let k = 0; k < j; k++) {
        const v = a[rj + k]! - uj * q[k]! - qj * u[k]!;
        a[rj + k] = v;
        s += v * un[k]!;
        pn[k] = pn[k]! + v * unj;
      }
      const vjj = a[rj + j]! - 2 * uj * qj;
      a[rj + j] = vjj;
      pn[j] = pn[j]! + s + vjj * unj;
    }
    h = hn;
    [u, un] = [un, u];
    [p, pn] = [pn, p];
  }
  for (let i = 0; i < n; i++) d[i] = a[i * n + i]!;
  e[0] = 0;
}

/** Eigenvalues of a symmetric tridiagonal matrix (diagonal `d`, sub-diagonal `e[1..]`), in place into `d`. */
function tridiagonalQL(d: Float64Array, e: Float64Array, n: number): void {
  for (let i = 1; i < n; i++) e[i - 1] = e[i]!;
  if (n > 0) e[n - 1] = 0;
  for (let l = 0; l < n; l++) {
    let iter = 0;
    for (;;) {
      let m = l;
      for (; m < n - 1; m++) {
        const dd = Math.abs(d[m]!) + Math.abs(d[m + 1]!);
        if (Math.abs(e[m]!) <= Number.EPSILON * dd) break;
      }
      if (m === l) break;
      if (++iter > 60) throw new Error('eigenvalue iteration did not converge');
      let g = (d[l + 1]! - d[l]!) / (2 * e[l]!);
      let r = Math.hypot(g, 1);
      g = d[m]! - d[l]! + e[l]! / (g + (g >= 0 ? r : -r));
      let s = 1;
      let c = 1;
      let p = 0;
      let i = m - 1;
      for (; i >= l; i--) {
        let f = s * e[i]!;
        const b = c * e[i]!;
        r = Math.hypot(f, g);
        e[i + 1] = r;
        if (r === 0) {
          d[i + 1] = d[i + 1]! - p;
          e[m] = 0;
          break;
        }
        s = f / r;
        c = g / r;
        g = d[i + 1]! - p;
        r = (d[i]! - g) * s + 2 * c * b;
        p = s * r;
        d[i + 1] = g + p;
        g = c * r - b;
        f = 0;
      }
      if (r === 0 && i >= l) continue;
      d[l] = d[l]! - p;
      e[l] = g;
      e[m] = 0;
    }
  }
}

/** Eigen-decomposition of a small symmetric matrix by cyclic Jacobi rotations: values and row-major eigenvectors (column j ↔ value j). */
export function jacobiEigen(a: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  const m = Float64Array.from(a);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    let diag = 0;
    for (let i = 0; i < n; i++) {
      diag += m[i * n + i]! ** 2;
      for (let j = i + 1; j < n; j++) off += m[i * n + j]! ** 2;
    }
    if (off <= 1e-30 * diag || off === 0) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = m[p * n + q]!;
        if (apq === 0) continue;
        const theta = (m[q * n + q]! - m[p * n + p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = m[k * n + p]!;
          const akq = m[k * n + q]!;
          m[k * n + p] = c * akp - s * akq;
          m[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = m[p * n + k]!;
          const aqk = m[q * n + k]!;
          m[p * n + k] = c * apk - s * aqk;
          m[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p]!;
          const vkq = v[k * n + q]!;
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = m[i * n + i]!;
  return { values, vectors: v };
}

/**
 * Pseudo-inverse of a symmetric matrix as `np.linalg.pinv(a)` (rcond 1e-15 relative to the
 * largest singular value, which for a symmetric matrix is the largest |eigenvalue|).
 */
export function pinvSymmetric(a: Float64Array, n: number, rcond = 1e-15): Float64Array {
  const { values, vectors } = jacobiEigen(a, n);
  let big = 0;
  for (const x of values) big = Math.max(big, Math.abs(x));
  const inv = new Float64Array(n);
  for (let i = 0; i < n; i++) inv[i] = Math.abs(values[i]!) > rcond * big ? 1 / values[i]! : 0;
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += vectors[i * n + k]! * inv[k]! * vectors[j * n + k]!;
      out[i * n + j] = s;
    }
  }
  return out;
}

/**
 * Pivoted Cholesky of a positive semi-definite n×n matrix: F (n×r, row-major) with
 * `F Fᵀ ≈ a`, stopping when the largest remaining diagonal is at most `tol` (the numerical rank r).
 */
export function pivotedCholesky(a: Float64Array, n: number, tol: number): { factor: Float64Array; rank: number } {
  const m = Float64Array.from(a);
  const perm = Int32Array.from({ length: n }, (_, i) => i);
  const diag = new Float64Array(n);
  for (let i = 0; i < n; i++) diag[i] = m[i * n + i]!;
  // L is kept column by column in a row-major n×n buffer, L[perm[i]][k].
  const l = new Float64Array(n * n);
  let rank = 0;
  for (let k = 0; k < n; k++) {
    let best = k;
    for (let i = k + 1; i < n; i++) if (diag[perm[i]!]! > diag[perm[best]!]!) best = i;
    const pk = perm[best]!;
    const dk = diag[pk]!;
    if (!(dk > tol)) break;
    perm[best] = perm[k]!;
    perm[k] = pk;
    const lkk = Math.sqrt(dk);
    l[pk * n + k] = lkk;
    const rowK = pk * n;
    for (let i = k + 1; i < n; i++) {
      const pi = perm[i]!;
      const rowI = pi * n;
      let s = m[rowI + pk]!;
      for (let j = 0; j < k; j++) s -= l[rowI + j]! * l[rowK + j]!;
      const v = s / lkk;
      l[rowI + k] = v;
      diag[pi] = diag[pi]! - v * v;
    }
    rank = k + 1;
  }
  const factor = new Float64Array(n * rank);
  for (let i = 0; i < n; i++) for (let j = 0; j < rank; j++) factor[i * rank + j] = l[i * n + j]!;
  return { factor, rank };
}
