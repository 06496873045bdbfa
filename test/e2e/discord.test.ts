// The Discord bot end to end: the real app (engine on tiny models, SQLite, limits, queue) and the real discord.js
// client, against a local fake of Discord's REST API and gateway on 127.0.0.1.

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { REST, Routes } from 'discord.js';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { parseButtonId } from '../../src/platforms/button-ids.js';
import { writeTinyModelFolder } from '../../models/tiny/generate.js';
import { startFakeDiscord, type FakeDiscord, type FakeInteraction, type FakeMessage, type FakeUser } from '../fakes/discord/index.js';

const GUILD = '100000000000000001';
const CHANNEL = '100000000000000002';
const OTHER_CHANNEL = '100000000000000003';
const alice: FakeUser = { id: '200000000000000001', username: 'alice' };
const bob: FakeUser = { id: '200000000000000002', username: 'bob' };
const carol: FakeUser = { id: '200000000000000003', username: 'carol' };
const dave: FakeUser = { id: '200000000000000004', username: 'dave' };
const erin: FakeUser = { id: '200000000000000005', username: 'erin' };
const frank: FakeUser = { id: '200000000000000006', username: 'frank' };
const grace: FakeUser = { id: '200000000000000007', username: 'grace' };

const run = promisify(execFile);
const projectRoot = new URL('../../', import.meta.url).pathname;
const root = mkdtempSync(join(tmpdir(), 'discord-e2e-'));
const modelDir = join(root, 'model');
const dataDir = join(root, 'data');
let discord: FakeDiscord;
let app: App;

function makeApp(env: Record<string, string> = {}): App {
  const config = loadConfig({
    DISCORD_TOKEN: discord.token,
    DISCORD_APPLICATION_ID: discord.applicationId,
    DISCORD_GUILD_ID: GUILD,
    DISCORD_API_URL: discord.baseUrl,
    MODEL_DIR: modelDir,
    DATA_DIR: dataDir,
    WEB_PORT: '0',
    EXECUTION_PROVIDER: 'cpu',
    LAZY_UNETS: 'true',
    DEFAULT_STEPS: '2',
    BLOCKED_WORDS: 'forbidden',
    ALLOWED_CHANNELS: CHANNEL,
    USER_BURST: '4',
    MAX_QUEUED_PER_USER: '3',
    ...env,
  });
  return createApp(config, { logger: createLogger({ level: 'silent' }) });
}

const prompt = (text: string, extra: { name: string; type: number; value: string | number }[] = []) => [{ name: 'prompt', type: 3, value: text }, ...extra];
const hasImage = (message: FakeMessage): boolean => message.attachments.length > 0;
const labels = (message: FakeMessage): (string | null)[] => message.buttons.map((button) => button.label);

/**
 * What the member was told only for themselves: the ack itself when it refused at once (checks in memory), else the
 * ephemeral followup that replaced the deferred reply (checks after the ack: limits, the job store).
 */
async function ephemeralAnswer(interaction: FakeInteraction): Promise<{ early: boolean; content: string }> {
  const callback = await interaction.waitForCallback();
  if (callback.type === 4) {
    expect(callback.data?.flags).toBe(64);
    return { early: true, content: String(callback.data?.content) };
  }
  const followup = await interaction.waitForFollowup((message) => message.ephemeral, 30_000);
  // a deferred reply of its own ("thinking…") was removed before the followup, so no public trace is left
  if (callback.type === 5) expect(interaction.original).toBeNull();
  return { early: false, content: followup.content };
}

beforeAll(async () => {
  await writeTinyModelFolder(modelDir, { steps: [1, 2, 4] });
  // the 4-step UNet is broken: loading it fails on first use, as a bad GPU load would
  writeFileSync(join(modelDir, 'unet_4step', 'model.onnx'), 'not a model');
  discord = await startFakeDiscord({ guilds: [{ id: GUILD, name: 'Test server', channels: [{ id: CHANNEL, name: 'imagine' }, { id: OTHER_CHANNEL, name: 'general' }] }] });
  app = makeApp();
  await app.start();
});

afterAll(async () => {
  await app?.close();
  await discord?.close();
  rmSync(root, { recursive: true, force: true });
});

describe('the Discord bot', () => {
  it('registers /imagine with its options, and does not register again when nothing changed', async () => {
    const [command] = discord.guildCommands(GUILD);
    expect(command?.name).toBe('imagine');
    const options = (command?.options as { name: string; choices?: { value: number }[] }[]).map((option) => option.name);
    expect(options).toEqual(['prompt', 'steps', 'seed', 'aspect', 'count']);
    const steps = (command?.options as { name: string; choices?: { value: number }[] }[])[1].choices?.map((choice) => choice.value);
    expect(steps).toEqual([1, 2, 4]);
    const puts = () => discord.requests.filter((r) => r.method === 'PUT' && r.path.includes('/commands')).length;
    expect(puts()).toBe(1);
    await app.close();
    app = makeApp();
    await app.start();
    expect(puts()).toBe(1);
  });

  it('npm run register says what it changed, and that nothing did the second time', async () => {
    const register = async (guildId: string) => {
      const { stdout } = await run(process.execPath, [join(projectRoot, 'dist/src/cli/register.js')], {
        cwd: root,
        env: { PATH: process.env.PATH ?? '', DISCORD_TOKEN: discord.token, DISCORD_APPLICATION_ID: discord.applicationId, DISCORD_GUILD_ID: guildId, DISCORD_API_URL: discord.baseUrl, MODEL_DIR: modelDir, DEFAULT_STEPS: '2' },
      });
      return stdout.trim();
    };
    expect(await register(GUILD)).toBe(`Discord commands (guild ${GUILD}) are up to date.`);
    await new REST({ api: discord.baseUrl }).setToken(discord.token).put(Routes.applicationGuildCommands(discord.applicationId, GUILD), { body: [] });
    expect(await register(GUILD)).toBe(`Discord commands (guild ${GUILD}): added /imagine, /imagine-settings.`);
    expect(await register(GUILD)).toBe(`Discord commands (guild ${GUILD}) are up to date.`);
    await expect(register('100000000000000009')).rejects.toThrow(/Registering the commands failed: Missing Access/);
  });

  it('answers /imagine within 3 s and delivers the grid with seeds, time and the buttons', async () => {
    const interaction = discord.sendCommand({ name: 'imagine', options: prompt('a lighthouse at dusk', [{ name: 'seed', type: 4, value: 42 }]), user: alice, guildId: GUILD, channelId: CHANNEL });
    const callback = await interaction.waitForCallback();
    expect(callback.type).toBe(5);
    expect(callback.elapsedMs).toBeLessThan(3000);
    const result = await interaction.waitForOriginal(hasImage, 30_000);
    expect(result.content).toContain('**a lighthouse at dusk**');
    expect(result.content).toMatch(/seeds 42–45 · 2 steps · 1024×1024 · [\d.]+ s/);
    expect(labels(result)).toEqual(['U1', 'U2', 'U3', 'U4', 'Re-roll', 'V1', 'V2', 'V3', 'V4']);
    for (const button of result.buttons) {
      expect(button.customId!.length).toBeLessThanOrEqual(100);
      expect(parseButtonId(button.customId!)).toBeDefined();
    }
    // lossless when it fits the interaction's 10 MiB; the tiny model's noise-like grid does not, so it is WebP
    const [file] = result.attachments;
    expect(file.size).toBeLessThanOrEqual(10 * 2 ** 20);
    const image = await sharp(file.data).metadata();
    expect(image.format).toBe(file.filename.endsWith('.png') ? 'png' : 'webp');
    expect([image.width! > 2048, image.height! > 2048]).toEqual([true, true]);
    expect(result.ephemeral).toBe(false);
  });

  it('answers every button: U at full size, V with variations, Re-roll with new seeds', async () => {
    const first = discord.sendCommand({ name: 'imagine', options: prompt('a red cat', [{ name: 'count', type: 4, value: 2 }]), user: alice, guildId: GUILD, channelId: CHANNEL });
    const grid = await first.waitForOriginal(hasImage, 30_000);
    const button = (label: string) => grid.buttons.find((b) => b.label === label)!.customId!;

    const upscale = discord.clickButton({ customId: button('U2'), messageId: grid.id, user: bob, guildId: GUILD, channelId: CHANNEL });
    expect((await upscale.waitForCallback()).type).toBe(5);
    const single = await upscale.waitForOriginal(hasImage, 30_000);
    expect(await sharp(single.attachments[0].data).metadata()).toMatchObject({ width: 1024, height: 1024 });
    expect(single.content).toContain('Image 2 at full size');

    const vary = discord.clickButton({ customId: button('V1'), messageId: grid.id, user: bob, guildId: GUILD, channelId: CHANNEL });
    const variations = await vary.waitForOriginal(hasImage, 30_000);
    expect(variations.content).toContain('Variations of image 1');
    expect(labels(variations)).toEqual(['U1', 'U2', 'Re-roll', 'V1', 'V2']);

    const reroll = discord.clickButton({ customId: button('Re-roll'), messageId: grid.id, user: bob, guildId: GUILD, channelId: CHANNEL });
    const rerolled = await reroll.waitForOriginal(hasImage, 30_000);
    expect(rerolled.content).toContain('Re-roll');
    expect(rerolled.content).not.toBe(grid.content);
    // each click made a new message; the grid stays as it was
    expect(new Set([grid.id, single.id, variations.id, rerolled.id]).size).toBe(4);
  });

  it('serves three members at once, showing the third its place in the queue', async () => {
    // the engine takes one running and one committed ahead; the third waits in the queue
    const first = discord.sendCommand({ name: 'imagine', options: prompt('a castle on a hill'), user: bob, guildId: GUILD, channelId: CHANNEL });
    const second = discord.sendCommand({ name: 'imagine', options: prompt('the blue sea'), user: carol, guildId: GUILD, channelId: CHANNEL });
    const third = discord.sendCommand({ name: 'imagine', options: prompt('a red kite'), user: dave, guildId: GUILD, channelId: CHANNEL });
    const [a, b, c] = await Promise.all([first, second, third].map((interaction) => interaction.waitForOriginal(hasImage, 30_000)));
    expect(a.content).toContain('castle');
    expect(b.content).toContain('blue sea');
    expect(c.content).toContain('red kite');
    const shown = [...first.edits, ...second.edits, ...third.edits].map((edit) => edit.content);
    expect(shown.some((content) => /Queued — position 1/.test(content))).toBe(true);
  });

  it('lets the owner cancel a waiting request with its Cancel button', async () => {
    const busy = [erin, frank].map((user) =>
      discord.sendCommand({ name: 'imagine', options: prompt('a photo of a horse', [{ name: 'aspect', type: 3, value: '21:9' }]), user, guildId: GUILD, channelId: CHANNEL }),
    );
    const waiting = discord.sendCommand({ name: 'imagine', options: prompt('a cat on mars'), user: grace, guildId: GUILD, channelId: CHANNEL });
    const queued = await waiting.waitForOriginal((message) => message.buttons.some((b) => b.label === 'Cancel'), 30_000);
    const cancelId = queued.buttons.find((b) => b.label === 'Cancel')!.customId!;
    const stranger = discord.clickButton({ customId: cancelId, messageId: queued.id, user: carol, guildId: GUILD, channelId: CHANNEL });
    expect(await ephemeralAnswer(stranger)).toEqual({ early: false, content: 'Only the person who asked for this image can cancel it.' });
    expect(waiting.original?.content).toContain('Queued');
    const owner = discord.clickButton({ customId: cancelId, messageId: queued.id, user: grace, guildId: GUILD, channelId: CHANNEL });
    // acknowledged with deferUpdate before the job store is touched, then the status message says so
    expect((await owner.waitForCallback()).type).toBe(6);
    const cancelled = await waiting.waitForOriginal((message) => message.content.includes('Cancelled.'));
    expect(cancelled.buttons).toEqual([]);
    await Promise.all(busy.map((interaction) => interaction.waitForOriginal(hasImage, 30_000)));
    const job = app.store.get(parseButtonId(cancelId)!.jobId);
    expect(job?.status).toBe('cancelled');
  });

  it('refuses, ephemerally and in one sentence: over the limit, a blocked word, a wrong channel', async () => {
    const refusals: string[] = [];
    for (let i = 0; i < 5; i++) {
      const interaction = discord.sendCommand({ name: 'imagine', options: prompt(`a dog ${i}`, [{ name: 'count', type: 4, value: 1 }]), user: carol, guildId: GUILD, channelId: CHANNEL });
      const callback = await interaction.waitForCallback();
      expect(callback.type).toBe(5);
      const refused = await Promise.race([
        interaction.waitForFollowup((message) => message.ephemeral, 30_000).then((message) => message.content),
        interaction.waitForOriginal((message) => !message.loading, 30_000).then(() => undefined),
      ]);
      if (refused !== undefined) refusals.push(refused);
    }
    // limits are checked after the ack: the deferred reply gives way to an ephemeral answer
    expect(refusals.some((text) => /^You can imagine again in \d+ s\.$/.test(text) || /^You already have 3 images waiting/.test(text))).toBe(true);
    const blocked = discord.sendCommand({ name: 'imagine', options: prompt('a Forbidden thing'), user: dave, guildId: GUILD, channelId: CHANNEL });
    expect(await ephemeralAnswer(blocked)).toEqual({ early: true, content: 'That prompt uses a word this server blocks; please rephrase it.' });
    const elsewhere = discord.sendCommand({ name: 'imagine', options: prompt('a cat'), user: dave, guildId: GUILD, channelId: OTHER_CHANNEL });
    expect(await ephemeralAnswer(elsewhere)).toEqual({ early: true, content: 'Images cannot be made in this channel; try one of the channels the admins allowed.' });
  });

  it('answers a forged or unknown button id without running anything', async () => {
    const jobs = app.store.unfinished().length;
    // a well-formed id is looked up after the ack; one that is not an id of ours is refused at once
    for (const [i, [customId, early]] of ([['v1:reroll:aaaaaaaaaaaa', false], ['v1:upscale:../../x:1', true], ['hello', true]] as const).entries()) {
      const click = discord.clickButton({ customId, messageId: `30000000000000000${i}`, user: alice, guildId: GUILD, channelId: CHANNEL });
      expect(await ephemeralAnswer(click)).toEqual({ early, content: 'I no longer know that image; start a new one with /imagine.' });
    }
    expect(app.store.unfinished().length).toBe(jobs);
  });

  it('works in a DM, buttons included', async () => {
    const interaction = discord.sendCommand({ name: 'imagine', options: prompt('a sunset', [{ name: 'count', type: 4, value: 1 }]), user: dave });
    const result = await interaction.waitForOriginal(hasImage, 30_000);
    expect(labels(result)).toEqual(['U1', 'Re-roll', 'V1']);
    const click = discord.clickButton({ customId: result.buttons[2].customId!, messageId: result.id, user: dave, channelId: result.channelId });
    expect((await click.waitForOriginal(hasImage, 30_000)).content).toContain('Variations of image 1');
  });

  it('keeps buttons working across a restart of the bot', async () => {
    const interaction = discord.sendCommand({ name: 'imagine', options: prompt('a photo of the sky', [{ name: 'count', type: 4, value: 2 }]), user: alice, guildId: GUILD, channelId: CHANNEL });
    const grid = await interaction.waitForOriginal(hasImage, 30_000);
    await app.close();
    app = makeApp();
    await app.start();
    const customId = grid.buttons.find((b) => b.label === 'V2')!.customId!;
    const click = discord.clickButton({ customId, messageId: grid.id, user: bob, guildId: GUILD, channelId: CHANNEL });
    expect((await click.waitForOriginal(hasImage, 30_000)).content).toContain('Variations of image 2');
  });

  it('posts in the channel when the interaction token has expired', async () => {
    const interaction = discord.sendCommand({ name: 'imagine', options: prompt('a horse riding an astronaut', [{ name: 'aspect', type: 3, value: '16:9' }]), user: bob, guildId: GUILD, channelId: CHANNEL });
    await interaction.waitForCallback();
    discord.expireToken(interaction.token);
    const posted = await new Promise<FakeMessage>((resolve, reject) => {
      const deadline = Date.now() + 30_000;
      const poll = setInterval(() => {
        const message = discord.channelMessages(CHANNEL).find((m) => m.content.includes('a horse riding an astronaut') && m.attachments.length > 0);
        if (message) {
          clearInterval(poll);
          resolve(message);
        } else if (Date.now() > deadline) {
          clearInterval(poll);
          reject(new Error('no channel message'));
        }
      }, 50);
    });
    expect(posted.content).toContain(`<@${bob.id}>`);
    expect(labels(posted)).toContain('Re-roll');
  });

  it('tells the member when generation fails, and marks the job failed', async () => {
    const interaction = discord.sendCommand({ name: 'imagine', options: prompt('a lighthouse', [{ name: 'steps', type: 4, value: 4 }]), user: carol, guildId: GUILD, channelId: CHANNEL });
    const failed = await interaction.waitForOriginal((message) => message.content.includes('Generation failed'), 30_000);
    expect(failed.content).toContain('Generation failed, try again; the admin has the details.');
    expect(failed.buttons).toEqual([]);
    // told first, then recorded
    await vi.waitFor(() => {
      const db = new Database(join(dataDir, 'jobs.sqlite'), { readonly: true });
      const rows = db.prepare("SELECT status, error FROM jobs WHERE json_extract(request, '$.prompt') = 'a lighthouse'").all();
      db.close();
      expect(rows).toEqual([{ status: 'failed', error: expect.stringContaining('unet_4step/model.onnx: onnxruntime cannot load it') }]);
    });
  });
});
