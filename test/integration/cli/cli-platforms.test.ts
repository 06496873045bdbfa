// doctor and register ask the configured platforms about their tokens, here the local fakes of Discord and Slack.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTinyModelFolder } from '../../../models/tiny/generate.js';
import { startFakeDiscord, type FakeDiscord } from '../../fakes/discord/index.js';
import { startFakeSlack, type FakeSlack } from '../../fakes/slack/index.js';
import { runCli } from './run-cli.js';

const root = mkdtempSync(join(tmpdir(), 'cli-platforms-'));
const modelDir = join(root, 'model');
let discord: FakeDiscord;
let slack: FakeSlack;

const discordEnv = (token = discord.token): Record<string, string> => ({
  DISCORD_TOKEN: token,
  DISCORD_APPLICATION_ID: discord.applicationId,
  DISCORD_API_URL: discord.baseUrl,
  DISCORD_GUILD_ID: '100000000000000001',
});
const slackEnv = (botToken = slack.botToken): Record<string, string> => ({
  SLACK_BOT_TOKEN: botToken,
  SLACK_SIGNING_SECRET: slack.signingSecret,
  SLACK_APP_TOKEN: slack.appToken,
  SLACK_API_URL: slack.apiUrl,
});

beforeAll(async () => {
  await writeTinyModelFolder(modelDir, { steps: [1] });
  discord = await startFakeDiscord({ guilds: [{ id: '100000000000000001', name: 'Test server', channels: [] }] });
  slack = await startFakeSlack();
});
afterAll(async () => {
  await discord?.close();
  await slack?.close();
  rmSync(root, { recursive: true, force: true });
});

describe('npm run doctor', () => {
  it('says each configured platform accepts its tokens', async () => {
    const result = await runCli('doctor.js', ['--provider', 'cpu'], { cwd: root, env: { MODEL_DIR: modelDir, ...discordEnv(), ...slackEnv() } });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`\nChat platforms\n  ok    Discord accepts DISCORD_TOKEN for the application ${discord.applicationId}\n  ok    Slack accepts SLACK_BOT_TOKEN and SLACK_APP_TOKEN (Socket Mode)\n`);
  });

  it('fails, naming the setting, when a platform refuses a token', async () => {
    const result = await runCli('doctor.js', ['--provider', 'cpu'], { cwd: root, env: { MODEL_DIR: modelDir, ...discordEnv('MTIz.wrong.token-that-discord-refuses'), ...slackEnv('xoxb-0-0-wrong') } });
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('  FAIL  Discord does not accept DISCORD_TOKEN (401 Unauthorized)');
    expect(result.stdout).toContain('  FAIL  Slack does not accept SLACK_BOT_TOKEN (invalid_auth)');
    expect(result.stdout).not.toContain('token-that-discord-refuses');
    expect(result.stdout).toContain('The bot cannot run with this setup yet');
  });
});

describe('npm run register', () => {
  it('registers with a good token, and names DISCORD_TOKEN for a bad one', async () => {
    const good = await runCli('register.js', [], { cwd: root, env: { MODEL_DIR: modelDir, ...discordEnv() } });
    expect(good.code, good.stderr).toBe(0);
    const bad = await runCli('register.js', [], { cwd: root, env: { MODEL_DIR: modelDir, ...discordEnv('MTIz.wrong.token-that-discord-refuses') } });
    expect(bad).toMatchObject({
      code: 1,
      stdout: '',
      stderr: 'Discord does not accept DISCORD_TOKEN (401 Unauthorized): reset the token in the Discord developer portal (your application → Bot → Reset Token) and put the new one in DISCORD_TOKEN.\n',
    });
  });
});
