// A local fake of Slack (Web API, upload URLs, response_urls and Socket Mode on one 127.0.0.1 port) that the real Bolt App talks to.
//
// const slack = await startFakeSlack({ users: [alice], channels: [general] });
// new App({ token: slack.botToken, appToken: slack.appToken, socketMode: true, clientOptions: { slackApiUrl: slack.apiUrl } })
// new App({ token: slack.botToken, signingSecret: slack.signingSecret, clientOptions: { slackApiUrl: slack.apiUrl } })
//   .start({ port: 0, host: '127.0.0.1' }) → the http.Server; POST signed requests to http://127.0.0.1:PORT/slack/events
//
// Web API `POST /api/<method>`: auth.test, apps.connections.open (app token), chat.postMessage, chat.postEphemeral,
// chat.update, chat.delete, conversations.open, conversations.info, users.info, files.getUploadURLExternal, files.completeUploadExternal,
// files.info. The upload URL takes raw bytes or a multipart form; a completed upload is shared after
// `fileShareDelayMs`. Slash commands and button clicks go out as Socket Mode envelopes (`sendSlashCommand`,
// `clickButton`) or as signed HTTP POSTs to the bot's Request URL (`signedPost`); each returns an InteractionHandle
// that records the ack and the POSTs to its response_url.

import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { multipartBoundary, parseMultipart } from '../discord/multipart.js';
import { ChangeFeed } from '../changes.js';
import { FileStore, type FakeSlackFile } from './files.js';
import {
  applyResponse,
  blockActionsPayload,
  commandPayload,
  findButton,
  InteractionHandle,
  newTriggerId,
  postAckMessage,
  type ButtonClick,
  type InteractionKind,
  type InteractionLimits,
  type SlashCommand,
  type Transport,
} from './interactions.js';
import { MessageStore, type FakeSlackMessage } from './messages.js';
import {
  createTsClock,
  isJsonObject,
  randomId,
  type FakeSlackChannelSpec,
  type FakeSlackUser,
  type Json,
  type JsonObject,
  type Workspace,
} from './objects.js';
import { postSigned, type HttpAnswer, type SigningOptions } from './signing.js';
import { FakeSocketMode, type DisconnectReason, type SocketConnectionRecord, type StrayFrame } from './socket.js';
import { dmChannelId, FakeWebApi, readBody, sendJson, type InjectedFailure, type WebApiCall } from './web-api.js';

export type { BlockProblem, FakeSlackButton } from './blocks.js';
export { BLOCK_LIMITS } from './blocks.js';
export type { FakeSlackFile, UploadEncoding } from './files.js';
export type { AckRecord, ButtonClick, InteractionHandle, InteractionKind, ResponseRecord, SlashCommand, Transport } from './interactions.js';
export type { FakeSlackMessage, MessageOrigin } from './messages.js';
export type { FakeSlackChannelSpec, FakeSlackUser, Json, JsonObject } from './objects.js';
export { postSigned, slackSignature, type HttpAnswer, type SignatureMode, type SigningOptions } from './signing.js';
export type { DisconnectReason, SocketConnectionRecord, StrayFrame } from './socket.js';
export type { CallFile, InjectedFailure, WebApiCall } from './web-api.js';

export interface FakeSlackOptions {
  /** Default: a fresh `T…` id. */
  teamId?: string;
  /** The workspace's subdomain; default 'fake-workspace'. */
  teamDomain?: string;
  teamName?: string;
  /** Default: fresh `A…`, `B…` and `U…` ids. */
  appId?: string;
  botId?: string;
  botUserId?: string;
  /** Default 'imagine'. */
  botName?: string;
  /** Must start with `xoxb-`; default a random one. */
  botToken?: string;
  /** Must start with `xapp-`; default a random one. */
  appToken?: string;
  /** Default: 32 random hex characters. */
  signingSecret?: string;
  users?: FakeSlackUser[];
  channels?: FakeSlackChannelSpec[];
  /** An ack later than this after sending is marked `late` (Slack: 3000 ms, after which it drops the ack's body). */
  ackDeadlineMs?: number;
  /** Accepted POSTs per response_url; later ones get 404 `used_url`. Default 5, as Slack. */
  responseUrlUses?: number;
  /** A response_url POST later than this gets 404 `expired_url`. Default 30 min, as Slack. */
  responseUrlLifetimeMs?: number;
  /** Milliseconds between `files.completeUploadExternal` and the file showing in its channels; default 250. */
  fileShareDelayMs?: number;
}

/** What `signedPost` sends: a slash command or a click on a button of a message the fake holds. */
export type SignedPostFields<K extends InteractionKind> = K extends 'command' ? SlashCommand : ButtonClick;

const DEFAULT_WAIT_MS = 5_000;

/**
 * Starts a fake Slack on 127.0.0.1 (port 0). Point Bolt at it with `clientOptions: { slackApiUrl: slack.apiUrl }`:
 * Bolt hands the same clientOptions to its SocketModeClient, so `apps.connections.open` comes here too. Stop the
 * App first (a Socket Mode client whose server goes away reconnects), then call `close()`.
 */
export async function startFakeSlack(options: FakeSlackOptions = {}): Promise<FakeSlack> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return new FakeSlack(server, port, options);
}

export class FakeSlack {
  /** `http://127.0.0.1:PORT`. */
  readonly origin: string;
  /** `http://127.0.0.1:PORT/api/`: Bolt's `clientOptions.slackApiUrl` and what SLACK_API_URL is set to. */
  readonly apiUrl: string;
  readonly teamId: string;
  readonly appId: string;
  readonly botId: string;
  readonly botUserId: string;
  readonly botToken: string;
  readonly appToken: string;
  readonly signingSecret: string;
  private readonly server: Server;
  private readonly workspace: Workspace;
  private readonly feed = new ChangeFeed('fake Slack');
  private readonly store: MessageStore;
  private readonly fileStore: FileStore;
  private readonly webApi: FakeWebApi;
  private readonly socketMode: FakeSocketMode;
  private readonly limits: InteractionLimits;
  private readonly nextTs = createTsClock();
  private readonly handlesByEnvelope = new Map<string, InteractionHandle>();
  private readonly handlesByResponseKey = new Map<string, InteractionHandle>();
  private readonly handleList: InteractionHandle[] = [];
  private closing: Promise<void> | null = null;

  constructor(server: Server, port: number, options: FakeSlackOptions) {
    this.server = server;
    this.origin = `http://127.0.0.1:${port}`;
    this.apiUrl = `${this.origin}/api/`;
    const teamId = options.teamId ?? randomId('T');
    const appId = options.appId ?? randomId('A');
    const workspace: Workspace = {
      teamId,
      teamDomain: options.teamDomain ?? 'fake-workspace',
      teamName: options.teamName ?? 'Fake Workspace',
      appId,
      botId: options.botId ?? randomId('B'),
      botUserId: options.botUserId ?? randomId('U'),
      botName: options.botName ?? 'imagine',
      botToken: options.botToken ?? `xoxb-${randomDigits(12)}-${randomDigits(13)}-${randomBytes(12).toString('base64url')}`,
      appToken: options.appToken ?? `xapp-1-${appId}-${randomDigits(13)}-${randomBytes(32).toString('hex')}`,
      verificationToken: randomBytes(12).toString('base64url'),
      users: options.users ?? [],
      channels: options.channels ?? [],
    };
    if (!workspace.botToken.startsWith('xoxb-')) throw new Error(`fake Slack: botToken must start with "xoxb-", got "${workspace.botToken.slice(0, 5)}…"`);
    if (!workspace.appToken.startsWith('xapp-')) throw new Error(`fake Slack: appToken must start with "xapp-", got "${workspace.appToken.slice(0, 5)}…"`);
    this.workspace = workspace;
    this.teamId = workspace.teamId;
    this.appId = workspace.appId;
    this.botId = workspace.botId;
    this.botUserId = workspace.botUserId;
    this.botToken = workspace.botToken;
    this.appToken = workspace.appToken;
    this.signingSecret = options.signingSecret ?? randomBytes(16).toString('hex');
    this.limits = {
      ackDeadlineMs: options.ackDeadlineMs ?? 3_000,
      responseUrlUses: options.responseUrlUses ?? 5,
      responseUrlLifetimeMs: options.responseUrlLifetimeMs ?? 30 * 60_000,
    };
    this.store = new MessageStore(workspace, this.nextTs);
    this.fileStore = new FileStore({ workspace, messages: this.store, feed: this.feed, origin: this.origin, shareDelayMs: options.fileShareDelayMs ?? 250 });
    this.socketMode = new FakeSocketMode(`ws://127.0.0.1:${port}`, {
      feed: this.feed,
      appId,
      onAck: (envelopeId, payload) => this.receiveSocketAck(envelopeId, payload),
    });
    this.webApi = new FakeWebApi({
      workspace,
      messages: this.store,
      files: this.fileStore,
      feed: this.feed,
      socketUrl: () => this.socketMode.issueUrl(),
      createdAt: Date.now(),
    });
    server.on('request', (request, response) => void this.route(request, response));
    server.on('upgrade', (request: IncomingMessage, socket, head: Buffer) => {
      if (!this.socketMode.handleUpgrade(request, socket, head)) socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    });
  }

  /** Every Web API call so far, in arrival order (live: it grows). */
  get calls(): readonly WebApiCall[] {
    return this.webApi.calls;
  }

  /** Resolves with the first answered call to `method` (already made or still to come) that matches. */
  waitForCall(method: string, predicate: (call: WebApiCall) => boolean = () => true, timeoutMs = DEFAULT_WAIT_MS): Promise<WebApiCall> {
    return this.feed.waitFor(
      () => this.webApi.calls.find((call) => call.method === method && call.status !== 0 && predicate(call)),
      timeoutMs,
      () => `a matching ${method} call; got ${JSON.stringify(this.webApi.calls.map((call) => `${call.method} → ${call.response?.ok === true ? 'ok' : String(call.response?.error)}`))}`,
    );
  }

  /** Every Socket Mode connection so far, open or closed, oldest first. */
  get socketConnections(): readonly SocketConnectionRecord[] {
    return this.socketMode.connections;
  }

  /** Whether a Socket Mode connection is open now. */
  get socketConnected(): boolean {
    return this.socketMode.openCount > 0;
  }

  /** Text frames from the bot that were not the first ack of an envelope the fake sent (second acks, junk). */
  get strayFrames(): readonly StrayFrame[] {
    return this.socketMode.strayFrames;
  }

  /** Resolves once the `count`-th Socket Mode connection has been made (and `hello` sent on it), with its record. */
  waitForSocket(count = 1, timeoutMs = DEFAULT_WAIT_MS): Promise<SocketConnectionRecord> {
    return this.feed.waitFor(
      () => this.socketMode.connections[count - 1],
      timeoutMs,
      () => `Socket Mode connection #${count}; ${this.socketMode.connections.length} so far, ${this.webApi.calls.filter((call) => call.method === 'apps.connections.open').length} apps.connections.open calls`,
    );
  }

  /** Sends a `slash_commands` envelope (with a response_url and trigger_id) on the newest Socket Mode connection. */
  sendSlashCommand(command: SlashCommand): InteractionHandle {
    const handle = this.commandHandle(command, 'socket');
    this.dispatch(handle, 'slash_commands', true);
    return handle;
  }

  /**
   * Sends an `interactive` envelope for a click on a button of a message the fake holds (`channelId`, `messageTs`);
   * the action carries the button's own block_id, text and value. Its response_url acts on that message.
   */
  clickButton(click: ButtonClick): InteractionHandle {
    const handle = this.actionHandle(click, 'socket');
    this.dispatch(handle, 'interactive', false);
    return handle;
  }

  /**
   * POSTs a slash command (`'command'`, form fields) or a click (`'action'`, `payload=<json>`) to a bot's HTTP Request
   * URL, e.g. `http://127.0.0.1:PORT/slack/events`, signed with this fake's signing secret, badly, or not at all. A 200
   * answer is recorded as the handle's ack (its body: '' → `{}`, JSON as is, other text → `{ text }`). The answer
   * carries the body and timestamp that were signed, so a test can send the very same request again.
   */
  async signedPost<K extends InteractionKind>(
    url: string,
    kind: K,
    fields: SignedPostFields<K>,
    signing: SigningOptions = {},
  ): Promise<HttpAnswer & { handle: InteractionHandle; rawBody: string; timestamp: number }> {
    const handle = kind === 'command' ? this.commandHandle(fields as SlashCommand, 'http') : this.actionHandle(fields as ButtonClick, 'http');
    const rawBody =
      kind === 'command'
        ? new URLSearchParams(handle.payload as Record<string, string>).toString()
        : new URLSearchParams({ payload: JSON.stringify(handle.payload) }).toString();
    const timestamp = signing.timestamp ?? Math.floor(Date.now() / 1000);
    const answer = await postSigned(url, rawBody, this.signingSecret, { ...signing, timestamp });
    if (answer.status === 200) this.acknowledge(handle, httpAckPayload(answer.body), 'http');
    return { ...answer, handle, rawBody, timestamp };
  }

  /** Every slash command and click sent so far, oldest first. */
  get interactions(): readonly InteractionHandle[] {
    return this.handleList;
  }

  /** The channel's messages, oldest first, ephemeral ones included and deleted ones left out. */
  messages(channelId: string): FakeSlackMessage[] {
    return this.store.inChannel(channelId);
  }

  /** One message as it is now (a deleted one too, with `deleted: true`); null for an unknown ts. */
  message(channelId: string, ts: string): FakeSlackMessage | null {
    return this.store.get(channelId, ts);
  }

  /** Resolves with the first message in the channel (already there or still to come) that matches. */
  waitForMessage(channelId: string, predicate: (message: FakeSlackMessage) => boolean, timeoutMs = DEFAULT_WAIT_MS): Promise<FakeSlackMessage> {
    return this.feed.waitFor(
      () => this.store.inChannel(channelId).find(predicate),
      timeoutMs,
      () => `a matching message in ${channelId}; got ${JSON.stringify(this.store.inChannel(channelId).map((message) => ({ ts: message.ts, origin: message.origin, text: message.text })))}`,
    );
  }

  /** Every file reserved with `files.getUploadURLExternal`, oldest first, with its bytes once uploaded. */
  get files(): FakeSlackFile[] {
    return this.fileStore.all();
  }

  file(fileId: string): FakeSlackFile | null {
    return this.fileStore.get(fileId);
  }

  /** Resolves with the first file that matches, e.g. `(file) => file.shared` to wait out the share delay. */
  waitForFile(predicate: (file: FakeSlackFile) => boolean, timeoutMs = DEFAULT_WAIT_MS): Promise<FakeSlackFile> {
    return this.feed.waitFor(
      () => this.fileStore.all().find(predicate),
      timeoutMs,
      () => `a matching file; got ${JSON.stringify(this.fileStore.all().map((file) => ({ id: file.id, filename: file.filename, completed: file.completed, shared: file.shared })))}`,
    );
  }

  /** Makes the next call(s) to `method` fail, e.g. `failNext('chat.update', { error: 'ratelimited', status: 429 })`. */
  failNext(method: string, failure: InjectedFailure): void {
    this.webApi.failNext(method, failure);
  }

  /**
   * Fails every call to a matching method for `durationMs`, e.g. `failFor(/./, { status: 503 }, 8_000)` for an outage
   * of the whole Web API, or `{ reset: true }` to drop each connection unanswered.
   */
  failFor(method: string | RegExp, failure: InjectedFailure, durationMs: number): void {
    this.webApi.failFor(method, failure, durationMs);
  }

  /** Ends every injected failure now. */
  clearFailures(): void {
    this.webApi.clearFailures();
  }

  /** The id of the bot's DM with `userId`, as `conversations.open` answers. */
  dmChannelId(userId: string): string {
    return dmChannelId(userId);
  }

  /** Sends Slack's `disconnect` message on every Socket Mode connection; the client reconnects via apps.connections.open. */
  disconnectSocket(reason: DisconnectReason = 'refresh_requested'): void {
    this.socketMode.disconnect(reason);
  }

  /** Closes every socket and the port, stops pending file shares, and rejects whatever still waits; safe to call twice. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.feed.close();
      this.fileStore.close();
      await this.socketMode.close();
      await new Promise<void>((resolve) => {
        this.server.close(() => resolve());
        this.server.closeAllConnections();
      });
    })();
    return this.closing;
  }

  private commandHandle(command: SlashCommand, transport: Transport): InteractionHandle {
    const user = this.user(command.userId);
    const channel = this.channel(command.channelId);
    const { key, url } = this.newResponseUrl('commands');
    const triggerId = newTriggerId();
    const payload = commandPayload(this.workspace, command, user, channel, url, triggerId);
    return this.register(key, new InteractionHandle({ kind: 'command', transport, payload, responseUrl: url, triggerId, target: null, feed: this.feed, limits: this.limits }));
  }

  private actionHandle(click: ButtonClick, transport: Transport): InteractionHandle {
    const user = this.user(click.userId);
    const channel = this.channel(click.channelId);
    const message = this.store.get(channel.id, click.messageTs);
    if (message === null || message.deleted) {
      const known = this.store.inChannel(channel.id).map((candidate) => candidate.ts);
      throw new Error(`fake Slack: no message ${click.messageTs} in ${channel.id} to click on; it holds ${JSON.stringify(known)}`);
    }
    const button = findButton(message, click);
    const { key, url } = this.newResponseUrl('actions');
    const triggerId = newTriggerId();
    const payload = blockActionsPayload(this.workspace, this.store, click, button, user, channel, message, url, triggerId, this.nextTs());
    const target = { channel: channel.id, ts: message.ts };
    return this.register(key, new InteractionHandle({ kind: 'action', transport, payload, responseUrl: url, triggerId, target, feed: this.feed, limits: this.limits }));
  }

  private register(responseKey: string, handle: InteractionHandle): InteractionHandle {
    this.handlesByResponseKey.set(responseKey, handle);
    this.handleList.push(handle);
    return handle;
  }

  private dispatch(handle: InteractionHandle, type: 'slash_commands' | 'interactive', acceptsResponsePayload: boolean): void {
    const envelopeId = this.socketMode.send(type, handle.payload, acceptsResponsePayload);
    handle.envelopeId = envelopeId;
    this.handlesByEnvelope.set(envelopeId, handle);
  }

  private receiveSocketAck(envelopeId: string, payload: JsonObject): boolean {
    const handle = this.handlesByEnvelope.get(envelopeId);
    if (!handle || handle.ack !== null) return false;
    this.acknowledge(handle, payload, 'socket');
    return true;
  }

  /** Records the ack; a command's ack body becomes a message, unless it came too late for Slack to show it. */
  private acknowledge(handle: InteractionHandle, payload: JsonObject, via: Transport): void {
    const ack = handle.recordAck(payload, via);
    if (!ack.late) postAckMessage(handle, payload, this.store);
    this.feed.notify();
  }

  private newResponseUrl(kind: 'commands' | 'actions'): { key: string; url: string } {
    const key = randomBytes(12).toString('hex');
    return { key, url: `${this.origin}/${kind}/${this.teamId}/${randomDigits(13)}/${key}` };
  }

  private user(userId: string): FakeSlackUser {
    const user = this.workspace.users.find((candidate) => candidate.id === userId);
    if (!user) throw new Error(`fake Slack: no user ${userId}; the workspace has ${JSON.stringify(this.workspace.users.map((candidate) => candidate.id))}`);
    return user;
  }

  private channel(channelId: string): FakeSlackChannelSpec {
    const channel = this.workspace.channels.find((candidate) => candidate.id === channelId);
    if (!channel) throw new Error(`fake Slack: no channel ${channelId}; the workspace has ${JSON.stringify(this.workspace.channels.map((candidate) => candidate.id))}`);
    return channel;
  }

  /** The `http.Server` request listener: Web API, upload URLs, file downloads and response_urls. */
  private async route(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', this.origin);
    const segments = url.pathname.split('/').filter(Boolean);
    try {
      if (segments[0] === 'api' && segments.length === 2) {
        await this.webApi.handle(request, response, segments[1], url.searchParams);
      } else if (segments[0] === 'upload' && segments.length === 3 && request.method === 'POST') {
        await this.receiveUpload(request, response, segments[2]);
      } else if (segments[0] === 'files-pri' && segments.length === 3 && request.method === 'GET') {
        this.serveFile(request, response, segments[1]);
      } else if ((segments[0] === 'commands' || segments[0] === 'actions') && segments.length === 4 && request.method === 'POST') {
        await this.receiveResponse(request, response, segments[3]);
      } else {
        sendText(response, 404, `fake Slack: nothing at ${request.method} ${url.pathname}`);
      }
    } catch (error) {
      console.error(`fake Slack: ${request.method} ${url.pathname} failed`, error);
      if (!response.headersSent) sendText(response, 500, `fake Slack failed: ${String(error)}`);
    }
  }

  /** The upload URL: raw bytes, or a multipart form whose file part (`@slack/web-api` names it `body`) holds them. */
  private async receiveUpload(request: IncomingMessage, response: ServerResponse, key: string): Promise<void> {
    const raw = await readBody(request);
    const boundary = multipartBoundary(request.headers['content-type']);
    let bytes = raw;
    if (boundary !== null) {
      const parts = parseMultipart(raw, boundary);
      const part = parts.find((candidate) => candidate.filename !== null) ?? parts[0];
      if (!part) return sendText(response, 400, 'fake Slack: the multipart upload has no parts');
      bytes = Buffer.from(part.data);
    }
    if (!this.fileStore.receiveBytes(key, bytes, boundary === null ? 'raw' : 'multipart')) {
      return sendText(response, 404, 'fake Slack: unknown or already completed upload URL');
    }
    sendText(response, 200, `OK - ${bytes.length}`);
  }

  private serveFile(request: IncomingMessage, response: ServerResponse, teamAndId: string): void {
    if (request.headers.authorization !== `Bearer ${this.botToken}`) return sendText(response, 403, 'fake Slack: url_private needs the bot token');
    const download = this.fileStore.download(teamAndId.slice(this.teamId.length + 1));
    if (download === null) return sendText(response, 404, 'fake Slack: no such file');
    response.writeHead(200, { 'content-type': download.mimetype, 'content-length': download.bytes.length });
    response.end(download.bytes);
  }

  private async receiveResponse(request: IncomingMessage, response: ServerResponse, key: string): Promise<void> {
    const raw = (await readBody(request)).toString('utf8');
    const handle = this.handlesByResponseKey.get(key);
    if (!handle) return sendJson(response, 404, { ok: false, error: 'no_service' });
    const answer = applyResponse(handle, raw, this.store, (fileId) => this.fileStore.isShared(fileId));
    sendJson(response, answer.status, answer.body);
  }
}

function httpAckPayload(body: string): JsonObject {
  if (body === '') return {};
  try {
    const parsed = JSON.parse(body) as Json;
    if (isJsonObject(parsed)) return parsed;
  } catch {
    // Not JSON: Bolt sent a string ack as is.
  }
  return { text: body };
}

function sendText(response: ServerResponse, status: number, text: string): void {
  response.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  response.end(text);
}

function randomDigits(count: number): string {
  let digits = '';
  for (const byte of randomBytes(count)) digits += String(byte % 10);
  return digits;
}
