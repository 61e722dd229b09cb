/**
 * A `--weights-dir` folder with the metric fixture's weights under their official names
 * (synthesized from ../shared/fixtures/metrics manifests into the test cache, linked here).
 * AlexNet is written without its 244 MB `classifier.*` weights but with one small stand-in
 * key, so the loaders still have to skip keys LPIPS does not use.
 */
import { copyFileSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES_DIR, readManifest, synthCacheDir, synthWeights } from './synth.js';

/** The metric fixture folder. */
export const METRICS_DIR = join(FIXTURES_DIR, 'metrics');

/** Writes and returns a weights folder; `format` chooses the .pth container; `alexOnly` links only AlexNet and its LPIPS head. */
export function metricWeightsDir(format: 'legacy' | 'zip' = 'legacy', alexOnly = false): string {
  const dir = mkdtempSync(join(tmpdir(), `diffir-metric-weights-${format}-`));
  mkdirSync(join(dir, 'v0.1'));
  const alex = readManifest(join(METRICS_DIR, 'alexnet-owt-7be5be79.manifest.json'));
  const slim = { ...alex, tensors: [...alex.tensors.filter((t) => !t.name.startsWith('classifier.')), { name: 'classifier.6.bias', shape: [1000], init: { kind: 'uniform', exp: 6 } }] };
  mkdirSync(synthCacheDir(), { recursive: true });
  const slimPath = join(synthCacheDir(), 'alexnet-owt-7be5be79-features.manifest.json');
  writeFileSync(slimPath, JSON.stringify(slim));
  const link = (manifest: string, name: string): void => symlinkSync(synthWeights(manifest, { format }), join(dir, name));
  link(slimPath, 'alexnet-owt-7be5be79.pth');
  link(join(METRICS_DIR, 'lpips_v0.1_alex.manifest.json'), 'v0.1/alex.pth');
  if (alexOnly) return dir;
  link(join(METRICS_DIR, 'vgg16-397923af.manifest.json'), 'vgg16-397923af.pth');
  link(join(METRICS_DIR, 'pt_inception-2015-12-05-6726825d.manifest.json'), 'pt_inception-2015-12-05-6726825d.pth');
  link(join(METRICS_DIR, 'lpips_v0.1_vgg.manifest.json'), 'v0.1/vgg.pth');
  copyFileSync(join(METRICS_DIR, 'niqe_pris_params.npz'), join(dir, 'niqe_pris_params.npz'));
  return dir;
}
