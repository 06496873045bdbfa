// The Slack app end to end: the real app (engine on tiny models, SQLite, limits, queue) and the real Bolt app, in
// Socket Mode and in HTTP mode, against a local fake of Slack's Web API and Socket Mode on 127.0.0.1. The last test
// runs Discord and Slack from one process.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { parseButtonId } from '../../src/platforms/button-ids.js';
import { writeTinyModelFolder } from '../../models/tiny/generate.js';
import { startFakeDiscord, type FakeDiscord } from '../fakes/discord/index.js';
import { startFakeSlack, type FakeSlack, type FakeSlackMessage } from '../fakes/slack/index.js';

const CHANNEL = 'C0000000001';
const alice = { id: 'U0000000001', name: 'alice' };
const bob = { id: 'U0000000002', name: 'bob' };
const root = mkdtempSync(join(tmpdir(), 'slack-e2e-'));
const modelDir = join(root, 'model');

function makeApp(slack: FakeSlack, dataDir: string, env: Record<string, string>): App {
  const config = loadConfig({
    SLACK_BOT_TOKEN: slack.botToken,
    SLACK_SIGNING_SECRET: slack.signingSecret,
    SLACK_API_URL: slack.apiUrl,
    MODEL_DIR: modelDir,
    DATA_DIR: dataDir,
    WEB_PORT: '0',
    EXECUTION_PROVIDER: 'cpu',
    LAZY_UNETS: 'true',
    DEFAULT_STEPS: '2',
    DEFAULT_COUNT: '2',
    ...env,
  });
  return createApp(config, { logger: createLogger({ level: 'silent' }) });
}

const labels = (message: FakeSlackMessage): string[] => message.buttons.map((button) => button.text);
const resultFor = (slack: FakeSlack, prompt: string) => (message: FakeSlackMessage) => message.text.startsWith('Buttons for') && message.blocks.some((block) => JSON.stringify(block).includes(prompt));

beforeAll(async () => {
  await writeTinyModelFolder(modelDir, { steps: [1, 2, 4] });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('the Slack app in Socket Mode', () => {
  let slack: FakeSlack;
  let app: App;

  beforeAll(async () => {
    slack = await startFakeSlack({ users: [alice, bob], channels: [{ id: CHANNEL, name: 'imagine' }] });
    app = makeApp(slack, join(root, 'socket'), { SLACK_APP_TOKEN: slack.appToken });
    await app.start();
    await slack.waitForSocket();
  });
  afterAll(async () => {
    await app?.close();
    await slack?.close();
  });

  it('acks /imagine within 3 s, uploads the grid with the v2 flow and posts the buttons', async () => {
    const command = slack.sendSlashCommand({ command: '/imagine', text: 'a lighthouse at dusk --steps 1 --seed 42 --ar 16:9 --count 4', userId: alice.id, channelId: CHANNEL });
    const ack = await command.waitForAck();
    expect(ack.elapsedMs).toBeLessThan(3000);
    // acked empty before any I/O; the status follows through the response_url
    expect(ack.payload).toEqual({});
    const status = await command.waitForResponse();
    expect(JSON.stringify(status.payload)).toMatch(/Queued — position \d|Generating…/);
    const buttons = await slack.waitForMessage(CHANNEL, resultFor(slack, 'a lighthouse at dusk'), 30_000);
    expect(labels(buttons)).toEqual(['U1', 'U2', 'U3', 'U4', 'Re-roll', 'V1', 'V2', 'V3', 'V4']);
    for (const button of buttons.buttons) expect(parseButtonId(button.value ?? '')).toBeDefined();
    // the member's ephemeral status message is removed once the result is in the channel
    await command.waitForResponse((response) => (response.payload as { delete_original?: boolean }).delete_original === true);
    const file = slack.files.find((f) => f.initialComment?.includes('a lighthouse at dusk'))!;
    expect(file).toMatchObject({ completed: true, shared: true, channels: [CHANNEL] });
    expect(file.initialComment).toContain('seeds 42–45 · 1 step · 16:9 1344×768');
    expect(file.initialComment).toContain(`<@${alice.id}>`);
    const meta = await sharp(file.bytes!).metadata();
    expect([meta.format, meta.width! > 2 * 1344]).toEqual(['png', true]);
    // the buttons come after the image is shared in the channel
    const share = slack.messages(CHANNEL).find((m) => m.files.includes(file.id))!;
    expect(Number(share.ts)).toBeLessThan(Number(buttons.ts));
  });

  it('answers help and malformed flags with the usage, only to the member', async () => {
    const help = slack.sendSlashCommand({ command: '/imagine', text: 'help', userId: alice.id, channelId: CHANNEL });
    expect(JSON.stringify((await help.waitForAck()).payload)).toContain('Usage: /imagine &lt;prompt&gt;');
    const bad = slack.sendSlashCommand({ command: '/imagine', text: 'a cat --style anime', userId: alice.id, channelId: CHANNEL });
    const payload = (await bad.waitForAck()).payload as { text: string; response_type: string };
    expect(payload.response_type).toBe('ephemeral');
    expect(payload.text).toMatch(/^Unknown option --style\.\nUsage: \/imagine/);
    const refused = slack.sendSlashCommand({ command: '/imagine', text: 'a cat --steps 8', userId: alice.id, channelId: CHANNEL });
    expect((await refused.waitForAck()).payload).toMatchObject({ response_type: 'ephemeral', text: '8-step images are not available here; choose 1, 2 or 4 steps.' });
  });

  it('answers the buttons with new results, and refuses a forged value', async () => {
    slack.sendSlashCommand({ command: '/imagine', text: 'a red cat --count 2 --steps 1', userId: alice.id, channelId: CHANNEL });
    const grid = await slack.waitForMessage(CHANNEL, resultFor(slack, 'a red cat'), 30_000);
    const click = (text: string, value?: string) =>
      slack.clickButton({ actionId: grid.buttons.find((b) => b.text === text)!.actionId!, messageTs: grid.ts, channelId: CHANNEL, userId: bob.id, ...(value ? { value } : {}) });
    const upscale = click('U2');
    await upscale.waitForAck();
    await slack.waitForMessage(CHANNEL, (m) => m.text.startsWith('Buttons for') && JSON.stringify(m.blocks).includes('Image 2 at full size'), 30_000);
    click('V1');
    await slack.waitForMessage(CHANNEL, (m) => m.text.startsWith('Buttons for') && JSON.stringify(m.blocks).includes('Variations of image 1'), 30_000);
    click('Re-roll');
    await slack.waitForMessage(CHANNEL, (m) => m.text.startsWith('Buttons for') && JSON.stringify(m.blocks).includes('Re-roll — '), 30_000);
    const forged = click('U1', 'v1:upscale:aaaaaaaaaaaa:0');
    const response = await forged.waitForResponse();
    expect(response.payload).toMatchObject({ response_type: 'ephemeral', text: 'I no longer know that image; start a new one with /imagine.' });
  });
});

describe('the Slack app in HTTP mode', () => {
  it('checks signatures and runs the whole flow', async () => {
    const slack = await startFakeSlack({ users: [alice], channels: [{ id: CHANNEL, name: 'imagine' }] });
    const app = makeApp(slack, join(root, 'http'), { SLACK_PORT: '0', SLACK_HOST: '127.0.0.1' });
    await app.start();
    try {
      const url = `http://127.0.0.1:${app.slack!.httpPort}/slack/events`;
      const command = { command: '/imagine', text: 'the blue sea --count 1 --steps 1', userId: alice.id, channelId: CHANNEL };
      for (const signature of ['bad', 'missing'] as const) {
        expect((await slack.signedPost(url, 'command', command, { signature })).status).toBe(401);
      }
      expect((await slack.signedPost(url, 'command', command, { timestamp: Math.floor(Date.now() / 1000) - 6 * 60 })).status).toBe(401);
      expect(slack.files).toHaveLength(0);
      const good = await slack.signedPost(url, 'command', command);
      expect(good.status).toBe(200);
      const buttons = await slack.waitForMessage(CHANNEL, resultFor(slack, 'the blue sea'), 30_000);
      expect(labels(buttons)).toEqual(['U1', 'Re-roll', 'V1']);
      expect(slack.files).toHaveLength(1);
    } finally {
      await app.close();
      await slack.close();
    }
  });
});

describe('Discord and Slack from one process', () => {
  it('serves both on one engine and queue', async () => {
    const slack = await startFakeSlack({ users: [alice], channels: [{ id: CHANNEL, name: 'imagine' }] });
    const discord: FakeDiscord = await startFakeDiscord({ guilds: [{ id: '100000000000000001', name: 'Server', channels: [{ id: '100000000000000002', name: 'imagine' }] }] });
    const app = makeApp(slack, join(root, 'both'), {
      SLACK_APP_TOKEN: slack.appToken,
      DISCORD_TOKEN: discord.token,
      DISCORD_APPLICATION_ID: discord.applicationId,
      DISCORD_GUILD_ID: '100000000000000001',
      DISCORD_API_URL: discord.baseUrl,
    });
    await app.start();
    try {
      await slack.waitForSocket();
      const fromDiscord = discord.sendCommand({
        name: 'imagine',
        options: [{ name: 'prompt', type: 3, value: 'a castle' }, { name: 'count', type: 4, value: 1 }],
        user: { id: '200000000000000001', username: 'carol' },
        guildId: '100000000000000001',
        channelId: '100000000000000002',
      });
      slack.sendSlashCommand({ command: '/imagine', text: 'a hill --count 1', userId: alice.id, channelId: CHANNEL });
      const [discordResult] = await Promise.all([
        fromDiscord.waitForOriginal((message) => message.attachments.length > 0, 30_000),
        slack.waitForMessage(CHANNEL, resultFor(slack, 'a hill'), 30_000),
      ]);
      expect(discordResult.content).toContain('a castle');
    } finally {
      await app.close();
      await slack.close();
      await discord.close();
    }
  });
});
