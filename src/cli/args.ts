/**
 * Option parsing for subcommands on top of node:util's parseArgs, with errors that
 * name the bad option and a --help text per command.
 */
import { parseArgs } from 'node:util';
import { UserError } from './errors.js';

/** One option of a command. */
export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  default?: string | boolean;
  /** Shown in --help. */
  help: string;
  /** Placeholder shown in --help for string options. */
  arg?: string;
}

/** Parsed options: strings, booleans and string lists. */
export type ParsedOptions = Record<string, string | boolean | string[] | undefined>;

/** Parses `argv` against `spec`; prints help and returns null on --help. */
export function parseCommand(
  command: string,
  usage: string,
  spec: Record<string, OptionSpec>,
  argv: string[],
): { values: ParsedOptions; positionals: string[] } | null {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = { help: { type: 'boolean', short: 'h' } };
  for (const [k, s] of Object.entries(spec)) options[k] = { type: s.type, ...(s.short ? { short: s.short } : {}), ...(s.multiple ? { multiple: true } : {}) };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    const msg = e instanceof Error ? e.message.split('\n')[0]! : String(e);
    throw new UserError(`${command}: ${msg.replace(/^Unknown option/, 'unknown option')}; run 'diffir ${command} --help'`, 2);
  }
  if (parsed.values.help) {
    const lines = [`usage: diffir ${command} ${usage}`, '', 'options:'];
    for (const [k, s] of Object.entries(spec)) {
      const flag = `${s.short ? `-${s.short}, ` : '    '}--${k}${s.type === 'string' ? ` <${s.arg ?? 'value'}>` : ''}`;
      lines.push(`  ${flag.padEnd(30)} ${s.help}${s.default !== undefined ? ` (default: ${s.default})` : ''}`);
    }
    console.log(lines.join('\n'));
    return null;
  }
  const values: ParsedOptions = {};
  for (const [k, s] of Object.entries(spec)) values[k] = (parsed.values[k] as string | boolean | string[] | undefined) ?? s.default;
  return { values, positionals: parsed.positionals };
}

/** A required string option, or a usage error naming it. */
export function required(command: string, values: ParsedOptions, name: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v === '') throw new UserError(`${command}: --${name} is required; run 'diffir ${command} --help'`, 2);
  return v;
}

/** A positive integer option. */
export function intOption(command: string, values: ParsedOptions, name: string): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || !Number.isInteger(n) || n < 0) throw new UserError(`${command}: --${name} must be a non-negative integer, got '${String(v)}'`, 2);
  return n;
}

/** `argv` with BasicSR's single-dash `-opt` spelled `--opt` for the argument parser. */
export function normalizeOpt(argv: readonly string[]): string[] {
  return argv.map((a) => (a === '-opt' ? '--opt' : a));
}
