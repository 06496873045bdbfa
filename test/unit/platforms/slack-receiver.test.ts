import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { App, LogLevel } from '@slack/bolt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/logger.js';
import { createSlackReceiver, FUTURE_SKEW_SECONDS, ReplayGuard, SIGNATURE_WINDOW_SECONDS } from '../../../src/platforms/slack/receiver.js';
import { actionRequester, commandRequester, isDirectConversation } from '../../../src/platforms/slack/requester.js';
import { postSigned } from '../../fakes/slack/signing.js';

describe('the replay guard', () => {
  let now = 1_700_000_000_000;
  const clock = () => now;
  const seconds = () => Math.floor(now / 1000);

  it('takes a signature once, and refuses it again within the signature window', () => {
    const guard = new ReplayGuard({ now: clock });
    const sent = seconds();
    expect(guard.check(sent, 'v0=a')).toBe('fresh');
    expect(guard.check(sent, 'v0=b')).toBe('fresh');
    now += 200_000;
    expect(guard.check(sent, 'v0=a')).toBe('replayed');
    // once Bolt would refuse it as stale, the guard forgets it
    now += (SIGNATURE_WINDOW_SECONDS - 200 + 2) * 1000;
    expect(guard.check(sent, 'v0=a')).toBe('stale');
    expect(guard.check(seconds(), 'v0=c')).toBe('fresh');
    now += 11_000;
    guard.check(seconds(), 'v0=d');
    expect(guard.size).toBe(2);
  });

  it(`refuses a timestamp more than ${FUTURE_SKEW_SECONDS} s ahead of the clock`, () => {
    const guard = new ReplayGuard({ now: clock });
    expect(guard.check(seconds() + FUTURE_SKEW_SECONDS + 1, 'v0=e')).toBe('future');
    expect(guard.check(seconds() + FUTURE_SKEW_SECONDS, 'v0=f')).toBe('fresh');
  });

  it('stays within its bound, forgetting the oldest first', () => {
    const guard = new ReplayGuard({ now: clock, maxRemembered: 3 });
    for (const signature of ['v0=1', 'v0=2', 'v0=3', 'v0=4']) guard.check(seconds(), signature);
    expect(guard.size).toBe(3);
    expect(guard.check(seconds(), 'v0=4')).toBe('replayed');
    expect(guard.check(seconds(), 'v0=1')).toBe('fresh');
  });
});

describe('the Slack HTTP receiver, under a real Bolt app', () => {
  const signingSecret = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
  const logs = new PassThrough();
  let logged = '';
  logs.on('data', (chunk: Buffer) => (logged += chunk.toString()));
  const commands: string[] = [];
  let app: App;
  let url: string;

  beforeAll(async () => {
    app = new App({
      // an authorization given outright, so Bolt never calls auth.test; and a Web API nobody listens on
      authorize: async () => ({ botToken: 'xoxb-test', botId: 'B1', botUserId: 'U0' }),
      clientOptions: { slackApiUrl: 'http://127.0.0.1:9/api/' },
      receiver: createSlackReceiver({ signingSecret, logger: createLogger({ level: 'warn', destination: logs }) }),
      logLevel: LogLevel.ERROR,
    });
    app.command('/imagine', async ({ command, ack }) => {
      commands.push(command.text);
      await ack();
    });
    const server = (await app.start({ port: 0, host: '127.0.0.1' })) as Server;
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/slack/events`;
  });
  afterAll(async () => {
    await app?.stop();
  });

  const body = (text: string) => new URLSearchParams({ command: '/imagine', text, user_id: 'U1', channel_id: 'C1', team_id: 'T1', response_url: 'http://127.0.0.1:9/r', trigger_id: '1' }).toString();

  it('passes a signed request to Bolt once, and answers its replay 401 with a warning that keeps the secret', async () => {
    const raw = body('a cat');
    const timestamp = Math.floor(Date.now() / 1000);
    expect((await postSigned(url, raw, signingSecret, { timestamp })).status).toBe(200);
    expect((await postSigned(url, raw, signingSecret, { timestamp })).status).toBe(401);
    expect(commands).toEqual(['a cat']);
    expect(logged).toContain('"reason":"replayed within the signature window"');
    expect(logged).toContain('refused a Slack request');
    expect(logged).not.toContain(signingSecret);
    expect(logged).not.toContain('a cat');
  });

  it('refuses a timestamp from the future beyond the skew, and takes one within it', async () => {
    const now = Math.floor(Date.now() / 1000);
    expect((await postSigned(url, body('from the future'), signingSecret, { timestamp: now + FUTURE_SKEW_SECONDS + 60 })).status).toBe(401);
    expect(logged).toContain('"reason":"timestamp in the future"');
    expect((await postSigned(url, body('slightly ahead'), signingSecret, { timestamp: now + 20 })).status).toBe(200);
    expect(commands).toEqual(['a cat', 'slightly ahead']);
  });

  it('refuses bad, missing and stale signatures, and a malformed timestamp', async () => {
    const now = Math.floor(Date.now() / 1000);
    expect((await postSigned(url, body('bad'), signingSecret, { signature: 'bad' })).status).toBe(401);
    expect((await postSigned(url, body('missing'), signingSecret, { signature: 'missing' })).status).toBe(401);
    expect((await postSigned(url, body('stale'), signingSecret, { timestamp: now - SIGNATURE_WINDOW_SECONDS - 10 })).status).toBe(401);
    const malformed = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-slack-signature': 'v0=00', 'x-slack-request-timestamp': '1e9' }, body: body('x') });
    expect(malformed.status).toBe(401);
    expect(commands).toEqual(['a cat', 'slightly ahead']);
    for (const reason of ['bad signature', 'unsigned', 'stale', 'malformed timestamp']) expect(logged).toContain(`"reason":"${reason}"`);
  });

  it("answers Slack's unsigned SSL check, without running anything smuggled into it", async () => {
    const answer = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `ssl_check=1&${body('smuggled')}` });
    expect(answer.status).toBe(200);
    expect(commands).not.toContain('smuggled');
  });

  it('answers 404 off the endpoint', async () => {
    expect((await fetch(url.replace('/slack/events', '/other'), { method: 'POST', body: 'x' })).status).toBe(404);
    expect((await fetch(url)).status).toBe(404);
  });
});

describe('Slack requesters', () => {
  it('mark direct messages, so a channel list never shuts them out', () => {
    expect(isDirectConversation('D0000000001', undefined)).toBe(true);
    expect(isDirectConversation('C0000000001', 'directmessage')).toBe(true);
    expect(isDirectConversation('C0000000001', 'general')).toBe(false);
    expect(isDirectConversation(undefined, undefined)).toBe(false);
    expect(commandRequester({ user_id: 'U1', team_id: 'T1', channel_id: 'D1', channel_name: 'directmessage' })).toEqual({ platform: 'slack', userId: 'U1', guildId: 'T1', channelId: 'D1', direct: true });
    expect(actionRequester({ user: { id: 'U1', username: 'u' }, team: { id: 'T1', domain: 'd' }, channel: { id: 'C1', name: 'general' } })).toEqual({ platform: 'slack', userId: 'U1', guildId: 'T1', channelId: 'C1', direct: false });
  });
});
