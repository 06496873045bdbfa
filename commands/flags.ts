// Text flags for platforms without typed options (Slack): "/imagine a lighthouse --steps 2 --ar 16:9" → option values,
// read against the same CommandDefinition that Discord renders as slash-command options.

import type { CommandContext, CommandDefinition, OptionValues } from './index.js';

export type FlagParse = { kind: 'values'; values: OptionValues } | { kind: 'help' } | { kind: 'error'; message: string };

/**
 * What starts a flag: `--` or `-`, or an en or em dash (U+2013, U+2014), which autocorrect ("smart punctuation" on
 * macOS and iOS) makes of a typed `--`, or the minus sign U+2212.
 */
const DASH = '(?:--?|[\u2013\u2014\u2212]{1,2})';
const FLAG = new RegExp(`^${DASH}([a-z][a-z-]*)(?:=(.*))?$`, 'i');
const HELP = new RegExp(`^(?:help|${DASH}(?:help|h))$`, 'i');
const STARTS_WITH_FLAG = new RegExp(`^${DASH}[a-z]`, 'i');

/** The first required string option takes the free text; every other option is a `--flag value`. */
export function parseFlags(definition: CommandDefinition<unknown>, text: string, context: CommandContext): FlagParse {
  const trimmed = text.trim();
  if (trimmed === '' || HELP.test(trimmed)) return { kind: 'help' };
  const options = definition.options(context);
  const free = options.find((option) => option.kind === 'string' && option.required);
  const byFlag = new Map<string, string>();
  for (const option of options) {
    if (option === free) continue;
    byFlag.set(option.name, option.name);
    for (const alias of option.aliases ?? []) byFlag.set(alias, option.name);
  }
  const values: Record<string, string> = {};
  const words: string[] = [];
  const tokens = trimmed.split(/\s+/);
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i];
    const flag = FLAG.exec(token);
    if (!flag) {
      words.push(token);
      continue;
    }
    const name = byFlag.get(flag[1].toLowerCase());
    if (!name) return { kind: 'error', message: `Unknown option --${flag[1]}.` };
    const value = flag[2] ?? tokens[++i];
    if (value === undefined || value === '' || value.startsWith('--') || STARTS_WITH_FLAG.test(value)) return { kind: 'error', message: `--${flag[1]} needs a value.` };
    if (name in values) return { kind: 'error', message: `--${flag[1]} is given twice.` };
    values[name] = value;
  }
  if (free) values[free.name] = words.join(' ');
  return { kind: 'values', values };
}

/** One usage line per option, from the same definition. */
export function flagUsage(definition: CommandDefinition<unknown>, context: CommandContext, command = `/${definition.name}`): string {
  const options = definition.options(context);
  const free = options.find((option) => option.kind === 'string' && option.required);
  const lines = [`Usage: ${command} ${free ? `<${free.name}>` : ''} ${options.filter((o) => o !== free).map((o) => `[--${o.aliases?.[0] ?? o.name} …]`).join(' ')}`.replace(/\s+/g, ' ').trim()];
  for (const option of options) {
    if (option === free) continue;
    const allowed = option.choices ? option.choices.map((c) => c.name).join(', ') : option.min !== undefined ? `${option.min}–${option.max}` : 'text';
    const names = [option.name, ...(option.aliases ?? [])].map((n) => `--${n}`).join(', ');
    lines.push(`  ${names}: ${option.description} (${allowed})`);
  }
  lines.push(`Example: ${command} a lighthouse at dusk --steps ${context.defaults.steps} --ar 16:9 --count 4`);
  return lines.join('\n');
}
