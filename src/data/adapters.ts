/**
 * Adapters from the datasets of this folder to a "plan, then load" interface: the random
 * decisions of a sample are drawn synchronously as a few uniform numbers (`plan`), and
 * loading is deterministic given them (`load`). Structurally typed, so a trainer can
 * register these datasets without this folder depending on it.
 */
import { Rng } from '../random.js';
import type { HostTensor } from '../tensor.js';
import type { Dataset, SampleOptions } from './datasets.js';

/** An image as planar float32 data with its size. */
export interface PlanarImage {
  readonly data: Float32Array;
  readonly height: number;
  readonly width: number;
}

/** The random decisions of one sample: 4 uniforms that seed the sample's own generator. */
export interface UniformPlan {
  readonly index: number;
  readonly u: readonly number[];
}

/** A loaded sample in planar form. */
export interface PlanarPair {
  readonly lq: PlanarImage;
  readonly gt: PlanarImage;
  readonly mask?: PlanarImage;
  readonly gtUsm?: PlanarImage;
  readonly name: string;
}

function planar(t: HostTensor<'float32'>): PlanarImage {
  const [n, , h, w] = t.shape as [number, number, number, number];
  if (n !== 1) throw new Error(`expected one image, got a batch of ${n}`);
  return { data: t.data, height: h, width: w };
}

/** Wraps a dataset as `{ size, plan(index, rng), load(plan) }`. */
export function plannedDataset(ds: Dataset, opts?: SampleOptions): {
  readonly size: number;
  plan(index: number, rng: Rng): UniformPlan;
  load(plan: UniformPlan): Promise<PlanarPair>;
} {
  return {
    size: ds.size,
    plan: (index, rng) => ({ index, u: [rng.uniform(), rng.uniform(), rng.uniform(), rng.uniform()] }),
    async load(plan) {
      if (plan.u.length !== 4) throw new Error('plannedDataset: a plan needs 4 uniforms');
      const state = Uint32Array.from(plan.u, (v) => Math.floor(v * 4294967296) >>> 0);
      if (state.every((v) => v === 0)) state[0] = 1;
      const s = await ds.sample(plan.index, new Rng(state), opts);
      return {
        lq: planar(s.lq),
        gt: planar(s.gt),
        name: s.name,
        ...(s.mask ? { mask: planar(s.mask) } : {}),
        ...(s.gtUsm ? { gtUsm: planar(s.gtUsm) } : {}),
      };
    },
  };
}
