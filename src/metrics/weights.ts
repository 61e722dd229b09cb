/**
 * Where the metrics' weight files are found: the user's own copies, under their official names,
 * in the places the reference tools keep them. Nothing is downloaded; a missing file is a
 * one-line error naming it and where people get it.
 *
 * Search order for each file: `--weights-dir DIR` (also DIR/weights/v0.1/… for the lpips
 * package's own layout), then `$TORCH_HOME/hub/checkpoints/` (torchvision and pytorch-fid
 * downloads; `TORCH_HOME` defaults to `$XDG_CACHE_HOME/torch` or `~/.cache/torch`), then beside
 * an installed Python package (lpips, basicsr) in the usual site-packages folders.
 */
import { existsSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** The weight files the metrics use. */
export type MetricFile = 'alexnet' | 'vgg16' | 'inception' | 'lpips-alex' | 'lpips-vgg' | 'niqe';

interface FileInfo {
  /** Official name (relative path for the lpips heads). */
  readonly name: string;
  /** Where people get it. */
  readonly source: string;
  /** Found in torch's hub cache. */
  readonly torchHub?: boolean;
  /** Path inside an installed Python package. */
  readonly pkg?: string;
}

/** Official names and sources. */
export const METRIC_FILES: Readonly<Record<MetricFile, FileInfo>> = {
  alexnet: {
    name: 'alexnet-owt-7be5be79.pth',
    source: 'torchvision downloads it to $TORCH_HOME/hub/checkpoints/ (https://download.pytorch.org/models/alexnet-owt-7be5be79.pth)',
    torchHub: true,
  },
  vgg16: {
    name: 'vgg16-397923af.pth',
    source: 'torchvision downloads it to $TORCH_HOME/hub/checkpoints/ (https://download.pytorch.org/models/vgg16-397923af.pth)',
    torchHub: true,
  },
  inception: {
    name: 'pt_inception-2015-12-05-6726825d.pth',
    source: 'pytorch-fid downloads it to $TORCH_HOME/hub/checkpoints/ (https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth)',
    torchHub: true,
  },
  'lpips-alex': { name: 'v0.1/alex.pth', source: 'the lpips package ships it as lpips/weights/v0.1/alex.pth (pip install lpips)', pkg: 'lpips/weights/v0.1/alex.pth' },
  'lpips-vgg': { name: 'v0.1/vgg.pth', source: 'the lpips package ships it as lpips/weights/v0.1/vgg.pth (pip install lpips)', pkg: 'lpips/weights/v0.1/vgg.pth' },
  niqe: {
    name: 'niqe_pris_params.npz',
    source: "BasicSR ships it as basicsr/metrics/niqe_pris_params.npz (pip install basicsr, or the repository's file)",
    pkg: 'basicsr/metrics/niqe_pris_params.npz',
  },
};

/** `$TORCH_HOME`, as torch.hub resolves it. */
export function torchHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.TORCH_HOME) return env.TORCH_HOME;
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'torch');
}

/** site-packages folders of the usual Python installs (user, system, virtualenv, conda). */
function sitePackages(env: NodeJS.ProcessEnv): string[] {
  const roots = [env.VIRTUAL_ENV, env.CONDA_PREFIX, join(homedir(), '.local'), '/usr/local', '/usr', '/opt/conda'].filter((r): r is string => !!r);
  const out: string[] = [];
  for (const r of roots) {
    const lib = join(r, 'lib');
    let names: string[] = [];
    try {
      names = readdirSync(lib).filter((n) => /^python3(\.\d+)?$/.test(n));
    } catch {
      continue;
    }
    for (const n of names) for (const s of ['site-packages', 'dist-packages']) out.push(join(lib, n, s));
  }
  return out;
}

/** Candidate paths for a file, in search order. */
export function candidates(file: MetricFile, weightsDir?: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const info = METRIC_FILES[file];
  const out: string[] = [];
  if (weightsDir) {
    out.push(join(weightsDir, info.name));
    if (info.pkg?.startsWith('lpips/')) out.push(join(weightsDir, 'weights', info.name));
  }
  if (info.torchHub) out.push(join(torchHome(env), 'hub', 'checkpoints', info.name));
  if (info.pkg) for (const sp of sitePackages(env)) out.push(join(sp, info.pkg));
  return out;
}

/** The path of a metric's weight file, or a one-line error naming it and where people get it. */
export function findMetricFile(file: MetricFile, weightsDir?: string, env: NodeJS.ProcessEnv = process.env): string {
  const c = candidates(file, weightsDir, env);
  const hit = c.find((p) => existsSync(p));
  if (hit) return hit;
  const info = METRIC_FILES[file];
  const looked = [weightsDir ? `--weights-dir ${weightsDir}` : null, info.torchHub ? join(torchHome(env), 'hub', 'checkpoints') : null, info.pkg ? 'installed Python packages' : null]
    .filter((s) => s)
    .join(', ');
  return missing(`${info.name} not found (looked in ${looked}); ${info.source}; nothing is downloaded: put it in --weights-dir`);
}

function missing(msg: string): never {
  throw new Error(msg);
}
