// /imagine-settings: a server's admins show and change its own settings (blocked words, allowed channels, safety
// mode, daily quota, default steps). No option shows them; each option given changes one thing. Discord shows it to
// members with Manage Server; the platforms check the member themselves too.

import type { Refusal } from '../src/core/refusal.js';
import { SAFETY_MODES, type SafetyMode } from '../src/core/safety-policy.js';
import { SETTINGS_LIMITS, type ServerSettings, type SettingsChange } from '../src/core/settings.js';
import type { CommandContext, CommandDefinition, CommandOption, OptionValues } from './index.js';

/** What the command asks for: the settings shown, or a change to make. */
export type SettingsAction = { kind: 'show' } | { kind: 'change'; change: SettingsChange };

/** The word that puts a setting back to the .env default. */
export const DEFAULT_WORD = 'default';

/** Lists are comma-separated, as in .env. */
const LIST_SEPARATOR = /\s*,\s*/u;
/** A Discord channel mention `<#123>`, a Slack one `<#C123|name>` or `<#C123>`, or a bare id. */
const CHANNEL = /^(?:<#([A-Za-z0-9]+)(?:\|[^>]*)?>|#?([A-Za-z0-9]+))$/u;

function options(context: CommandContext): readonly CommandOption[] {
  return [
    { name: 'block', description: 'Words to block here, comma-separated (added to the bot’s own list)', kind: 'string', required: false, maxLength: 1000 },
    { name: 'unblock', description: 'Words to stop blocking here, comma-separated', kind: 'string', required: false, maxLength: 1000 },
    { name: 'allow-channel', description: `Channels where images may be made, comma-separated ("${DEFAULT_WORD}": the bot’s list)`, kind: 'string', required: false, maxLength: 1000 },
    { name: 'disallow-channel', description: 'Channels to take off the allowed list, comma-separated', kind: 'string', required: false, maxLength: 1000 },
    {
      name: 'safety',
      description: 'Flagged images outside age-restricted channels: spoiler (blurred), hide, or off',
      kind: 'string',
      required: false,
      choices: [...SAFETY_MODES, DEFAULT_WORD].map((mode) => ({ name: mode, value: mode })),
    },
    { name: 'quota', description: `Images per UTC day here (1 to ${SETTINGS_LIMITS.dailyQuota}, or "${DEFAULT_WORD}")`, kind: 'string', required: false, maxLength: 10 },
    {
      name: 'steps',
      description: `Steps when a request names none (default ${context.defaults.steps})`,
      kind: 'string',
      required: false,
      choices: [...context.installedSteps.map(String), DEFAULT_WORD].map((steps) => ({ name: steps, value: steps })),
    },
  ];
}

const text = (value: string | number | boolean | undefined): string | undefined => {
  if (value === undefined) return undefined;
  const trimmed = String(value).trim();
  return trimmed === '' ? undefined : trimmed;
};
const list = (value: string): string[] => value.split(LIST_SEPARATOR).filter(Boolean);

function channels(value: string, option: string): string[] | Refusal {
  const ids: string[] = [];
  for (const item of list(value)) {
    const match = CHANNEL.exec(item);
    if (!match) return { code: 'invalid_option', option, expected: 'channel mentions or ids separated by commas' };
    ids.push(match[1] ?? match[2]);
  }
  return ids;
}

function parse(values: OptionValues, context: CommandContext): SettingsAction | Refusal {
  const change: SettingsChange = {};
  const block = text(values.block);
  if (block !== undefined) change.blockWords = list(block);
  const unblock = text(values.unblock);
  if (unblock !== undefined) change.unblockWords = list(unblock);

  const allow = text(values['allow-channel']);
  if (allow !== undefined && allow.toLowerCase() === DEFAULT_WORD) {
    change.resetChannels = true;
  } else if (allow !== undefined) {
    const ids = channels(allow, 'allow-channel');
    if (!Array.isArray(ids)) return ids;
    change.allowChannels = ids;
  }
  const disallow = text(values['disallow-channel']);
  if (disallow !== undefined) {
    const ids = channels(disallow, 'disallow-channel');
    if (!Array.isArray(ids)) return ids;
    change.disallowChannels = ids;
  }

  const safety = text(values.safety)?.toLowerCase();
  if (safety !== undefined) {
    if (safety === DEFAULT_WORD) change.safetyMode = null;
    else if ((SAFETY_MODES as readonly string[]).includes(safety)) change.safetyMode = safety as SafetyMode;
    else return { code: 'invalid_option', option: 'safety', expected: `one of ${[...SAFETY_MODES, DEFAULT_WORD].join(', ')}` };
  }

  const quota = text(values.quota)?.toLowerCase();
  if (quota !== undefined) {
    if (quota === DEFAULT_WORD) change.dailyQuota = null;
    else if (/^\d+$/.test(quota) && Number(quota) >= 1 && Number(quota) <= SETTINGS_LIMITS.dailyQuota) change.dailyQuota = Number(quota);
    else return { code: 'invalid_option', option: 'quota', expected: `a whole number from 1 to ${SETTINGS_LIMITS.dailyQuota}, or ${DEFAULT_WORD}` };
  }

  const steps = text(values.steps)?.toLowerCase();
  if (steps !== undefined) {
    if (steps === DEFAULT_WORD) change.defaultSteps = null;
    else if (/^\d+$/.test(steps) && context.installedSteps.includes(Number(steps))) change.defaultSteps = Number(steps);
    else return { code: 'invalid_option', option: 'steps', expected: `one of ${[...context.installedSteps, DEFAULT_WORD].join(', ')}` };
  }

  return Object.keys(change).length === 0 ? { kind: 'show' } : { kind: 'change', change };
}

/**
 * The settings in force, one line each, for the platform to send: `escape` makes the server's words literal in its
 * markup, `channel` writes a channel id the way the platform mentions it.
 */
export function describeSettings(settings: ServerSettings, format: { escape?: (text: string) => string; channel?: (id: string) => string } = {}): string {
  const escape = format.escape ?? ((text: string) => text);
  const channel = format.channel ?? ((id: string) => id);
  const mark = (own: boolean): string => (own ? '' : ' (default)');
  const words = settings.serverBlockedWords;
  return [
    `Blocked words added here: ${words.length > 0 ? words.map(escape).join(', ') : 'none'} (the bot’s own list applies too)`,
    `Allowed channels: ${settings.allowedChannels.length > 0 ? settings.allowedChannels.map(channel).join(', ') : 'every channel'}${mark(settings.own.allowedChannels)}`,
    `Safety: ${settings.safetyMode}${mark(settings.own.safetyMode)}`,
    `Daily quota: ${settings.dailyQuota === null ? 'none' : `${settings.dailyQuota} images`}${mark(settings.own.dailyQuota)}`,
    `Default steps: ${settings.defaultSteps}${mark(settings.own.defaultSteps)}`,
  ].join('\n');
}

export default {
  name: 'imagine-settings',
  description: 'Show or change this server’s image bot settings (admins)',
  requiredPermission: 'manage_guild',
  options,
  parse,
} satisfies CommandDefinition<SettingsAction>;
