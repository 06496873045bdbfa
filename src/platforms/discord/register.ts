// Puts the bot's slash commands on Discord only when they differ from what Discord has: a GET creates nothing, so
// restarts never spend the daily command-creation limit.

import { REST, Routes } from 'discord.js';
import type { CommandJson } from './command-json.js';

export type RegisterOptions = { token: string; applicationId: string; guildId?: string; apiUrl?: string };
export type RegisterResult = { scope: string; changed: boolean; added: string[]; updated: string[]; removed: string[] };

/** The parts of a command Discord echoes back, in a stable form, so desired and stored JSON compare equal. */
function normalise(command: Record<string, unknown>): string {
  const pick = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(pick);
    if (value && typeof value === 'object') {
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(value).sort()) {
        if (['id', 'application_id', 'guild_id', 'version', 'dm_permission', 'nsfw', 'name_localizations', 'description_localizations', 'handler'].includes(key)) continue;
        const inner = (value as Record<string, unknown>)[key];
        if (inner === undefined || inner === null) continue;
        if (key === 'required' && inner === false) continue;
        if (key === 'options' && Array.isArray(inner) && inner.length === 0) continue;
        out[key] = pick(inner);
      }
      return out;
    }
    return value;
  };
  return JSON.stringify(pick(command));
}

/** Compares the commands Discord has with `commands` and overwrites them only when something differs. */
export async function registerCommands(commands: readonly CommandJson[], options: RegisterOptions): Promise<RegisterResult> {
  const rest = new REST(options.apiUrl ? { api: options.apiUrl } : {}).setToken(options.token);
  const route = options.guildId ? Routes.applicationGuildCommands(options.applicationId, options.guildId) : Routes.applicationCommands(options.applicationId);
  const scope = options.guildId ? `guild ${options.guildId}` : 'global';
  const existing = (await rest.get(route)) as Record<string, unknown>[];
  const byName = new Map(existing.map((command) => [String(command.name), command]));
  const added = commands.filter((command) => !byName.has(command.name)).map((command) => command.name);
  const updated = commands
    .filter((command) => byName.has(command.name) && normalise(byName.get(command.name)!) !== normalise(command as unknown as Record<string, unknown>))
    .map((command) => command.name);
  const wanted = new Set(commands.map((command) => command.name));
  const removed = [...byName.keys()].filter((name) => !wanted.has(name));
  const changed = added.length + updated.length + removed.length > 0;
  if (changed) await rest.put(route, { body: commands });
  return { scope, changed, added, updated, removed };
}

export function describeRegistration(result: RegisterResult): string {
  if (!result.changed) return `Discord commands (${result.scope}) are up to date.`;
  const parts = [
    result.added.length ? `added ${result.added.map((n) => `/${n}`).join(', ')}` : '',
    result.updated.length ? `updated ${result.updated.map((n) => `/${n}`).join(', ')}` : '',
    result.removed.length ? `removed ${result.removed.map((n) => `/${n}`).join(', ')}` : '',
  ].filter(Boolean);
  return `Discord commands (${result.scope}): ${parts.join('; ')}.`;
}
