/**
 * `diffir degrade <folder> --out <folder>`: writes what a training recipe would make of
 * each image — the degraded LQ and the GT patch (Real-ESRGAN or bicubic), or the masked
 * image and its mask (inpainting) — plus one JSON line per sample with what was drawn,
 * so that a person can look at what the model will learn from.
 */
import { availableParallelism } from 'node:os';
import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Command } from './command.js';
import { parseCommand, required, intOption } from './args.js';
import { UserError } from './errors.js';
import { saveImage } from '../image/io.js';
import { BicubicDataset, InpaintingDataset, RealESRGANDataset, type Dataset, type MaskSource } from '../data/datasets.js';
import { DIFFIR_REALSR_OPTIONS } from '../data/degrade/realesrgan.js';
import { EVAL_MASKS } from '../data/masks.js';
import { deriveRng, STREAM } from '../data/rng.js';
import { stem } from '../data/folder.js';
import { releaseDataSessions, setDataThreads } from '../data/degrade/runtime.js';

const RECIPES = ['realesrgan', 'realesrgan-v2', 'bicubic', 'inpaint'] as const;
type Recipe = (typeof RECIPES)[number];

export const degrade: Command = {
  summary: 'write degraded training samples (and masks) from a folder of images, to inspect',
  async run(argv) {
    const p = parseCommand(
      'degrade',
      '<images-folder> --out <folder> [--recipe realesrgan|realesrgan-v2|bicubic|inpaint]',
      {
        out: { type: 'string', arg: 'folder', help: 'where to write the samples (created if missing)' },
        recipe: { type: 'string', arg: 'name', default: 'realesrgan', help: `${RECIPES.join(', ')}` },
        scale: { type: 'string', arg: 'n', default: '4', help: 'SR scale (realesrgan, bicubic)' },
        size: { type: 'string', arg: 'px', help: 'GT patch size (default: 256)' },
        masks: { type: 'string', arg: 'set|folder', default: 'train', help: `inpaint masks: train, ${Object.keys(EVAL_MASKS).join(', ')}, or a folder of masks` },
        samples: { type: 'string', arg: 'n', default: '1', help: 'samples per image' },
        seed: { type: 'string', arg: 'n', default: '0', help: 'seed; the same seed gives the same samples' },
        threads: { type: 'string', arg: 'n', help: 'ONNX Runtime threads (default: all cores)' },
        overwrite: { type: 'boolean', help: 'replace existing files' },
      },
      argv,
    );
    if (!p) return;
    if (p.positionals.length !== 1) throw new UserError("degrade: give one folder of images, e.g. 'diffir degrade photos --out samples'", 2);
    const root = p.positionals[0]!;
    const out = required('degrade', p.values, 'out');
    const recipe = p.values.recipe as string;
    if (!(RECIPES as readonly string[]).includes(recipe)) throw new UserError(`degrade: unknown recipe '${recipe}'; use one of ${RECIPES.join(', ')}`, 2);
    const scale = intOption('degrade', p.values, 'scale') ?? 4;
    if (scale < 1) throw new UserError('degrade: --scale must be at least 1', 2);
    const size = intOption('degrade', p.values, 'size') ?? 256;
    if (size < 1) throw new UserError('degrade: --size must be at least 1', 2);
    const samples = intOption('degrade', p.values, 'samples') ?? 1;
    const seed = intOption('degrade', p.values, 'seed') ?? 0;
    await setDataThreads(intOption('degrade', p.values, 'threads') ?? availableParallelism());

    let ds: Dataset & { files: readonly string[] };
    try {
      ds = await open(recipe as Recipe, root, scale, size, p.values.masks as string);
    } catch (e) {
      throw new UserError(`degrade: ${e instanceof Error ? e.message : String(e)}`);
    }
    await mkdir(out, { recursive: true });
    const log = join(out, 'degrade.jsonl');
    if (existsSync(log) && !p.values.overwrite) throw new UserError(`${log} exists; pass --overwrite to replace it`);
    await writeFile(log, '');
    const opts = { overwrite: p.values.overwrite === true, createFolder: true };
    let written = 0;
    try {
      for (let i = 0; i < ds.size; i++) {
        for (let k = 0; k < samples; k++) {
          const position = i * samples + k;
          const s = await ds.sample(i, deriveRng(seed, STREAM.sample, position));
          const base = join(out, `${stem(ds.files[i]!)}${samples > 1 ? `_${k}` : ''}`);
          await mkdir(dirname(base), { recursive: true });
          const files: Record<string, string> = {};
          const save = async (tag: string, t: typeof s.gt): Promise<void> => {
            const path = `${base}_${tag}.png`;
            await saveImage(path, { rgb: t }, opts);
            files[tag] = path;
          };
          await save(recipe === 'inpaint' ? 'masked' : 'lq', s.lq);
          await save('gt', s.gt);
          if (s.gtUsm) await save('gt_usm', s.gtUsm);
          if (s.mask) await save('mask', s.mask);
          await appendFile(log, JSON.stringify({ image: ds.files[i], sample: k, seed, position, files, info: s.info ?? null }) + '\n');
          written++;
        }
      }
    } finally {
      await releaseDataSessions();
    }
    console.log(`wrote ${written} sample(s) from ${ds.size} image(s) to ${out} (log: ${log})`);
  },
};

async function open(recipe: Recipe, root: string, scale: number, size: number, masks: string): Promise<Dataset & { files: readonly string[] }> {
  switch (recipe) {
    case 'realesrgan':
    case 'realesrgan-v2':
      return RealESRGANDataset.open({
        root,
        degradation: { ...DIFFIR_REALSR_OPTIONS, scale, gtSize: size, usmTarget: recipe === 'realesrgan-v2' },
        cropPadSize: Math.max(size, Math.ceil(400 / scale) * scale),
      });
    case 'bicubic':
      return BicubicDataset.open({ root, scale, gtSize: size });
    case 'inpaint': {
      const src: MaskSource = masks === 'train' || masks in EVAL_MASKS ? (masks as MaskSource) : { dir: masks };
      return InpaintingDataset.open({ root, size, masks: src });
    }
  }
}
