// The bot as a real OS process refusing to start, against the local fakes of Discord and Slack: a wrong token, a
// mismatched application id, a platform it cannot reach, an unusable DATA_DIR or job database, a URL with a password.
// Each is one sentence on stderr naming the setting or file and what to do, and exit status 1, before any model loads.

import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { writeTinyModelFolder } from '../../models/tiny/generate.js';
import { startFakeDiscord, type FakeDiscord } from '../fakes/discord/index.js';
import { startFakeSlack, type FakeSlack } from '../fakes/slack/index.js';
import { killLeftovers, startBot, type BotProcess } from './process-bot.js';

/** Another user for the read-only test when the tests run as root, which file permissions do not stop. */
const NOBODY = 65534;
const STACK_FRAME = /^\s+at .+:\d+:\d+\)?$/m;

const root = mkdtempSync(join(tmpdir(), 'process-start-errors-'));
// readable by NOBODY: the model, the working directory and the data folders live here
chmodSync(root, 0o755);
const modelDir = join(root, 'model');
const cwd = join(root, 'cwd');
let discord: FakeDiscord;
let slack: FakeSlack;
let bots: BotProcess[] = [];

function discordEnv(dataDir: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    DISCORD_TOKEN: discord.token,
    DISCORD_APPLICATION_ID: discord.applicationId,
    DISCORD_API_URL: discord.baseUrl,
    MODEL_DIR: modelDir,
    DATA_DIR: dataDir,
    WEB_PORT: '0',
    EXECUTION_PROVIDER: 'cpu',
    ...extra,
  };
}

function slackEnv(dataDir: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    SLACK_BOT_TOKEN: slack.botToken,
    SLACK_SIGNING_SECRET: slack.signingSecret,
    SLACK_API_URL: slack.apiUrl,
    SLACK_PORT: '0',
    SLACK_HOST: '127.0.0.1',
    MODEL_DIR: modelDir,
    DATA_DIR: dataDir,
    WEB_PORT: '0',
    EXECUTION_PROVIDER: 'cpu',
    ...extra,
  };
}

/** Runs the bot until it exits; returns its stderr, having checked the exit status, the time and the leftovers. */
async function refusal(env: Record<string, string>, options: { uid?: number; lines?: number; afterEngine?: boolean } = {}): Promise<string> {
  const started = Date.now();
  const bot = startBot({ cwd, env, uid: options.uid });
  bots.push(bot);
  const exit = await bot.exited;
  expect(exit, bot.transcript()).toMatchObject({ code: 1, signal: null });
  const stderr = bot.stderr();
  expect(stderr, 'no stack trace').not.toMatch(STACK_FRAME);
  expect(stderr.trimEnd().split('\n'), 'one sentence').toHaveLength(options.lines ?? 1);
  // the models are not loaded for a problem that can be found before
  expect(bot.logs.some((line) => line.msg === 'engine ready'), 'the engine started').toBe(options.afterEngine ?? false);
  expect(Date.now() - started).toBeLessThan(20_000);
  return stderr.replaceAll(root, '<tmp>');
}

/** A port on 127.0.0.1 that nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
  await new Promise((resolve) => server.close(resolve));
  return port;
}

beforeAll(async () => {
  mkdirSync(cwd);
  await writeTinyModelFolder(modelDir, { steps: [2] });
  chmodSync(modelDir, 0o755);
  discord = await startFakeDiscord({ guilds: [] });
  slack = await startFakeSlack();
});

beforeEach((context) => {
  bots = [];
  context.onTestFailed(() => {
    for (const bot of bots) console.error(bot.transcript());
  });
});

afterEach(async () => {
  expect(await killLeftovers(), 'processes the test left running').toEqual([]);
});

afterAll(async () => {
  await killLeftovers();
  await discord?.close();
  await slack?.close();
  rmSync(root, { recursive: true, force: true });
});

describe('a platform that refuses the bot', () => {
  it('Discord: a wrong DISCORD_TOKEN', async () => {
    const stderr = await refusal(discordEnv(join(root, 'discord-token'), { DISCORD_TOKEN: `${discord.token.slice(0, -4)}abcd` }));
    expect(stderr).toMatchInlineSnapshot(`
      "Discord does not accept DISCORD_TOKEN (401 Unauthorized): reset the token in the Discord developer portal (your application → Bot → Reset Token) and put the new one in DISCORD_TOKEN.
      "
    `);
  });

  it('Discord: a DISCORD_APPLICATION_ID of another application', async () => {
    const stderr = await refusal(discordEnv(join(root, 'discord-app'), { DISCORD_APPLICATION_ID: '123456789012345678' }));
    expect(stderr).toBe(
      `DISCORD_APPLICATION_ID is 123456789012345678, but DISCORD_TOKEN belongs to the application ${discord.applicationId} ("${discord.botUser.username}"): ` +
        'copy the Application ID from the same application’s General Information page, or the token from its Bot page.\n',
    );
  });

  it('Discord: nothing answers at DISCORD_API_URL', async () => {
    const api = `http://127.0.0.1:${await closedPort()}/api`;
    const stderr = await refusal(discordEnv(join(root, 'discord-down'), { DISCORD_API_URL: api }));
    expect(stderr).toBe(`Could not reach Discord at ${api} to check DISCORD_TOKEN (ECONNREFUSED): check the network, or DISCORD_API_URL.\n`);
  });

  it('Slack: a wrong SLACK_BOT_TOKEN is a sentence, not an uncaught WebAPIPlatformError', async () => {
    const stderr = await refusal(slackEnv(join(root, 'slack-token'), { SLACK_BOT_TOKEN: 'xoxb-111111111111-2222222222222-wrongwrongwrong' }));
    expect(stderr).toMatchInlineSnapshot(`
      "Slack does not accept SLACK_BOT_TOKEN (invalid_auth): copy the Bot User OAuth Token (xoxb-…) from your Slack app's OAuth & Permissions page into SLACK_BOT_TOKEN, reinstalling the app to the workspace if it was removed.
      "
    `);
    expect(stderr).not.toContain('wrongwrong');
  });

  it('Slack: a wrong SLACK_APP_TOKEN in Socket Mode', async () => {
    const stderr = await refusal(slackEnv(join(root, 'slack-app-token'), { SLACK_APP_TOKEN: 'xapp-1-A0000000000-1111111111111-0123456789abcdef' }));
    expect(stderr).toMatchInlineSnapshot(`
      "Slack does not accept SLACK_APP_TOKEN (invalid_auth): create an app-level token with the connections:write scope (your Slack app's Basic Information → App-Level Tokens), with Socket Mode enabled, and put it in SLACK_APP_TOKEN.
      "
    `);
  });

  it('Slack: HTTP mode on a SLACK_PORT that is taken', async () => {
    const server = createServer();
    const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
    try {
      // the port is taken only when the Slack app starts listening, after the engine
      const stderr = await refusal(slackEnv(join(root, 'slack-port'), { SLACK_PORT: String(port), LAZY_UNETS: 'true' }), { afterEngine: true });
      expect(stderr).toBe(`SLACK_PORT ${port} is in use on 127.0.0.1: stop what listens there, or set SLACK_PORT to a free port.\n`);
    } finally {
      server.close();
    }
  });
});

describe('a DATA_DIR or job database the bot cannot use', () => {
  it('a jobs.sqlite that is not a database: named, left as it was', async () => {
    const dataDir = join(root, 'corrupt');
    mkdirSync(dataDir);
    const garbage = Buffer.from('these bytes are not an SQLite database, and they must survive the failed start\n'.repeat(64));
    writeFileSync(join(dataDir, 'jobs.sqlite'), garbage);
    const stderr = await refusal(discordEnv(dataDir));
    expect(stderr).toMatchInlineSnapshot(`
      "The job database <tmp>/corrupt/jobs.sqlite (DATA_DIR) is not an SQLite database (damaged, or another file by that name); move it aside to start with an empty one (queued jobs and the buttons on old images are then forgotten), restore it from a backup, or set DATA_DIR to another folder (SQLITE_NOTADB: file is not a database).
      "
    `);
    expect(readFileSync(join(dataDir, 'jobs.sqlite')).equals(garbage)).toBe(true);
  });

  it('a read-only DATA_DIR', async () => {
    const dataDir = join(root, 'read-only');
    mkdirSync(dataDir, { mode: 0o555 });
    chmodSync(dataDir, 0o555);
    // root writes through any mode bits, so the bot runs as another user then
    const asRoot = process.getuid?.() === 0;
    const stderr = await refusal(discordEnv(dataDir), asRoot ? { uid: NOBODY } : {});
    expect(stderr).toMatchInlineSnapshot(`
      "The job database <tmp>/read-only/jobs.sqlite (DATA_DIR) cannot be opened or created; check that <tmp>/read-only is a folder, and give the bot's user write access to <tmp>/read-only, or set DATA_DIR to a folder it can write (SQLITE_CANTOPEN: unable to open database file).
      "
    `);
  });

  it('a DATA_DIR below a file', async () => {
    const file = join(root, 'a-file');
    writeFileSync(file, 'not a folder');
    const stderr = await refusal(discordEnv(join(file, 'data')));
    expect(stderr).toMatchInlineSnapshot(`
      "DATA_DIR <tmp>/a-file/data cannot be used: a file stands where a folder should be; move the file, or set DATA_DIR to another folder (ENOTDIR on mkdir <tmp>/a-file/data).
      "
    `);
  });
});

describe('settings that hold credentials', () => {
  it('a REDIS_URL with the wrong scheme is named without its password', async () => {
    // the configuration's problems are a list: its heading, then one line each
    const stderr = await refusal(discordEnv(join(root, 'redis'), { REDIS_URL: 'https://default:hunter2@redis.example:6379' }), { lines: 2 });
    expect(stderr).toMatchInlineSnapshot(`
      "The configuration has a problem:
        - REDIS_URL must start with redis:// or rediss://; found "https://[redacted]@redis.example:6379"
      "
    `);
  });
});
