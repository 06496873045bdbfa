import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { JobStore } from '../../../src/core/jobs.js';
import { promptRefusal, channelRefusal } from '../../../src/core/policy.js';
import { createSettingsStore, type SettingsDefaults } from '../../../src/core/settings.js';
import { createLogger } from '../../../src/logger.js';

const root = mkdtempSync(join(tmpdir(), 'settings-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const defaults: SettingsDefaults = { blockedWords: ['forbidden'], allowedChannels: [], safetyMode: 'spoiler', dailyQuota: null, defaultSteps: 4 };
const config = (path = ':memory:') => ({ path, defaults, installedSteps: [2, 4, 8] });
const discord = (guildId: string) => ({ platform: 'discord' as const, guildId });

describe('per-server settings', () => {
  it('start from the .env defaults, for every server and in DMs', () => {
    const store = createSettingsStore(config());
    for (const settings of [store.settings(discord('G1')), store.settings(undefined)]) {
      expect(settings).toMatchObject({ blockedWords: ['forbidden'], serverBlockedWords: [], allowedChannels: [], safetyMode: 'spoiler', dailyQuota: null, defaultSteps: 4 });
      expect(promptRefusal(settings.policy, 'a forbidden cat')).toEqual({ code: 'blocked_word' });
    }
    store.close();
  });

  it('apply a change to that server only, at once, with the global words kept', () => {
    const store = createSettingsStore(config());
    const result = store.change(discord('G1'), 'U-admin', {
      blockWords: ['Dragon', ' dragon ', 'red  panda'],
      allowChannels: ['C1', 'C2'],
      safetyMode: 'hide',
      dailyQuota: 30,
      defaultSteps: 2,
    });
    expect(result).toMatchObject({ ok: true, changed: ['blocked_words', 'allowed_channels', 'safety_mode', 'daily_quota', 'default_steps'] });
    const g1 = store.settings(discord('G1'));
    expect(g1).toMatchObject({ blockedWords: ['forbidden', 'Dragon', 'red panda'], serverBlockedWords: ['Dragon', 'red panda'], allowedChannels: ['C1', 'C2'], safetyMode: 'hide', dailyQuota: 30, defaultSteps: 2 });
    expect(promptRefusal(g1.policy, 'a dr4gon')).toEqual({ code: 'blocked_word' });
    expect(promptRefusal(g1.policy, 'a forbidden cat')).toEqual({ code: 'blocked_word' });
    expect(channelRefusal(g1.policy, { guildId: 'G1', channelId: 'C3' })).toEqual({ code: 'channel_not_allowed' });

    const g2 = store.settings(discord('G2'));
    expect(promptRefusal(g2.policy, 'a dragon')).toBeUndefined();
    expect(g2).toMatchObject({ safetyMode: 'spoiler', dailyQuota: null, defaultSteps: 4 });
    // the same id on another platform is another server
    expect(store.settings({ platform: 'slack', guildId: 'G1' }).safetyMode).toBe('spoiler');
    store.close();
  });

  it('remove words and channels, and put settings back to their defaults', () => {
    const store = createSettingsStore(config());
    store.change(discord('G1'), 'U1', { blockWords: ['dragon', 'wyvern'], allowChannels: ['C1', 'C2'], safetyMode: 'off', dailyQuota: 5 });
    const result = store.change(discord('G1'), 'U1', { unblockWords: ['DRAGON'], disallowChannels: ['C1'], safetyMode: null, dailyQuota: null });
    expect(result).toMatchObject({ ok: true, changed: ['blocked_words', 'allowed_channels', 'safety_mode', 'daily_quota'] });
    expect(store.settings(discord('G1'))).toMatchObject({ serverBlockedWords: ['wyvern'], allowedChannels: ['C2'], safetyMode: 'spoiler', dailyQuota: null });
    store.change(discord('G1'), 'U1', { resetChannels: true });
    expect(store.settings(discord('G1')).own.allowedChannels).toBe(false);
    // a change that changes nothing logs nothing
    expect(store.change(discord('G1'), 'U1', { unblockWords: ['not there'] })).toMatchObject({ ok: true, changed: [] });
    store.close();
  });

  it('refuse a bad value with the sentence that says what to fix, and change nothing', () => {
    const store = createSettingsStore(config());
    const bad = [
      [{ defaultSteps: 3 }, { option: 'steps', expected: 'one of 2, 4, 8' }],
      [{ dailyQuota: 0 }, { option: 'quota', expected: 'a whole number from 1 to 1000000' }],
      [{ dailyQuota: 1.5 }, { option: 'quota', expected: 'a whole number from 1 to 1000000' }],
      [{ blockWords: ['x'.repeat(61)] }, { option: 'a blocked word', expected: '1 to 60 characters' }],
      [{ blockWords: ['  '] }, { option: 'a blocked word', expected: '1 to 60 characters' }],
      [{ allowChannels: ['<#123>'] }, { option: 'a channel', expected: 'a channel mention or id' }],
      [{ safetyMode: 'blur' as never }, { option: 'safety', expected: 'one of off, spoiler, hide' }],
      [{ blockWords: Array.from({ length: 201 }, (_, i) => `word${i}`) }, { option: 'the word list', expected: 'at most 200 words per server' }],
    ] as const;
    for (const [change, refusal] of bad) {
      expect(store.change(discord('G1'), 'U1', change), JSON.stringify(change).slice(0, 60)).toEqual({ ok: false, refusal: { code: 'invalid_option', ...refusal } });
    }
    expect(store.history(discord('G1'))).toEqual([]);
    expect(store.overridesOf(discord('G1'))).toEqual({ blockedWords: [], allowedChannels: null, safetyMode: null, dailyQuota: null, defaultSteps: null });
    store.close();
  });

  it('log who changed what, in the database and the admin log', () => {
    const lines: Record<string, unknown>[] = [];
    const destination = new Writable({
      write(chunk, _encoding, done) {
        for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    let now = 1_000;
    const store = createSettingsStore(config(), { logger: createLogger({ level: 'info', destination }), now: () => now });
    store.change(discord('G1'), 'U-alice', { safetyMode: 'hide' });
    now = 2_000;
    store.change(discord('G1'), 'U-bob', { safetyMode: 'off', blockWords: ['dragon'] });
    expect(store.history(discord('G1'))).toEqual([
      { at: 2_000, userId: 'U-bob', setting: 'safety_mode', before: 'hide', after: 'off' },
      { at: 2_000, userId: 'U-bob', setting: 'blocked_words', before: [], after: ['dragon'] },
      { at: 1_000, userId: 'U-alice', setting: 'safety_mode', before: null, after: 'hide' },
    ]);
    expect(lines.filter((line) => line.msg === 'server setting changed').map(({ userId, setting, after }) => ({ userId, setting, after }))).toEqual([
      { userId: 'U-alice', setting: 'safety_mode', after: 'hide' },
      { userId: 'U-bob', setting: 'blocked_words', after: ['dragon'] },
      { userId: 'U-bob', setting: 'safety_mode', after: 'off' },
    ]);
    store.close();
  });

  it('survive a restart, in the jobs database beside the job store', () => {
    const path = join(root, 'data', 'jobs.sqlite');
    const jobs = new JobStore(path);
    const first = createSettingsStore(config(path));
    first.change(discord('G1'), 'U1', { blockWords: ['dragon'], safetyMode: 'hide', defaultSteps: 8 });
    first.close();
    jobs.close();

    const reopenedJobs = new JobStore(path);
    expect(reopenedJobs.schemaVersion).toBeGreaterThan(0);
    const second = createSettingsStore(config(path));
    expect(second.settings(discord('G1'))).toMatchObject({ serverBlockedWords: ['dragon'], safetyMode: 'hide', defaultSteps: 8 });
    expect(second.history(discord('G1'))).toHaveLength(3);
    second.close();
    reopenedJobs.close();
  });

  it('fall back to the default step count when a server’s is no longer installed', () => {
    const path = join(root, 'steps.sqlite');
    const first = createSettingsStore(config(path));
    first.change(discord('G1'), 'U1', { defaultSteps: 8 });
    first.close();
    const fewer = createSettingsStore({ path, defaults, installedSteps: [4] });
    expect(fewer.settings(discord('G1')).defaultSteps).toBe(4);
    fewer.close();
  });
});
