// The fake Web API (`POST /api/<method>`): JSON, form and multipart bodies, tokens, Slack's `{ ok, error }` answers.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { multipartBoundary, parseMultipart } from '../discord/multipart.js';
import { checkBlocks, problemLine } from './blocks.js';
import type { ChangeFeed } from '../changes.js';
import type { Completion, FileStore } from './files.js';
import type { MessageStore } from './messages.js';
import {
  botUserJson,
  channelJson,
  channelMembers,
  isJsonObject,
  JSON_ARGUMENTS,
  userJson,
  type FakeSlackChannelSpec,
  type Json,
  type JsonObject,
  type TokenKind,
  type Workspace,
} from './objects.js';

/** A file part of a multipart Web API body (only the legacy `files.upload` sends one). */
export interface CallFile {
  field: string;
  filename: string | null;
  data: Buffer;
}

/** One Web API call as the fake received and answered it. */
export interface WebApiCall {
  /** E.g. 'chat.postMessage'. */
  method: string;
  /** From `Authorization: Bearer …`, else the `token` argument; null when there was none. */
  token: string | null;
  tokenKind: TokenKind | null;
  /**
   * The arguments: JSON as sent, or form and multipart fields as strings, except `blocks`, `attachments`, `files` and
   * `metadata`, which `@slack/web-api` sends as JSON text and the fake decodes.
   */
  args: JsonObject;
  files: CallFile[];
  contentType: string | null;
  /** What the fake answered; null while it is still handling the call. */
  response: JsonObject | null;
  /** The HTTP status answered (200, or an injected 429 or 5xx); 0 while handling, -1 for an injected reset. */
  status: number;
  at: number;
}

/**
 * An answer to force on the next matching call(s): `{ error: 'ratelimited', status: 429, retryAfterSeconds: 1 }`
 * (`@slack/web-api` waits and retries by itself) or any Slack error, e.g. `{ error: 'channel_not_found' }`.
 */
export interface InjectedFailure {
  /** The `error` of the `{ ok: false }` answer; default 'internal_error'. */
  error?: string;
  /**
   * 200 (default: Slack answers errors with 200 and `ok: false`), 429 with `Retry-After`, or a 5xx as an outage
   * answers (`@slack/web-api` retries those by its retry policy).
   */
  status?: number;
  retryAfterSeconds?: number;
  /** How many matching calls fail; default 1. Ignored by `failFor`, which fails every one for a while. */
  times?: number;
  /** Close the connection without an answer (a reset socket). */
  reset?: boolean;
}

export interface WebApiDeps {
  workspace: Workspace;
  messages: MessageStore;
  files: FileStore;
  feed: ChangeFeed;
  /** A fresh Socket Mode URL, for `apps.connections.open`. */
  socketUrl(): string;
  /** When the fake started, for `created` fields (seconds). */
  createdAt: number;
}

type Handler = (args: JsonObject) => JsonObject;
interface MethodSpec {
  token: TokenKind;
  handle: Handler;
}

/** An error answer on its way out: `{ ok: false, error, ...extra }` (Slack: HTTP 200). */
export class SlackApiError extends Error {
  readonly error: string;
  readonly extra: JsonObject;

  constructor(error: string, extra: JsonObject = {}) {
    super(`${error}${JSON.stringify(extra) === '{}' ? '' : ` ${JSON.stringify(extra)}`}`);
    this.error = error;
    this.extra = extra;
  }
}

/** Slack's cap on `text` (chat.postMessage › Truncating content). */
const TEXT_MAX = 40_000;
const TOKEN_PREFIX: Record<TokenKind, string> = { bot: 'xoxb-', app: 'xapp-' };

export class FakeWebApi {
  readonly calls: WebApiCall[] = [];
  private readonly deps: WebApiDeps;
  private readonly methods: Record<string, MethodSpec>;
  /** Injected failures: `left` answers to give, or every answer until `until` (ms since the epoch). */
  private readonly failures: { method: string | RegExp; failure: InjectedFailure; left: number; until?: number }[] = [];

  constructor(deps: WebApiDeps) {
    this.deps = deps;
    this.methods = this.buildMethods();
  }

  /** The Web API methods the fake implements. */
  get methodNames(): string[] {
    return Object.keys(this.methods);
  }

  failNext(method: string, failure: InjectedFailure): void {
    this.failures.push({ method, failure, left: failure.times ?? 1 });
  }

  clearFailures(): void {
    this.failures.length = 0;
  }

  /** Fails every call to a matching method for the next `durationMs`. */
  failFor(method: string | RegExp, failure: InjectedFailure, durationMs: number): void {
    this.failures.push({ method, failure, left: Number.POSITIVE_INFINITY, until: Date.now() + durationMs });
  }

  /** Answers `request` for `/api/<method>`. */
  async handle(request: IncomingMessage, response: ServerResponse, method: string, query: URLSearchParams): Promise<void> {
    const contentType = request.headers['content-type'] ?? null;
    const call: WebApiCall = { method, token: null, tokenKind: null, args: {}, files: [], contentType, response: null, status: 0, at: Date.now() };
    this.calls.push(call);
    let status = 200;
    let headers: Record<string, string> = {};
    let body: JsonObject;
    try {
      const decoded = decodeArguments(await readBody(request), contentType, query);
      call.args = decoded.args;
      call.files = decoded.files;
      call.token = bearerToken(request.headers.authorization) ?? (typeof call.args.token === 'string' ? call.args.token : null);
      call.tokenKind = this.tokenKind(call.token);
      const injected = this.takeFailure(method);
      if (injected?.reset) {
        call.status = -1;
        request.socket.destroy();
        this.deps.feed.notify();
        return;
      }
      if (injected) {
        status = injected.status ?? 200;
        if (status === 429) headers = { 'retry-after': String(injected.retryAfterSeconds ?? 1) };
        body = { ok: false, error: injected.error ?? (status === 429 ? 'ratelimited' : 'internal_error') };
      } else {
        body = this.call(method, call);
      }
    } catch (error) {
      if (error instanceof SlackApiError) body = { ok: false, error: error.error, ...error.extra };
      else {
        // Anything else is a bug in the fake: say so loudly, and still answer as Slack would (200, ok: false).
        console.error(`fake Slack: ${method} failed`, error);
        body = { ok: false, error: 'fatal_error', detail: String(error) };
      }
    }
    call.status = status;
    call.response = body;
    sendJson(response, status, body, headers);
    this.deps.feed.notify();
  }

  private call(method: string, call: WebApiCall): JsonObject {
    const spec = this.methods[method];
    if (!spec) throw new SlackApiError('unknown_method', { req_method: method });
    if (call.token === null) throw new SlackApiError('not_authed');
    if (call.tokenKind === null) throw new SlackApiError('invalid_auth');
    if (call.tokenKind !== spec.token) throw new SlackApiError('not_allowed_token_type');
    return { ok: true, ...spec.handle(call.args) };
  }

  private tokenKind(token: string | null): TokenKind | null {
    const { botToken, appToken } = this.deps.workspace;
    if (token === botToken && token.startsWith(TOKEN_PREFIX.bot)) return 'bot';
    if (token === appToken && token.startsWith(TOKEN_PREFIX.app)) return 'app';
    return null;
  }

  private takeFailure(method: string): InjectedFailure | undefined {
    const now = Date.now();
    for (let i = this.failures.length - 1; i >= 0; i--) if ((this.failures[i].until ?? Number.POSITIVE_INFINITY) <= now) this.failures.splice(i, 1);
    const entry = this.failures.find((candidate) => (typeof candidate.method === 'string' ? candidate.method === method : candidate.method.test(method)));
    if (!entry) return undefined;
    entry.left -= 1;
    if (entry.left <= 0) this.failures.splice(this.failures.indexOf(entry), 1);
    return entry.failure;
  }

  private buildMethods(): Record<string, MethodSpec> {
    const { workspace, messages, files } = this.deps;
    const bot = (handle: Handler): MethodSpec => ({ token: 'bot', handle });
    const isSlackFileReady = (id: string): boolean => files.isShared(id);

    /** Text and blocks of a message-writing call, checked as Slack checks them. */
    const content = (args: JsonObject, options: { requireContent: boolean }): { text: string; blocks: JsonObject[] | null } => {
      const text = optionalString(args, 'text') ?? '';
      if (text.length > TEXT_MAX) throw new SlackApiError('msg_too_long');
      const blocks = args.blocks;
      if (blocks === undefined || blocks === '') {
        if (options.requireContent && text === '' && args.attachments === undefined) throw new SlackApiError('no_text');
        return { text, blocks: null };
      }
      if (typeof blocks === 'string') throw new SlackApiError('invalid_blocks_format');
      const problems = checkBlocks(blocks, isSlackFileReady);
      if (problems.length > 0) {
        throw new SlackApiError('invalid_blocks', { errors: problems.map((problem) => `${problem.message} [json-pointer:${problem.pointer}]`), response_metadata: { messages: problems.map(problemLine) } });
      }
      const list = (blocks as Json[]).filter(isJsonObject);
      if (options.requireContent && text === '' && list.length === 0) throw new SlackApiError('no_text');
      return { text, blocks: list };
    };

    /** A channel the bot may write to, by id or by name (`#general` or `general`). */
    const writableChannel = (args: JsonObject, field = 'channel'): FakeSlackChannelSpec => {
      const channel = this.channel(requiredString(args, field));
      if (channel.botIsMember === false) throw new SlackApiError('not_in_channel');
      return channel;
    };

    const methods: Record<string, MethodSpec> = {
      'auth.test': bot(() => ({
        url: `https://${workspace.teamDomain}.slack.com/`,
        team: workspace.teamName,
        user: workspace.botName,
        team_id: workspace.teamId,
        user_id: workspace.botUserId,
        bot_id: workspace.botId,
        is_enterprise_install: false,
      })),
      'apps.connections.open': { token: 'app', handle: () => ({ url: this.deps.socketUrl() }) },
      'chat.postMessage': bot((args) => {
        const channel = writableChannel(args);
        const { text, blocks } = content(args, { requireContent: true });
        const message = messages.post({ channel: channel.id, threadTs: optionalString(args, 'thread_ts'), text, blocks: blocks ?? [], recipient: null, origin: 'chat.postMessage' });
        return { channel: channel.id, ts: message.ts, message: messages.json(message) };
      }),
      'chat.postEphemeral': bot((args) => {
        const channel = writableChannel(args);
        const userId = requiredString(args, 'user');
        if (!workspace.users.some((user) => user.id === userId)) throw new SlackApiError('user_not_found');
        if (!channelMembers(workspace, channel).includes(userId)) throw new SlackApiError('user_not_in_channel');
        const { text, blocks } = content(args, { requireContent: true });
        const message = messages.post({ channel: channel.id, threadTs: optionalString(args, 'thread_ts'), text, blocks: blocks ?? [], recipient: userId, origin: 'chat.postEphemeral' });
        return { message_ts: message.ts };
      }),
      'chat.update': bot((args) => {
        const channel = this.channel(requiredString(args, 'channel'));
        const ts = requiredString(args, 'ts');
        const existing = messages.get(channel.id, ts);
        if (existing === null || existing.deleted) throw new SlackApiError('message_not_found');
        if (existing.ephemeral) throw new SlackApiError('cant_update_message');
        const { text, blocks } = content(args, { requireContent: false });
        if (text === '' && blocks === null && existing.blocks.length === 0) throw new SlackApiError('no_text');
        const updated = messages.update(channel.id, ts, text, blocks);
        if (updated === null) throw new SlackApiError('message_not_found');
        return { channel: channel.id, ts, text: updated.text, message: messages.json(updated) };
      }),
      'chat.delete': bot((args) => {
        const channel = this.channel(requiredString(args, 'channel'));
        const ts = requiredString(args, 'ts');
        const existing = messages.get(channel.id, ts);
        if (existing === null || existing.deleted) throw new SlackApiError('message_not_found');
        if (existing.ephemeral) throw new SlackApiError('cant_delete_message');
        messages.delete(channel.id, ts);
        return { channel: channel.id, ts };
      }),
      'conversations.open': bot((args) => {
        const userId = requiredString(args, 'users');
        if (userId.includes(',')) throw new SlackApiError('not_implemented', { detail: 'the fake opens one-to-one DMs only' });
        if (userId === workspace.botUserId) throw new SlackApiError('cannot_dm_bot');
        const user = workspace.users.find((candidate) => candidate.id === userId);
        if (!user) throw new SlackApiError('user_not_found');
        const id = dmChannelId(userId);
        if (!workspace.channels.some((channel) => channel.id === id)) workspace.channels.push({ id, name: `dm-${user.name}`, isPrivate: true, members: [userId] });
        return { channel: { id, is_im: true, user: userId } };
      }),
      'conversations.info': bot((args) => {
        const channel = this.channel(requiredString(args, 'channel'));
        // A private channel the bot is not in is invisible to it.
        if (channel.isPrivate === true && channel.botIsMember === false) throw new SlackApiError('channel_not_found');
        return { channel: channelJson(workspace, channel, Math.floor(this.deps.createdAt / 1000)) };
      }),
      'users.info': bot((args) => {
        const userId = requiredString(args, 'user');
        if (userId === workspace.botUserId) return { user: botUserJson(workspace) };
        const user = workspace.users.find((candidate) => candidate.id === userId);
        if (!user) throw new SlackApiError('user_not_found');
        return { user: userJson(workspace, user) };
      }),
      'files.getUploadURLExternal': bot((args) => {
        const filename = requiredString(args, 'filename');
        const length = requiredString(args, 'length');
        // A pattern, not Number(): Number('') is 0 and Number('1e3') is 1000.
        if (!/^\d+$/.test(length) || Number(length) === 0) throw invalidArguments(`length: expected a positive integer, got ${JSON.stringify(length)}`);
        const altText = optionalString(args, 'alt_txt') ?? optionalString(args, 'alt_text');
        const { fileId, uploadUrl } = files.reserve(filename, Number(length), altText);
        return { upload_url: uploadUrl, file_id: fileId };
      }),
      'files.completeUploadExternal': bot((args) => {
        const completion = this.completion(args);
        for (const channelId of completion.channels) writableChannel({ channel: channelId });
        if (completion.blocks !== null) content({ blocks: completion.blocks }, { requireContent: false });
        const refusal = files.refusal(completion);
        if (refusal) throw new SlackApiError(refusal.error, { response_metadata: { messages: [`[ERROR] ${refusal.message}`] } });
        return { files: files.complete(completion).map((file) => files.json(file)) };
      }),
      'files.info': bot((args) => {
        const file = files.get(requiredString(args, 'file'));
        // An upload that was never completed is not a file yet.
        if (file === null || !file.completed) throw new SlackApiError('file_not_found');
        return { file: files.json(file), comments: [], response_metadata: { next_cursor: '' } };
      }),
    };
    return methods;
  }

  private channel(idOrName: string): FakeSlackChannelSpec {
    const name = idOrName.replace(/^#/, '');
    const channel = this.deps.workspace.channels.find((candidate) => candidate.id === idOrName || candidate.name === name);
    if (!channel) throw new SlackApiError('channel_not_found');
    return channel;
  }

  private completion(args: JsonObject): Completion {
    const list = args.files;
    if (!Array.isArray(list) || list.length === 0) throw invalidArguments('files: expected a JSON array of { id, title }');
    const files = list.map((entry, index) => {
      if (!isJsonObject(entry) || typeof entry.id !== 'string') throw invalidArguments(`files[${index}]: expected { id, title }`);
      return { id: entry.id, title: typeof entry.title === 'string' ? entry.title : null };
    });
    const channelId = optionalString(args, 'channel_id');
    const channelList = optionalString(args, 'channels');
    const channels = channelId !== null ? [channelId] : channelList !== null ? channelList.split(',').map((id) => id.trim()).filter(Boolean) : [];
    const threadTs = optionalString(args, 'thread_ts');
    if (threadTs !== null && channels.length === 0) throw invalidArguments('thread_ts: needs channel_id');
    const blocks = Array.isArray(args.blocks) ? args.blocks.filter(isJsonObject) : null;
    return { files, channels, threadTs, initialComment: optionalString(args, 'initial_comment'), blocks };
  }
}

/** The id of the bot's DM with a user, as `conversations.open` gives it (Slack's IM ids start with "D"). */
export function dmChannelId(userId: string): string {
  return `D${userId.slice(1)}`;
}

/** Reads a whole request body. */
export function readBody(request: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => resolve(Buffer.concat(chunks)));
    request.on('error', reject);
  });
}

export function sendJson(response: ServerResponse, status: number, body: JsonObject, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  response.end(text);
}

function decodeArguments(raw: Buffer, contentType: string | null, query: URLSearchParams): { args: JsonObject; files: CallFile[] } {
  const args: JsonObject = Object.fromEntries(query);
  const files: CallFile[] = [];
  const type = (contentType ?? '').toLowerCase();
  const boundary = multipartBoundary(contentType ?? undefined);
  if (boundary !== null) {
    for (const part of parseMultipart(raw, boundary)) {
      if (part.filename !== null) files.push({ field: part.name, filename: part.filename, data: part.data });
      else args[part.name] = part.data.toString('utf8');
    }
  } else if (type.startsWith('application/json')) {
    let parsed: Json;
    try {
      parsed = JSON.parse(raw.toString('utf8')) as Json;
    } catch {
      throw new SlackApiError('invalid_json');
    }
    if (!isJsonObject(parsed)) throw new SlackApiError('invalid_json');
    Object.assign(args, parsed);
  } else if (raw.length > 0) {
    Object.assign(args, Object.fromEntries(new URLSearchParams(raw.toString('utf8'))));
  }
  for (const name of JSON_ARGUMENTS) {
    const value = args[name];
    if (typeof value !== 'string' || !/^\s*[[{]/.test(value)) continue;
    try {
      args[name] = JSON.parse(value) as Json;
    } catch {
      // Left as text: the method answers invalid_blocks_format (or invalid_arguments) for it.
    }
  }
  return { args, files };
}

function bearerToken(header: string | undefined): string | null {
  const match = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  return match ? match[1] : null;
}

function optionalString(args: JsonObject, name: string): string | null {
  const value = args[name];
  if (value === undefined || value === null || value === '') return null;
  return typeof value === 'string' ? value : typeof value === 'number' || typeof value === 'boolean' ? String(value) : JSON.stringify(value);
}

function requiredString(args: JsonObject, name: string): string {
  const value = optionalString(args, name);
  if (value === null) throw invalidArguments(`missing required field: ${name}`);
  return value;
}

function invalidArguments(message: string): SlackApiError {
  return new SlackApiError('invalid_arguments', { response_metadata: { messages: [`[ERROR] ${message}`] } });
}
