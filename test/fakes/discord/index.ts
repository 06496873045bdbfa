// A local fake of Discord, REST API v10 and gateway on one 127.0.0.1 port, that the real discord.js Client logs into.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { FakeGateway, type IdentifyRecord } from './gateway.js';
import type { ButtonClick, CommandInvocation, FakeInteraction } from './interactions.js';
import type { FakeMessage } from './messages.js';
import {
  createSnowflakes,
  DEFAULT_ATTACHMENT_SIZE_LIMIT,
  guildJson,
  userJson,
  type FakeGuildSpec,
  type FakeUser,
  type Json,
  type JsonObject,
} from './objects.js';
import { FakeRest, type FailureMatch, type FakeRequest, type InjectedFailure } from './rest.js';
import { World } from './world.js';

export type { IdentifyRecord } from './gateway.js';
export type { ButtonClick, CommandInvocation, CommandOption, FakeInteraction, InteractionCallback } from './interactions.js';
export type { FakeAttachment, FakeButton, FakeMessage, MessageOrigin, UploadedFile } from './messages.js';
export type { FakeChannelSpec, FakeGuildSpec, FakeUser, Json, JsonObject } from './objects.js';
export { CALLBACK_TYPE, DEFAULT_ATTACHMENT_SIZE_LIMIT, DEFAULT_BOT_PERMISSIONS, MESSAGE_FLAG } from './objects.js';
export type { FailureMatch, FakeRequest, InjectedFailure } from './rest.js';

export interface FakeDiscordOptions {
  /** Default: a fresh snowflake. */
  applicationId?: string;
  /** Default: `applicationId`, as for every bot created since 2020. */
  botUserId?: string;
  /** Default 'Imagine'. */
  botUsername?: string;
  /** The bot token the fake accepts; default: a random one. */
  token?: string;
  guilds?: FakeGuildSpec[];
  /** Per-file bytes for channel messages and the interactions' default `attachment_size_limit`; default 10 MiB. */
  attachmentSizeLimit?: number;
  /** Milliseconds a bot has to answer an interaction; later callbacks get 404 10062. Default 3000, as Discord. */
  ackDeadlineMs?: number;
  /** Milliseconds an interaction token works for webhooks; later calls get 401 50027. Default 15 min, as Discord. */
  tokenLifetimeMs?: number;
  /** HELLO's `heartbeat_interval`; default 41250 ms, as Discord. */
  heartbeatIntervalMs?: number;
  /** The application's `flags` in READY and `/applications/@me`; default 0. */
  applicationFlags?: number;
}

const DEFAULT_WAIT_MS = 5_000;

/**
 * Starts a fake Discord on 127.0.0.1 (port 0). Point the bot at it with
 * `new Client({ intents: [GatewayIntentBits.Guilds], rest: { api: discord.baseUrl } })` and `client.login(discord.token)`:
 * discord.js then calls `GET /gateway/bot`, connects to the `ws://…/gateway` it returns (plain JSON; zlib-stream
 * too, should `zlib-sync` ever be installed), and gets READY and one GUILD_CREATE per guild. The caller calls `close()`.
 */
export async function startFakeDiscord(options: FakeDiscordOptions = {}): Promise<FakeDiscord> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return new FakeDiscord(server, port, options);
}

export class FakeDiscord {
  /** `http://127.0.0.1:PORT/api`: discord.js's `rest.api`, and what DISCORD_API_URL is set to. */
  readonly baseUrl: string;
  /** `ws://127.0.0.1:PORT/gateway`, as `GET /gateway/bot` answers. */
  readonly gatewayUrl: string;
  readonly token: string;
  readonly applicationId: string;
  readonly botUser: FakeUser;
  private readonly server: Server;
  private readonly world: World;
  private readonly rest: FakeRest;
  private readonly gateway: FakeGateway;
  private closing: Promise<void> | null = null;

  constructor(server: Server, port: number, options: FakeDiscordOptions) {
    const nextId = createSnowflakes();
    const origin = `http://127.0.0.1:${port}`;
    this.server = server;
    this.baseUrl = `${origin}/api`;
    this.gatewayUrl = `ws://127.0.0.1:${port}/gateway`;
    this.applicationId = options.applicationId ?? nextId();
    this.botUser = { id: options.botUserId ?? this.applicationId, username: options.botUsername ?? 'Imagine' };
    this.token = options.token ?? `${Buffer.from(this.botUser.id).toString('base64url')}.fake.${randomBytes(20).toString('base64url')}`;
    const guilds = options.guilds ?? [];
    const applicationFlags = options.applicationFlags ?? 0;
    this.world = new World({
      applicationId: this.applicationId,
      applicationFlags,
      bot: this.botUser,
      token: this.token,
      guilds,
      attachmentSizeLimit: options.attachmentSizeLimit ?? DEFAULT_ATTACHMENT_SIZE_LIMIT,
      ackDeadlineMs: options.ackDeadlineMs ?? 3_000,
      tokenLifetimeMs: options.tokenLifetimeMs ?? 15 * 60_000,
      fileOrigin: origin,
      nextId,
    });
    this.rest = new FakeRest(this.world, this.gatewayUrl);
    this.gateway = new FakeGateway(server, this.gatewayUrl, {
      token: this.token,
      heartbeatIntervalMs: options.heartbeatIntervalMs ?? 41_250,
      feed: this.world.feed,
      newSessionId: () => randomBytes(16).toString('hex'),
      ready: (sessionId, resumeGatewayUrl) => ({
        v: 10,
        user: { ...userJson(this.botUser, true), verified: true, mfa_enabled: false, email: null },
        guilds: guilds.map((guild) => ({ id: guild.id, unavailable: true })),
        session_id: sessionId,
        session_type: 'normal',
        resume_gateway_url: resumeGatewayUrl,
        shard: [0, 1],
        application: { id: this.applicationId, flags: applicationFlags },
        private_channels: [],
        presences: [],
        relationships: [],
        guild_join_requests: [],
        user_settings: {},
        geo_ordered_rtc_regions: ['local'],
        auth: {},
        _trace: ['["fake-discord",{}]'],
      }),
      guildCreates: () => guilds.map((guild) => guildJson(guild, this.botUser, this.world.joinedAt)),
    });
    server.on('request', (request, response) => void this.rest.handle(request, response));
  }

  /** Every REST request so far, in arrival order (live: it grows). */
  get requests(): readonly FakeRequest[] {
    return this.rest.requests;
  }

  /** Every IDENTIFY so far, in order. */
  get identifies(): readonly IdentifyRecord[] {
    return this.gateway.identifies;
  }

  /** How many RESUMEs succeeded. */
  get resumes(): number {
    return this.gateway.resumes;
  }

  /** Whether an identified client is connected right now. */
  get connected(): boolean {
    return this.gateway.connected;
  }

  /** Global application commands as registered (with ids, versions and defaults filled in). */
  get commands(): JsonObject[] {
    return structuredClone(this.world.commands.list(null));
  }

  guildCommands(guildId: string): JsonObject[] {
    return structuredClone(this.world.commands.list(guildId));
  }

  /**
   * Resolves once `count` IDENTIFYs have been answered with READY (and GUILD_CREATEs), with the last of them. The
   * client may not have read READY yet: await its ClientReady before `client.destroy()`, which in discord.js 14.28
   * never returns when called while a shard still waits for READY.
   */
  waitForIdentify(count = 1, timeoutMs = DEFAULT_WAIT_MS): Promise<IdentifyRecord> {
    return this.world.feed.waitFor(
      () => this.gateway.identifies[count - 1],
      timeoutMs,
      () => `IDENTIFY #${count}; ${this.gateway.identifies.length} so far`,
    );
  }

  /** Resolves once `count` RESUMEs have been answered with RESUMED. */
  waitForResume(count = 1, timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
    return this.world.feed.waitFor(
      () => (this.gateway.resumes >= count ? true : undefined),
      timeoutMs,
      () => `RESUME #${count}; ${this.gateway.resumes} so far, ${this.gateway.identifies.length} IDENTIFYs`,
    ).then(() => undefined);
  }

  /** Resolves with the first request (already received or still to come) that matches and has been answered. */
  waitForRequest(predicate: (request: FakeRequest) => boolean, timeoutMs = DEFAULT_WAIT_MS): Promise<FakeRequest> {
    return this.world.feed.waitFor(
      () => this.rest.requests.find((request) => request.status !== 0 && predicate(request)),
      timeoutMs,
      () => `a matching request; got ${JSON.stringify(this.rest.requests.map((request) => `${request.method} ${request.path} → ${request.status}`))}`,
    );
  }

  /**
   * Dispatches INTERACTION_CREATE for a slash command (type 2, data.type 1). `data.id` is the registered command's id
   * when one of that name exists (guild first, then global). Throws if no client has identified.
   */
  sendCommand(invocation: CommandInvocation): FakeInteraction {
    const record = this.world.createCommandInteraction(invocation);
    this.gateway.dispatch('INTERACTION_CREATE', record.payload);
    return record;
  }

  /** Dispatches INTERACTION_CREATE for a button click (type 3, component_type 2) on `click.messageId`. */
  clickButton(click: ButtonClick): FakeInteraction {
    const record = this.world.createButtonInteraction(click);
    this.gateway.dispatch('INTERACTION_CREATE', record.payload);
    return record;
  }

  /** Dispatches any other gateway event (op 0) as given, e.g. `dispatch('GUILD_DELETE', { id, unavailable: true })`. */
  dispatch(type: string, data: Json): void {
    this.gateway.dispatch(type, data);
  }

  /** Messages the bot posted with its own token (`POST /channels/:id/messages`) in a channel or DM, oldest first. */
  channelMessages(channelId: string): FakeMessage[] {
    return this.world.messages
      .all()
      .filter((message) => message.channelId === channelId && message.origin === 'channel' && !message.deleted)
      .map((message) => this.world.messages.snapshot(message));
  }

  /** Any message the fake holds, as it is now (deleted ones too, with `deleted: true`); null for an unknown id. */
  message(messageId: string): FakeMessage | null {
    const message = this.world.messages.all().find((candidate) => candidate.id === messageId);
    return message ? this.world.messages.snapshot(message) : null;
  }

  /** The DM channel id between the bot and a user the fake knows, opening it if needed. */
  dmChannelId(user: FakeUser): string {
    return this.world.openDm(user);
  }

  /** Ends an interaction token now: webhook calls get 401 50027 Invalid Webhook Token, a callback 404 10062. */
  expireToken(token: string): void {
    const record = this.world.interactionsByToken.get(token);
    if (!record) throw new Error(`fake Discord: no interaction has the token ${token.slice(0, 12)}…`);
    record.expired = true;
  }

  /** Makes the next matching request(s) fail, e.g. `failNext({ method: 'PATCH', path: /^\/webhooks\// }, { status: 429 })`. */
  failNext(match: FailureMatch, failure: InjectedFailure): void {
    this.rest.failNext(match, failure);
  }

  /**
   * Fails every matching request for `durationMs`: e.g. every route 5xx for 8 s with
   * `failFor({ path: /./ }, { status: 503 }, 8_000)`, or `{ reset: true }` to drop each connection unanswered.
   * discord.js retries 5xx and resets three times at once, then rejects.
   */
  failFor(match: FailureMatch, failure: InjectedFailure, durationMs: number): void {
    this.rest.failFor(match, failure, durationMs);
  }

  /** Ends every injected failure now. */
  clearFailures(): void {
    this.rest.clearFailures();
  }

  /**
   * Drops the gateway connection (close 4000); discord.js reconnects and RESUMEs, and gets what was dispatched
   * meanwhile. `resumable: false` refuses the RESUME (INVALID_SESSION), so it IDENTIFYs again, which discord.js
   * delays by up to 6.5 s when the previous IDENTIFY was under 5 s ago.
   */
  disconnectGateway(options: { resumable?: boolean } = {}): void {
    this.gateway.disconnect(options);
  }

  /**
   * Closes every socket and the port, and rejects whatever still waits; safe to call twice. Destroy the discord.js
   * client first: one still connected is disconnected with 4004 so that it stops, but one between reconnects keeps
   * retrying the closed port every 500 ms, even after `client.destroy()`.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.world.feed.close();
      await this.gateway.close();
      await new Promise<void>((resolve) => {
        this.server.close(() => resolve());
        this.server.closeAllConnections();
      });
    })();
    return this.closing;
  }
}
