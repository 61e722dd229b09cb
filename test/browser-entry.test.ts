/**
 * The browser entry point stays browser-safe: its import closure, with the `browser` side
 * of the package's `#host`/`#ort`/`#codec` adapters, reaches no Node built-in, sharp or
 * onnxruntime-node; and the browser adapters behave like the Node ones where both can run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as zlib from 'node:zlib';
import * as nodeHost from '../src/host/node.js';
import * as webHost from '../src/host/web.js';
import { encodePng } from '../src/image/png.js';
import { loadImage } from '../src/image/io.js';
import { pack } from '../src/image/pixels.js';
import { Rng } from '../src/random.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { imports: Record<string, Record<string, string>> };

/** Every module the browser entry loads, and the bare packages it imports. */
function browserClosure(entry: string): { files: Set<string>; bare: Set<string> } {
  const files = new Set<string>();
  const bare = new Set<string>();
  const todo = [entry];
  while (todo.length) {
    const f = todo.pop()!;
    if (files.has(f)) continue;
    files.add(f);
    const src = readFileSync(f, 'utf8');
    for (const m of src.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'";]*?from\s*'([^']+)'|import\(\s*'([^']+)'\s*\)|(?:^|\n)\s*import\s*'([^']+)'/g)) {
      const spec = (m[1] ?? m[2] ?? m[3])!;
      if (spec.startsWith('.')) todo.push(resolve(dirname(f), spec));
      else if (spec.startsWith('#')) {
        const target = pkg.imports[spec]?.browser;
        assert.ok(target, `${f}: '${spec}' has no browser side in package.json imports`);
        if (target.startsWith('.')) todo.push(join(root, target));
        else bare.add(target);
      } else bare.add(spec);
    }
  }
  return { files, bare };
}

test('the browser entry reaches no Node built-in, sharp or onnxruntime-node', () => {
  const { files, bare } = browserClosure(join(root, 'dist/src/browser.js'));
  assert.ok(files.size > 30, `closure has ${files.size} modules`);
  for (const f of files) assert.ok(!/\/(cli|train|data)\//.test(f), `${f} is in the browser closure`);
  const pkgs = [...bare].map((s) => (s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : s.split('/')[0]!));
  assert.deepEqual([...new Set(pkgs)].sort(), ['fflate', 'onnxruntime-web', 'protobufjs']);
});

test('the browser host matches Node on paths and zlib', () => {
  for (const p of ['a/b/net_g.pth', 'net.safetensors', '/x/.hidden', 'dir/', 'noext', 'a.b/c']) {
    assert.equal(webHost.baseName(p), nodeHost.baseName(p), p);
    assert.equal(webHost.extName(p), nodeHost.extName(p), p);
  }
  const data = new Uint8Array(5000).map((_, i) => (i * 7919) % 251);
  const raw = zlib.deflateRawSync(data);
  assert.deepEqual(new Uint8Array(webHost.inflateRaw(raw, data.length)), new Uint8Array(nodeHost.inflateRaw(raw, data.length)));
  assert.deepEqual(new Uint8Array(zlib.inflateSync(webHost.deflate(data))), data);
  assert.throws(() => webHost.readFile('x.pth'), /not possible in a browser; pass the file's bytes/);
});

test('encodePng writes the exact samples (8/16-bit, gray, alpha), as the sharp loader reads them back', async () => {
  const r = new Rng(3);
  const [w, h] = [7, 5];
  const hw = w * h;
  const rgb = Float32Array.from({ length: 3 * hw }, () => r.uniform() * 1.2 - 0.1);
  const alpha = Float32Array.from({ length: hw }, (_, i) => i / (hw - 1));
  for (const [gray, a, max] of [[false, alpha, 255], [false, null, 65535], [true, alpha, 255], [true, null, 65535]] as const) {
    const p = pack(rgb, 3, a, hw, gray, max);
    const png = encodePng(p, w, h);
    const img = await loadImage(png);
    assert.deepEqual([img.width, img.height, img.gray, img.bitDepth, img.alpha !== null], [w, h, gray, max === 255 ? 8 : 16, a !== null]);
    const back = pack(img.rgb.data, 3, img.alpha ? img.alpha.data : null, hw, gray, max);
    assert.deepEqual(Array.from(back.data), Array.from(p.data), `gray=${gray} alpha=${a !== null} max=${max}`);
  }
});
