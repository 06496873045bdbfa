// The logger keeps secrets and bytes out of log lines, shown with the real error objects discord.js and Slack's
// Web API client throw, made against the local fakes.

import { createServer } from 'node:net';
import { Writable } from 'node:stream';
// discord.js before Bolt, as in the app: Bolt brings its own undici, and whichever loads first sets the global
// dispatcher; the other way round, discord.js's multipart uploads fail inside Bolt's undici
import { REST, Routes, type DiscordAPIError, type HTTPError } from 'discord.js';
import { webApi } from '@slack/bolt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { startFakeDiscord, type FakeDiscord } from '../fakes/discord/index.js';
import { startFakeSlack, type FakeSlack } from '../fakes/slack/index.js';

/** A logger writing into an array of parsed lines, and the raw text for searching. */
function capture(secrets: string[] = []): { logger: ReturnType<typeof createLogger>; lines: Record<string, unknown>[]; text: () => string } {
  const raw: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      raw.push(String(chunk));
      done();
    },
  });
  const logger = createLogger({ level: 'debug', destination, secrets });
  return { logger, lines: raw.map((line) => JSON.parse(line) as Record<string, unknown>), text: () => raw.join('') };
}

function lastLine(text: string): Record<string, unknown> {
  return JSON.parse(text.trim().split('\n').pop()!) as Record<string, unknown>;
}

/** A PNG-sized attachment: the bytes must never reach a log line, in any encoding. */
const PNG = Buffer.alloc(64 * 1024, 7);
const INTERACTION_TOKEN = `aW50ZXJhY3Rpb246MTIzNDU2Nzg5MDEyMzQ1Njc4OkR1bW15VG9rZW4${'x'.repeat(120)}`;

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

describe('the logger with discord.js errors', () => {
  it('a failed upload through an interaction webhook: no token, no request body, no bytes', async () => {
    const rest = new REST({ api: discord.baseUrl, retries: 0 }).setToken(discord.token);
    const error = await rest
      .patch(Routes.webhookMessage(discord.applicationId, INTERACTION_TOKEN), {
        auth: false,
        files: [{ name: 'grid.png', data: PNG, contentType: 'image/png' }],
        body: { content: 'a lighthouse', attachments: [{ id: 0, filename: 'grid.png' }] },
      })
      .then(
        () => undefined,
        (thrown: unknown) => thrown as DiscordAPIError,
      );
    expect(error?.url, 'the real error carries the token in its URL').toContain(INTERACTION_TOKEN);
    expect(error?.requestBody.files?.[0]?.data, 'and the PNG in its request body').toBe(PNG);

    const { logger, text } = capture([discord.token]);
    logger.warn({ err: error, job: 'job123' }, 'could not edit the interaction reply; posting in the channel instead');
    const output = text();
    expect(output).not.toContain(INTERACTION_TOKEN);
    expect(output).not.toContain(INTERACTION_TOKEN.slice(0, 24));
    expect(output).not.toMatch(/(\d+,){16}/);
    expect(output).not.toContain('"Buffer"');
    expect(output.length).toBeLessThan(8_000);
    const line = lastLine(output);
    expect(line).toMatchObject({
      level: 40,
      job: 'job123',
      msg: 'could not edit the interaction reply; posting in the channel instead',
      err: {
        type: 'DiscordAPIError',
        message: 'Invalid Webhook Token',
        code: 50027,
        status: 401,
        method: 'PATCH',
        url: `${discord.baseUrl}/v10/webhooks/${discord.applicationId}/[redacted]/messages/@original`,
        requestBody: '[not logged]',
      },
    });
  });

  it('a 5xx (HTTPError) keeps its status and method, not its body', async () => {
    discord.failNext({ method: 'POST', path: /\/webhooks\// }, { status: 503 });
    const rest = new REST({ api: discord.baseUrl, retries: 0 }).setToken(discord.token);
    const error = (await rest
      .post(Routes.webhook(discord.applicationId, INTERACTION_TOKEN), { auth: false, files: [{ name: 'x.png', data: PNG }], body: { content: 'x' } })
      .catch((thrown: unknown) => thrown)) as HTTPError;
    expect(error.constructor.name).toBe('HTTPError');
    const { logger, text } = capture();
    logger.error({ err: error }, 'delivery failed');
    expect(text()).not.toContain(INTERACTION_TOKEN.slice(0, 24));
    expect(lastLine(text())).toMatchObject({ err: { type: 'HTTPError', status: 503, method: 'POST', requestBody: '[not logged]' } });
  });

  it('the bot token never appears, even in a message or a stack', () => {
    const { logger, text } = capture([discord.token]);
    const error = new Error(`login with ${discord.token} failed`);
    logger.error(error);
    logger.info(`Authorization: Bot ${discord.token}`);
    expect(text()).not.toContain(discord.token);
    expect(lastLine(text()).msg).toBe('Authorization: Bot [redacted]');
  });
});

describe('the logger with Slack Web API errors', () => {
  it('a platform error (invalid_auth) keeps Slack’s answer and drops nothing useful', async () => {
    const client = new webApi.WebClient('xoxb-1234567890-wrong-token-abcdefghij', { slackApiUrl: slack.apiUrl, retryConfig: { retries: 0 } });
    const error = (await client.auth.test().catch((thrown: unknown) => thrown)) as webApi.WebAPIPlatformError;
    expect(error.code).toBe(webApi.ErrorCode.PlatformError);
    const { logger, text } = capture();
    logger.error({ err: error }, 'slack call failed');
    expect(text()).not.toContain('wrong-token');
    expect(lastLine(text())).toMatchObject({ err: { code: 'slack_webapi_platform_error', data: { ok: false, error: 'invalid_auth' } } });
  });

  it('a request error (no connection) keeps its cause, the refused address', async () => {
    const server = createServer();
    const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
    await new Promise((resolve) => server.close(resolve));
    const client = new webApi.WebClient(slack.botToken, { slackApiUrl: `http://127.0.0.1:${port}/api/`, retryConfig: { retries: 0 }, logLevel: webApi.LogLevel.ERROR });
    const error = (await client.chat.postMessage({ channel: 'C1', text: 'hello' }).catch((thrown: unknown) => thrown)) as webApi.WebAPIRequestError;
    expect(error.code).toBe(webApi.ErrorCode.RequestError);
    const { logger, text } = capture();
    logger.warn({ err: error }, 'slack call failed');
    expect(text()).not.toContain(slack.botToken.slice(5));
    expect(lastLine(text())).toMatchObject({
      err: { code: 'slack_webapi_request_error', original: { type: 'TypeError', message: 'fetch failed', cause: { code: 'ECONNREFUSED', address: '127.0.0.1', port } } },
    });
  });
});

describe('the logger with our own records', () => {
  it('masks delivery data, response_urls and URL passwords, and summarises bytes', () => {
    const { logger, text } = capture();
    const responseUrl = 'https://hooks.slack.com/commands/T0123ABCD/1234567890123/AbCdEfGhIjKlMnOpQrStUvWx';
    logger.info(
      {
        reply: { token: INTERACTION_TOKEN, applicationId: '123', responseUrl },
        note: `posting to ${responseUrl}`,
        redis: 'redis://default:hunter2hunter2@redis.internal:6379/0',
        image: PNG,
        pixels: new Uint8Array(3_000_000),
        json: { type: 'Buffer', data: [...PNG.subarray(0, 100)] },
        headers: { authorization: 'Bearer xoxb-123-456-abc', 'retry-after': '3' },
      },
      'delivering',
    );
    const output = text();
    for (const secret of [INTERACTION_TOKEN.slice(0, 24), 'AbCdEfGhIjKlMnOpQrStUvWx', 'hunter2', 'xoxb-123']) expect(output).not.toContain(secret);
    expect(lastLine(output)).toMatchObject({
      reply: { token: '[redacted]', applicationId: '123', responseUrl: '[redacted]' },
      note: 'posting to https://hooks.slack.com/commands/T0123ABCD/1234567890123/[redacted]',
      redis: 'redis://[redacted]@redis.internal:6379/0',
      image: `[${PNG.length} bytes]`,
      pixels: '[3000000 bytes]',
      json: '[100 bytes]',
      headers: { authorization: '[redacted]', 'retry-after': '3' },
    });
  });

  it('a message taken from an error is redacted too, and the configured secrets wherever they appear', () => {
    const secret = 'f3c1e5d7a9b2c4d6e8f0a1b3c5d7e9f1';
    const { logger, text } = capture([secret]);
    logger.error(new Error(`signature check with ${secret} failed at /webhooks/123/${INTERACTION_TOKEN}`));
    logger.error({ err: new Error(`again ${secret}`), context: { nested: [`deep ${secret}`] } });
    const output = text();
    expect(output).not.toContain(secret);
    expect(output).not.toContain(INTERACTION_TOKEN.slice(0, 24));
    expect(lastLine(output)).toMatchObject({ msg: 'again [redacted]', context: { nested: ['deep [redacted]'] } });
  });

  it('child bindings, cycles and causes are handled', () => {
    const { logger, text } = capture();
    const cyclic: Record<string, unknown> = { name: 'loop' };
    cyclic.self = cyclic;
    const error = new Error('outer', { cause: new Error(`inner xapp-1-A0-123-abcdef`) });
    logger.child({ part: 'slack', token: 'xapp-1-A0-123-abcdef' }).warn({ err: error, cyclic }, 'failed');
    const output = text();
    expect(output).not.toContain('abcdef');
    expect(lastLine(output)).toMatchObject({ part: 'slack', token: 'xapp-[redacted]', cyclic: { name: 'loop', self: '[circular]' }, err: { message: 'outer', cause: { message: 'inner xapp-[redacted]' } } });
  });
});
