// The web platform in the bot as a real OS process (`node dist/src/main.js`) with no chat platform: it says where it
// serves and how to add Discord or Slack; stopped with SIGTERM while a web job waits and started again, the page shows
// that job's result.

import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { chromium } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { writeTinyModelFolder } from '../../models/tiny/generate.js';
import { killLeftovers, sleep, startBot, type BotProcess } from './process-bot.js';
import { call } from './web-harness.js';

const CHROMIUM = '/usr/bin/chromium';
const root = mkdtempSync(join(tmpdir(), 'web-process-'));
const modelDir = join(root, 'model');
const cwd = join(root, 'cwd');
let bots: BotProcess[] = [];

/** A port nothing listens on now (the bot is given a number, as an admin would). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function start(dataDir: string, port: number): BotProcess {
  const bot = startBot({
    cwd,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      MODEL_DIR: modelDir,
      DATA_DIR: dataDir,
      EXECUTION_PROVIDER: 'cpu',
      LOG_LEVEL: 'info',
      STOP_TIMEOUT_SECONDS: '20',
      DEFAULT_STEPS: '2',
      WEB_PORT: String(port),
    },
  });
  bots.push(bot);
  return bot;
}

async function until<T>(read: () => Promise<T>, ok: (value: T) => boolean, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (ok(value)) return value;
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms: ${JSON.stringify(value).slice(0, 500)}`);
    await sleep(20);
  }
}

beforeAll(async () => {
  mkdirSync(cwd);
  await writeTinyModelFolder(modelDir, { steps: [2] });
});

afterEach(async (context) => {
  if (context.task.result?.state === 'fail') for (const bot of bots) console.error(bot.transcript());
  bots = [];
  await killLeftovers();
});

afterAll(async () => {
  await killLeftovers();
  rmSync(root, { recursive: true, force: true });
});

describe('the web in the bot process', () => {
  it('serves with no chat platform, and after a SIGTERM with a job waiting the next start shows its result', async () => {
    const dataDir = join(root, 'restart');
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const first = start(dataDir, port);
    await first.waitForLog((line) => line.msg === 'ready', 30_000, '"ready"');
    expect(first.logs.find((line) => line.msg === `web playground and API on ${url}`)).toMatchObject({ url, tokens: 0 });
    expect(first.stderr()).toBe(
      `Serving the web playground and API on ${url}. To add a chat platform:\n` +
        '  Discord: set DISCORD_TOKEN and DISCORD_APPLICATION_ID (and DISCORD_GUILD_ID to register commands to one server).\n' +
        '  Slack: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET, and SLACK_APP_TOKEN for Socket Mode (else HTTP on SLACK_PORT).\n' +
        'Put them in .env (see .env.example) or the environment, then run npm start again; both may be set.\n',
    );

    // a grid runs; a second job waits behind it when the stop comes
    const running = await call(url, 'POST', '/api/imagine', { body: { prompt: 'a grid that runs', count: 4 } });
    const waiting = await call(url, 'POST', '/api/imagine', { body: { prompt: 'a picture that waits', count: 1, seed: 77 } });
    expect([running.status, waiting.status, waiting.json.position]).toEqual([202, 202, 1]);
    await until(() => call(url, 'GET', `/api/jobs/${running.json.job.id}`), (answer) => answer.json.job.status !== 'queued', 20_000, 'running job');
    first.child.kill('SIGTERM');
    expect(await first.exited).toMatchObject({ code: 0, signal: null });
    // the stop finished the running grid and left the other waiting in the store
    const db = new Database(join(dataDir, 'jobs.sqlite'), { readonly: true });
    const statuses = db.prepare('SELECT id, status FROM jobs ORDER BY created_at, rowid').all();
    db.close();
    expect(statuses).toEqual([
      { id: running.json.job.id, status: 'done' },
      { id: waiting.json.job.id, status: 'queued' },
    ]);

    const second = start(dataDir, port);
    await second.waitForLog((line) => line.msg === 'ready', 30_000, '"ready"');
    const done = await until(() => call(url, 'GET', `/api/jobs/${waiting.json.job.id}`), (answer) => answer.json.job?.status === 'done', 30_000, 'the waiting job done');
    expect(done.json.job).toMatchObject({ prompt: 'a picture that waits', seeds: [77], result: { seeds: [77], images: [`/api/jobs/${waiting.json.job.id}/images/0.png`] } });
    const image = await fetch(`${url}${done.json.job.result.images[0]}`);
    expect([image.status, image.headers.get('content-type')]).toEqual([200, 'image/png']);

    if (existsSync(CHROMIUM)) {
      const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
      try {
        const page = await browser.newPage();
        await page.goto(url);
        const card = page.locator(`#results .card[data-job="${waiting.json.job.id}"]`);
        await card.waitFor({ timeout: 10_000 });
        await expect.poll(() => card.getAttribute('data-state'), { timeout: 10_000 }).toBe('done');
        expect(await card.locator('.details').textContent()).toMatch(/^seed 77 · 2 steps · 1024×1024 · /);
      } finally {
        await browser.close();
      }
    }
    second.child.kill('SIGTERM');
    expect(await second.exited).toMatchObject({ code: 0 });
  });

  it('refuses to start on a non-loopback WEB_HOST without WEB_TOKEN, in one sentence', async () => {
    const bot = startBot({ cwd, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', MODEL_DIR: modelDir, DATA_DIR: join(root, 'open'), WEB_HOST: '0.0.0.0' } });
    bots.push(bot);
    expect((await bot.exited).code).toBe(1);
    expect(bot.stderr()).toBe(
      'The configuration has a problem:\n' +
        '  - WEB_HOST 0.0.0.0 is reachable from other machines, so WEB_TOKEN must be set (anyone who finds the port could use the GPU): set WEB_TOKEN to a long random string (openssl rand -hex 32), or WEB_HOST=127.0.0.1, or WEB_PORT=0 to turn the web off\n',
    );
  });

  it('names a WEB_PORT that is taken', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { port } = taken.address() as { port: number };
    try {
      const bot = start(join(root, 'taken'), port);
      expect((await bot.exited).code).toBe(1);
      expect(bot.stderr()).toBe(`WEB_PORT ${port} is in use on 127.0.0.1: stop what listens there (another image UI?), set WEB_PORT to a free port, or WEB_PORT=0 to turn the web off.\n`);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });
});
