// The Discord bot under faults, end to end: the real app and discord.js client against the local fake, which answers
// 5xx, 401, 403, 404 or 429, or resets connections, on the routes a test names. Every job ends delivered exactly
// once, or its member told exactly once; acks come before any I/O; status edits stay within their budget.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { COMMANDS } from '../../commands/index.js';
import { createApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { DeliveryError } from '../../src/core/delivery-error.js';
import { createLogger } from '../../src/logger.js';
import { parseButtonId } from '../../src/platforms/button-ids.js';
import { DISCORD_STATUS_BUDGET } from '../../src/platforms/status-throttle.js';
import { writeTinyModelFolder } from '../../models/tiny/generate.js';
import { sketch } from '../support/commands.js';
import { startFakeDiscord, type FakeDiscord, type FakeInteraction, type FakeMessage, type FakeUser } from '../fakes/discord/index.js';

const GUILD = '100000000000000001';
const CHANNEL = '100000000000000002';
const users: FakeUser[] = Array.from({ length: 6 }, (_, i) => ({ id: `20000000000000000${i + 1}`, username: `member${i + 1}` }));
const [alice, bob] = users;

const root = mkdtempSync(join(tmpdir(), 'discord-faults-'));
const modelDir = join(root, 'model');
const dataDir = join(root, 'data');
let discord: FakeDiscord;
let app: App;

function makeApp(): App {
  const config = loadConfig({
    DISCORD_TOKEN: discord.token,
    DISCORD_APPLICATION_ID: discord.applicationId,
    DISCORD_GUILD_ID: GUILD,
    DISCORD_API_URL: discord.baseUrl,
    MODEL_DIR: modelDir,
    DATA_DIR: dataDir,
    EXECUTION_PROVIDER: 'cpu',
    LAZY_UNETS: 'true',
    DEFAULT_STEPS: '1',
    DEFAULT_COUNT: '1',
    USER_BURST: '100',
    MAX_QUEUED_PER_USER: '100',
    MAX_QUEUE_LENGTH: '200',
  });
  return createApp(config, { logger: createLogger({ level: 'silent' }), commands: [...COMMANDS, sketch] });
}

const imagineCommand = (user: FakeUser, text: string, name = 'imagine'): FakeInteraction =>
  discord.sendCommand({ name, options: [{ name: 'prompt', type: 3, value: text }], user, guildId: GUILD, channelId: CHANNEL });
const hasImage = (message: FakeMessage): boolean => message.attachments.length > 0;
const originalPath = (interaction: FakeInteraction) => `/webhooks/${discord.applicationId}/${interaction.token}/messages/@original`;
const ok = (status: number) => status >= 200 && status < 300;

/** Successful posts of the job's image: edits of the interaction reply with a file, and bot messages with one. */
function deliveries(interaction: FakeInteraction, prompt: string): number {
  const edits = discord.requests.filter((r) => r.method === 'PATCH' && r.path === originalPath(interaction) && ok(r.status) && r.files.length > 0).length;
  const posts = discord.requests.filter((r) => r.method === 'POST' && /^\/channels\/\d+\/messages$/.test(r.path) && ok(r.status) && r.files.length > 0 && JSON.stringify(r.body).includes(prompt)).length;
  return edits + posts;
}

/** Resolves with the job of this prompt (its reply's token is pruned once it is over) once it has one of `statuses`. */
async function jobFor(prompt: string, statuses: readonly string[], timeout = 30_000): Promise<{ id: string; status: string }> {
  return vi.waitFor(
    () => {
      const db = new Database(join(dataDir, 'jobs.sqlite'), { readonly: true });
      const rows = db.prepare("SELECT id, status FROM jobs WHERE json_extract(request, '$.prompt') = ?").all(prompt) as { id: string; status: string }[];
      db.close();
      expect(rows).toHaveLength(1);
      expect(statuses).toContain(rows[0].status);
      return rows[0];
    },
    { timeout, interval: 50 },
  );
}

beforeAll(async () => {
  await writeTinyModelFolder(modelDir, { steps: [1, 2] });
  discord = await startFakeDiscord({ guilds: [{ id: GUILD, name: 'Test server', channels: [{ id: CHANNEL, name: 'imagine' }] }] });
  app = makeApp();
  await app.start();
});

afterAll(async () => {
  await app?.close();
  await discord?.close();
  rmSync(root, { recursive: true, force: true });
});

describe('the Discord bot, acks and dispatch', () => {
  it('acknowledges before the job store is touched, for a command and for a click', async () => {
    const ackedAtCreate: boolean[] = [];
    const create = app.store.create.bind(app.store);
    app.store.create = (job) => {
      const token = (job.reply as { token: string }).token;
      ackedAtCreate.push(discord.requests.some((r) => r.path.endsWith(`/${token}/callback`) && ok(r.status)));
      return create(job);
    };
    try {
      const command = imagineCommand(alice, 'a quiet harbour');
      const grid = await command.waitForOriginal(hasImage, 30_000);
      const click = discord.clickButton({ customId: grid.buttons.find((b) => b.label === 'Re-roll')!.customId!, messageId: grid.id, user: bob, guildId: GUILD, channelId: CHANNEL });
      expect((await click.waitForCallback()).type).toBe(5);
      await click.waitForOriginal(hasImage, 30_000);
    } finally {
      app.store.create = create;
    }
    expect(ackedAtCreate).toEqual([true, true]);
  });

  it('routes a second command from the list, registered and answered with no Discord code of its own', async () => {
    // the admin commands (/imagine-settings) are registered beside whatever list makes images
    expect(discord.guildCommands(GUILD).map((command) => command.name)).toEqual(['imagine', 'sketch', 'imagine-settings']);
    const sketched = imagineCommand(alice, 'a pencil fox', 'sketch');
    const result = await sketched.waitForOriginal(hasImage, 30_000);
    expect(result.content).toContain('**a pencil fox**');
    expect(result.content).toContain('· 1 step ·');
    const gone = imagineCommand(alice, 'a fox', 'paint');
    expect((await gone.waitForCallback()).data).toMatchObject({ flags: 64, content: 'This bot has no /paint command any more; use /imagine or /sketch.' });
  });
});

describe('the Discord bot, status edits', () => {
  it(`keeps 60 interactions within ${DISCORD_STATUS_BUDGET.maxEdits} status edits and one result each`, async () => {
    const before = discord.requests.length;
    const interactions = Array.from({ length: 60 }, (_, i) => imagineCommand(users[i % users.length], `a lantern number ${i}`));
    await Promise.all(interactions.map((interaction) => interaction.waitForOriginal(hasImage, 240_000)));
    const patches = discord.requests.slice(before).filter((r) => r.method === 'PATCH' && r.path.endsWith('/messages/@original'));
    const perJob = interactions.map((interaction) => patches.filter((r) => r.path === originalPath(interaction)).length);
    const budget = DISCORD_STATUS_BUDGET.maxEdits + 1;
    expect(Math.max(...perJob)).toBeLessThanOrEqual(budget);
    expect(patches.length).toBeLessThanOrEqual(budget * 60);
    // each delivered once, and a busy queue still showed moves
    for (const [i, interaction] of interactions.entries()) expect(deliveries(interaction, `a lantern number ${i}`)).toBe(1);
    expect(interactions.some((interaction) => interaction.edits.some((edit) => /Queued — position \d+/.test(edit.content)))).toBe(true);
    console.info(`60 interactions: ${patches.length} PATCH @original (budget ${budget * 60}), at most ${Math.max(...perJob)} for one job`);
  }, 300_000);
});

describe('the Discord bot, delivery faults', () => {
  it('after a 401 on the interaction webhook, still posts in the channel with its bot token', async () => {
    for (const prompt of ['a refused lighthouse', 'a second refused lighthouse']) {
      const interaction = imagineCommand(alice, prompt);
      await interaction.waitForCallback();
      // the token stops working as if it had expired: every webhook call for it answers 401 50027
      discord.failNext({ path: new RegExp(`^/webhooks/${discord.applicationId}/${interaction.token}/`) }, { status: 401, code: 50027, message: 'Invalid Webhook Token', times: 100 });
      const posted = await vi.waitFor(
        () => {
          const message = discord.channelMessages(CHANNEL).find((m) => m.content.includes(prompt) && hasImage(m));
          expect(message).toBeDefined();
          return message!;
        },
        { timeout: 30_000, interval: 50 },
      );
      expect(posted.content).toContain(`<@${alice.id}>`);
      expect(deliveries(interaction, prompt)).toBe(1);
      discord.clearFailures();
    }
    // the bot token never went to a webhook route, and every bot route kept it
    expect(discord.requests.filter((r) => r.path.startsWith('/webhooks/') && r.auth !== null)).toEqual([]);
    expect(discord.requests.filter((r) => r.path.startsWith('/channels/') && r.auth !== `Bot ${discord.token}`)).toEqual([]);
  });

  it('every route 5xx for 8 s: the result is delivered exactly once, after the outage', async () => {
    const interaction = imagineCommand(bob, 'a storm over the bay');
    await interaction.waitForCallback();
    const outageEnds = Date.now() + 8_000;
    discord.failFor({ path: /./ }, { status: 503, message: 'Service Unavailable' }, 8_000);
    const result = await interaction.waitForOriginal(hasImage, 60_000);
    expect(Date.now()).toBeGreaterThanOrEqual(outageEnds);
    expect(result.content).toContain('a storm over the bay');
    expect(deliveries(interaction, 'a storm over the bay')).toBe(1);
    await jobFor('a storm over the bay', ['done']);
  }, 90_000);

  it('connections reset for 3 s: delivered exactly once', async () => {
    const interaction = imagineCommand(bob, 'a reset harbour');
    await interaction.waitForCallback();
    discord.failFor({ path: /^\/webhooks\// }, { status: 0, reset: true }, 3_000);
    await interaction.waitForOriginal(hasImage, 60_000);
    expect(discord.requests.some((r) => r.status === -1)).toBe(true);
    expect(deliveries(interaction, 'a reset harbour')).toBe(1);
  }, 90_000);

  it('tells the member exactly once, ephemerally, when no route can post the image', async () => {
    const interaction = imagineCommand(bob, 'a shy comet');
    await interaction.waitForCallback();
    // the member deleted the reply, the bot may not post in the channel, and bob takes no DMs from it
    discord.failNext({ method: 'PATCH', path: originalPath(interaction) }, { status: 404, code: 10008, message: 'Unknown Message', times: 100 });
    discord.failNext({ method: 'POST', path: /^\/channels\/\d+\/messages$/ }, { status: 403, code: 50001, message: 'Missing Access', times: 4 });
    const told = await interaction.waitForFollowup((message) => message.ephemeral, 60_000);
    discord.clearFailures();
    expect(told.content).toContain('Your image was made but could not be posted');
    expect(interaction.followups).toHaveLength(1);
    expect(deliveries(interaction, 'a shy comet')).toBe(0);
    await jobFor('a shy comet', ['failed']);
  }, 90_000);

  it('a restart between generation and delivery: delivered exactly once after the next start', async () => {
    const interaction = imagineCommand(alice, 'a patient tide');
    await interaction.waitForCallback();
    discord.failFor({ path: /^\/(webhooks|channels|users)\// }, { status: 502 }, 600_000);
    const job = await jobFor('a patient tide', ['delivering']);
    await app.close();
    await jobFor('a patient tide', ['delivering']);
    discord.clearFailures();
    expect(deliveries(interaction, 'a patient tide')).toBe(0);
    app = makeApp();
    await app.start();
    const result = await interaction.waitForOriginal(hasImage, 30_000);
    expect(result.content).toContain('a patient tide');
    expect(deliveries(interaction, 'a patient tide')).toBe(1);
    expect(parseButtonId(result.buttons[0].customId!)?.jobId).toBe(job.id);
  }, 90_000);
  // last: the limited route stays limited in discord.js for the 12 s
  it('hands a long 429 to the service with its Retry-After', async () => {
    const interaction = imagineCommand(alice, 'a rate limited moon');
    await interaction.waitForOriginal(hasImage, 30_000);
    const job = app.store.get((await jobFor('a rate limited moon', ['done'])).id)!;
    const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#336' } }).png().toBuffer();
    discord.failNext({ method: 'POST', path: `/channels/${CHANNEL}/messages` }, { status: 429, retryAfterSeconds: 12 });
    // the finished job's token is pruned from the store, so the post goes to the channel, which is limited
    const attempt = app.discord!.deliverResult(job, {
      file: { data: png, format: 'png', contentType: 'image/png', extension: 'png', width: 8, height: 8 },
      fileName: 'moon.png',
      seeds: [job.request.seed],
      width: 8,
      height: 8,
      elapsedMs: 1,
      truncated: false,
      fromCache: true,
    });
    const error = await attempt.then(() => undefined, (thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(DeliveryError);
    // discord.js adds its 50 ms offset to Discord's wait
    expect(error).toMatchObject({ retryable: true, retryAfterMs: expect.toSatisfy((ms: number) => ms >= 12_000 && ms < 13_000) });
  });
});
