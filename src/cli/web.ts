/**
 * `diffir web [--port N]`: serves the restoration page (built by Vite into dist/web) on
 * this machine. Images and checkpoints never leave the browser: the page restores them
 * with onnxruntime-web. The server sends the COOP/COEP headers that make the page
 * cross-origin isolated (SharedArrayBuffer, so multi-threaded WebAssembly), and serves
 * the built-in model from `models/` so a retrained one is used without rebuilding.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from './command.js';
import { intOption, parseCommand } from './args.js';
import { UserError } from './errors.js';
import { DEFAULT_MODEL_PATH } from '../models/default-model.js';

const PACKAGE_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** Where `npm run build:web` writes the page. */
export const WEB_ROOT = join(PACKAGE_ROOT, 'dist', 'web');

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.safetensors': 'application/octet-stream',
  '.txt': 'text/plain; charset=utf-8',
};

/** Headers that make the page cross-origin isolated (needed for threads in WebAssembly). */
export const ISOLATION_HEADERS: Readonly<Record<string, string>> = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

/** Builds the page with Vite when it is missing and Vite is installed (a clone without `npm ci`'s prepare). */
function ensureBuilt(): void {
  if (existsSync(join(WEB_ROOT, 'index.html'))) return;
  const vite = join(PACKAGE_ROOT, 'node_modules', 'vite', 'bin', 'vite.js');
  if (!existsSync(vite) || !existsSync(join(PACKAGE_ROOT, 'web', 'vite.config.mjs'))) {
    throw new UserError(`web: the page is not built (${WEB_ROOT} is missing) and Vite is not installed to build it; run 'npm ci' in the diffir folder`);
  }
  console.error('diffir web: building the page (first start)…');
  const r = spawnSync(process.execPath, [vite, 'build', '--config', join(PACKAGE_ROOT, 'web', 'vite.config.mjs'), '--logLevel', 'warn'], { cwd: PACKAGE_ROOT, stdio: 'inherit' });
  if (r.status !== 0 || !existsSync(join(WEB_ROOT, 'index.html'))) throw new UserError("web: building the page failed; run 'npm run build:web' to see why");
}

/** The file a URL path maps to, or null when it is outside the page's folder. */
function fileFor(urlPath: string): string | null {
  let p: string;
  try {
    p = decodeURIComponent(urlPath.split('?')[0]!);
  } catch {
    return null;
  }
  if (p === '/models/default-realsr-x4.safetensors') return DEFAULT_MODEL_PATH;
  if (p.endsWith('/')) p += 'index.html';
  const f = normalize(join(WEB_ROOT, p));
  return f.startsWith(WEB_ROOT + sep) ? f : null;
}

function serve(req: IncomingMessage, res: ServerResponse): void {
  const f = req.method === 'GET' || req.method === 'HEAD' ? fileFor(req.url ?? '/') : null;
  let size = -1;
  try {
    if (f) {
      const st = statSync(f);
      if (st.isFile()) size = st.size;
    }
  } catch {
    size = -1;
  }
  if (!f || size < 0) {
    res.writeHead(req.method === 'GET' || req.method === 'HEAD' ? 404 : 405, { 'Content-Type': 'text/plain; charset=utf-8', ...ISOLATION_HEADERS });
    res.end('not found\n');
    return;
  }
  res.writeHead(200, {
    'Content-Type': MIME[extname(f).toLowerCase()] ?? 'application/octet-stream',
    'Content-Length': String(size),
    // Hashed assets never change; the page and the model are checked on every load.
    'Cache-Control': /[\\/]assets[\\/]/.test(f) ? 'public, max-age=31536000, immutable' : 'no-cache',
    ...ISOLATION_HEADERS,
  });
  if (req.method === 'HEAD') res.end();
  else createReadStream(f).pipe(res);
}

export const web: Command = {
  summary: 'serve the restoration web page (runs in your browser, nothing is uploaded)',
  async run(argv) {
    const p = parseCommand(
      'web',
      '[--port N] [--host ADDRESS]',
      {
        port: { type: 'string', short: 'p', arg: 'n', default: '8080', help: 'TCP port (0: any free port)' },
        host: { type: 'string', arg: 'address', default: '127.0.0.1', help: "address to listen on ('0.0.0.0' for other machines)" },
      },
      argv,
    );
    if (!p) return;
    if (p.positionals.length) throw new UserError(`web: unexpected argument '${p.positionals[0]}'; run 'diffir web --help'`, 2);
    const port = intOption('web', p.values, 'port')!;
    if (port > 65535) throw new UserError(`web: --port must be at most 65535, got ${port}`, 2);
    const host = String(p.values.host);
    ensureBuilt();
    const server = createServer(serve);
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) =>
        reject(new UserError(e.code === 'EADDRINUSE' ? `web: port ${port} is in use; pick another with --port (0 for any free port)` : `web: cannot listen on ${host}:${port} (${e.message})`)),
      );
      server.listen(port, host, () => resolve());
    });
    const addr = server.address();
    const actual = typeof addr === 'object' && addr ? addr.port : port;
    const shown = host === '0.0.0.0' || host === '::' ? 'localhost' : host.includes(':') ? `[${host}]` : host;
    console.log(`diffir web: serving http://${shown}:${actual}/ (Ctrl-C to stop)`);
    await new Promise<void>((resolve) => {
      const stop = () => {
        server.close(() => resolve());
        server.closeAllConnections();
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
  },
};
