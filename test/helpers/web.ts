/**
 * Driving the web page in a real browser, for the browser test and bench/web: `diffir web`
 * on a free port, and Debian's Chromium (never a downloaded browser) through playwright-core
 * with a fresh profile and flags that work on a headless CI machine.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext } from 'playwright-core';

/** The package root (this file is compiled to dist/test/helpers). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** Where Chromium is looked for (DIFFIR_CHROMIUM overrides). */
export const CHROMIUM = process.env.DIFFIR_CHROMIUM ?? '/usr/bin/chromium';

/** Flags that let headless Chromium run as root on a CI machine without reaching the network. */
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

function newestMtime(dir: string): number {
  let t = 0;
  for (const f of readdirSync(dir, { recursive: true })) t = Math.max(t, statSync(join(dir, String(f))).mtimeMs);
  return t;
}

/** Rebuilds dist/web when the page or the compiled library is newer than it (npm ci's prepare builds it once). */
export function ensurePageBuilt(): void {
  const index = join(ROOT, 'dist/web/index.html');
  if (existsSync(index) && statSync(index).mtimeMs >= Math.max(newestMtime(join(ROOT, 'web')), newestMtime(join(ROOT, 'dist/src')))) return;
  const r = spawnSync(process.execPath, [join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', '--config', 'web/vite.config.mjs', '--logLevel', 'warn'], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`vite build failed: ${r.stderr}`);
}

/** A running `diffir web` and the URL it serves. */
export interface WebServer {
  readonly url: string;
  readonly process: ChildProcess;
  stop(): void;
}

/** Starts `diffir web --port 0` and waits for its URL. */
export async function startWebServer(): Promise<WebServer> {
  const p = spawn(process.execPath, [join(ROOT, 'bin/diffir.js'), 'web', '--port', '0'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const url = await new Promise<string>((res, rej) => {
    let err = '';
    p.stderr!.on('data', (d) => (err += String(d)));
    p.stdout!.on('data', (d) => {
      const m = /http:\/\/\S+\//.exec(String(d));
      if (m) res(m[0]);
    });
    p.once('exit', (code) => rej(new Error(`diffir web exited with ${code}: ${err}`)));
  });
  return { url, process: p, stop: () => void p.kill('SIGTERM') };
}

/** Launches headless Chromium with a fresh profile in `profileDir`. */
export function launchChromium(profileDir: string): Promise<BrowserContext> {
  return chromium.launchPersistentContext(profileDir, { executablePath: CHROMIUM, headless: true, acceptDownloads: true, args: CHROMIUM_ARGS });
}
