// /imagine-settings end to end on Discord and Slack: the real app and clients against the local fakes. A member who is
// not an admin is refused; an admin's change applies to the next request in that server only, and survives a restart.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { writeTinyModelFolder } from '../../models/tiny/generate.js';
import { DEFAULT_BOT_PERMISSIONS, startFakeDiscord, type FakeDiscord, type FakeMessage, type FakeUser } from '../fakes/discord/index.js';
import { startFakeSlack, type FakeSlack } from '../fakes/slack/index.js';

const root = mkdtempSync(join(tmpdir(), 'settings-e2e-'));
const modelDir = join(root, 'model');
const MANAGE_GUILD = 1n << 5n;
const BLOCKED = 'That prompt uses a word this server blocks; please rephrase it.';

beforeAll(async () => {
  await writeTinyModelFolder(modelDir, { steps: [1, 2] });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('/imagine-settings on Discord', () => {
  const GUILD = '100000000000000001';
  const OTHER_GUILD = '100000000000000011';
  const CHANNEL = '100000000000000002';
  const OTHER_CHANNEL = '100000000000000012';
  const admin: FakeUser = { id: '200000000000000001', username: 'admin' };
  const member: FakeUser = { id: '200000000000000002', username: 'member' };
  const adminPermissions = String(BigInt(DEFAULT_BOT_PERMISSIONS) | MANAGE_GUILD);
  let discord: FakeDiscord;
  let app: App;
  const dataDir = join(root, 'discord-data');
  const makeApp = (): App =>
    createApp(
      loadConfig({
        DISCORD_TOKEN: discord.token,
        DISCORD_APPLICATION_ID: discord.applicationId,
        DISCORD_GUILD_ID: GUILD,
        DISCORD_API_URL: discord.baseUrl,
        MODEL_DIR: modelDir,
        DATA_DIR: dataDir,
        EXECUTION_PROVIDER: 'cpu',
        WEB_PORT: '0',
        DEFAULT_STEPS: '1',
        DEFAULT_COUNT: '1',
        USER_BURST: '20',
      }),
      { logger: createLogger({ level: 'silent' }) },
    );
  const settings = (user: FakeUser, options: { name: string; type: number; value: string }[] = [], permissions?: string) =>
    discord.sendCommand({ name: 'imagine-settings', options, user, guildId: GUILD, channelId: CHANNEL, ...(permissions ? { memberPermissions: permissions } : {}) });
  const answer = async (interaction: ReturnType<typeof settings>): Promise<string> => {
    const callback = await interaction.waitForCallback();
    if (callback.type === 4) return String(callback.data?.content);
    return (await interaction.waitForOriginal((m: FakeMessage) => !m.loading)).content;
  };
  const refusal = async (guildId: string, channelId: string, text: string): Promise<string | undefined> => {
    const callback = await discord.sendCommand({ name: 'imagine', options: [{ name: 'prompt', type: 3, value: text }], user: member, guildId, channelId }).waitForCallback();
    return callback.type === 4 ? String(callback.data?.content) : undefined;
  };

  beforeAll(async () => {
    discord = await startFakeDiscord({
      guilds: [
        { id: GUILD, name: 'One', channels: [{ id: CHANNEL, name: 'imagine' }] },
        { id: OTHER_GUILD, name: 'Two', channels: [{ id: OTHER_CHANNEL, name: 'imagine' }] },
      ],
    });
    app = makeApp();
    await app.start();
  });
  afterAll(async () => {
    await app?.close();
    await discord?.close();
  });

  it('is registered for Manage Server only', () => {
    const command = discord.guildCommands(GUILD).find((c) => c.name === 'imagine-settings');
    expect(command?.default_member_permissions).toBe(String(MANAGE_GUILD));
    expect((command?.options as { name: string }[]).map((o) => o.name)).toEqual(['block', 'unblock', 'allow-channel', 'disallow-channel', 'safety', 'quota', 'steps']);
  });

  it('refuses a member without Manage Server, and shows an admin the settings only to them', async () => {
    expect(await answer(settings(member))).toBe('Only the admins of this server can change its image settings.');
    const shown = settings(admin, [], adminPermissions);
    const text = await answer(shown);
    expect(text).toContain('Blocked words added here: none');
    expect(text).toContain('Safety: spoiler (default)');
    expect((await shown.waitForCallback()).data?.flags).toBe(64);
  });

  it('applies an admin’s change to the next request in that server only, and keeps it over a restart', async () => {
    expect(await refusal(GUILD, CHANNEL, 'a red dragon')).toBeUndefined();
    const text = await answer(settings(admin, [{ name: 'block', type: 3, value: 'dragon' }, { name: 'safety', type: 3, value: 'hide' }, { name: 'steps', type: 3, value: '2' }], adminPermissions));
    expect(text).toMatch(/^Saved; this applies to the next request here\.\nBlocked words added here: dragon/);
    expect(text).toContain('Safety: hide\n');
    expect(await refusal(GUILD, CHANNEL, 'a red dr4gon')).toBe(BLOCKED);
    expect(await refusal(OTHER_GUILD, OTHER_CHANNEL, 'a red dragon')).toBeUndefined();
    expect(app.settings.history({ platform: 'discord', guildId: GUILD }).map((e) => [e.userId, e.setting])).toEqual(
      expect.arrayContaining([[admin.id, 'blocked_words'], [admin.id, 'safety_mode'], [admin.id, 'default_steps']]),
    );

    await app.close();
    app = makeApp();
    await app.start();
    expect(await refusal(GUILD, CHANNEL, 'a red dragon')).toBe(BLOCKED);
    expect(app.settings.settings({ platform: 'discord', guildId: GUILD })).toMatchObject({ safetyMode: 'hide', defaultSteps: 2 });
  });

  it('uses the server’s default steps and enforces its daily quota', async () => {
    const made = await discord.sendCommand({ name: 'imagine', options: [{ name: 'prompt', type: 3, value: 'a lighthouse' }], user: member, guildId: GUILD, channelId: CHANNEL }).waitForOriginal((m) => m.attachments.length > 0, 60_000);
    expect(made.content).toContain('· 2 steps ·');
    const other = await discord.sendCommand({ name: 'imagine', options: [{ name: 'prompt', type: 3, value: 'a lighthouse' }], user: member, guildId: OTHER_GUILD, channelId: OTHER_CHANNEL }).waitForOriginal((m) => m.attachments.length > 0, 60_000);
    expect(other.content).toContain('· 1 step ·');

    expect(await answer(settings(admin, [{ name: 'quota', type: 3, value: '1' }], adminPermissions))).toContain('Daily quota: 1 images');
    // the quota is counted after the acknowledgement: its refusal is a follow-up to the deferred reply
    const outcome = async (guildId: string, channelId: string): Promise<string> => {
      const interaction = discord.sendCommand({ name: 'imagine', options: [{ name: 'prompt', type: 3, value: 'a lighthouse' }], user: member, guildId, channelId });
      const callback = await interaction.waitForCallback();
      if (callback.type === 4) return String(callback.data?.content);
      // whichever comes; the other wait is left to time out quietly
      const waits = [
        interaction.waitForOriginal((m) => m.attachments.length > 0 || m.content.includes('This server has used'), 30_000),
        interaction.waitForFollowup((m) => m.content.includes('This server has used'), 30_000),
      ];
      for (const wait of waits) wait.catch(() => undefined);
      const done = await Promise.race(waits);
      return done.attachments.length > 0 ? 'made' : done.content;
    };
    expect(await outcome(GUILD, CHANNEL)).toBe('made');
    expect(await outcome(GUILD, CHANNEL)).toMatch(/This server has used its 1 images for today; try again in /);
    expect(await outcome(OTHER_GUILD, OTHER_CHANNEL)).toBe('made');
  });

  it('says what to fix for a bad value, and refuses in a DM', async () => {
    expect(await answer(settings(admin, [{ name: 'quota', type: 3, value: 'lots' }], adminPermissions))).toBe('Quota must be a whole number from 1 to 1000000, or default.');
    const dm = discord.sendCommand({ name: 'imagine-settings', options: [], user: admin });
    expect(await answer(dm)).toBe('Settings belong to a server; use /imagine-settings in one of its channels.');
  });
});

describe('/imagine-settings on Slack', () => {
  const CHANNEL = 'C0000000001';
  const owner = { id: 'U0000000001', name: 'owner', isOwner: true };
  const member = { id: 'U0000000002', name: 'member' };
  let slack: FakeSlack;
  let app: App;

  beforeAll(async () => {
    slack = await startFakeSlack({ users: [owner, member], channels: [{ id: CHANNEL, name: 'imagine' }] });
    app = createApp(
      loadConfig({
        SLACK_BOT_TOKEN: slack.botToken,
        SLACK_SIGNING_SECRET: slack.signingSecret,
        SLACK_API_URL: slack.apiUrl,
        SLACK_APP_TOKEN: slack.appToken,
        MODEL_DIR: modelDir,
        DATA_DIR: join(root, 'slack-data'),
        EXECUTION_PROVIDER: 'cpu',
        WEB_PORT: '0',
        DEFAULT_STEPS: '1',
      }),
      { logger: createLogger({ level: 'silent' }) },
    );
    await app.start();
    await slack.waitForSocket();
  });
  afterAll(async () => {
    await app?.close();
    await slack?.close();
  });

  const run = async (userId: string, text: string): Promise<string> => {
    const command = slack.sendSlashCommand({ command: '/imagine-settings', text, userId, channelId: CHANNEL });
    await command.waitForAck();
    const response = await command.waitForResponse();
    return String((response.payload as { text?: string }).text);
  };

  it('refuses a member who is not a workspace admin, and applies an owner’s change to the next request', async () => {
    expect(await run(member.id, '--block dragon')).toBe('Only the admins of this server can change its image settings.');
    expect(app.settings.overridesOf({ platform: 'slack', guildId: slack.teamId }).blockedWords).toEqual([]);
    const saved = await run(owner.id, `--block dragon --allow-channel <#${CHANNEL}|imagine>`);
    expect(saved).toMatch(/^Saved; this applies to the next request here\.\nBlocked words added here: dragon/);
    expect(saved).toContain(`Allowed channels: <#${CHANNEL}>`);
    const refused = slack.sendSlashCommand({ command: '/imagine', text: 'a red dragon', userId: member.id, channelId: CHANNEL });
    expect((await refused.waitForAck()).payload).toMatchObject({ response_type: 'ephemeral', text: BLOCKED });
  });
});
