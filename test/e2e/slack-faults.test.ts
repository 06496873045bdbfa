// The Slack app under faults, end to end: the real app and Bolt in Socket Mode against the local fake, which answers
// 5xx or 429, or refuses a channel the bot is not in, where a test says. Every job ends delivered exactly once, or
// its member told exactly once; the ack comes before any I/O; status posts stay within the response_url's five uses.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { COMMANDS } from '../../commands/index.js';
import { createApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { SLACK_STATUS_BUDGET } from '../../src/platforms/slack/app.js';
import { writeTinyModelFolder } from '../../models/tiny/generate.js';
import { sketch } from '../support/commands.js';
import { startFakeSlack, type FakeSlack, type FakeSlackOptions, type InteractionHandle } from '../fakes/slack/index.js';

const CHANNEL = 'C0000000001';
const CLOSED = 'C0000000002';
const users = Array.from({ length: 6 }, (_, i) => ({ id: `U000000000${i + 1}`, name: `member${i + 1}` }));
const [alice, bob] = users;
const channels = [
  { id: CHANNEL, name: 'imagine' },
  // the command works there (the app is installed in the workspace), but the bot user was never invited
  { id: CLOSED, name: 'closed', botIsMember: false },
];

const root = mkdtempSync(join(tmpdir(), 'slack-faults-'));
const modelDir = join(root, 'model');

async function startBoth(name: string, options: FakeSlackOptions = {}): Promise<{ slack: FakeSlack; app: App }> {
  const slack = await startFakeSlack({ users, channels: structuredClone(channels), ...options });
  const config = loadConfig({
    SLACK_BOT_TOKEN: slack.botToken,
    SLACK_SIGNING_SECRET: slack.signingSecret,
    SLACK_APP_TOKEN: slack.appToken,
    SLACK_API_URL: slack.apiUrl,
    MODEL_DIR: modelDir,
    DATA_DIR: join(root, name),
    EXECUTION_PROVIDER: 'cpu',
    LAZY_UNETS: 'true',
    DEFAULT_STEPS: '1',
    DEFAULT_COUNT: '1',
    USER_BURST: '100',
    MAX_QUEUED_PER_USER: '100',
    MAX_QUEUE_LENGTH: '200',
  });
  const app = createApp(config, { logger: createLogger({ level: 'silent' }), commands: [...COMMANDS, sketch] });
  await app.start();
  await slack.waitForSocket();
  return { slack, app };
}

const FAILED = 'Your image was made but could not be posted';

beforeAll(async () => {
  await writeTinyModelFolder(modelDir, { steps: [1, 2] });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('the Slack app under faults', () => {
  let slack: FakeSlack;
  let app: App;
  const command = (text: string, user = alice, channelId = CHANNEL, name = '/imagine'): InteractionHandle => slack.sendSlashCommand({ command: name, text, userId: user.id, channelId });
  /** Files of this prompt that were uploaded and shared, and the messages that carry their buttons. */
  const posted = (prompt: string) => ({
    files: slack.files.filter((file) => file.completed && file.initialComment?.includes(prompt)).length,
    buttons: slack.messages(CHANNEL).filter((message) => message.text.startsWith('Buttons for') && message.text.includes(prompt)).length,
  });
  const waitPosted = (prompt: string, timeout = 30_000) =>
    vi.waitFor(() => expect(posted(prompt)).toEqual({ files: 1, buttons: 1 }), { timeout, interval: 50 });

  beforeAll(async () => {
    ({ slack, app } = await startBoth('main'));
  });
  afterAll(async () => {
    await app?.close();
    await slack?.close();
  });

  it('acks before the job store is touched, and routes a second command from the list', async () => {
    const handles: InteractionHandle[] = [];
    const ackedAtCreate: boolean[] = [];
    const create = app.store.create.bind(app.store);
    app.store.create = (job) => {
      const handle = handles.find((candidate) => candidate.responseUrl === (job.reply as { responseUrl: string }).responseUrl);
      ackedAtCreate.push(handle?.ack !== null && handle?.ack !== undefined);
      return create(job);
    };
    try {
      handles.push(command('a quiet harbour'), command('a pencil fox', bob, CHANNEL, '/sketch'));
      await waitPosted('a quiet harbour');
      await waitPosted('a pencil fox');
    } finally {
      app.store.create = create;
    }
    expect(ackedAtCreate).toEqual([true, true]);
    expect(slack.files.find((file) => file.initialComment?.includes('a pencil fox'))?.initialComment).toContain('· 1 step ·');
    const gone = command('a fox', alice, CHANNEL, '/paint');
    expect((await gone.waitForAck()).payload).toMatchObject({ response_type: 'ephemeral', text: 'This bot has no /paint command any more; use /imagine or /sketch.' });
  });

  it(`keeps 60 commands within ${SLACK_STATUS_BUDGET.maxEdits} status posts and one final use of the response_url each`, async () => {
    const handles = Array.from({ length: 60 }, (_, i) => command(`a lantern ${i} glowing`, users[i % users.length]));
    for (const [i] of handles.entries()) await waitPosted(`a lantern ${i} glowing`, 240_000);
    await vi.waitFor(() => expect(handles.every((handle) => handle.responses.some((response) => (response.payload as { delete_original?: boolean }).delete_original === true))).toBe(true), { timeout: 10_000 });
    const uses = handles.map((handle) => handle.responses.length);
    expect(Math.max(...uses)).toBeLessThanOrEqual(SLACK_STATUS_BUDGET.maxEdits + 1);
    // none was refused (Slack refuses a sixth use with used_url)
    expect(handles.flatMap((handle) => handle.responses.filter((response) => response.error !== null))).toEqual([]);
    console.info(`60 Slack commands: ${uses.reduce((a, b) => a + b, 0)} response_url posts, at most ${Math.max(...uses)} for one`);
  }, 300_000);

  it('the bot is not in the channel: the member is told exactly once, through the response_url', async () => {
    const handle = command('a closed door', bob, CLOSED);
    const told = await handle.waitForResponse((response) => JSON.stringify(response.payload).includes(FAILED), 30_000);
    expect(told.error).toBeNull();
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(handle.responses.filter((response) => JSON.stringify(response.payload).includes(FAILED))).toHaveLength(1);
    expect(slack.calls.filter((call) => call.method === 'conversations.open')).toHaveLength(0);
    expect(slack.files.filter((file) => file.completed && file.initialComment?.includes('a closed door'))).toHaveLength(0);
  });

  it('the Web API answers 503 for 8 s: delivered exactly once, after the outage', async () => {
    const handle = command('a storm over the bay', bob);
    await handle.waitForAck();
    const outageEnds = Date.now() + 8_000;
    slack.failFor(/^(files|chat)\./, { status: 503 }, 8_000);
    await waitPosted('a storm over the bay', 60_000);
    expect(Date.now()).toBeGreaterThanOrEqual(outageEnds);
    expect(slack.calls.some((call) => call.status === 503)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(posted('a storm over the bay')).toEqual({ files: 1, buttons: 1 });
  }, 90_000);

  it('a 429 on the buttons message: waits its Retry-After and posts them once, without uploading again', async () => {
    slack.failNext('chat.postMessage', { status: 429, retryAfterSeconds: 3 });
    const started = Date.now();
    command('a rate limited moon', alice);
    await waitPosted('a rate limited moon', 60_000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(3_000);
    const reservations = slack.calls.filter((call) => call.method === 'files.getUploadURLExternal' && call.at >= started);
    expect(reservations).toHaveLength(1);
    expect(slack.calls.filter((call) => call.method === 'chat.postMessage' && call.at >= started).map((call) => call.status)).toEqual([429, 200]);
  }, 60_000);
});

describe('the Slack app when the response_url is gone too', () => {
  it('tells the member exactly once, in a direct message', async () => {
    // every response_url has expired by the time the bot uses it
    const { slack, app } = await startBoth('expired', { responseUrlLifetimeMs: 1 });
    try {
      slack.sendSlashCommand({ command: '/imagine', text: 'a closed window', userId: bob.id, channelId: CLOSED });
      const dm = slack.dmChannelId(bob.id);
      const message = await slack.waitForMessage(dm, (candidate) => candidate.text.includes(FAILED), 30_000);
      expect(message.text).toContain('a closed window');
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(slack.messages(dm).filter((candidate) => candidate.text.includes(FAILED))).toHaveLength(1);
      expect(slack.messages(CLOSED)).toHaveLength(0);
    } finally {
      await app.close();
      await slack.close();
    }
  });
});
