import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, it } from 'vitest';
import { writeTinyModelFolder } from '../../models/tiny/generate.js';
import { startFakeDiscord, type FakeDiscord } from '../fakes/discord/index.js';
import { childPids, isRunning, killLeftovers, sleep, startBot } from './process-bot.js';

const GUILD = '100000000000000001';
const CHANNEL = '100000000000000002';
const root = mkdtempSync(join(tmpdir(), 'process-x-'));
const modelDir = join(root, 'model');
const cwd = join(root, 'cwd');
let discord: FakeDiscord;
const env = (dataDir: string) => ({ PATH: process.env.PATH!, DISCORD_TOKEN: discord.token, DISCORD_APPLICATION_ID: discord.applicationId, DISCORD_GUILD_ID: GUILD, DISCORD_API_URL: discord.baseUrl, MODEL_DIR: modelDir, DATA_DIR: dataDir, EXECUTION_PROVIDER: 'cpu', LOG_LEVEL: 'info', STOP_TIMEOUT_SECONDS: '20', DEFAULT_STEPS: '2', USER_BURST: '100', MAX_QUEUED_PER_USER: '20' });
const rows = (d: string) => { const db = new Database(join(d, 'jobs.sqlite'), { readonly: true }); const r = db.prepare('select id,status,started_at,finished_at,timings,error from jobs').all(); db.close(); return r; };
beforeAll(async () => { mkdirSync(cwd); await writeTinyModelFolder(modelDir, { steps: [2] }); discord = await startFakeDiscord({ guilds: [{ id: GUILD, name: 'T', channels: [{ id: CHANNEL, name: 'c' }] }] }); });
afterAll(async () => { console.log('leftovers', await killLeftovers()); await discord.close(); rmSync(root, { recursive: true, force: true }); });
const cmd = (n: number, p: string) => discord.sendCommand({ name: 'imagine', options: [{ name: 'prompt', type: 3, value: p }, { name: 'count', type: 4, value: 4 }], user: { id: `20000000000000${n}`, username: `u${n}` }, guildId: GUILD, channelId: CHANNEL });

it('ctrl-c', async () => {
  const d = join(root, 'int');
  const bot = startBot({ cwd, env: env(d), detached: true });
  await bot.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('Discord commands'), 30000, 'reg');
  const worker = childPids(bot.pid)[0];
  const t0 = Date.now();
  const xs = [1, 2, 3].map((n) => cmd(100 + n, `ctrl c ${n}`));
  for (const x of xs) await x.waitForCallback();
  for (;;) { if ((rows(d) as any[]).some((r) => r.status === 'running')) break; await sleep(10); }
  console.log('running after', Date.now() - t0);
  process.kill(-bot.pid, 'SIGINT');
  const exit = await bot.exited;
  console.log('exit', exit, 'worker alive', isRunning(worker), rows(d));
  console.log(bot.logs.map((l) => `${l.level} ${l.msg} ${l.err ? JSON.stringify(l.err).slice(0, 200) : ''}`).join('\n'));
  console.log(xs.map((x) => x.edits.map((e) => e.content)));
});

it('command during registration', async () => {
  const d = join(root, 'reg');
  discord.failNext({ method: 'GET', path: /\/commands$/ }, { status: 429, retryAfterSeconds: 1.5 });
  const bot = startBot({ cwd, env: env(d) });
  await bot.waitForLog((l) => l.msg === 'discord ready', 30000, 'ready');
  const x = cmd(201, 'during registration');
  await bot.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('Discord commands'), 30000, 'reg');
  await sleep(6000);
  bot.child.kill('SIGTERM');
  console.log(await bot.exited, rows(d));
  console.log(bot.logs.map((l) => `${l.time} ${l.level} ${l.msg}`).join('\n'));
  console.log(x.edits.map((e) => [e.content, e.attachments.length]));
});
