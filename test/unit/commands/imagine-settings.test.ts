import { describe, expect, it } from 'vitest';
import settings, { describeSettings } from '../../../commands/imagine-settings.js';
import type { CommandContext } from '../../../commands/index.js';
import { parseFlags } from '../../../commands/flags.js';
import { createSettingsStore } from '../../../src/core/settings.js';

const context: CommandContext = { installedSteps: [2, 4], defaults: { steps: 4, count: 4, aspect: '1:1' }, randomSeed: () => 1 };

describe('/imagine-settings', () => {
  it('shows the settings when no option is given', () => {
    expect(settings.parse({}, context)).toEqual({ kind: 'show' });
    expect(settings.parse({ block: '  ' }, context)).toEqual({ kind: 'show' });
  });

  it('turns each option into one change, with "default" putting a setting back', () => {
    expect(settings.parse({ block: 'dragon, red panda ,', unblock: 'wyvern', safety: 'Hide', quota: '30', steps: '2' }, context)).toEqual({
      kind: 'change',
      change: { blockWords: ['dragon', 'red panda'], unblockWords: ['wyvern'], safetyMode: 'hide', dailyQuota: 30, defaultSteps: 2 },
    });
    expect(settings.parse({ safety: 'default', quota: 'default', steps: 'default', 'allow-channel': 'default' }, context)).toEqual({
      kind: 'change',
      change: { safetyMode: null, dailyQuota: null, defaultSteps: null, resetChannels: true },
    });
  });

  it('reads channels as Discord and Slack mention them, or as ids', () => {
    expect(settings.parse({ 'allow-channel': '<#123456789>, <#C0ABC|general>,#C0DEF, C0XYZ', 'disallow-channel': '<#C9>' }, context)).toEqual({
      kind: 'change',
      change: { allowChannels: ['123456789', 'C0ABC', 'C0DEF', 'C0XYZ'], disallowChannels: ['C9'] },
    });
  });

  it('refuses a bad value with what it expects', () => {
    expect(settings.parse({ safety: 'blur' }, context)).toEqual({ code: 'invalid_option', option: 'safety', expected: 'one of off, spoiler, hide, default' });
    expect(settings.parse({ quota: '1e3' }, context)).toEqual({ code: 'invalid_option', option: 'quota', expected: 'a whole number from 1 to 1000000, or default' });
    expect(settings.parse({ quota: '0' }, context)).toMatchObject({ option: 'quota' });
    expect(settings.parse({ steps: '8' }, context)).toEqual({ code: 'invalid_option', option: 'steps', expected: 'one of 2, 4, default' });
    expect(settings.parse({ 'allow-channel': 'general chat' }, context)).toEqual({ code: 'invalid_option', option: 'allow-channel', expected: 'channel mentions or ids separated by commas' });
  });

  it('is for Manage Server on Discord, with option descriptions Discord accepts', () => {
    expect(settings.requiredPermission).toBe('manage_guild');
    for (const option of settings.options(context)) {
      expect(option.description.length, option.name).toBeLessThanOrEqual(100);
      expect(option.name).toMatch(/^[a-z-]{1,32}$/);
    }
    expect(settings.options(context).find((o) => o.name === 'steps')?.choices?.map((c) => c.value)).toEqual(['2', '4', 'default']);
  });

  it('reads Slack text flags against the same options', () => {
    const parsed = parseFlags(settings, 'x --block dragon --safety hide --quota 12', context);
    expect(parsed.kind).toBe('values');
    if (parsed.kind === 'values') expect(settings.parse(parsed.values, context)).toEqual({ kind: 'change', change: { blockWords: ['dragon'], safetyMode: 'hide', dailyQuota: 12 } });
  });

  it('describes the settings in force, marking the defaults', () => {
    const store = createSettingsStore({ defaults: { blockedWords: ['x'], allowedChannels: [], safetyMode: 'spoiler', dailyQuota: null, defaultSteps: 4 }, installedSteps: [2, 4] });
    const server = { platform: 'discord' as const, guildId: 'G1' };
    expect(describeSettings(store.settings(server))).toMatchInlineSnapshot(`
      "Blocked words added here: none (the bot’s own list applies too)
      Allowed channels: every channel (default)
      Safety: spoiler (default)
      Daily quota: none (default)
      Default steps: 4 (default)"
    `);
    store.change(server, 'U1', { blockWords: ['dragon'], allowChannels: ['C1'], safetyMode: 'hide', dailyQuota: 20, defaultSteps: 2 });
    expect(describeSettings(store.settings(server), { channel: (id) => `<#${id}>`, escape: (word) => word.toUpperCase() })).toMatchInlineSnapshot(`
      "Blocked words added here: DRAGON (the bot’s own list applies too)
      Allowed channels: <#C1>
      Safety: hide
      Daily quota: 20 images
      Default steps: 2"
    `);
    store.close();
  });
});
