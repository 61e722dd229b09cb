/**
 * Learning-rate schedules against a step-by-step simulation of BasicSR's chained schedulers
 * (torch _LRScheduler: constructed at epoch 0, stepped before every iteration but the first),
 * the cosine formulas at their restarts, warm-up, the official stage-2 manual rules and the
 * progressive patch / batch schedule.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encoderLr, jointLr, progressiveStage, scheduledLr, schedulerLr, type MultiStepSpec, type ManualRule } from '../src/train/schedule.js';

/** MultiStepRestartLR as torch runs it: get_lr() chained on the optimizer's current lr. */
function simulateMultiStep(spec: MultiStepSpec, base: number, epochs: number): number[] {
  const count = (e: number) => spec.milestones.filter((m) => m === e).length;
  const out: number[] = [];
  let lr = base;
  for (let e = 0; e <= epochs; e++) {
    const r = spec.restarts.indexOf(e);
    if (r >= 0) lr = base * spec.restartWeights[r]!;
    else if (count(e) > 0) lr = lr * spec.gamma ** count(e);
    out.push(lr);
  }
  return out;
}

const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);

test('MultiStepLR / MultiStepRestartLR equal the chained torch scheduler at every iteration', () => {
  const specs: MultiStepSpec[] = [
    { type: 'MultiStepLR', milestones: [500, 700], gamma: 0.5, restarts: [0], restartWeights: [1] },
    { type: 'MultiStepRestartLR', milestones: [20, 30, 30, 60, 90], gamma: 0.1, restarts: [0, 50, 80], restartWeights: [1, 0.5, 0.25] },
  ];
  for (const spec of specs) {
    const sim = simulateMultiStep(spec, 2e-4, 1000);
    for (let iter = 1; iter <= 1000; iter++) close(scheduledLr(spec, 2e-4, iter), sim[iter - 1]!, `${spec.type} iter ${iter}`);
  }
  // The official RealSR recipe: 2e-4 through iteration 500000, halved from 500001, quartered from 700001.
  const realsr: MultiStepSpec = { type: 'MultiStepLR', milestones: [500000, 700000], gamma: 0.5, restarts: [0], restartWeights: [1] };
  assert.deepEqual([500000, 500001, 700000, 700001].map((i) => scheduledLr(realsr, 2e-4, i)), [2e-4, 1e-4, 1e-4, 5e-5]);
});

test('cosine annealing with restarts (and per-cycle minima) at the cycle boundaries', () => {
  const cyc = { type: 'CosineAnnealingRestartCyclicLR' as const, periods: [92000, 208000], restartWeights: [1, 1], etaMins: [0.000285, 0.000001] };
  close(scheduledLr(cyc, 2e-4, 1), 2e-4, 'start');
  close(scheduledLr(cyc, 2e-4, 92001), 0.000285, 'end of the first cycle (epoch 92000)');
  close(scheduledLr(cyc, 2e-4, 92002), 1e-6 + 0.5 * (2e-4 - 1e-6) * (1 + Math.cos(Math.PI / 208000)), 'first step of the second cycle');
  close(scheduledLr(cyc, 2e-4, 300000), 1e-6 + 0.5 * (2e-4 - 1e-6) * (1 + Math.cos((Math.PI * 207999) / 208000)), 'last iteration');
  close(schedulerLr(cyc, 2e-4, 46000), 0.000285 + 0.5 * (2e-4 - 0.000285), 'middle of the first cycle');
  const cos = { type: 'CosineAnnealingRestartLR' as const, periods: [10, 10], restartWeights: [1, 0.5], etaMin: 1e-7 };
  close(schedulerLr(cos, 1, 10), 1e-7, 'eta_min at the end of cycle 1');
  close(schedulerLr(cos, 1, 15), 1e-7 + 0.5 * 0.5 * (1 - 1e-7), 'half weight in cycle 2');
  assert.throws(() => schedulerLr(cos, 1, 21), /iteration 22 is past the scheduler's periods \(they sum to 20\)/);
});

test('linear warm-up overrides the schedule while iter < warmup_iter', () => {
  const spec: MultiStepSpec = { type: 'MultiStepLR', milestones: [5], gamma: 0.5, restarts: [0], restartWeights: [1] };
  assert.deepEqual([1, 2, 3].map((i) => scheduledLr(spec, 1, i, 4)), [0.25, 0.5, 0.75]);
  assert.equal(scheduledLr(spec, 1, 4, 4), 1);
  assert.equal(scheduledLr(spec, 1, 7, 4), 0.5);
});

test("the official stage-2 models' manual per-phase rules", () => {
  const r: ManualRule = { encoderIter: 100000, lrEncoder: 2e-4, gammaEncoder: 0.1, lrDecayEncoder: 60000, lrSr: 2e-4, gammaSr: 0.5, lrDecaySr: 600000 };
  assert.equal(encoderLr(r, 1), 2e-4);
  assert.equal(encoderLr(r, 59999), 2e-4);
  close(encoderLr(r, 60000), 2e-5, 'phase A after 60k');
  assert.equal(jointLr(r, 100000), 2e-4);
  assert.equal(jointLr(r, 699999), 2e-4);
  assert.equal(jointLr(r, 700000), 1e-4);
});

test('progressive patch and batch sizes (deblurring recipe)', () => {
  const p = { iters: [92000, 80000, 38000, 33000, 33000, 24000], batchSizes: [8, 4, 2, 2, 1, 1], gtSizes: [192, 256, 320, 384, 464, 512] };
  assert.deepEqual(progressiveStage(p, 1), { stage: 0, batch: 8, gtSize: 192 });
  assert.deepEqual(progressiveStage(p, 92000), { stage: 0, batch: 8, gtSize: 192 });
  assert.deepEqual(progressiveStage(p, 92001), { stage: 1, batch: 4, gtSize: 256 });
  assert.deepEqual(progressiveStage(p, 300000), { stage: 5, batch: 1, gtSize: 512 });
  assert.deepEqual(progressiveStage(p, 400000), { stage: 5, batch: 1, gtSize: 512 });
});
