// The fake Slack, tested with the real Bolt App in Socket Mode and in HTTP mode, and with raw HTTP requests.

import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  App,
  LogLevel,
  type AllMiddlewareArgs,
  type BlockAction,
  type ButtonAction,
  type Logger,
  type SlackActionMiddlewareArgs,
  type SlackCommandMiddlewareArgs,
  type types,
} from '@slack/bolt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeSlack, type FakeSlack, type JsonObject } from './slack/index.js';

const alice = { id: 'U0ALICE0001', name: 'alice', realName: 'Alice' };
const general = { id: 'C0GENERAL01', name: 'general' };
const outside = { id: 'C0OUTSIDE01', name: 'outside', botIsMember: false };
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

type CommandArgs = SlackCommandMiddlewareArgs & AllMiddlewareArgs;
type ButtonArgs = SlackActionMiddlewareArgs<BlockAction<ButtonAction>> & AllMiddlewareArgs;

/** Random bytes behind a PNG signature, with a multipart delimiter-looking line inside to trip a careless parser. */
function pngLike(size: number): Buffer {
  const data = randomBytes(size);
  PNG_SIGNATURE.copy(data);
  Buffer.from('\r\n------formdata-undici-0\r\n\r\n').copy(data, 64);
  return data;
}

/** A Bolt logger that keeps warnings and errors for the test to check, and prints nothing. */
function recordingLogger(): Logger & { problems: string[] } {
  let level = LogLevel.INFO;
  const problems: string[] = [];
  return {
    problems,
    debug: () => undefined,
    info: () => undefined,
    warn: (...message: unknown[]) => void problems.push(`warn: ${message.map(String).join(' ')}`),
    error: (...message: unknown[]) => void problems.push(`error: ${message.map(String).join(' ')}`),
    setLevel: (next: LogLevel) => void (level = next),
    getLevel: () => level,
    setName: () => undefined,
  };
}

/** Answers a raw Web API POST, as a client other than Bolt would send it. */
async function rawCall(slack: FakeSlack, method: string, token: string | null, args: Record<string, string>): Promise<JsonObject> {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const response = await fetch(`${slack.apiUrl}${method}`, { method: 'POST', headers, body: new URLSearchParams(args).toString() });
  expect(response.status).toBe(200);
  return (await response.json()) as JsonObject;
}

function buttonsBlocks(jobId: string): types.KnownBlock[] {
  return [
    { type: 'section', block_id: 'result', text: { type: 'mrkdwn', text: '*a cat* · 2 steps · seed 42' } },
    {
      type: 'actions',
      block_id: `actions:${jobId}`,
      elements: [
        { type: 'button', action_id: `rr:${jobId}`, text: { type: 'plain_text', text: '🔄 Re-roll' }, value: jobId },
        { type: 'button', action_id: `u1:${jobId}`, text: { type: 'plain_text', text: 'U1' }, value: `${jobId}:0` },
      ],
    },
  ];
}

describe('fake Slack with a real Bolt App in Socket Mode', () => {
  let slack: FakeSlack;
  let app: App;
  const logger = recordingLogger();
  let onCommand: (args: CommandArgs) => Promise<void> = async ({ ack }) => ack();
  let onButton: (args: ButtonArgs) => Promise<void> = async ({ ack }) => ack();
  const seenCommands: CommandArgs['command'][] = [];
  const seenActions: ButtonArgs['action'][] = [];

  beforeAll(async () => {
    slack = await startFakeSlack({ users: [alice], channels: [general, outside], fileShareDelayMs: 500 });
    app = new App({
      token: slack.botToken,
      appToken: slack.appToken,
      socketMode: true,
      logger,
      clientOptions: { slackApiUrl: slack.apiUrl },
    });
    app.command('/imagine', async (args) => {
      seenCommands.push(args.command);
      await onCommand(args);
    });
    app.action<BlockAction<ButtonAction>>(/^rr:/, async (args) => {
      seenActions.push(args.action);
      await onButton(args);
    });
    await app.start();
  });

  afterAll(async () => {
    await app?.stop();
    await slack?.close();
  });

  it('connects: auth.test with the bot token, apps.connections.open with the app token, then the socket', async () => {
    const connection = await slack.waitForSocket();
    expect(connection.closedAt).toBeNull();
    expect(slack.socketConnected).toBe(true);
    const authTest = await slack.waitForCall('auth.test');
    expect(authTest).toMatchObject({ token: slack.botToken, tokenKind: 'bot', response: { ok: true, user_id: slack.botUserId, bot_id: slack.botId, team_id: slack.teamId } });
    const open = await slack.waitForCall('apps.connections.open');
    expect(open).toMatchObject({ token: slack.appToken, tokenKind: 'app', response: { ok: true } });
    expect(String(open.response?.url)).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/socket\?ticket=/);
  });

  it('answers Slack errors for wrong tokens, unknown channels and bad blocks', async () => {
    expect(await rawCall(slack, 'chat.postMessage', null, { channel: general.id, text: 'hi' })).toEqual({ ok: false, error: 'not_authed' });
    expect(await rawCall(slack, 'chat.postMessage', 'xoxb-wrong', { channel: general.id, text: 'hi' })).toEqual({ ok: false, error: 'invalid_auth' });
    expect(await rawCall(slack, 'chat.postMessage', slack.appToken, { channel: general.id, text: 'hi' })).toEqual({ ok: false, error: 'not_allowed_token_type' });
    expect(await rawCall(slack, 'apps.connections.open', slack.botToken, {})).toEqual({ ok: false, error: 'not_allowed_token_type' });
    expect(await rawCall(slack, 'chat.postMessage', slack.botToken, { channel: 'C0NOPE', text: 'hi' })).toEqual({ ok: false, error: 'channel_not_found' });
    expect(await rawCall(slack, 'chat.postMessage', slack.botToken, { channel: outside.id, text: 'hi' })).toEqual({ ok: false, error: 'not_in_channel' });
    expect(await rawCall(slack, 'chat.postMessage', null, { token: slack.botToken, channel: general.id })).toEqual({ ok: false, error: 'no_text' });
    expect(await rawCall(slack, 'no.such.method', slack.botToken, {})).toMatchObject({ ok: false, error: 'unknown_method' });
    const tooLong = { type: 'actions', elements: [{ type: 'button', action_id: 'x', text: { type: 'plain_text', text: 'x'.repeat(76) } }] };
    expect(await rawCall(slack, 'chat.postMessage', slack.botToken, { channel: general.id, text: 'hi', blocks: JSON.stringify([tooLong]) })).toMatchObject({
      ok: false,
      error: 'invalid_blocks',
      response_metadata: { messages: ['[ERROR] must be less than 76 characters [json-pointer:/blocks/0/elements/0/text/text]'] },
    });
    await expect(app.client.conversations.info({ channel: 'C0NOPE' })).rejects.toMatchObject({ data: { ok: false, error: 'channel_not_found' } });
    expect(await app.client.users.info({ user: alice.id })).toMatchObject({ ok: true, user: { id: alice.id, name: 'alice', real_name: 'Alice' } });
  });

  it('takes JSON bodies, raw bytes at an upload URL, and serves a completed file to the bot token', async () => {
    const json = await fetch(`${slack.apiUrl}chat.postMessage`, {
      method: 'POST',
      headers: { 'content-type': 'application/json; charset=utf-8', authorization: `Bearer ${slack.botToken}` },
      body: JSON.stringify({ channel: '#general', text: 'hello', blocks: [{ type: 'section', text: { type: 'plain_text', text: 'hello' } }] }),
    });
    expect(await json.json()).toMatchObject({ ok: true, channel: general.id, message: { text: 'hello', user: slack.botUserId, bot_id: slack.botId } });

    const bytes = pngLike(4_096);
    const reserved = await rawCall(slack, 'files.getUploadURLExternal', slack.botToken, { filename: 'raw.png', length: String(bytes.length) });
    expect(await rawCall(slack, 'files.getUploadURLExternal', slack.botToken, { filename: 'raw.png', length: '1e3' })).toMatchObject({ ok: false, error: 'invalid_arguments' });
    const upload = await fetch(String(reserved.upload_url), { method: 'POST', body: bytes });
    expect({ status: upload.status, text: await upload.text() }).toEqual({ status: 200, text: `OK - ${bytes.length}` });
    const fileId = String(reserved.file_id);
    expect(await rawCall(slack, 'files.info', slack.botToken, { file: fileId })).toEqual({ ok: false, error: 'file_not_found' });
    const completed = await rawCall(slack, 'files.completeUploadExternal', slack.botToken, { files: JSON.stringify([{ id: fileId }]) });
    expect(completed).toMatchObject({ ok: true, files: [{ id: fileId, name: 'raw.png', title: 'raw.png', mimetype: 'image/png', size: bytes.length, channels: [], shares: {} }] });
    expect(slack.file(fileId)).toMatchObject({ uploadEncoding: 'raw', completed: true, channels: [], shared: false });
    const info = await rawCall(slack, 'files.info', slack.botToken, { file: fileId });
    const download = String((info.file as JsonObject).url_private_download);
    expect((await fetch(download)).status).toBe(403);
    const served = await fetch(download, { headers: { authorization: `Bearer ${slack.botToken}` } });
    expect(Buffer.from(await served.arrayBuffer()).equals(bytes)).toBe(true);
  });

  it('delivers a slash command; ack() with an ephemeral message is recorded within the deadline', async () => {
    onCommand = async ({ ack }) => ack({ response_type: 'ephemeral', text: 'Queued #1' });
    const command = slack.sendSlashCommand({ command: '/imagine', text: 'a cat --steps 2', userId: alice.id, channelId: general.id });
    const ack = await command.waitForAck();
    expect(ack).toMatchObject({ via: 'socket', late: false, payload: { response_type: 'ephemeral', text: 'Queued #1' } });
    expect(ack.elapsedMs).toBeLessThan(3_000);
    expect(seenCommands.at(-1)).toMatchObject({
      command: '/imagine',
      text: 'a cat --steps 2',
      user_id: alice.id,
      channel_id: general.id,
      team_id: slack.teamId,
      response_url: command.responseUrl,
      trigger_id: command.triggerId,
    });
    const shown = slack.messages(general.id).find((message) => message.origin === 'ack');
    expect(shown).toMatchObject({ text: 'Queued #1', ephemeral: true, recipient: alice.id, user: slack.botUserId });
  });

  it('takes respond() on the response_url (new ephemeral, then replace_original), five times at most', async () => {
    onCommand = async ({ ack, respond }) => {
      await ack();
      await respond({ response_type: 'ephemeral', text: 'Working… 1/2' });
      await respond({ replace_original: true, text: 'Done' });
    };
    const command = slack.sendSlashCommand({ command: '/imagine', text: 'a dog', userId: alice.id, channelId: general.id });
    expect((await command.waitForAck()).payload).toEqual({});
    const replaced = await command.waitForResponse((response) => JSON.stringify(response.payload).includes('replace_original'));
    expect(replaced.message).toMatchObject({ text: 'Done', edits: 1, ephemeral: true, recipient: alice.id, origin: 'response_url' });
    expect(command.responses.map((response) => response.status)).toEqual([200, 200]);
    expect(slack.messages(general.id).filter((message) => message.origin === 'response_url').map((message) => message.text)).toEqual(['Done']);

    const post = (body: JsonObject): Promise<Response> =>
      fetch(command.responseUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    for (let use = 3; use <= 5; use += 1) expect((await post({ text: `use ${use}` })).status).toBe(200);
    const sixth = await post({ text: 'use 6' });
    expect(sixth.status).toBe(404);
    expect(await sixth.json()).toEqual({ ok: false, error: 'used_url' });
    expect(command.responses.at(-1)).toMatchObject({ status: 404, error: 'used_url', message: null });
  });

  it('runs client.filesUploadV2 with a Buffer through all three steps and keeps the bytes intact', async () => {
    const bytes = pngLike(300_000);
    const parent = await app.client.chat.postMessage({ channel: general.id, text: 'a cat' });
    const result = await app.client.filesUploadV2({
      channel_id: general.id,
      file: bytes,
      filename: 'grid.png',
      title: 'a cat, 2×2',
      initial_comment: 'a cat · seed 42',
      thread_ts: String(parent.ts),
    });
    const completed = (result.files as { files?: { id?: string }[] }[])[0]?.files?.[0];
    const fileId = String(completed?.id);
    const upload = await slack.waitForCall('files.getUploadURLExternal', (call) => call.response?.file_id === fileId);
    expect(upload.args).toMatchObject({ filename: 'grid.png', length: String(bytes.length) });
    const completion = await slack.waitForCall('files.completeUploadExternal', (call) => call.args.channel_id === general.id);
    expect(completion.args).toMatchObject({ channel_id: general.id, initial_comment: 'a cat · seed 42', thread_ts: parent.ts, files: [{ id: fileId, title: 'a cat, 2×2' }] });

    const held = slack.file(fileId);
    expect(held).toMatchObject({ filename: 'grid.png', title: 'a cat, 2×2', completed: true, shared: false, channels: [general.id], threadTs: parent.ts, uploadEncoding: 'multipart' });
    expect(held?.bytes?.equals(bytes)).toBe(true);

    // Slack processes the upload asynchronously: not yet shared, and not yet usable in an image block.
    const early = await app.client.files.info({ file: fileId });
    expect(early.file).toMatchObject({ id: fileId, channels: [], shares: {} });
    await expect(
      app.client.chat.postMessage({ channel: general.id, text: 'grid', blocks: [{ type: 'image', alt_text: 'grid', slack_file: { id: fileId } }] }),
    ).rejects.toMatchObject({ data: { error: 'invalid_blocks' } });

    const shared = await slack.waitForFile((file) => file.id === fileId && file.shared);
    const late = await app.client.files.info({ file: fileId });
    expect(late.file).toMatchObject({ channels: [general.id], shares: { public: { [general.id]: [{ ts: shared.shareTs[general.id], thread_ts: parent.ts }] } } });
    const share = slack.message(general.id, shared.shareTs[general.id]);
    expect(share).toMatchObject({ origin: 'file_share', text: 'a cat · seed 42', threadTs: parent.ts, files: [fileId] });
    await app.client.chat.postMessage({ channel: general.id, text: 'grid', blocks: [{ type: 'image', alt_text: 'grid', slack_file: { id: fileId } }] });
  });

  it('posts buttons with chat.postMessage; a click reaches app.action with the value, and respond() replaces the message', async () => {
    const posted = await app.client.chat.postMessage({ channel: general.id, text: 'a cat', blocks: buttonsBlocks('job-7') });
    const ts = String(posted.ts);
    const message = slack.message(general.id, ts);
    expect(message?.buttons.map((button) => [button.actionId, button.value])).toEqual([
      ['rr:job-7', 'job-7'],
      ['u1:job-7', 'job-7:0'],
    ]);

    onButton = async ({ ack, respond }) => {
      await ack();
      await respond({ replace_original: true, text: 'Re-rolling…' });
    };
    const click = slack.clickButton({ actionId: 'rr:job-7', messageTs: ts, channelId: general.id, userId: alice.id });
    expect((await click.waitForAck()).payload).toEqual({});
    expect(seenActions.at(-1)).toMatchObject({ action_id: 'rr:job-7', block_id: 'actions:job-7', value: 'job-7', type: 'button' });
    await click.waitForResponse();
    expect(slack.message(general.id, ts)).toMatchObject({ text: 'Re-rolling…', edits: 1, ephemeral: false });

    await app.client.chat.update({ channel: general.id, ts, text: 'a cat (done)', blocks: buttonsBlocks('job-8') });
    expect(slack.message(general.id, ts)).toMatchObject({ text: 'a cat (done)', edits: 2 });
    expect(() => slack.clickButton({ actionId: 'rr:job-7', messageTs: ts, channelId: general.id, userId: alice.id })).toThrow(/has no button "rr:job-7"/);
  });

  // @slack/socket-mode waits clientPingTimeout (5 s) before it reconnects, hence the longer wait.
  it('reconnects after a disconnect message, through a fresh apps.connections.open', async () => {
    const before = slack.socketConnections.length;
    const problemsBefore = logger.problems.length;
    slack.disconnectSocket('refresh_requested');
    const next = await slack.waitForSocket(before + 1, 10_000);
    expect(next.closedAt).toBeNull();
    const command = slack.sendSlashCommand({ command: '/imagine', text: 'after reconnect', userId: alice.id, channelId: general.id });
    onCommand = async ({ ack }) => ack();
    await command.waitForAck();
    expect(slack.socketConnections[before - 1].closedAt).not.toBeNull();
    expect(logger.problems.slice(problemsBefore).filter((problem) => problem.startsWith('error'))).toEqual([]);
  });
});

describe('fake Slack with a real Bolt App over HTTP (signed requests)', () => {
  let slack: FakeSlack;
  let app: App;
  let server: Server;
  let eventsUrl: string;
  const logger = recordingLogger();
  const seenValues: string[] = [];

  beforeAll(async () => {
    slack = await startFakeSlack({ users: [alice], channels: [general], responseUrlLifetimeMs: 200 });
    app = new App({ token: slack.botToken, signingSecret: slack.signingSecret, logger, clientOptions: { slackApiUrl: slack.apiUrl } });
    app.command('/imagine', async ({ ack }) => ack({ response_type: 'ephemeral', text: 'Queued #1' }));
    app.action<BlockAction<ButtonAction>>(/^rr:/, async ({ ack, action }) => {
      await ack();
      seenValues.push(action.value ?? '');
    });
    server = (await app.start({ port: 0, host: '127.0.0.1' })) as Server;
    eventsUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/slack/events`;
  });

  afterAll(async () => {
    if (server?.listening) await app.stop();
    await slack?.close();
  });

  it('handles a correctly signed slash command and block action (200, the ack as the body)', async () => {
    const command = await slack.signedPost(eventsUrl, 'command', { command: '/imagine', text: 'a cat', userId: alice.id, channelId: general.id });
    expect(command.status).toBe(200);
    expect(JSON.parse(command.body)).toEqual({ response_type: 'ephemeral', text: 'Queued #1' });
    expect(command.handle.ack).toMatchObject({ via: 'http', late: false, payload: { text: 'Queued #1' } });

    const posted = await app.client.chat.postMessage({ channel: general.id, text: 'a cat', blocks: buttonsBlocks('job-9') });
    const click = await slack.signedPost(eventsUrl, 'action', { actionId: 'rr:job-9', messageTs: String(posted.ts), channelId: general.id, userId: alice.id });
    expect({ status: click.status, body: click.body }).toEqual({ status: 200, body: '' });
    expect(seenValues).toEqual(['job-9']);
  });

  it('answers 404 expired_url on a response_url past its lifetime', async () => {
    const command = await slack.signedPost(eventsUrl, 'command', { command: '/imagine', text: 'a cat', userId: alice.id, channelId: general.id });
    await new Promise((resolve) => setTimeout(resolve, 250));
    const late = await fetch(command.handle.responseUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: 'done' }) });
    expect({ status: late.status, body: await late.json() }).toEqual({ status: 404, body: { ok: false, error: 'expired_url' } });
  });

  it('refuses a bad signature, a stale timestamp and missing headers with 401 and no body', async () => {
    const fields = { command: '/imagine', text: 'a cat', userId: alice.id, channelId: general.id };
    const bad = await slack.signedPost(eventsUrl, 'command', fields, { signature: 'bad' });
    const stale = await slack.signedPost(eventsUrl, 'command', fields, { timestamp: Math.floor(Date.now() / 1000) - 5 * 60 - 1 });
    const missing = await slack.signedPost(eventsUrl, 'command', fields, { signature: 'missing' });
    for (const answer of [bad, stale, missing]) {
      expect({ status: answer.status, body: answer.body }).toEqual({ status: 401, body: '' });
      expect(answer.handle.ack).toBeNull();
    }
    expect(logger.problems.filter((problem) => problem.includes('Failed to verify authenticity'))).toHaveLength(3);
  });

  it('closes its port on stop()', async () => {
    await app.stop();
    expect(server.listening).toBe(false);
    await expect(fetch(eventsUrl, { method: 'POST', body: '' })).rejects.toThrow();
  });
});

describe('fake Slack faults and DMs, with raw calls', () => {
  it('answers 5xx or resets for a time window, then opens a DM the bot can post in', async () => {
    const slack = await startFakeSlack({ users: [alice], channels: [general] });
    try {
      const post = (method: string, args: Record<string, string>) =>
        fetch(`${slack.apiUrl}${method}`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Bearer ${slack.botToken}` },
          body: new URLSearchParams(args).toString(),
        });
      slack.failFor(/^chat\./, { status: 503 }, 300);
      const down = await post('chat.postMessage', { channel: general.id, text: 'hello' });
      expect([down.status, await down.json()]).toEqual([503, { ok: false, error: 'internal_error' }]);
      await new Promise((resolve) => setTimeout(resolve, 350));
      expect((await rawCall(slack, 'chat.postMessage', slack.botToken, { channel: general.id, text: 'hello' })).ok).toBe(true);
      slack.failFor('chat.postMessage', { reset: true }, 60_000);
      await expect(post('chat.postMessage', { channel: general.id, text: 'hello' })).rejects.toThrow(/fetch failed/);
      slack.clearFailures();

      const opened = await rawCall(slack, 'conversations.open', slack.botToken, { users: alice.id });
      expect(opened).toEqual({ ok: true, channel: { id: slack.dmChannelId(alice.id), is_im: true, user: alice.id } });
      expect((await rawCall(slack, 'chat.postMessage', slack.botToken, { channel: slack.dmChannelId(alice.id), text: 'just for you' })).ok).toBe(true);
      expect(slack.messages(slack.dmChannelId(alice.id)).map((message) => message.text)).toEqual(['just for you']);
      expect(await rawCall(slack, 'conversations.open', slack.botToken, { users: 'U0NOBODY001' })).toEqual({ ok: false, error: 'user_not_found' });
    } finally {
      await slack.close();
    }
  });
});
