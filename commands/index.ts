// The CommandDefinition type and the explicit list of the bot's commands (no folder scanning: a missing command is
// a compile error). Platforms render definitions into their own formats.

import type { GenerationRequest } from '../src/core/request.js';
import type { Refusal } from '../src/core/refusal.js';
import imagine from './imagine.js';
import imagineSettings, { type SettingsAction } from './imagine-settings.js';

export type OptionKind = 'string' | 'integer';

/** One option, platform-neutral: Discord renders it as a slash-command option, Slack as a `--flag`. */
export type CommandOption = {
  name: string;
  description: string;
  kind: OptionKind;
  required: boolean;
  /** Other names a text flag may use (`--ar` for `aspect`). */
  aliases?: readonly string[];
  minLength?: number;
  maxLength?: number;
  min?: number;
  max?: number;
  choices?: readonly { name: string; value: string | number }[];
};

/** What a definition needs to know about this installation to describe and check its options. */
export type CommandContext = {
  /** Step counts with an installed UNet. */
  installedSteps: readonly number[];
  defaults: { steps: number; count: number; aspect: string };
  /** A fresh random seed, for requests that give none. */
  randomSeed: () => number;
};

/** Raw option values as a platform delivers them: numbers from Discord, text from Slack flags. */
export type OptionValues = Readonly<Record<string, string | number | boolean | undefined>>;

/** A command; `Parsed` is what its options become (a request for /imagine, a settings action for /imagine-settings). */
export type CommandDefinition<Parsed = GenerationRequest> = {
  name: string;
  description: string;
  /** For server admins only: Discord shows it to members with Manage Server (`default_member_permissions`). */
  requiredPermission?: 'manage_guild';
  options(context: CommandContext): readonly CommandOption[];
  /** Validates and turns option values into what the command does, or the refusal that says what to fix. */
  parse(values: OptionValues, context: CommandContext): Parsed | Refusal;
};

/** The commands that make images: each parses into a request for the service. */
export const COMMANDS = [imagine] as const satisfies readonly CommandDefinition[];

/**
 * The commands that configure the bot for a server (its admins only): registered beside COMMANDS on every platform,
 * each routed to its own handler, since they make no request.
 */
export const ADMIN_COMMANDS = [imagineSettings] as const satisfies readonly CommandDefinition<SettingsAction>[];

export function isRefusal<T extends object>(value: T | Refusal): value is Refusal {
  return 'code' in value;
}

/**
 * The definition a platform routes a command name to (Discord's `commandName`, Slack's `/name` without the slash);
 * undefined for a name the list does not hold, such as a command Discord still shows after it was removed.
 */
export function findCommand(commands: readonly CommandDefinition[], name: string): CommandDefinition | undefined {
  const wanted = name.replace(/^\//, '').toLowerCase();
  return commands.find((definition) => definition.name === wanted);
}

/** What a member sees for a command name the bot no longer has. */
export function unknownCommandText(name: string, commands: readonly CommandDefinition[]): string {
  const known = commands.map((definition) => `/${definition.name}`);
  return `This bot has no /${name.replace(/^\//, '')} command any more; use ${known.length <= 1 ? known.join('') : `${known.slice(0, -1).join(', ')} or ${known[known.length - 1]}`}.`;
}
