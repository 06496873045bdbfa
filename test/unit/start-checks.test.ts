// The platform checks against the local fakes of Discord and Slack, and the sentences for start-up failures.

import { createServer } from 'node:net';
// discord.js before Bolt, as in the app (each brings an undici; the first one loaded sets the global dispatcher)
import { Client, GatewayIntentBits } from 'discord.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { EngineError } from '../../src/diffusion/index.js';
import { checkDiscordAccess, checkPlatformAccess, checkSlackAccess, explainStartError, StartError } from '../../src/start-checks.js';
import { startFakeDiscord, type FakeDiscord } from '../fakes/discord/index.js';
import { startFakeSlack, type FakeSlack } from '../fakes/slack/index.js';

let discord: FakeDiscord;
let slack: FakeSlack;

beforeAll(async () => {
  discord = await startFakeDiscord({ guilds: [] });
  slack = await startFakeSlack();
});
afterAll(async () => {
  await discord?.close();
  await slack?.close();
});

const discordConfig = (changes: { token?: string; applicationId?: string; apiUrl?: string } = {}) => ({
  token: discord.token,
  applicationId: discord.applicationId,
  guildId: undefined,
  apiUrl: discord.baseUrl,
  ...changes,
});
const slackConfig = (changes: { botToken?: string; appToken?: string; apiUrl?: string } = {}) => ({
  botToken: slack.botToken,
  signingSecret: slack.signingSecret,
  appToken: undefined,
  port: 0,
  host: undefined,
  apiUrl: slack.apiUrl,
  ...changes,
});

async function rejection(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(StartError);
  return (error as StartError).message;
}

describe('checkDiscordAccess', () => {
  it('passes with the fake’s own token and application id', async () => {
    await expect(checkDiscordAccess(discordConfig())).resolves.toBeUndefined();
  });

  it('names DISCORD_TOKEN when Discord answers 401', async () => {
    expect(await rejection(checkDiscordAccess(discordConfig({ token: 'MTIz.wrong.token-that-discord-refuses' })))).toBe(
      'Discord does not accept DISCORD_TOKEN (401 Unauthorized): reset the token in the Discord developer portal (your application → Bot → Reset Token) and put the new one in DISCORD_TOKEN.',
    );
  });

  it('names DISCORD_APPLICATION_ID when the token belongs to another application', async () => {
    expect(await rejection(checkDiscordAccess(discordConfig({ applicationId: '42' })))).toMatch(/^DISCORD_APPLICATION_ID is 42, but DISCORD_TOKEN belongs to the application \d+ \("[^"]+"\): /);
  });

  it('names DISCORD_API_URL when it leads nowhere', async () => {
    expect(await rejection(checkDiscordAccess(discordConfig({ apiUrl: `${discord.baseUrl}/nothing-here` })))).toMatch(
      /^Discord at http:\/\/127\.0\.0\.1:\d+\/api\/nothing-here answered 404 \(.+\) when asked about DISCORD_TOKEN's application: check DISCORD_API_URL, or try again later\.$/,
    );
  });
});

describe('checkSlackAccess', () => {
  it('passes with the fake’s tokens, in HTTP mode and in Socket Mode', async () => {
    await expect(checkSlackAccess(slackConfig())).resolves.toBeUndefined();
    await expect(checkSlackAccess(slackConfig({ appToken: slack.appToken }))).resolves.toBeUndefined();
  });

  it('names the token Slack refuses', async () => {
    expect(await rejection(checkSlackAccess(slackConfig({ botToken: 'xoxb-0-0-wrong' })))).toMatch(/^Slack does not accept SLACK_BOT_TOKEN \(invalid_auth\): /);
    expect(await rejection(checkSlackAccess(slackConfig({ botToken: slack.appToken })))).toMatch(/^Slack does not accept SLACK_BOT_TOKEN \(not_allowed_token_type\): /);
    expect(await rejection(checkSlackAccess(slackConfig({ appToken: 'xapp-0-wrong' })))).toMatch(/^Slack does not accept SLACK_APP_TOKEN \(invalid_auth\): /);
  });

  it('names SLACK_API_URL when nothing answers there', async () => {
    const server = createServer();
    const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
    await new Promise((resolve) => server.close(resolve));
    expect(await rejection(checkSlackAccess(slackConfig({ apiUrl: `http://127.0.0.1:${port}/api/` })))).toBe(
      `Could not reach Slack at http://127.0.0.1:${port}/api/ to check SLACK_BOT_TOKEN (ECONNREFUSED): check the network, or SLACK_API_URL.`,
    );
  });

  it('checkPlatformAccess checks both platforms and passes with nothing configured', async () => {
    await expect(checkPlatformAccess({ discord: undefined, slack: undefined })).resolves.toBeUndefined();
    expect(await rejection(checkPlatformAccess({ discord: discordConfig(), slack: slackConfig({ botToken: 'xoxb-0-0-wrong' }) }))).toContain('SLACK_BOT_TOKEN');
  });
});

describe('explainStartError', () => {
  const config = loadConfig({ DATA_DIR: '/srv/bot', SLACK_BOT_TOKEN: 'xoxb-1', SLACK_SIGNING_SECRET: 's', SLACK_PORT: '3000' });

  it('discord.js’s own refusal of the token at login', async () => {
    const client = new Client({ intents: [GatewayIntentBits.Guilds], rest: { api: discord.baseUrl } });
    const error = await client.login('MTIz.wrong.token-that-discord-refuses').catch((thrown: unknown) => thrown);
    await client.destroy();
    expect(explainStartError(error, config)).toBe(
      'Discord does not accept DISCORD_TOKEN: reset the token in the Discord developer portal (your application → Bot → Reset Token) and put the new one in DISCORD_TOKEN.',
    );
  });

  it('the engine’s errors say what they say; a port in use names SLACK_PORT; anything else is left to the caller', () => {
    expect(explainStartError(new EngineError('model', 'unet/model.onnx: onnxruntime cannot load it'), config)).toBe('unet/model.onnx: onnxruntime cannot load it');
    const inUse = Object.assign(new Error('listen EADDRINUSE: address already in use :::3000'), { code: 'EADDRINUSE', syscall: 'listen', port: 3000 });
    expect(explainStartError(inUse, config)).toBe('SLACK_PORT 3000 is in use on every interface: stop what listens there, or set SLACK_PORT to a free port.');
    expect(explainStartError(new TypeError('x is undefined'), config)).toBeUndefined();
  });
});
