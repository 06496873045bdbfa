// The fake REST API v10: the routes discord.js uses, with JSON and multipart bodies, Discord's error answers and rate-limit headers.

import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { DiscordApiError } from './errors.js';
import { interactionMetadataJson, type InteractionRecord } from './interactions.js';
import type { MessageWrite, StoredMessage, UploadedFile } from './messages.js';
import { multipartBoundary, parseMultipart } from './multipart.js';
import {
  applicationJson,
  CALLBACK_TYPE,
  guildJson,
  isJsonObject,
  MESSAGE_FLAG,
  MESSAGE_TYPE,
  userJson,
  type Json,
  type JsonObject,
} from './objects.js';
import type { World } from './world.js';

/** One request as the fake received it; `path` is relative to `/api/v10` (`/channels/1/messages`). */
export interface FakeRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  /** The Authorization header, or null. */
  auth: string | null;
  /** The JSON body, or multipart `payload_json`; null when there was none. */
  body: Json | null;
  files: UploadedFile[];
  /** The status answered; 0 while the request is still being handled, -1 when the connection was reset on purpose. */
  status: number;
  /** `Date.now()` on arrival. */
  at: number;
}

/** Which requests an injected failure hits: a method (any if omitted) and a path relative to `/api/v10`. */
export interface FailureMatch {
  method?: string;
  path: string | RegExp;
}

/** An error answer to inject. 429 sends `Retry-After` (discord.js waits and retries by itself); 5xx are retried too. */
export interface InjectedFailure {
  status: number;
  code?: number;
  message?: string;
  retryAfterSeconds?: number;
  global?: boolean;
  /** How many matching requests fail; default 1. Ignored by `failFor`, which fails every one for a while. */
  times?: number;
  /** Close the connection without an answer (a reset socket), instead of answering `status`. */
  reset?: boolean;
}

interface Reply {
  status: number;
  json?: Json;
  bytes?: { data: Buffer; contentType: string };
}

interface Context {
  params: Record<string, string>;
  query: URLSearchParams;
  body: Json | null;
  files: UploadedFile[];
}

interface Route {
  method: string;
  pattern: RegExp;
  keys: string[];
  botAuth: boolean;
  handle: (context: Context) => Reply;
}

const API_PREFIX = '/api/v10';
/** Discord's cap on a whole request (Message › Create Message: 25 MiB). */
const REQUEST_BYTES_MAX = 25 * 1024 * 1024;
const SESSION_START_LIMIT = { total: 1000, remaining: 999, reset_after: 14_400_000, max_concurrency: 1 };
const NO_CONTENT: Reply = { status: 204 };

export class FakeRest {
  readonly requests: FakeRequest[] = [];
  private readonly world: World;
  private readonly gatewayUrl: string;
  private readonly routes: Route[];
  /** Injected failures: `left` answers to give, or every answer until `until` (ms since the epoch). */
  private readonly failures: { match: FailureMatch; failure: InjectedFailure; left: number; until?: number }[] = [];

  constructor(world: World, gatewayUrl: string) {
    this.world = world;
    this.gatewayUrl = gatewayUrl;
    this.routes = this.buildRoutes();
  }

  /** Queues an error answer for the next `failure.times` requests that match. */
  failNext(match: FailureMatch, failure: InjectedFailure): void {
    this.failures.push({ match, failure, left: failure.times ?? 1 });
  }

  /** Fails every matching request for the next `durationMs` (an outage of those routes). */
  failFor(match: FailureMatch, failure: InjectedFailure, durationMs: number): void {
    this.failures.push({ match, failure, left: Number.POSITIVE_INFINITY, until: Date.now() + durationMs });
  }

  /** Ends every injected failure now (an outage is over). */
  clearFailures(): void {
    this.failures.length = 0;
  }

  /** The `http.Server` request listener. */
  async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const method = (request.method ?? 'GET').toUpperCase();
    const record: FakeRequest = {
      method,
      path: decodePath(url.pathname.startsWith(API_PREFIX) ? url.pathname.slice(API_PREFIX.length) : url.pathname),
      query: Object.fromEntries(url.searchParams),
      auth: request.headers.authorization ?? null,
      body: null,
      files: [],
      status: 0,
      at: Date.now(),
    };
    this.requests.push(record);
    let reply: Reply;
    let headers: Record<string, string> = {};
    try {
      const raw = await readBody(request);
      Object.assign(record, decodeBody(raw, request.headers['content-type']));
      const injected = this.takeFailure(record);
      if (injected === 'reset') {
        record.status = -1;
        request.socket.destroy();
        this.world.feed.notify();
        return;
      }
      if (injected) ({ reply, headers } = injected);
      else reply = this.route(record, url);
    } catch (error) {
      if (error instanceof DiscordApiError) reply = { status: error.status, json: error.body };
      else {
        // Anything else is a bug in the fake: say so loudly, and answer 500 with the reason.
        console.error(`fake Discord: ${method} ${record.path} failed`, error);
        reply = { status: 500, json: { message: `fake Discord failed: ${String(error)}`, code: 0 } };
      }
    }
    record.status = reply.status;
    send(response, reply, { ...rateLimitHeaders(method, record.path), ...headers });
    this.world.feed.notify();
  }

  private route(record: FakeRequest, url: URL): Reply {
    if (record.method === 'GET' && url.pathname.startsWith('/attachments/')) return this.attachment(url.pathname);
    if (!url.pathname.startsWith(`${API_PREFIX}/`)) throw new DiscordApiError('notFound');
    const candidates = this.routes
      .map((route) => ({ route, match: route.pattern.exec(record.path) }))
      .filter((candidate) => candidate.match !== null);
    if (candidates.length === 0) throw new DiscordApiError('notFound');
    const found = candidates.find((candidate) => candidate.route.method === record.method);
    if (!found) throw new DiscordApiError('methodNotAllowed');
    const { route, match } = found;
    if (route.botAuth && record.auth !== `Bot ${this.world.config.token}`) throw new DiscordApiError('unauthorized');
    const params = Object.fromEntries(route.keys.map((key, index) => [key, match?.[index + 1] ?? '']));
    return route.handle({ params, query: url.searchParams, body: record.body, files: record.files });
  }

  private takeFailure(record: FakeRequest): { reply: Reply; headers: Record<string, string> } | 'reset' | undefined {
    const now = Date.now();
    for (let i = this.failures.length - 1; i >= 0; i--) if ((this.failures[i].until ?? Number.POSITIVE_INFINITY) <= now) this.failures.splice(i, 1);
    const entry = this.failures.find(({ match }) => {
      if (match.method !== undefined && match.method.toUpperCase() !== record.method) return false;
      return typeof match.path === 'string' ? match.path === record.path : match.path.test(record.path);
    });
    if (!entry) return undefined;
    entry.left -= 1;
    if (entry.left <= 0) this.failures.splice(this.failures.indexOf(entry), 1);
    if (entry.failure.reset) return 'reset';
    const { status, retryAfterSeconds, global = false } = entry.failure;
    if (status === 429) {
      const retryAfter = retryAfterSeconds ?? 0.1;
      return {
        reply: {
          status,
          json: {
            message: entry.failure.message ?? 'You are being rate limited.',
            retry_after: retryAfter,
            global,
            ...(entry.failure.code === undefined ? {} : { code: entry.failure.code }),
          },
        },
        headers: {
          'retry-after': String(retryAfter),
          'x-ratelimit-limit': '5',
          'x-ratelimit-remaining': '0',
          'x-ratelimit-reset-after': String(retryAfter),
          'x-ratelimit-scope': global ? 'global' : 'user',
          ...(global ? { 'x-ratelimit-global': 'true' } : {}),
        },
      };
    }
    return { reply: { status, json: { message: entry.failure.message ?? `${status}: injected by the test`, code: entry.failure.code ?? 0 } }, headers: {} };
  }

  private attachment(pathname: string): Reply {
    const attachmentId = pathname.split('/')[3];
    for (const message of this.world.messages.all()) {
      const attachment = message.attachments.find((candidate) => candidate.id === attachmentId);
      if (attachment) return { status: 200, bytes: { data: attachment.data, contentType: attachment.contentType ?? 'application/octet-stream' } };
    }
    throw new DiscordApiError('notFound');
  }

  private buildRoutes(): Route[] {
    const world = this.world;
    const { config, messages, commands } = world;
    const bot = (method: string, template: string, handle: Route['handle']): Route => route(method, template, true, handle);
    const open = (method: string, template: string, handle: Route['handle']): Route => route(method, template, false, handle);
    const commandScope = (params: Record<string, string>): string | null => {
      if (params.applicationId !== config.applicationId) throw new DiscordApiError('missingAccess');
      if (params.guildId === undefined) return null;
      if (!world.guild(params.guildId)) throw new DiscordApiError('missingAccess');
      return params.guildId;
    };

    return [
      bot('GET', '/gateway/bot', () => ({ status: 200, json: { url: this.gatewayUrl, shards: 1, session_start_limit: SESSION_START_LIMIT } })),
      open('GET', '/gateway', () => ({ status: 200, json: { url: this.gatewayUrl } })),
      bot('GET', '/users/@me', () => ({ status: 200, json: { ...userJson(config.bot, true), verified: true, mfa_enabled: false } })),
      bot('GET', '/users/:userId', ({ params }) => {
        const user = world.user(params.userId);
        if (!user) throw new DiscordApiError('unknownUser');
        return { status: 200, json: userJson(user, user.id === config.bot.id) };
      }),
      bot('POST', '/users/@me/channels', ({ body }) => {
        const recipientId = isJsonObject(body) ? body.recipient_id : undefined;
        const user = typeof recipientId === 'string' ? world.user(recipientId) : undefined;
        if (!user) throw new DiscordApiError('unknownUser');
        return { status: 200, json: world.channelJson(world.openDm(user)) ?? null };
      }),
      bot('GET', '/applications/@me', () => ({ status: 200, json: applicationJson(config.applicationId, config.bot, config.applicationFlags) })),
      bot('GET', '/oauth2/applications/@me', () => ({ status: 200, json: applicationJson(config.applicationId, config.bot, config.applicationFlags) })),

      bot('GET', '/guilds/:guildId', ({ params }) => {
        const guild = world.guild(params.guildId);
        if (!guild) throw new DiscordApiError('unknownGuild');
        return { status: 200, json: guildJson(guild, config.bot, world.joinedAt) };
      }),
      bot('GET', '/guilds/:guildId/channels', ({ params }) => {
        const guild = world.guild(params.guildId);
        if (!guild) throw new DiscordApiError('unknownGuild');
        return { status: 200, json: guild.channels.map((channel) => world.channelJson(channel.id) ?? null) };
      }),
      bot('GET', '/channels/:channelId', ({ params }) => ({ status: 200, json: this.channel(params.channelId) })),
      bot('POST', '/channels/:channelId/messages', ({ params, body, files }) => {
        this.channel(params.channelId);
        const message = messages.create(
          {
            channelId: params.channelId,
            guildId: world.channelGuildId(params.channelId) ?? null,
            type: MESSAGE_TYPE.default,
            origin: 'channel',
            interactionId: null,
            interactionMetadata: null,
          },
          messageWrite(body, files),
          { attachmentSizeLimit: config.attachmentSizeLimit, allowEphemeral: false },
        );
        return { status: 200, json: messages.json(message) };
      }),
      bot('GET', '/channels/:channelId/messages/:messageId', ({ params }) => ({ status: 200, json: messages.json(this.channelMessage(params)) })),
      bot('PATCH', '/channels/:channelId/messages/:messageId', ({ params, body, files }) => {
        const message = messages.edit(this.channelMessage(params), messageWrite(body, files), { attachmentSizeLimit: config.attachmentSizeLimit });
        return { status: 200, json: messages.json(message) };
      }),
      bot('DELETE', '/channels/:channelId/messages/:messageId', ({ params }) => {
        messages.delete(this.channelMessage(params));
        return NO_CONTENT;
      }),

      ...(['/applications/:applicationId/commands', '/applications/:applicationId/guilds/:guildId/commands'] as const).flatMap((base) => [
        bot('GET', base, ({ params }) => ({ status: 200, json: commands.list(commandScope(params)) })),
        bot('PUT', base, ({ params, body }) => ({ status: 200, json: commands.replaceAll(commandScope(params), body) })),
        bot('POST', base, ({ params, body }) => {
          const { command, created } = commands.upsert(commandScope(params), body);
          return { status: created ? 201 : 200, json: command };
        }),
        bot('GET', `${base}/:commandId`, ({ params }) => ({ status: 200, json: commands.get(commandScope(params), params.commandId) })),
        bot('PATCH', `${base}/:commandId`, ({ params, body }) => ({ status: 200, json: commands.edit(commandScope(params), params.commandId, body) })),
        bot('DELETE', `${base}/:commandId`, ({ params }) => {
          commands.delete(commandScope(params), params.commandId);
          return NO_CONTENT;
        }),
      ]),

      open('POST', '/interactions/:interactionId/:token/callback', (context) => this.callback(context)),
      open('POST', '/webhooks/:applicationId/:token', ({ params, query, body, files }) => {
        const record = this.tokenRecord(params);
        const message = messages.create(
          {
            channelId: record.channelId,
            guildId: record.guildId,
            type: MESSAGE_TYPE.default,
            origin: 'interaction',
            interactionId: record.id,
            interactionMetadata: interactionMetadataJson(record, record.originalId === null ? {} : { original_response_message_id: record.originalId }),
          },
          messageWrite(body, files),
          { attachmentSizeLimit: record.attachmentSizeLimit, allowEphemeral: true },
        );
        record.followupIds.push(message.id);
        record.followups.push(messages.snapshot(message));
        return query.get('wait') === 'true' ? { status: 200, json: messages.json(message) } : NO_CONTENT;
      }),
      open('GET', '/webhooks/:applicationId/:token/messages/:messageId', ({ params }) => ({ status: 200, json: messages.json(this.webhookMessage(params)) })),
      open('PATCH', '/webhooks/:applicationId/:token/messages/:messageId', ({ params, body, files }) => {
        const record = this.tokenRecord(params);
        const message = messages.edit(this.webhookMessage(params), messageWrite(body, files), { attachmentSizeLimit: record.attachmentSizeLimit });
        record.edits.push(messages.snapshot(message));
        return { status: 200, json: messages.json(message) };
      }),
      open('DELETE', '/webhooks/:applicationId/:token/messages/:messageId', ({ params }) => {
        messages.delete(this.webhookMessage(params));
        return NO_CONTENT;
      }),
    ];
  }

  private channel(channelId: string): JsonObject {
    const channel = this.world.channelJson(channelId);
    if (!channel) throw new DiscordApiError('unknownChannel');
    return channel;
  }

  /** A message reachable with the bot token: in that channel, not ephemeral. */
  private channelMessage(params: Record<string, string>): StoredMessage {
    this.channel(params.channelId);
    const message = this.world.messages.get(params.messageId);
    if (!message || message.channelId !== params.channelId || (message.flags & MESSAGE_FLAG.ephemeral) !== 0) {
      throw new DiscordApiError('unknownMessage');
    }
    return message;
  }

  /** The interaction behind a webhook token that still works (Interactions › Followup Messages: 15 minutes). */
  private tokenRecord(params: Record<string, string>): InteractionRecord {
    if (params.applicationId !== this.world.config.applicationId) throw new DiscordApiError('unknownWebhook');
    const record = this.world.interactionsByToken.get(params.token);
    if (!record || !this.world.tokenAlive(record)) throw new DiscordApiError('invalidWebhookToken');
    if (record.callback === null) throw new DiscordApiError('unknownWebhook');
    return record;
  }

  private webhookMessage(params: Record<string, string>): StoredMessage {
    const record = this.tokenRecord(params);
    const id = params.messageId === '@original' ? record.originalId : params.messageId;
    const message = id === null ? undefined : this.world.messages.get(id);
    if (!message || !record.owns(message)) throw new DiscordApiError('unknownMessage');
    return message;
  }

  /** `POST /interactions/:id/:token/callback` (Interactions › Receiving and Responding › Interaction Callback Type). */
  private callback({ params, query, body, files }: Context): Reply {
    const { world } = this;
    const { messages } = world;
    const record = world.interactions.get(params.interactionId);
    if (!record || record.token !== params.token) throw new DiscordApiError('unknownInteraction');
    if (record.callback !== null) throw new DiscordApiError('alreadyAcknowledged');
    const elapsedMs = Date.now() - record.dispatchedAt;
    if (record.expired || elapsedMs > world.config.ackDeadlineMs) throw new DiscordApiError('unknownInteraction');
    const type = isJsonObject(body) && typeof body.type === 'number' ? body.type : null;
    const invalidType = new DiscordApiError('invalidFormBody', [
      { path: 'type', code: 'INTERACTION_CALLBACK_TYPE_INVALID', message: `Callback type ${String(type)} is not valid for a ${record.kind} interaction.` },
    ]);
    if (type === null) throw invalidType;
    const data = isJsonObject(body) && isJsonObject(body.data) ? body.data : null;
    const component = record.kind === 'component';
    const limits = { attachmentSizeLimit: record.attachmentSizeLimit, allowEphemeral: true };
    const newMessage = {
      channelId: record.channelId,
      guildId: record.guildId,
      type: component ? MESSAGE_TYPE.default : MESSAGE_TYPE.chatInputCommand,
      origin: 'interaction' as const,
      interactionId: record.id,
      interactionMetadata: interactionMetadataJson(record),
    };
    let message: StoredMessage | undefined;
    if (type === CALLBACK_TYPE.channelMessageWithSource) {
      message = messages.create(newMessage, messageWrite(data, files), limits);
    } else if (type === CALLBACK_TYPE.deferredChannelMessageWithSource) {
      const ephemeral = typeof data?.flags === 'number' ? data.flags & MESSAGE_FLAG.ephemeral : 0;
      message = messages.create({ ...newMessage, flags: MESSAGE_FLAG.loading | ephemeral }, null, limits);
    } else if (component && type === CALLBACK_TYPE.deferredUpdateMessage) {
      message = messages.get(record.clickedMessageId ?? '');
    } else if (component && type === CALLBACK_TYPE.updateMessage) {
      const clicked = messages.get(record.clickedMessageId ?? '');
      if (!clicked) throw new DiscordApiError('unknownMessage');
      message = messages.edit(clicked, messageWrite(data, files), limits);
    } else {
      throw invalidType;
    }
    record.originalId = message?.id ?? null;
    const withResponse = query.get('with_response') === 'true';
    record.callback = { type, data, files, elapsedMs, withResponse };
    if (!withResponse) return NO_CONTENT;
    const carriesMessage = type !== CALLBACK_TYPE.deferredUpdateMessage && message !== undefined;
    return {
      status: 200,
      json: {
        interaction: {
          id: record.id,
          type: Number(record.payload.type),
          ...(carriesMessage && message
            ? {
                response_message_id: message.id,
                response_message_loading: (message.flags & MESSAGE_FLAG.loading) !== 0,
                response_message_ephemeral: (message.flags & MESSAGE_FLAG.ephemeral) !== 0,
              }
            : {}),
        },
        resource: {
          type,
          ...(message && (type === CALLBACK_TYPE.channelMessageWithSource || type === CALLBACK_TYPE.updateMessage) ? { message: messages.json(message) } : {}),
        },
      },
    };
  }
}

function route(method: string, template: string, botAuth: boolean, handle: Route['handle']): Route {
  const keys: string[] = [];
  const source = template.replace(/:(\w+)/g, (_, key: string) => {
    keys.push(key);
    return '([^/]+)';
  });
  return { method, pattern: new RegExp(`^${source}$`), keys, botAuth, handle };
}

/** Decodes each segment (discord.js sends `@original` as `%40original`); a malformed escape stays as it came. */
function decodePath(path: string): string {
  return path
    .split('/')
    .map((segment) => {
      try {
        return decodeURIComponent(segment);
      } catch {
        return segment;
      }
    })
    .join('/');
}

function messageWrite(body: Json | null, files: UploadedFile[]): MessageWrite {
  return { body: isJsonObject(body) ? body : {}, files };
}

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buffer.length;
    if (size > REQUEST_BYTES_MAX) throw new DiscordApiError('requestTooLarge');
    chunks.push(buffer);
  }
  return Buffer.concat(chunks);
}

/** JSON, or multipart with `payload_json` and `files[n]` (Reference › Uploading Files). */
function decodeBody(raw: Buffer, contentType: string | undefined): Pick<FakeRequest, 'body' | 'files'> {
  if (raw.length === 0) return { body: null, files: [] };
  const boundary = multipartBoundary(contentType);
  if (boundary === null) return { body: parseJson(raw.toString('utf8')), files: [] };
  let body: JsonObject = {};
  const files: UploadedFile[] = [];
  let parts: ReturnType<typeof parseMultipart>;
  try {
    parts = parseMultipart(raw, boundary);
  } catch (error) {
    throw new DiscordApiError('invalidFormBody', [{ path: '_root', code: 'MULTIPART_INVALID', message: String(error) }]);
  }
  for (const part of parts) {
    if (part.name === 'payload_json') {
      const payload = parseJson(part.data.toString('utf8'));
      body = { ...body, ...(isJsonObject(payload) ? payload : {}) };
    } else if (part.filename !== null) {
      files.push({ field: part.name, name: part.filename, contentType: part.contentType, data: Buffer.from(part.data) });
    } else {
      body[part.name] = part.data.toString('utf8');
    }
  }
  return { body, files };
}

function parseJson(text: string): Json {
  try {
    return JSON.parse(text) as Json;
  } catch {
    throw new DiscordApiError('invalidJson');
  }
}

/**
 * Headers with room to spare (Topics › Rate Limits), so discord.js never waits; a bucket per route shape, as the
 * real ones are.
 */
function rateLimitHeaders(method: string, path: string): Record<string, string> {
  const shape = path.replace(/\d{15,}/g, ':id');
  return {
    'x-ratelimit-limit': '5',
    'x-ratelimit-remaining': '4',
    'x-ratelimit-reset': (Date.now() / 1000 + 1).toFixed(3),
    'x-ratelimit-reset-after': '1.000',
    'x-ratelimit-bucket': createHash('sha1').update(`${method} ${shape}`).digest('hex').slice(0, 32),
  };
}

function send(response: ServerResponse, reply: Reply, headers: Record<string, string>): void {
  if (reply.bytes) {
    response.writeHead(reply.status, { ...headers, 'content-type': reply.bytes.contentType, 'content-length': reply.bytes.data.length });
    response.end(reply.bytes.data);
  } else if (reply.json === undefined || reply.status === 204) {
    response.writeHead(reply.status, headers);
    response.end();
  } else {
    const text = JSON.stringify(reply.json);
    response.writeHead(reply.status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    response.end(text);
  }
}
