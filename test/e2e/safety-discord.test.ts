// The image safety check on Discord end to end: the real app with a tiny classifier that flags every image, the real
// discord.js client against the local fake, in an age-restricted channel and a normal one.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { parseButtonId } from '../../src/platforms/button-ids.js';
import { PLACEHOLDER_BACKGROUND } from '../../src/render/placeholder.js';
import { writeTinyModelFolder } from '../../models/tiny/generate.js';
import { startFakeDiscord, type FakeDiscord, type FakeMessage, type FakeUser } from '../fakes/discord/index.js';

const GUILD = '100000000000000001';
const CHANNEL = '100000000000000002';
const NSFW_CHANNEL = '100000000000000003';
const alice: FakeUser = { id: '200000000000000001', username: 'alice' };
const bob: FakeUser = { id: '200000000000000002', username: 'bob' };

const root = mkdtempSync(join(tmpdir(), 'safety-discord-'));
const modelDir = join(root, 'model');
let discord: FakeDiscord;
let app: App;

const hasImage = (message: FakeMessage): boolean => message.attachments.length > 0;
const prompt = (text: string, count = 4) => [
  { name: 'prompt', type: 3, value: text },
  { name: 'count', type: 4, value: count },
];
const jobOf = (message: FakeMessage): string => parseButtonId(message.buttons[0].customId!)!.jobId;
const button = (message: FakeMessage, label: string): string => message.buttons.find((b) => b.label === label)!.customId!;

async function imagine(channelId: string, text: string, count = 4): Promise<FakeMessage> {
  return discord.sendCommand({ name: 'imagine', options: prompt(text, count), user: alice, guildId: GUILD, channelId }).waitForOriginal(hasImage, 60_000);
}

async function corner(message: FakeMessage): Promise<number[]> {
  const { data } = await sharp(message.attachments[0].data).raw().toBuffer({ resolveWithObject: true });
  return Array.from(data.subarray(0, 3));
}

beforeAll(async () => {
  // every image scores 0.9: flagged from the default threshold 0.5
  await writeTinyModelFolder(modelDir, { steps: [1], safety: { score: 0.9 } });
  discord = await startFakeDiscord({
    guilds: [{ id: GUILD, name: 'Test server', channels: [{ id: CHANNEL, name: 'general' }, { id: NSFW_CHANNEL, name: 'after-dark', nsfw: true }] }],
  });
  const config = loadConfig({
    DISCORD_TOKEN: discord.token,
    DISCORD_APPLICATION_ID: discord.applicationId,
    DISCORD_GUILD_ID: GUILD,
    DISCORD_API_URL: discord.baseUrl,
    MODEL_DIR: modelDir,
    DATA_DIR: join(root, 'data'),
    EXECUTION_PROVIDER: 'cpu',
    WEB_PORT: '0',
    DEFAULT_STEPS: '1',
    USER_BURST: '20',
    MAX_QUEUED_PER_USER: '5',
  });
  app = createApp(config, { logger: createLogger({ level: 'silent' }) });
  await app.start();
});

afterAll(async () => {
  await app?.close();
  await discord?.close();
  rmSync(root, { recursive: true, force: true });
});

describe('flagged images on Discord', () => {
  it('are sent as a spoiler with a note in a normal channel, and the decision is in the job record', async () => {
    const grid = await imagine(CHANNEL, 'a lighthouse at dusk');
    expect(grid.attachments[0].filename).toMatch(/^SPOILER_.+\.(png|webp|jpg)$/);
    expect(grid.content).toContain('4 images may not suit everyone, so the file is blurred until clicked.');
    const job = app.store.get(jobOf(grid))!;
    expect(job.nsfwChannel).toBe(false);
    expect(job.safety).toHaveLength(4);
    for (const decision of job.safety!) expect(decision).toEqual({ action: 'spoiler', reason: 'server_mode', flagged: true, score: expect.closeTo(0.9, 4) });

    // U on a flagged image follows the same rule
    const upscale = discord.clickButton({ customId: button(grid, 'U2'), messageId: grid.id, user: bob, guildId: GUILD, channelId: CHANNEL });
    const single = await upscale.waitForOriginal(hasImage, 60_000);
    expect(single.attachments[0].filename).toMatch(/^SPOILER_/);
    expect(single.content).toContain('This image may not suit everyone, so it is blurred until clicked.');
    expect(app.store.get(jobOf(single))?.safety).toEqual([{ action: 'spoiler', reason: 'server_mode', flagged: true, score: expect.closeTo(0.9, 4) }]);
  });

  it('are posted as they are in an age-restricted channel, U included', async () => {
    const grid = await imagine(NSFW_CHANNEL, 'a lighthouse at dusk', 2);
    expect(grid.attachments[0].filename).not.toMatch(/^SPOILER_/);
    expect(grid.content).not.toContain('blurred');
    const job = app.store.get(jobOf(grid))!;
    expect(job.nsfwChannel).toBe(true);
    expect(job.safety?.map((d) => [d.action, d.reason, d.flagged])).toEqual([
      ['post', 'nsfw_channel', true],
      ['post', 'nsfw_channel', true],
    ]);
    const single = await discord.clickButton({ customId: button(grid, 'U1'), messageId: grid.id, user: bob, guildId: GUILD, channelId: NSFW_CHANNEL }).waitForOriginal(hasImage, 60_000);
    expect(single.attachments[0].filename).not.toMatch(/^SPOILER_/);
  });

  it('are left out behind a placeholder tile when the server hides them, U included', async () => {
    expect(app.settings.change({ platform: 'discord', guildId: GUILD }, alice.id, { safetyMode: 'hide' })).toMatchObject({ ok: true });
    const grid = await imagine(CHANNEL, 'a quiet harbour', 2);
    expect(grid.attachments[0].filename).not.toMatch(/^SPOILER_/);
    expect(grid.content).toContain("2 images were hidden by this server's safety setting.");
    expect(await corner(grid)).toEqual([...PLACEHOLDER_BACKGROUND]);
    expect(app.store.get(jobOf(grid))?.safety?.map((d) => d.action)).toEqual(['hide', 'hide']);

    const single = await discord.clickButton({ customId: button(grid, 'U2'), messageId: grid.id, user: bob, guildId: GUILD, channelId: CHANNEL }).waitForOriginal(hasImage, 60_000);
    expect(single.content).toContain("This image was hidden by this server's safety setting.");
    expect(await sharp(single.attachments[0].data).metadata()).toMatchObject({ width: 1024, height: 1024 });
    expect(await corner(single)).toEqual([...PLACEHOLDER_BACKGROUND]);

    // with the check off for the server, they are posted
    app.settings.change({ platform: 'discord', guildId: GUILD }, alice.id, { safetyMode: 'off' });
    const posted = await imagine(CHANNEL, 'a quiet harbour', 1);
    expect(posted.attachments[0].filename).not.toMatch(/^SPOILER_/);
    expect(posted.content).not.toContain('hidden');
    expect(app.store.get(jobOf(posted))?.safety).toEqual([{ action: 'post', reason: 'mode_off', flagged: true, score: expect.closeTo(0.9, 4) }]);
    app.settings.change({ platform: 'discord', guildId: GUILD }, alice.id, { safetyMode: null });
  });
});
