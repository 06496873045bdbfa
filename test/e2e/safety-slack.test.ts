// The image safety check on Slack end to end: the real app with a tiny classifier that flags every image, the real Bolt
// app in Socket Mode against the local fake. Slack cannot blur a file, so a flagged image is left out behind a
// placeholder tile whatever the server's mode, unless the server turned the check off.

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
import { startFakeSlack, type FakeSlack, type FakeSlackMessage } from '../fakes/slack/index.js';

const CHANNEL = 'C0000000001';
const alice = { id: 'U0000000001', name: 'alice' };
const root = mkdtempSync(join(tmpdir(), 'safety-slack-'));
const modelDir = join(root, 'model');
let slack: FakeSlack;
let app: App;

const resultFor = (prompt: string) => (message: FakeSlackMessage) => message.text.startsWith('Buttons for') && JSON.stringify(message.blocks).includes(prompt);
const fileFor = (prompt: string) => slack.files.find((f) => f.initialComment?.includes(prompt));
const corner = async (bytes: Buffer): Promise<number[]> => Array.from((await sharp(bytes).raw().toBuffer()).subarray(0, 3));

beforeAll(async () => {
  await writeTinyModelFolder(modelDir, { steps: [1], safety: { score: 0.9 } });
  slack = await startFakeSlack({ users: [alice], channels: [{ id: CHANNEL, name: 'imagine' }] });
  const config = loadConfig({
    SLACK_BOT_TOKEN: slack.botToken,
    SLACK_SIGNING_SECRET: slack.signingSecret,
    SLACK_API_URL: slack.apiUrl,
    SLACK_APP_TOKEN: slack.appToken,
    MODEL_DIR: modelDir,
    DATA_DIR: join(root, 'data'),
    EXECUTION_PROVIDER: 'cpu',
    WEB_PORT: '0',
    DEFAULT_STEPS: '1',
    DEFAULT_COUNT: '2',
  });
  app = createApp(config, { logger: createLogger({ level: 'silent' }) });
  await app.start();
  await slack.waitForSocket();
});

afterAll(async () => {
  await app?.close();
  await slack?.close();
  rmSync(root, { recursive: true, force: true });
});

describe('flagged images on Slack', () => {
  it('are hidden behind a placeholder with a note under the spoiler default, U included', async () => {
    slack.sendSlashCommand({ command: '/imagine', text: 'a lighthouse at dusk', userId: alice.id, channelId: CHANNEL });
    const buttons = await slack.waitForMessage(CHANNEL, resultFor('a lighthouse at dusk'), 60_000);
    const file = fileFor('a lighthouse at dusk')!;
    expect(file.initialComment).toContain("2 images were hidden by this server's safety setting.");
    expect(file.filename).not.toMatch(/^SPOILER_/);
    expect(await corner(file.bytes!)).toEqual([...PLACEHOLDER_BACKGROUND]);
    const jobId = parseButtonId(buttons.buttons[0].value ?? '')!.jobId;
    expect(app.store.get(jobId)?.safety).toEqual([
      { action: 'hide', reason: 'cannot_blur', flagged: true, score: expect.closeTo(0.9, 4) },
      { action: 'hide', reason: 'cannot_blur', flagged: true, score: expect.closeTo(0.9, 4) },
    ]);

    slack.clickButton({ actionId: buttons.buttons.find((b) => b.text === 'U1')!.actionId!, messageTs: buttons.ts, channelId: CHANNEL, userId: alice.id });
    await slack.waitForMessage(CHANNEL, (m) => m.text.startsWith('Buttons for') && JSON.stringify(m.blocks).includes('Image 1 at full size'), 60_000);
    const single = slack.files.find((f) => f.initialComment?.includes('Image 1 at full size'))!;
    expect(single.initialComment).toContain("This image was hidden by this server's safety setting.");
    expect(await corner(single.bytes!)).toEqual([...PLACEHOLDER_BACKGROUND]);
  });

  it('are posted when the workspace turns the check off', async () => {
    app.settings.change({ platform: 'slack', guildId: slack.teamId }, alice.id, { safetyMode: 'off' });
    slack.sendSlashCommand({ command: '/imagine', text: 'a quiet harbour --count 1', userId: alice.id, channelId: CHANNEL });
    await slack.waitForMessage(CHANNEL, resultFor('a quiet harbour'), 60_000);
    const file = fileFor('a quiet harbour')!;
    expect(file.initialComment).not.toContain('hidden');
    expect(await corner(file.bytes!)).not.toEqual([...PLACEHOLDER_BACKGROUND]);
  });
});
