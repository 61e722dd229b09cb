/**
 * The web page in a real browser: Debian's Chromium (never a downloaded one) driven by
 * playwright-core, loading the page from `diffir web`. It restores the bundled sample
 * through the page's file input and compares the downloaded PNG with the Node pipeline's
 * result (within 1/255 per sample), checks Cancel, a not-an-image and a truncated-JPEG error,
 * that a wrong checkpoint is reported while the model in use is kept, and saves a screenshot.
 *
 * Without /usr/bin/chromium the test is skipped, unless DIFFIR_REQUIRE_BROWSER=1 (CI's
 * `.ci/run` installs Chromium and sets it), where a missing browser is a failure.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import type { BrowserContext, Page } from 'playwright-core';
import { Restorer } from '../src/restore/restore.js';
import { loadImage } from '../src/image/io.js';
import { pack } from '../src/image/pixels.js';
import { DEFAULT_MODEL_PATH } from '../src/models/default-model.js';
import { CHROMIUM, ROOT, ensurePageBuilt, launchChromium, startWebServer, type WebServer } from './helpers/web.js';

const required = process.env.DIFFIR_REQUIRE_BROWSER === '1';
const skip = !existsSync(CHROMIUM) && !required ? `no Chromium at ${CHROMIUM} (apt-get install chromium; CI installs it)` : false;
const tmp = mkdtempSync(join(tmpdir(), 'diffir-web-'));
const artifacts = process.env.DIFFIR_TEST_ARTIFACTS ?? tmp;
const sample = join(ROOT, 'samples/cat.jpg');

let server: WebServer | null = null;
let context: BrowserContext | null = null;
let page: Page;
let url = '';

before(async () => {
  if (skip) return;
  assert.ok(existsSync(CHROMIUM), `DIFFIR_REQUIRE_BROWSER=1 but there is no Chromium at ${CHROMIUM}`);
  ensurePageBuilt();
  server = await startWebServer();
  url = server.url;
  context = await launchChromium(join(tmp, 'profile'));
  page = context.pages()[0] ?? (await context.newPage());
  await page.goto(url, { timeout: 600_000 });
  await page.waitForFunction(() => document.documentElement.dataset.backend && document.documentElement.dataset.model, null, { timeout: 120_000 });
});

after(async () => {
  await context?.close();
  server?.stop();
  if (artifacts === tmp) {
    // Keep the screenshot, drop the browser profile.
    rmSync(join(tmp, 'profile'), { recursive: true, force: true });
  }
});

test('diffir web serves the page cross-origin isolated; the backend is shown', { skip }, async () => {
  const res = await fetch(url);
  assert.equal(res.headers.get('cross-origin-opener-policy'), 'same-origin');
  assert.equal(res.headers.get('cross-origin-embedder-policy'), 'require-corp');
  assert.equal((await fetch(new URL('ort/ort-wasm-simd-threaded.jsep.wasm', url))).headers.get('content-type'), 'application/wasm');
  // Nothing outside the page's folder is served, however the path is spelled.
  for (const path of ['/..%2fpackage.json', '/%2e%2e/%2e%2e/package.json', '/assets/..%2f..%2f..%2fpackage.json']) {
    const status = await new Promise<number>((res, rej) => get(new URL(path, url), (r) => (r.resume(), res(r.statusCode!))).on('error', rej));
    assert.equal(status, 404, path);
  }
  assert.equal(await page.evaluate(() => crossOriginIsolated), true);
  // --disable-gpu: no WebGPU adapter, so WebAssembly.
  assert.equal(await page.getAttribute('html', 'data-backend'), 'wasm');
  assert.match((await page.textContent('#backend'))!, /WebAssembly, \d+ thread/);
});

test('a file that is not an image fails in one sentence; a wrong checkpoint is reported and the model kept', { skip }, async () => {
  await page.setInputFiles('input[type=file]', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello') });
  const card = page.locator('.card[data-state=failed]').first();
  await card.waitFor({ timeout: 60_000 });
  const text = (await card.locator('.state').textContent())!;
  assert.equal(text, 'notes.txt: not an image this browser can read (PNG, JPEG, WebP, GIF, AVIF or BMP)');
  // A truncated JPEG: the browser's decoder would show a partly grey image; the page refuses it.
  const jpg = readFileSync(sample);
  await page.setInputFiles('input[type=file]', { name: 'cut.jpg', mimeType: 'image/jpeg', buffer: jpg.subarray(0, jpg.length >> 1) });
  const cut = page.locator('.card[data-state=failed]', { hasText: 'cut.jpg' });
  await cut.waitFor({ timeout: 60_000 });
  assert.equal(await cut.locator('.state').textContent(), 'cut.jpg: truncated image data (the JPEG data stops before its end marker); the file is incomplete');
  await page.setInputFiles('input[type=file]', { name: 'model.safetensors', mimeType: 'application/octet-stream', buffer: Buffer.from('not a checkpoint at all') });
  await page.waitForSelector('#error:not([hidden])', { timeout: 60_000 });
  const err = (await page.textContent('#error'))!;
  assert.match(err, /^model\.safetensors: /);
  assert.doesNotMatch(err, /\n|at .*\.js:\d+/);
  await page.waitForFunction(() => /still default-realsr-x4/.test(document.querySelector('#model-status')!.textContent!), null, { timeout: 60_000 });
  assert.equal(await page.inputValue('#model'), 'default');
});

test('the page restores the sample like diffir restore (within 1/255), downloads it, screenshot', { skip }, async () => {
  await page.setInputFiles('input[type=file]', sample);
  const card = page.locator('.card', { hasText: 'cat.jpg' });
  const img = card.locator('img[data-testid=result]');
  await card.and(page.locator('[data-state=done]')).waitFor({ timeout: 900_000 });
  const src = (await img.getAttribute('src'))!;
  // The comparison shows the original under the result.
  await page.waitForFunction((el) => (el as HTMLImageElement).naturalWidth > 0, await card.locator('img.before').elementHandle());
  assert.equal(await card.locator('img.before').evaluate((el) => (el as HTMLImageElement).naturalWidth), 150);
  assert.match(src, /^blob:/);
  const fromImg = Buffer.from(await page.evaluate(async (u) => Array.from(new Uint8Array(await (await fetch(u)).arrayBuffer())), src));
  const [download] = await Promise.all([page.waitForEvent('download'), card.locator('a.download').click()]);
  assert.equal(download.suggestedFilename(), 'cat_diffir.png');
  const downloaded = readFileSync((await download.path())!);
  assert.deepEqual(downloaded, fromImg);

  const web = await loadImage(downloaded);
  const r = Restorer.load(DEFAULT_MODEL_PATH, { threads: 2 });
  const node = await r.restore(sample, { seed: 0 });
  await r.release();
  assert.deepEqual([web.width, web.height], [node.width, node.height]);
  const hw = node.width * node.height;
  const a = pack(web.rgb.data, 3, null, hw, false, 255).data;
  const b = pack(node.rgb.data, 3, null, hw, false, 255).data;
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  assert.ok(worst <= 1, `browser and Node results differ by up to ${worst}/255`);

  mkdirSync(artifacts, { recursive: true });
  const shot = join(artifacts, 'web-page.png');
  await page.screenshot({ path: shot, fullPage: true });
  assert.ok(statSync(shot).size > 10_000);
  writeFileSync(join(artifacts, 'web-result.png'), downloaded);
  console.log(`# screenshot: ${shot}; browser vs Node: max difference ${worst}/255`);
});

test('Cancel stops a restoration in progress', { skip }, async () => {
  const big = join(tmp, 'big.png');
  await sharp(sample).resize(600, 400).png().toFile(big);
  await page.setInputFiles('input[type=file]', big);
  const card = page.locator('.card', { hasText: 'big.png' });
  await card.locator('.size').filter({ hasText: '600×400' }).waitFor({ timeout: 60_000 });
  await card.locator('.cancel').click();
  await card.and(page.locator('[data-state=cancelled]')).waitFor({ timeout: 30_000 });
  assert.equal(await card.locator('img[data-testid=result]').getAttribute('src'), null);
});
