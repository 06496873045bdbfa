// Per-server settings: what a server's admins changed from the .env defaults (blocked words, allowed channels,
// safety mode, daily quota, default steps), kept in SQLite beside the jobs, with a log of who changed what and when.

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Logger } from '../logger.js';
import { createPolicy, type Policy } from './policy.js';
import type { Refusal } from './refusal.js';
import type { Platform } from './request.js';
import { SAFETY_MODES, type SafetyMode } from './safety-policy.js';

/** A server: a Discord guild, a Slack team, or the web page's one space. */
export type ServerKey = { platform: Platform | 'web'; guildId: string };

/** The .env values every server starts from. */
export type SettingsDefaults = {
  blockedWords: readonly string[];
  allowedChannels: readonly string[];
  safetyMode: SafetyMode;
  /** Images per UTC day; null: no quota. */
  dailyQuota: number | null;
  defaultSteps: number;
};

/** What one server set; null means "the default". */
export type ServerOverrides = {
  /** Added to the global list (never replacing it). */
  blockedWords: string[];
  /** Replaces the global list when set; [] allows every channel. */
  allowedChannels: string[] | null;
  safetyMode: SafetyMode | null;
  dailyQuota: number | null;
  defaultSteps: number | null;
};

/** The settings in force for a server: its own where it set them, else the defaults; with its compiled word policy. */
export type ServerSettings = {
  /** The global list and the server's, together. */
  blockedWords: readonly string[];
  /** The server's own additions, for the settings command to show. */
  serverBlockedWords: readonly string[];
  allowedChannels: readonly string[];
  safetyMode: SafetyMode;
  dailyQuota: number | null;
  defaultSteps: number;
  /** Which values are the server's own rather than the defaults. */
  own: { allowedChannels: boolean; safetyMode: boolean; dailyQuota: boolean; defaultSteps: boolean };
  policy: Policy;
};

/** A change an admin asks for; a null value puts that setting back to its default. */
export type SettingsChange = {
  blockWords?: readonly string[];
  unblockWords?: readonly string[];
  allowChannels?: readonly string[];
  disallowChannels?: readonly string[];
  /** Back to the .env list of allowed channels. */
  resetChannels?: boolean;
  safetyMode?: SafetyMode | null;
  dailyQuota?: number | null;
  defaultSteps?: number | null;
};

/** One logged change of one setting. */
export type SettingsLogEntry = { at: number; userId: string; setting: SettingName; before: unknown; after: unknown };

export const SETTING_NAMES = ['blocked_words', 'allowed_channels', 'safety_mode', 'daily_quota', 'default_steps'] as const;
export type SettingName = (typeof SETTING_NAMES)[number];

/** Bounds on what a server may store, so a settings row stays small and the word pattern quick. */
export const SETTINGS_LIMITS = { words: 200, wordLength: 60, channels: 100, dailyQuota: 1_000_000 } as const;
const CHANNEL_ID = /^[A-Za-z0-9_-]{1,40}$/;

export type SettingsConfig = {
  /** DATA_DIR/jobs.sqlite (the jobs' database), or ':memory:'; ignored when `db` is given. */
  path?: string;
  defaults: SettingsDefaults;
  /** Step counts with an installed UNet (known once the engine started): default steps must be one of them. */
  installedSteps: readonly number[] | (() => readonly number[]);
};

export type SettingsDeps = { db?: Database.Database; logger?: Logger; now?: () => number };

/**
 * Versioned schema of the settings tables: each entry runs once, in order, in a transaction. The version lives in
 * its own row of `schema_versions`, since the jobs' migrations own `PRAGMA user_version` of the same file.
 */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE server_settings (
     platform TEXT NOT NULL,
     guild_id TEXT NOT NULL,
     blocked_words TEXT NOT NULL DEFAULT '[]',
     allowed_channels TEXT,
     safety_mode TEXT,
     daily_quota INTEGER,
     default_steps INTEGER,
     updated_at INTEGER NOT NULL,
     updated_by TEXT NOT NULL,
     PRIMARY KEY (platform, guild_id)
   );
   CREATE TABLE server_settings_log (
     id INTEGER PRIMARY KEY,
     platform TEXT NOT NULL,
     guild_id TEXT NOT NULL,
     user_id TEXT NOT NULL,
     at INTEGER NOT NULL,
     setting TEXT NOT NULL,
     before TEXT,
     after TEXT
   );
   CREATE INDEX server_settings_log_server ON server_settings_log (platform, guild_id, at);`,
];
const SCHEMA_NAME = 'server_settings';

type Row = {
  platform: string;
  guild_id: string;
  blocked_words: string;
  allowed_channels: string | null;
  safety_mode: SafetyMode | null;
  daily_quota: number | null;
  default_steps: number | null;
};

const EMPTY: ServerOverrides = { blockedWords: [], allowedChannels: null, safetyMode: null, dailyQuota: null, defaultSteps: null };
const keyOf = (server: ServerKey): string => `${server.platform}:${server.guildId}`;
const sameWord = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase();

/**
 * Per-server settings over SQLite, every row read once at start: `settings()` is memory only, so a platform can
 * check a prompt before its acknowledgement; `change()` writes through, logs, and applies at once. Create with
 * `createSettingsStore`; `close()` closes the connection it opened (not one it was given).
 */
export class SettingsStore {
  private readonly db: Database.Database;
  private readonly ownsDb: boolean;
  private readonly defaults: SettingsDefaults;
  private readonly steps: () => readonly number[];
  private readonly logger: Logger | undefined;
  private readonly now: () => number;
  private readonly overrides = new Map<string, ServerOverrides>();
  private readonly compiled = new Map<string, ServerSettings>();
  private readonly defaultSettings: ServerSettings;

  constructor(config: SettingsConfig, deps: SettingsDeps = {}) {
    if (deps.db) {
      this.db = deps.db;
      this.ownsDb = false;
    } else {
      const path = config.path ?? ':memory:';
      if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
      this.db = new Database(path);
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      // the bot's job store writes to the same file; wait for its short transactions rather than fail
      this.db.pragma('busy_timeout = 5000');
      this.ownsDb = true;
    }
    this.defaults = config.defaults;
    const installed = config.installedSteps;
    this.steps = typeof installed === 'function' ? installed : () => installed;
    this.logger = deps.logger;
    this.now = deps.now ?? Date.now;
    this.migrate();
    for (const row of this.db.prepare('SELECT * FROM server_settings').all() as Row[]) {
      this.overrides.set(`${row.platform}:${row.guild_id}`, fromRow(row));
    }
    this.defaultSettings = this.compile(EMPTY);
  }

  private migrate(): void {
    this.db.exec('CREATE TABLE IF NOT EXISTS schema_versions (name TEXT PRIMARY KEY, version INTEGER NOT NULL)');
    const row = this.db.prepare('SELECT version FROM schema_versions WHERE name = ?').get(SCHEMA_NAME) as { version: number } | undefined;
    const current = row?.version ?? 0;
    if (current > MIGRATIONS.length) {
      throw new Error(`the settings tables are at schema version ${current}, newer than this bot knows (${MIGRATIONS.length}); update the bot`);
    }
    for (let version = current; version < MIGRATIONS.length; version++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[version]);
        this.db.prepare('INSERT INTO schema_versions (name, version) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET version = excluded.version').run(SCHEMA_NAME, version + 1);
      })();
    }
  }

  /** The settings in force for `server`; the defaults in a DM (no server). Memory only. */
  settings(server: ServerKey | undefined): ServerSettings {
    if (!server) return this.defaultSettings;
    const key = keyOf(server);
    let settings = this.compiled.get(key);
    if (!settings) {
      const own = this.overrides.get(key);
      settings = own ? this.compile(own) : this.defaultSettings;
      this.compiled.set(key, settings);
    }
    return settings;
  }

  /** What the server itself set (nulls for defaults). */
  overridesOf(server: ServerKey): ServerOverrides {
    return structuredClone(this.overrides.get(keyOf(server)) ?? EMPTY);
  }

  /**
   * Checks and applies an admin's change, logs each setting that moved (who, before, after), and returns the
   * settings now in force; a refusal says what to fix and changes nothing.
   */
  change(server: ServerKey, userId: string, change: SettingsChange): { ok: true; settings: ServerSettings; changed: SettingName[] } | { ok: false; refusal: Refusal } {
    const before = this.overridesOf(server);
    const next = this.overridesOf(server);
    const invalid = (option: string, expected: string): { ok: false; refusal: Refusal } => ({ ok: false, refusal: { code: 'invalid_option', option, expected } });

    for (const word of change.blockWords ?? []) {
      const trimmed = word.trim().replace(/\s+/gu, ' ');
      if (trimmed === '' || trimmed.length > SETTINGS_LIMITS.wordLength) return invalid('a blocked word', `1 to ${SETTINGS_LIMITS.wordLength} characters`);
      if (!next.blockedWords.some((known) => sameWord(known, trimmed))) next.blockedWords.push(trimmed);
    }
    const unblock = (change.unblockWords ?? []).map((word) => word.trim().replace(/\s+/gu, ' '));
    next.blockedWords = next.blockedWords.filter((known) => !unblock.some((word) => sameWord(known, word)));
    if (next.blockedWords.length > SETTINGS_LIMITS.words) return invalid('the word list', `at most ${SETTINGS_LIMITS.words} words per server`);

    if (change.resetChannels) next.allowedChannels = null;
    const allow = change.allowChannels ?? [];
    const disallow = change.disallowChannels ?? [];
    for (const channel of [...allow, ...disallow]) if (!CHANNEL_ID.test(channel)) return invalid('a channel', 'a channel mention or id');
    if (allow.length > 0 || disallow.length > 0) {
      // the first change of a server that used the defaults starts from the default list
      const channels = new Set(next.allowedChannels ?? this.defaults.allowedChannels);
      for (const channel of allow) channels.add(channel);
      for (const channel of disallow) channels.delete(channel);
      next.allowedChannels = [...channels];
      if (next.allowedChannels.length > SETTINGS_LIMITS.channels) return invalid('the channel list', `at most ${SETTINGS_LIMITS.channels} channels`);
    }

    if (change.safetyMode !== undefined) {
      if (change.safetyMode !== null && !SAFETY_MODES.includes(change.safetyMode)) return invalid('safety', `one of ${SAFETY_MODES.join(', ')}`);
      next.safetyMode = change.safetyMode;
    }
    if (change.dailyQuota !== undefined) {
      const quota = change.dailyQuota;
      if (quota !== null && !(Number.isSafeInteger(quota) && quota >= 1 && quota <= SETTINGS_LIMITS.dailyQuota)) {
        return invalid('quota', `a whole number from 1 to ${SETTINGS_LIMITS.dailyQuota}`);
      }
      next.dailyQuota = quota;
    }
    if (change.defaultSteps !== undefined) {
      const steps = change.defaultSteps;
      if (steps !== null && !this.steps().includes(steps)) return invalid('steps', `one of ${this.steps().join(', ')}`);
      next.defaultSteps = steps;
    }

    const moves: [SettingName, unknown, unknown][] = (
      [
        ['blocked_words', before.blockedWords, next.blockedWords],
        ['allowed_channels', before.allowedChannels, next.allowedChannels],
        ['safety_mode', before.safetyMode, next.safetyMode],
        ['daily_quota', before.dailyQuota, next.dailyQuota],
        ['default_steps', before.defaultSteps, next.defaultSteps],
      ] as [SettingName, unknown, unknown][]
    ).filter(([, a, b]) => JSON.stringify(a) !== JSON.stringify(b));
    if (moves.length > 0) {
      const at = this.now();
      this.db.transaction(() => {
        this.db
          .prepare(
            `INSERT INTO server_settings (platform, guild_id, blocked_words, allowed_channels, safety_mode, daily_quota, default_steps, updated_at, updated_by)
             VALUES (@platform, @guildId, @blockedWords, @allowedChannels, @safetyMode, @dailyQuota, @defaultSteps, @at, @userId)
             ON CONFLICT (platform, guild_id) DO UPDATE SET blocked_words = excluded.blocked_words, allowed_channels = excluded.allowed_channels,
               safety_mode = excluded.safety_mode, daily_quota = excluded.daily_quota, default_steps = excluded.default_steps,
               updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
          )
          .run({
            platform: server.platform,
            guildId: server.guildId,
            blockedWords: JSON.stringify(next.blockedWords),
            allowedChannels: next.allowedChannels === null ? null : JSON.stringify(next.allowedChannels),
            safetyMode: next.safetyMode,
            dailyQuota: next.dailyQuota,
            defaultSteps: next.defaultSteps,
            at,
            userId,
          });
        const log = this.db.prepare('INSERT INTO server_settings_log (platform, guild_id, user_id, at, setting, before, after) VALUES (?, ?, ?, ?, ?, ?, ?)');
        for (const [setting, a, b] of moves) log.run(server.platform, server.guildId, userId, at, setting, JSON.stringify(a), JSON.stringify(b));
      })();
      const key = keyOf(server);
      this.overrides.set(key, next);
      this.compiled.delete(key);
      for (const [setting, a, b] of moves) {
        this.logger?.info({ platform: server.platform, guildId: server.guildId, userId, setting, before: a, after: b }, 'server setting changed');
      }
    }
    return { ok: true, settings: this.settings(server), changed: moves.map(([setting]) => setting) };
  }

  /** The server's logged changes, newest first. */
  history(server: ServerKey, limit = 50): SettingsLogEntry[] {
    const rows = this.db
      .prepare('SELECT at, user_id, setting, before, after FROM server_settings_log WHERE platform = ? AND guild_id = ? ORDER BY at DESC, id DESC LIMIT ?')
      .all(server.platform, server.guildId, limit) as { at: number; user_id: string; setting: SettingName; before: string | null; after: string | null }[];
    const parse = (text: string | null): unknown => (text === null ? null : JSON.parse(text));
    return rows.map((row) => ({ at: row.at, userId: row.user_id, setting: row.setting, before: parse(row.before), after: parse(row.after) }));
  }

  close(): void {
    if (this.ownsDb) this.db.close();
  }

  private compile(own: ServerOverrides): ServerSettings {
    const blockedWords = [...this.defaults.blockedWords, ...own.blockedWords];
    const allowedChannels = own.allowedChannels ?? this.defaults.allowedChannels;
    return {
      blockedWords,
      serverBlockedWords: own.blockedWords,
      allowedChannels,
      safetyMode: own.safetyMode ?? this.defaults.safetyMode,
      dailyQuota: own.dailyQuota ?? this.defaults.dailyQuota,
      // a default step count whose UNet was removed since falls back to the .env one
      defaultSteps: own.defaultSteps !== null && this.steps().includes(own.defaultSteps) ? own.defaultSteps : this.defaults.defaultSteps,
      own: { allowedChannels: own.allowedChannels !== null, safetyMode: own.safetyMode !== null, dailyQuota: own.dailyQuota !== null, defaultSteps: own.defaultSteps !== null },
      policy: createPolicy({ blockedWords, allowedChannels }),
    };
  }
}

function fromRow(row: Row): ServerOverrides {
  return {
    blockedWords: JSON.parse(row.blocked_words) as string[],
    allowedChannels: row.allowed_channels === null ? null : (JSON.parse(row.allowed_channels) as string[]),
    safetyMode: row.safety_mode !== null && SAFETY_MODES.includes(row.safety_mode) ? row.safety_mode : null,
    dailyQuota: row.daily_quota,
    defaultSteps: row.default_steps,
  };
}

/** The settings store over `config.path` (or the caller's connection to the same database). */
export function createSettingsStore(config: SettingsConfig, deps: SettingsDeps = {}): SettingsStore {
  return new SettingsStore(config, deps);
}
