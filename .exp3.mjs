import { parseSafetensors } from './dist/src/weights/safetensors.js';
const n = Number(process.argv[2]);
const json = '{"__metadata__":' + '['.repeat(n) + ']'.repeat(n) + '}';
const body = new TextEncoder().encode(json);
const b = new Uint8Array(8 + body.length); new DataView(b.buffer).setBigUint64(0, BigInt(body.length), true); b.set(body, 8);
const t = Date.now();
try { parseSafetensors(b, 'deep.safetensors'); } catch (e) { console.log(e.message.slice(0, 200)); }
console.log('ms', Date.now() - t, 'maxRSS MB', (process.resourceUsage().maxRSS / 1024).toFixed(0));
