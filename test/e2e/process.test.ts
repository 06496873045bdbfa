// The bot as a real OS process (`node dist/src/main.js`) against the local fake Discord: killed with -9 and started
// again, stopped with SIGTERM, Ctrl-C or SIGHUP, and refusing to start without a platform or a model folder.

import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { writeTinyModelFolder } from '../../models/tiny/generate.js';
import { startFakeDiscord, type FakeDiscord, type FakeInteraction, type FakeUser } from '../fakes/discord/index.js';
import { childPids, killLeftovers, sleep, startBot, waitUntilGone, type BotProcess, type Exit } from './process-bot.js';

const GUILD = '100000000000000001';
const CHANNEL = '100000000000000002';
const STOP_TIMEOUT_SECONDS = 20;
/** main.ts gives up this long after a stop signal. */
const EXIT_BOUND_MS = (STOP_TIMEOUT_SECONDS + 15) * 1000;
const SHUTTING_DOWN = 'The bot is restarting; try again in a minute.';

const root = mkdtempSync(join(tmpdir(), 'process-e2e-'));
const modelDir = join(root, 'model');
/** The bot's working directory: empty, so no `.env` is loaded (the project root may have one). */
const cwd = join(root, 'cwd');
let discord: FakeDiscord;
/** Bots the current test started, whose output is printed when it fails. */
let bots: BotProcess[] = [];

const user = (n: number): FakeUser => ({ id: `2000000000000000${String(n).padStart(2, '0')}`, username: `member${n}` });

function botEnv(dataDir: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    DISCORD_TOKEN: discord.token,
    DISCORD_APPLICATION_ID: discord.applicationId,
    DISCORD_GUILD_ID: GUILD,
    DISCORD_API_URL: discord.baseUrl,
    MODEL_DIR: modelDir,
    DATA_DIR: dataDir,
    WEB_PORT: '0',
    EXECUTION_PROVIDER: 'cpu',
    LOG_LEVEL: 'info',
    STOP_TIMEOUT_SECONDS: String(STOP_TIMEOUT_SECONDS),
    DEFAULT_STEPS: '2',
    USER_BURST: '100',
    MAX_QUEUED_PER_USER: '20',
    ...extra,
  };
}

const isRegistration = (line: { msg?: string }) => typeof line.msg === 'string' && line.msg.startsWith('Discord commands (guild');

/**
 * Waits for the bot to answer a click on a button it never made. With Discord the only platform, main.ts installs its
 * signal handlers in the same turn of the event loop as the registration log line, so an answer after that line proves
 * they are in (a signal before them would end the bot without its graceful stop).
 */
async function answersClicks(): Promise<void> {
  const click = discord.clickButton({ customId: 'not-ours', messageId: '300000000000000001', user: user(99), guildId: GUILD, channelId: CHANNEL });
  expect((await click.waitForCallback(10_000)).data?.content).toBe('I no longer know that image; start a new one with /imagine.');
}

/** Starts the bot and waits until it is on the gateway with its commands registered; returns it and its engine worker. */
async function startReadyBot(dataDir: string, options: { detached?: boolean } = {}): Promise<{ bot: BotProcess; worker: number }> {
  const bot = startBot({ cwd, env: botEnv(dataDir), detached: options.detached });
  bots.push(bot);
  await bot.waitForLog((line) => line.msg === 'discord ready', 30_000, '"discord ready"');
  await bot.waitForLog(isRegistration, 10_000, 'the command registration');
  await answersClicks();
  const workers = childPids(bot.pid);
  expect(workers, 'the bot runs one engine worker process').toHaveLength(1);
  return { bot, worker: workers[0] };
}

type JobRow = { id: string; status: string; token: string; prompt: string; result_message_id: string | null };

/** The jobs table, read through a read-only connection of its own (the bot may be writing). */
function readJobs(dataDir: string): JobRow[] {
  const db = new Database(join(dataDir, 'jobs.sqlite'), { readonly: true });
  try {
    return db
      .prepare(
        `SELECT id, status, json_extract(reply, '$.token') AS token, json_extract(request, '$.prompt') AS prompt, result_message_id
         FROM jobs ORDER BY created_at, rowid`,
      )
      .all() as JobRow[];
  } finally {
    db.close();
  }
}

async function waitForJobs(dataDir: string, predicate: (rows: JobRow[]) => boolean, timeoutMs: number, what: string): Promise<JobRow[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rows = readJobs(dataDir);
    if (predicate(rows)) return rows;
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms; jobs: ${JSON.stringify(rows.map((row) => [row.prompt, row.status]))}`);
    await sleep(10);
  }
}

function imagine(from: FakeUser, prompt: string, count: number): FakeInteraction {
  return discord.sendCommand({
    name: 'imagine',
    options: [
      { name: 'prompt', type: 3, value: prompt },
      { name: 'count', type: 4, value: count },
    ],
    user: from,
    guildId: GUILD,
    channelId: CHANNEL,
  });
}

/** Every message that carried this prompt's image: edits of the interaction's reply and posts in the channel. */
function deliveries(interaction: FakeInteraction, prompt: string): { via: 'interaction' | 'channel'; id: string }[] {
  return [
    ...interaction.edits.filter((edit) => edit.attachments.length > 0).map((edit) => ({ via: 'interaction' as const, id: edit.id })),
    ...discord
      .channelMessages(CHANNEL)
      .filter((message) => message.attachments.length > 0 && message.content.includes(`**${prompt}**`))
      .map((message) => ({ via: 'channel' as const, id: message.id })),
  ];
}

function stop(bot: BotProcess): Promise<Exit> {
  bot.child.kill('SIGTERM');
  return bot.exited;
}

beforeAll(async () => {
  mkdirSync(cwd);
  await writeTinyModelFolder(modelDir, { steps: [2] });
  discord = await startFakeDiscord({ guilds: [{ id: GUILD, name: 'Test server', channels: [{ id: CHANNEL, name: 'imagine' }] }] });
});

beforeEach((context) => {
  bots = [];
  context.onTestFailed(() => {
    // an expected failure (it.fails) is no news
    if (!context.task.fails) for (const bot of bots) console.error(bot.transcript());
  });
});

afterEach(async (context) => {
  // a test that failed half-way leaves its bot on the gateway, where it would answer the next test's commands
  const leftovers = await killLeftovers();
  if (context.task.result?.state !== 'fail' && !context.task.fails) expect(leftovers, 'processes the test left running').toEqual([]);
});

afterAll(async () => {
  await killLeftovers();
  await discord?.close();
  rmSync(root, { recursive: true, force: true });
});

describe('the bot as a process', () => {
  it('loses and repeats nothing when killed with -9 and started again', async () => {
    const dataDir = join(root, 'crash');
    const first = await startReadyBot(dataDir);
    const prompts = [1, 2, 3, 4, 5].map((n) => `a crash test picture ${n}`);
    const interactions = prompts.map((prompt, i) => imagine(user(i + 1), prompt, 2));
    for (const interaction of interactions) expect((await interaction.waitForCallback()).type).toBe(5);

    const atKill = await waitForJobs(dataDir, (rows) => rows.length === 5 && rows.some((row) => row.status === 'running'), 20_000, 'running job');
    first.bot.child.kill('SIGKILL');
    expect(await first.bot.exited).toMatchObject({ code: null, signal: 'SIGKILL' });
    // the worker notices its IPC channel close and exits by itself
    expect(await waitUntilGone(first.worker, 5_000), `engine worker ${first.worker} outlived the bot`).toBe(true);
    const unfinished = readJobs(dataDir).filter((row) => row.status === 'queued' || row.status === 'running');
    expect(unfinished.length, `jobs at the kill: ${JSON.stringify(atKill.map((row) => row.status))}`).toBeGreaterThanOrEqual(2);
    // one member's interaction token ends while the bot is down: that result goes to the channel instead
    const orphan = unfinished[unfinished.length - 1];
    discord.expireToken(orphan.token);

    const second = await startReadyBot(dataDir);
    const requeued = await second.bot.waitForLog((line) => line.msg === 'picking up jobs from before the restart', 5_000, 'the re-queued jobs');
    expect(requeued.jobs).toEqual(unfinished.map((row) => row.id));
    await waitForJobs(dataDir, (rows) => rows.every((row) => row.status === 'done'), 40_000, 'all jobs done');
    // a clean stop waits for deliveries in flight, so nothing can arrive after this
    expect(await stop(second.bot)).toMatchObject({ code: 0 });
    expect(await waitUntilGone(second.worker, 5_000)).toBe(true);

    const rows = readJobs(dataDir);
    expect(rows.map((row) => row.status)).toEqual(['done', 'done', 'done', 'done', 'done']);
    for (const [i, prompt] of prompts.entries()) {
      const row = rows.find((candidate) => candidate.prompt === prompt)!;
      // a finished job keeps no interaction token
      expect(row.token).toBeNull();
      const sent = deliveries(interactions[i], prompt);
      expect(sent, `deliveries of "${prompt}"`).toEqual([{ via: row.id === orphan.id ? 'channel' : 'interaction', id: row.result_message_id }]);
    }
    // the refused edit of the expired interaction is logged without its token, the bot token or the image's bytes
    const logs = JSON.stringify([...first.bot.logs, ...second.bot.logs]);
    for (const token of [...interactions.map((interaction) => interaction.token), discord.token]) expect(logs).not.toContain(token);
    expect(logs).not.toMatch(/(\d+,){64}/);
    expect(logs).not.toContain('"Buffer"');
  });

  it('finishes the running image on SIGTERM, refuses new work, keeps the queue and exits 0', async () => {
    const dataDir = join(root, 'stop');
    const first = await startReadyBot(dataDir);
    const prompts = [1, 2, 3, 4].map((n) => `a stop test picture ${n}`);
    // the first is a 2×2 grid, whose encoding keeps the bot on the gateway long enough to see the refusal
    const interactions = prompts.map((prompt, i) => imagine(user(10 + i), prompt, i === 0 ? 4 : 1));
    for (const interaction of interactions) expect((await interaction.waitForCallback()).type).toBe(5);

    const atStop = await waitForJobs(dataDir, (rows) => rows.length === 4 && rows.some((row) => row.status === 'running'), 20_000, 'running job');
    const stopAt = Date.now();
    first.bot.child.kill('SIGTERM');
    await first.bot.waitForLog((line) => typeof line.msg === 'string' && line.msg.startsWith('stopping:'), 5_000, 'the stop');
    expect(discord.connected, 'the bot is still on the gateway while it finishes the running image').toBe(true);
    const late = imagine(user(20), 'a picture asked for during the stop', 1);
    expect((await late.waitForCallback()).data).toMatchObject({ content: SHUTTING_DOWN, flags: 64 });

    const exit = await first.bot.exited;
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(exit.at - stopAt).toBeLessThan(EXIT_BOUND_MS);
    expect(await waitUntilGone(first.worker, 5_000)).toBe(true);
    // what had started is done and delivered, what waited still waits; the refused command left no job
    const afterStop = readJobs(dataDir);
    expect(afterStop.map((row) => [row.prompt, row.status])).toEqual(atStop.map((row) => [row.prompt, row.status === 'queued' ? 'queued' : 'done']));
    for (const [i, prompt] of prompts.entries()) {
      const done = afterStop.find((row) => row.prompt === prompt)!.status === 'done';
      expect(deliveries(interactions[i], prompt), `deliveries of "${prompt}"`).toHaveLength(done ? 1 : 0);
    }
    const waiting = afterStop.filter((row) => row.status === 'queued');
    expect(waiting.length).toBeGreaterThanOrEqual(1);
    expect(first.bot.logs.find((line) => line.msg === 'service stopped; waiting jobs stay queued for the next start')?.waiting).toBe(waiting.length);

    const second = await startReadyBot(dataDir);
    await waitForJobs(dataDir, (rows) => rows.every((row) => row.status === 'done'), 30_000, 'all jobs done');
    expect(await stop(second.bot)).toMatchObject({ code: 0 });
    for (const [i, prompt] of prompts.entries()) expect(deliveries(interactions[i], prompt), `deliveries of "${prompt}"`).toHaveLength(1);
    expect(late.edits).toEqual([]);
  });

  // Ctrl-C signals the terminal's whole foreground process group, and a closing terminal sends SIGHUP to it, so the
  // engine worker gets the signal too; both stop like SIGTERM
  it.each([
    ['SIGINT', 'Ctrl-C'],
    ['SIGHUP', 'a closing terminal'],
  ] as const)('finishes the running image when %s (%s) reaches the whole process group', async (signal, _what) => {
    const dataDir = join(root, `group-${signal}`);
    const { bot, worker } = await startReadyBot(dataDir, { detached: true });
    // two grids back to back keep the worker generating for the moment of the signal
    const interactions = [1, 2].map((n) => imagine(user(30 + n), `a ${signal} test picture ${n}`, 4));
    for (const interaction of interactions) expect((await interaction.waitForCallback()).type).toBe(5);
    const atStop = await waitForJobs(dataDir, (rows) => rows.length === 2 && rows.some((row) => row.status === 'running'), 20_000, 'running job');
    process.kill(-bot.pid, signal);
    expect(await bot.exited).toMatchObject({ code: 0, signal: null });
    expect(bot.logs.find((line) => typeof line.msg === 'string' && line.msg.startsWith('stopping:'))?.signal).toBe(signal);
    expect(await waitUntilGone(worker, 5_000)).toBe(true);
    expect({
      jobs: readJobs(dataDir).map((row) => [row.prompt, row.status]),
      workerRestarted: bot.logs.some((line) => line.msg === 'restarting the engine worker'),
    }).toEqual({
      jobs: atStop.map((row) => [row.prompt, row.status === 'queued' ? 'queued' : 'done']),
      workerRestarted: false,
    });
  });

  // Fails while service.start() queues again a job this process made before start() and is still delivering: the
  // store has it as running, so it is generated and delivered twice.
  it('runs a command that arrives while the commands are being registered once', async () => {
    const dataDir = join(root, 'early');
    // a rate-limited registration holds the bot between "discord ready" and service.start() for a second, long enough
    // to generate the image; a rate-limited acknowledgement, which the delivery waits for, keeps it undelivered
    discord.failNext({ method: 'GET', path: /\/commands$/ }, { status: 429, retryAfterSeconds: 1 });
    discord.failNext({ method: 'POST', path: /\/callback$/ }, { status: 429, retryAfterSeconds: 1.5 });
    const bot = startBot({ cwd, env: botEnv(dataDir) });
    bots.push(bot);
    await bot.waitForLog((line) => line.msg === 'discord ready', 30_000, '"discord ready"');
    const prompt = 'a picture asked for during registration';
    const early = imagine(user(40), prompt, 1);
    expect((await early.waitForCallback()).type).toBe(5);
    await bot.waitForLog(isRegistration, 10_000, 'the command registration');
    await answersClicks();
    await waitForJobs(dataDir, (rows) => rows.length === 1 && rows[0].status === 'done', 20_000, 'the job done');
    expect(await stop(bot)).toMatchObject({ code: 0 });
    expect(deliveries(early, prompt)).toHaveLength(1);
  });

  it('exits 1 and says which settings enable a platform when none is configured and the web is off', async () => {
    const bot = startBot({ cwd, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', MODEL_DIR: modelDir, DATA_DIR: join(root, 'none'), WEB_PORT: '0' } });
    bots.push(bot);
    const exit = await bot.exited;
    expect(exit.code).toBe(1);
    expect(bot.stderr()).toMatchInlineSnapshot(`
      "WEB_PORT is 0 and no chat platform is configured, so there is nothing to serve.
        Web: leave WEB_PORT empty (7860) or set it to a port, for the playground page and the HTTP API.
        Discord: set DISCORD_TOKEN and DISCORD_APPLICATION_ID (and DISCORD_GUILD_ID to register commands to one server).
        Slack: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET, and SLACK_APP_TOKEN for Socket Mode (else HTTP on SLACK_PORT).
      Put them in .env (see .env.example) or the environment, then run npm start again; both may be set.
      "
    `);
    expect(bot.logs).toEqual([]);
  });

  it('exits 1 naming a missing model folder and pointing to models/README.md', async () => {
    const missing = join(root, 'no-model-here');
    const bot = startBot({ cwd, env: botEnv(join(root, 'none'), { MODEL_DIR: missing }) });
    bots.push(bot);
    const exit = await bot.exited;
    expect(exit.code).toBe(1);
    expect(bot.stderr().replaceAll(root, '<tmp>')).toMatchInlineSnapshot(`
      "The model folder <tmp>/no-model-here is not usable:
        - the folder does not exist
      Get it with \`npm run models:fetch\`, which downloads the official SDXL and SDXL-Lightning files and builds the folder (models/README.md explains it).
      Or set MODEL_AUTO_FETCH=true and npm start fetches and builds it itself.
      "
    `);
    expect(bot.stderr()).toContain('models/README.md');
  });
});
