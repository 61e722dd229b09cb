/**
 * The `diffir` command: dispatches to one module per subcommand and turns every
 * error into a single line on stderr.
 */
import type { Command } from './command.js';
import { UserError, oneLine } from './errors.js';

const commands: Record<string, () => Promise<Command>> = {
  info: async () => (await import('./info.js')).info,
  forward: async () => (await import('./forward.js')).forward,
  degrade: async () => (await import('./degrade.js')).degrade,
  train: async () => (await import('./train.js')).train,
  grad: async () => (await import('./grad.js')).grad,
  restore: async () => (await import('./restore.js')).restore,
  inpaint: async () => (await import('./inpaint.js')).inpaint,
  'export-onnx': async () => (await import('./export-onnx.js')).exportOnnxCommand,
  web: async () => (await import('./web.js')).web,
  eval: async () => (await import('./eval.js')).evalCommand,
  test: async () => (await import('./test.js')).test,
};

async function usage(): Promise<string> {
  const lines = ['usage: diffir <command> [options]', '', 'commands:'];
  for (const [name, load] of Object.entries(commands)) lines.push(`  ${name.padEnd(12)} ${(await load()).summary}`);
  lines.push('', "run 'diffir <command> --help' for a command's options");
  return lines.join('\n');
}

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(await usage());
    return;
  }
  if (name === '--version' || name === '-v') {
    const { readFileSync } = await import('node:fs');
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    console.log(pkg.version);
    return;
  }
  const load = commands[name];
  if (!load) throw new UserError(`unknown command '${name}'; run 'diffir --help' for the list`, 2);
  await (await load()).run(rest);
}

main(process.argv.slice(2)).catch((e: unknown) => {
  if (process.env.DIFFIR_DEBUG === '1' && e instanceof Error) console.error(e.stack);
  console.error(`diffir: ${oneLine(e)}`);
  process.exitCode = e instanceof UserError ? e.exitCode : 1;
});
