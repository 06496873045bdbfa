// Hostile and odd input end to end: the real app (engine on tiny models, SQLite, limits, queue) with the real
// discord.js client and the real Bolt app (HTTP mode, signed requests) against the local fakes on 127.0.0.1. What a
// member typed must show as typed everywhere and never act as markup, a link or a mention.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import type { Job } from '../../src/core/jobs.js';
import { createLogger } from '../../src/logger.js';
import { parseButtonId } from '../../src/platforms/button-ids.js';
import { writeTinyModelFolder } from '../../models/tiny/generate.js';
import { startFakeDiscord, type FakeDiscord, type FakeInteraction, type FakeMessage, type FakeUser } from '../fakes/discord/index.js';
import { postSigned, startFakeSlack, type FakeSlack, type FakeSlackMessage } from '../fakes/slack/index.js';
import { discordBoldPrompt, readSlack } from '../support/markup.js';

const root = mkdtempSync(join(tmpdir(), 'hostile-e2e-'));
const modelDir = join(root, 'model');

beforeAll(async () => {
  await writeTinyModelFolder(modelDir, { steps: [1, 2, 4] });
  // the 4-step UNet is broken, so a 4-step request fails and its failure message can be read
  writeFileSync(join(modelDir, 'unet_4step', 'model.onnx'), 'not a model');
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const baseEnv = { MODEL_DIR: modelDir, WEB_PORT: '0', EXECUTION_PROVIDER: 'cpu', LAZY_UNETS: 'true', DEFAULT_STEPS: '1', DEFAULT_COUNT: '1', BLOCKED_WORDS: 'forbidden', USER_BURST: '20', MAX_QUEUED_PER_USER: '5' };

describe('hostile input on Discord', () => {
  const GUILD = '100000000000000001';
  const CHANNEL = '100000000000000002';
  const OTHER_CHANNEL = '100000000000000003';
  const alice: FakeUser = { id: '200000000000000001', username: 'alice' };
  const bob: FakeUser = { id: '200000000000000002', username: 'bob' };
  const HOSTILE = '[free nitro](https://evil.example) @everyone @here <@200000000000000002> <#100000000000000002> <@&300000000000000001> **bold** `code` ~~gone~~ ||hidden|| x\u0000y\u001b[31mz';
  /** What is stored and shown: the controls are gone, the rest is as typed. */
  const CLEANED = '[free nitro](https://evil.example) @everyone @here <@200000000000000002> <#100000000000000002> <@&300000000000000001> **bold** `code` ~~gone~~ ||hidden|| xy[31mz';
  let discord: FakeDiscord;
  let app: App;

  beforeAll(async () => {
    discord = await startFakeDiscord({ guilds: [{ id: GUILD, name: 'Server', channels: [{ id: CHANNEL, name: 'imagine' }, { id: OTHER_CHANNEL, name: 'general' }] }] });
    const config = loadConfig({
      ...baseEnv,
      DISCORD_TOKEN: discord.token,
      DISCORD_APPLICATION_ID: discord.applicationId,
      DISCORD_GUILD_ID: GUILD,
      DISCORD_API_URL: discord.baseUrl,
      DATA_DIR: join(root, 'discord'),
      ALLOWED_CHANNELS: CHANNEL,
    });
    app = createApp(config, { logger: createLogger({ level: 'silent' }) });
    await app.start();
  });
  afterAll(async () => {
    await app?.close();
    await discord?.close();
  });

  const command = (user: FakeUser, prompt: string, extra: { name: string; type: number; value: string | number }[] = [], channelId = CHANNEL) =>
    discord.sendCommand({ name: 'imagine', options: [{ name: 'prompt', type: 3, value: prompt }, ...extra], user, guildId: GUILD, channelId });
  const hasImage = (message: FakeMessage) => message.attachments.length > 0;
  const jobOf = (message: FakeMessage): Job => app.store.get(parseButtonId(message.buttons[0].customId!)!.jobId)!;
  /** Every body the bot sent through this interaction's token. */
  const webhookBodies = (interaction: FakeInteraction) =>
    discord.requests.filter((request) => request.path.includes(interaction.token) && request.body !== null).map((request) => request.body as { content?: string; allowed_mentions?: unknown });

  it('shows a hostile prompt literally in the queue status and the result, and lets nobody be mentioned', async () => {
    const blocker = command(bob, 'a slow blocker', [{ name: 'count', type: 4, value: 4 }]);
    const hostile = command(alice, HOSTILE);
    const queued = await hostile.waitForOriginal((message) => message.content.includes('Queued — position'), 30_000);
    const result = await hostile.waitForOriginal(hasImage, 30_000);
    await blocker.waitForOriginal(hasImage, 30_000);
    for (const message of [queued, result]) expect(discordBoldPrompt(message.content)).toEqual({ shown: CLEANED, active: [] });
    expect(result.content).toContain('\\[free nitro\\](https\\://evil.example)');
    // the model read the prompt without the controls
    expect(jobOf(result).request.prompt).toBe(CLEANED);
    const bodies = webhookBodies(hostile).filter((body) => body.content !== undefined);
    expect(bodies.length).toBeGreaterThanOrEqual(2);
    for (const body of bodies) expect(body.allowed_mentions).toEqual({ parse: [] });
  });

  it('escapes the prompt of a failure posted in the channel, and of a result sent by DM, mentioning only the owner', async () => {
    // the reply cannot be edited nor followed up (the webhook is gone), so the failure goes to the channel
    const failing = command(alice, HOSTILE, [{ name: 'steps', type: 4, value: 4 }]);
    discord.failNext({ path: new RegExp(`/webhooks/\\d+/${failing.token}`) }, { status: 404, code: 10015, message: 'Unknown Webhook', times: 10 });
    const posted = await waitFor(() => discord.channelMessages(CHANNEL).find((message) => message.content.includes('Generation failed')));
    expect(posted.content).toContain(`— <@${alice.id}>\nGeneration failed, try again; the admin has the details.`);
    expect(discordBoldPrompt(posted.content)).toEqual({ shown: CLEANED, active: [] });
    const post = discord.requests.find((request) => request.method === 'POST' && (request.body as { content?: string } | null)?.content === posted.content);
    expect((post?.body as { allowed_mentions?: unknown }).allowed_mentions).toEqual({ users: [alice.id] });

    // neither the reply nor the channel can be written: the result goes by DM
    const dmed = command(alice, `${HOSTILE} by dm`);
    discord.failNext({ method: 'PATCH', path: new RegExp(dmed.token) }, { status: 404, code: 10015, message: 'Unknown Webhook', times: 10 });
    discord.failNext({ method: 'POST', path: `/channels/${CHANNEL}/messages` }, { status: 403, code: 50013, message: 'Missing Permissions' });
    const dm = await waitFor(() => discord.channelMessages(discord.dmChannelId(alice)).find((message) => message.content.includes('by dm') && hasImage(message)));
    expect(discordBoldPrompt(dm.content)).toEqual({ shown: `${CLEANED} by dm`, active: [] });
  });

  it('refuses a prompt of only zero-width characters as empty, and sees a blocked word through them', async () => {
    const empty = command(alice, '\u200b\u200c\u200d\u2060\ufeff\u00ad');
    expect((await empty.waitForCallback()).data).toMatchObject({ flags: 64, content: 'Describe the image you want after /imagine.' });
    const disguised = command(alice, 'a forb\u200bidden thing');
    expect((await disguised.waitForCallback()).data).toMatchObject({ flags: 64, content: 'That prompt uses a word this server blocks; please rephrase it.' });
  });

  it('captions a variation, and one image of it, with the seeds that remake them', async () => {
    const grid = await command(alice, 'a green field', [{ name: 'seed', type: 4, value: 42 }, { name: 'count', type: 4, value: 2 }]).waitForOriginal(hasImage, 30_000);
    expect(grid.content).toContain('seeds 42–43 · 1 step');
    const vary = discord.clickButton({ customId: grid.buttons.find((b) => b.label === 'V2')!.customId!, messageId: grid.id, user: bob, guildId: GUILD, channelId: CHANNEL });
    const variations = await vary.waitForOriginal(hasImage, 30_000);
    const varied = jobOf(variations).request;
    expect(varied.variation).toEqual({ parentSeed: 43, parentSteps: [], strength: 0.25 });
    expect(variations.content).toContain(`variations of seed 43 (+ seeds ${varied.seed}–${varied.seed + 1} at 0.25) · 1 step`);
    const upscale = discord.clickButton({ customId: variations.buttons.find((b) => b.label === 'U2')!.customId!, messageId: variations.id, user: bob, guildId: GUILD, channelId: CHANNEL });
    const single = await upscale.waitForOriginal(hasImage, 30_000);
    expect(single.content).toContain(`Image 2 at full size\nvariation of seed 43 (+ seed ${varied.seed + 1} at 0.25) · 1 step`);
  });
});

describe('hostile input on Slack (HTTP mode)', () => {
  const CHANNEL = 'C0000000001';
  const OTHER = 'C0000000002';
  const DM = 'D0000000001';
  const alice = { id: 'U0000000001', name: 'alice' };
  let slack: FakeSlack;
  let app: App;
  let url: string;

  beforeAll(async () => {
    slack = await startFakeSlack({ users: [alice], channels: [{ id: CHANNEL, name: 'imagine' }, { id: OTHER, name: 'general' }, { id: DM, name: 'directmessage' }] });
    const config = loadConfig({
      ...baseEnv,
      SLACK_BOT_TOKEN: slack.botToken,
      SLACK_SIGNING_SECRET: slack.signingSecret,
      SLACK_API_URL: slack.apiUrl,
      SLACK_PORT: '0',
      SLACK_HOST: '127.0.0.1',
      DATA_DIR: join(root, 'slack'),
      ALLOWED_CHANNELS: CHANNEL,
    });
    app = createApp(config, { logger: createLogger({ level: 'silent' }) });
    await app.start();
    url = `http://127.0.0.1:${app.slack!.httpPort}/slack/events`;
  });
  afterAll(async () => {
    await app?.close();
    await slack?.close();
  });

  const imagine = (text: string, channelId = CHANNEL) => slack.signedPost(url, 'command', { command: '/imagine', text, userId: alice.id, channelId });
  const buttonsFor = (channel: string, word: string) =>
    slack.waitForMessage(channel, (message: FakeSlackMessage) => message.text.startsWith('Buttons for') && message.text.includes(word), 30_000);
  const jobOf = (message: FakeSlackMessage): Job => app.store.get(parseButtonId(message.buttons[0].value!)!.jobId)!;

  it('decodes what Slack encoded for the model, and shows it escaped in the status, the file, its title and the buttons message', async () => {
    // Slack sends a typed "<!channel> … R&D" as entities
    const sent = await imagine('&lt;!channel&gt; &lt;https://evil.example|free nitro&gt; &lt;@U0000000002&gt; R&amp;D *bold*\u0000 --steps 1');
    const prompt = '<!channel> <https://evil.example|free nitro> <@U0000000002> R&D *bold*';
    // acked empty before any I/O; the status comes through the response_url
    const status = (await sent.handle.waitForResponse()).payload as { text: string };
    expect(readSlack(status.text)).toMatchObject({ tags: [] });
    expect(readSlack(status.text).shown).toContain(prompt);

    const buttons = await buttonsFor(CHANNEL, 'R&amp;D');
    expect(jobOf(buttons).request.prompt).toBe(prompt);
    expect(readSlack(buttons.text)).toEqual({ shown: `Buttons for ${prompt}`, tags: [] });
    const section = (buttons.blocks[0] as { text: { text: string } }).text.text;
    expect(readSlack(section).tags).toEqual([`<@${alice.id}>`]);
    expect(readSlack(section).shown).toContain(prompt);
    const file = slack.files.find((candidate) => candidate.initialComment?.includes('R&amp;D'))!;
    expect(readSlack(file.initialComment!).tags).toEqual([`<@${alice.id}>`]);
    expect(file.title).toBe(prompt);
    // nothing the bot posted anywhere carries a raw tag other than the owner's mention
    for (const message of slack.messages(CHANNEL)) expect(readSlack(message.text).tags.filter((tag) => tag !== `<@${alice.id}>`)).toEqual([]);
  });

  it('reads flags typed with an em or en dash as flags', async () => {
    await imagine('a dashing cat —steps 1 –count 1 —seed 5');
    const buttons = await buttonsFor(CHANNEL, 'a dashing cat');
    expect(jobOf(buttons).request).toMatchObject({ prompt: 'a dashing cat', steps: 1, count: 1, seed: 5 });
    expect(JSON.stringify(buttons.blocks)).toContain('seed 5 · 1 step');
  });

  it('refuses a replayed request within the signature window, and a timestamp from the future', async () => {
    const first = await imagine('a replayed lighthouse');
    expect(first.status).toBe(200);
    const replay = await postSigned(url, first.rawBody, slack.signingSecret, { timestamp: first.timestamp });
    expect(replay.status).toBe(401);
    const ahead = await slack.signedPost(url, 'command', { command: '/imagine', text: 'a lighthouse from the future', userId: alice.id, channelId: CHANNEL }, { timestamp: Math.floor(Date.now() / 1000) + 120 });
    expect(ahead.status).toBe(401);
    await buttonsFor(CHANNEL, 'a replayed lighthouse');
    const made = (prompt: string) => slack.files.filter((file) => file.initialComment?.includes(prompt)).length;
    expect([made('a replayed lighthouse'), made('a lighthouse from the future')]).toEqual([1, 0]);
  });

  it('allows direct messages although ALLOWED_CHANNELS names one channel', async () => {
    const dm = await imagine('a quiet harbour', DM);
    expect(JSON.stringify((await dm.handle.waitForResponse()).payload)).toMatch(/Queued — position \d|Generating…/);
    const buttons = await buttonsFor(DM, 'a quiet harbour');
    expect(jobOf(buttons).channelId).toBe(DM);
    const elsewhere = await imagine('a loud market', OTHER);
    expect(elsewhere.handle.ack!.payload).toMatchObject({ text: 'Images cannot be made in this channel; try one of the channels the admins allowed.' });
  });

  it('refuses a prompt of only zero-width characters, and escapes the prompt of a failure', async () => {
    const empty = await imagine('\u200b\u200d\u2060 --steps 1');
    expect(empty.handle.ack!.payload).toMatchObject({ response_type: 'ephemeral', text: 'Describe the image you want after /imagine.' });
    const failing = await imagine('&lt;!here&gt; broken --steps 4');
    const response = await failing.handle.waitForResponse((r) => JSON.stringify(r.payload).includes('Generation failed'), 30_000);
    const text = (response.payload as { text: string }).text;
    expect(readSlack(text)).toEqual({ shown: '*<!here> broken*\nGeneration failed, try again; the admin has the details.', tags: [] });
  });
});

/** Polls until `find` returns something (the fakes keep channel posts as records, without a wait of their own). */
async function waitFor<T>(find: () => T | undefined, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = find();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
