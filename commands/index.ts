// The CommandDefinition type and the explicit list of the bot's commands (no folder scanning: a missing command is
// a compile error). Platforms render definitions into their own formats.

import type { GenerationRequest } from '../src/core/request.js';
import type { Refusal } from '../src/core/refusal.js';
import imagine from './imagine.js';
import imagineSettings from './imagine-settings.js';

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

export const COMMANDS = [imagine, imagineSettings] as const satisfies readonly CommandDefinition<unknown>[];

export function isRefusal<T extends object>(value: T | Refusal): value is Refusal {
  return 'code' in value;
}
