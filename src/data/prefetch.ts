/**
 * Batches prepared ahead of the trainer in worker threads (node:worker_threads), so that
 * the cores running the training step never wait on decoding and degradation.
 *
 * The sample stream is deterministic: position p of the stream is image
 * perm_e[p mod N] of epoch e = ⌊p/N⌋ (perm_e drawn from (seed, e)), and its random
 * choices come from a generator derived from (seed, p); batch-level choices from
 * (seed, batch index). So batches are the same whatever the number of workers, and a
 * run resumed at batch k sees exactly the batches it would have seen.
 */
import { Worker } from 'node:worker_threads';
import type { HostTensor } from '../tensor.js';
import { deriveRng, permutation, STREAM } from './rng.js';
import { openDataset, stackSamples, type Dataset, type DatasetSpec, type SampleBatch } from './datasets.js';
import { setDataThreads } from './degrade/runtime.js';
import { TrainingPairPool } from './degrade/realesrgan.js';

/** Size of one batch, and its GT patch size when the trainer varies it. */
export interface BatchPlan {
  batchSize: number;
  patchSize?: number;
}

/** A prepared batch. */
export interface Batch extends SampleBatch {
  /** Batch number in the stream (0-based). */
  index: number;
  /** Dataset index of each sample. */
  indices: number[];
  /** Stream position of each sample. */
  positions: number[];
}

/** Options of {@link Prefetcher.open}. */
export interface PrefetchOptions {
  /** The dataset, as a spec each worker opens. */
  dataset: DatasetSpec;
  /** Seed of the whole stream. */
  seed: number;
  /** Fixed batch size (or give `schedule`). */
  batchSize?: number;
  /** Batch size and patch size per batch index (e.g. {@link progressiveSchedule}). */
  schedule?: (batchIndex: number) => BatchPlan;
  /** Worker threads (default 1); 0 prepares batches in this thread (same results). */
  workers?: number;
  /** Batches kept in preparation ahead of `next()` (default 2 per worker, at least 1). */
  depth?: number;
  /** First batch index, to resume a run (default 0). */
  start?: number;
  /** Shuffle the images every epoch (default true); false walks them in order. */
  shuffle?: boolean;
  /** ONNX Runtime intra-op threads of each worker's degradation graphs (default 1). */
  threads?: number;
  /**
   * Real-ESRGAN training pair pool of this many pairs (`queue_size`, e.g. 180); default off.
   * With the pool, `names` follow the pairs handed out, while `indices` and `positions`
   * describe the batch that went into the pool.
   */
  pool?: number;
}

/** One batch to build: dataset indices with their stream positions. */
export interface BatchJob {
  seed: number;
  batchIndex: number;
  indices: number[];
  positions: number[];
  patchSize?: number;
}

/** Builds one batch in this thread. */
export async function makeBatch(dataset: Dataset, job: BatchJob): Promise<SampleBatch> {
  const opts = job.patchSize !== undefined ? { patchSize: job.patchSize } : {};
  if (dataset.batch) {
    const items = job.indices.map((index, i) => ({ index, rng: deriveRng(job.seed, STREAM.sample, job.positions[i]!) }));
    return dataset.batch(items, deriveRng(job.seed, STREAM.batch, job.batchIndex), opts);
  }
  const samples = [];
  for (let i = 0; i < job.indices.length; i++) samples.push(await dataset.sample(job.indices[i]!, deriveRng(job.seed, STREAM.sample, job.positions[i]!), opts));
  return stackSamples(samples);
}

/** The buffers of a batch to transfer (copies views that share or partly cover a buffer). */
export function transferList(b: SampleBatch): ArrayBuffer[] {
  const seen = new Set<ArrayBuffer>();
  const own = (t: HostTensor<'float32'> | undefined): void => {
    if (!t) return;
    let d = t.data;
    if (d.byteOffset !== 0 || d.byteLength !== d.buffer.byteLength || seen.has(d.buffer as ArrayBuffer) || !(d.buffer instanceof ArrayBuffer)) {
      d = d.slice();
      (t as { data: Float32Array }).data = d;
    }
    seen.add(d.buffer as ArrayBuffer);
  };
  own(b.lq);
  own(b.gt);
  own(b.mask);
  own(b.gtUsm);
  return [...seen];
}

/** Batch sizes and patch sizes over training iterations, as the progressive schedule of Restormer/DiffIR deblurring. */
export interface ProgressiveOptions {
  /** Iterations spent in each phase. */
  iters: readonly number[];
  batchSizes: readonly number[];
  patchSizes: readonly number[];
}

/** DiffIR's GoPro deblurring schedule (`DiffIR-demotionblur/options/train_DiffIRS*.yml`). */
export const DIFFIR_DEBLUR_PROGRESSIVE: Readonly<ProgressiveOptions> = {
  iters: [150000, 60000, 50000, 60000, 40000, 40000],
  batchSizes: [8, 4, 2, 2, 1, 1],
  patchSizes: [192, 256, 320, 384, 464, 512],
};

/**
 * A schedule for {@link PrefetchOptions.schedule}: batch b (iteration b+1) belongs to the
 * first phase whose cumulative iteration count reaches b+1; the last phase continues.
 */
export function progressiveSchedule(o: ProgressiveOptions = DIFFIR_DEBLUR_PROGRESSIVE): (batchIndex: number) => BatchPlan {
  const n = o.iters.length;
  if (n === 0 || o.batchSizes.length !== n || o.patchSizes.length !== n) throw new Error('progressive schedule: iters, batch sizes and patch sizes need the same, non-zero length');
  const ends: number[] = [];
  let acc = 0;
  for (const it of o.iters) ends.push((acc += it));
  return (b) => {
    const iter = b + 1;
    let j = ends.findIndex((e) => iter <= e);
    if (j < 0) j = n - 1;
    return { batchSize: o.batchSizes[j]!, patchSize: o.patchSizes[j]! };
  };
}

interface Slot {
  resolve: (b: SampleBatch) => void;
  reject: (e: Error) => void;
}

interface WorkerHandle {
  worker: Worker;
  pending: Map<number, Slot>;
}

/** Prepares batches ahead in worker threads and hands them out in order. */
export class Prefetcher {
  private nextIndex: number;
  private requested: number;
  private started = new Map<number, Promise<Batch>>();
  private positionOf = new Map<number, number>();
  private perms = new Map<number, Uint32Array>();
  private jobId = 0;
  private closed = false;
  private failure: Error | null = null;
  private readonly pool: TrainingPairPool | null;

  private constructor(
    private readonly o: PrefetchOptions,
    /** Images in the dataset. */
    readonly size: number,
    private readonly workers: WorkerHandle[],
    private readonly local: Dataset | null,
  ) {
    this.nextIndex = o.start ?? 0;
    this.requested = this.nextIndex;
    this.pool = o.pool ? new TrainingPairPool(o.pool, deriveRng(o.seed, STREAM.pool)) : null;
  }

  /** Starts the workers (each opens the dataset) and begins preparing batches. */
  static async open(o: PrefetchOptions): Promise<Prefetcher> {
    if (!Number.isSafeInteger(o.seed) || o.seed < 0) throw new Error(`prefetch: seed must be a non-negative integer, got ${o.seed}`);
    if (!o.schedule && !(Number.isInteger(o.batchSize) && o.batchSize! > 0)) throw new Error('prefetch: give a positive batchSize or a schedule');
    const n = o.workers ?? 1;
    if (!Number.isInteger(n) || n < 0) throw new Error(`prefetch: workers must be a non-negative integer, got ${n}`);
    const threads = o.threads ?? 1;
    let pf: Prefetcher;
    if (n === 0) {
      await setDataThreads(threads);
      const ds = await openDataset(o.dataset);
      pf = new Prefetcher(o, ds.size, [], ds);
    } else {
      const handles: WorkerHandle[] = [];
      const sizes: Promise<number>[] = [];
      for (let i = 0; i < n; i++) {
        const worker = new Worker(new URL('./prefetch-worker.js', import.meta.url));
        const h: WorkerHandle = { worker, pending: new Map() };
        handles.push(h);
        sizes.push(
          new Promise<number>((resolve, reject) => {
            const onMsg = (m: { type: string; size?: number; message?: string }) => {
              if (m.type === 'ready') resolve(m.size!);
              else if (m.type === 'init-error') reject(new Error(m.message));
              if (m.type === 'ready' || m.type === 'init-error') worker.off('message', onMsg);
            };
            worker.on('message', onMsg);
            worker.once('error', reject);
          }),
        );
        worker.postMessage({ type: 'init', spec: o.dataset, threads });
      }
      let size: number;
      try {
        const all = await Promise.all(sizes);
        size = all[0]!;
      } catch (e) {
        await Promise.all(handles.map((h) => h.worker.terminate()));
        throw e;
      }
      pf = new Prefetcher(o, size, handles, null);
      for (const h of handles) pf.listen(h);
    }
    if (pf.size < 1) throw new Error('prefetch: the dataset is empty');
    pf.fill();
    return pf;
  }

  private listen(h: WorkerHandle): void {
    h.worker.on('message', (m: { type: string; id?: number; batch?: SampleBatch; message?: string }) => {
      if (m.type !== 'batch' && m.type !== 'error') return;
      const slot = h.pending.get(m.id!);
      if (!slot) return;
      h.pending.delete(m.id!);
      if (m.type === 'batch') slot.resolve(m.batch!);
      else slot.reject(new Error(m.message));
    });
    const fail = (e: Error) => {
      this.failure ??= e;
      for (const s of h.pending.values()) s.reject(e);
      h.pending.clear();
    };
    h.worker.on('error', (e) => fail(new Error(`data worker failed: ${e.message.split('\n')[0]}`)));
    h.worker.on('exit', (code) => {
      if (!this.closed) fail(new Error(`data worker exited with code ${code}`));
    });
  }

  /** The plan of batch `b`. */
  plan(b: number): BatchPlan {
    if (this.o.schedule) {
      const p = this.o.schedule(b);
      if (!Number.isInteger(p.batchSize) || p.batchSize < 1) throw new Error(`prefetch: schedule gave batch size ${p.batchSize} for batch ${b}`);
      return p;
    }
    return { batchSize: this.o.batchSize! };
  }

  /** Stream position of the first sample of batch `b`. */
  private firstPosition(b: number): number {
    const hit = this.positionOf.get(b);
    if (hit !== undefined) return hit;
    if (!this.o.schedule) return b * this.o.batchSize!;
    // Walk back to the nearest known batch (or 0) and sum the batch sizes forward.
    let k = b;
    while (k > 0 && !this.positionOf.has(k)) k--;
    let p = this.positionOf.get(k) ?? 0;
    for (; k < b; k++) p += this.plan(k).batchSize;
    this.positionOf.set(b, p);
    return p;
  }

  /** Dataset index at stream position `p`. */
  indexAt(p: number): number {
    if (this.o.shuffle === false) return p % this.size;
    const e = Math.floor(p / this.size);
    let perm = this.perms.get(e);
    if (!perm) {
      perm = permutation(deriveRng(this.o.seed, STREAM.epoch, e), this.size);
      this.perms.set(e, perm);
      for (const k of this.perms.keys()) if (k < e - 1) this.perms.delete(k);
    }
    return perm[p % this.size]!;
  }

  private job(b: number): BatchJob {
    const plan = this.plan(b);
    const first = this.firstPosition(b);
    this.positionOf.set(b + 1, first + plan.batchSize);
    const positions = Array.from({ length: plan.batchSize }, (_, i) => first + i);
    const job: BatchJob = { seed: this.o.seed, batchIndex: b, indices: positions.map((p) => this.indexAt(p)), positions };
    if (plan.patchSize !== undefined) job.patchSize = plan.patchSize;
    return job;
  }

  private start(b: number): void {
    const job = this.job(b);
    let p: Promise<SampleBatch>;
    if (this.local) p = makeBatch(this.local, job);
    else {
      const h = this.workers[b % this.workers.length]!;
      const id = this.jobId++;
      p = new Promise<SampleBatch>((resolve, reject) => {
        if (this.failure) return reject(this.failure);
        h.pending.set(id, { resolve, reject });
        h.worker.postMessage({ type: 'batch', id, ...job });
      });
    }
    const batch = p.then((sb) => ({ ...sb, index: b, indices: job.indices, positions: job.positions }));
    batch.catch(() => undefined); // reported by next()
    this.started.set(b, batch);
  }

  private fill(): void {
    const depth = this.o.depth ?? Math.max(1, 2 * this.workers.length);
    while (this.requested < this.nextIndex + depth) this.start(this.requested++);
  }

  /** The next batch in stream order (waits only when it is not ready yet). */
  async next(): Promise<Batch> {
    if (this.closed) throw new Error('prefetch: next() after close()');
    const b = this.nextIndex++;
    if (!this.started.has(b)) this.start(b);
    const p = this.started.get(b)!;
    this.started.delete(b);
    this.fill();
    const batch = await p;
    if (!this.pool) return batch;
    if (batch.mask) throw new Error('prefetch: the training pair pool holds LQ/GT pairs only, not masks');
    const pooled = this.pool.push({ lq: batch.lq, gt: batch.gt, ...(batch.gtUsm ? { gtUsm: batch.gtUsm } : {}), names: batch.names });
    const out: Batch = { ...batch, lq: pooled.lq, gt: pooled.gt, names: pooled.names ?? batch.names };
    if (pooled.gtUsm) out.gtUsm = pooled.gtUsm;
    delete out.info;
    return out;
  }

  /** Stops the workers. Batches in preparation are dropped. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.started.values()) p.catch(() => undefined);
    this.started.clear();
    await this.local?.close?.();
    await Promise.all(
      this.workers.map(async (h) => {
        for (const s of h.pending.values()) s.reject(new Error('prefetch: closed'));
        h.pending.clear();
        const exited = new Promise<void>((r) => h.worker.once('exit', () => r()));
        h.worker.postMessage({ type: 'close' });
        const timer = setTimeout(() => void h.worker.terminate(), 2000);
        await exited;
        clearTimeout(timer);
      }),
    );
  }
}
