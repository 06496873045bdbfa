// The fake gateway (Topics › Gateway): HELLO, IDENTIFY → READY and GUILD_CREATEs, heartbeats, RESUME with replay, JSON or zlib-stream.

import type { IncomingMessage, Server } from 'node:http';
import { constants, createDeflate, deflateSync, type Deflate } from 'node:zlib';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { ChangeFeed } from '../changes.js';
import { isJsonObject, type Json, type JsonObject } from './objects.js';

export const GATEWAY_OPCODE = {
  dispatch: 0,
  heartbeat: 1,
  identify: 2,
  presenceUpdate: 3,
  voiceStateUpdate: 4,
  resume: 6,
  reconnect: 7,
  requestGuildMembers: 8,
  invalidSession: 9,
  hello: 10,
  heartbeatAck: 11,
  requestSoundboardSounds: 31,
} as const;

/** Close codes the fake sends (Topics › Opcodes and Status Codes › Gateway Close Event Codes). */
export const GATEWAY_CLOSE = {
  unknownError: 4000,
  unknownOpcode: 4001,
  decodeError: 4002,
  notAuthenticated: 4003,
  authenticationFailed: 4004,
  alreadyAuthenticated: 4005,
  invalidApiVersion: 4012,
} as const;

const IGNORED_OPCODES: ReadonlySet<number> = new Set([
  GATEWAY_OPCODE.presenceUpdate,
  GATEWAY_OPCODE.voiceStateUpdate,
  GATEWAY_OPCODE.requestGuildMembers,
  GATEWAY_OPCODE.requestSoundboardSounds,
]);
const GUILDS_INTENT = 1 << 0;
/** Events kept per session for replay on RESUME. */
const REPLAY_LIMIT = 1_000;

/** One IDENTIFY as received, with the query string of the connection it came on. */
export interface IdentifyRecord {
  intents: number;
  shard: Json;
  compress: boolean;
  properties: Json;
  /** `v`, `encoding` and `compress` from the connection URL (null when absent). */
  query: { v: string | null; encoding: string | null; compress: string | null };
  sessionId: string;
  /** `Date.now()` when READY was sent. */
  at: number;
}

export interface GatewayDeps {
  token: string;
  heartbeatIntervalMs: number;
  feed: ChangeFeed;
  newSessionId(): string;
  /** READY's `d` for a new session. */
  ready(sessionId: string, resumeGatewayUrl: string): JsonObject;
  /** GUILD_CREATE payloads, sent after READY when the client identified with the GUILDS intent. */
  guildCreates(): JsonObject[];
}

interface DispatchPayload {
  op: 0;
  t: string;
  s: number;
  d: Json;
}

interface Session {
  id: string;
  seq: number;
  /** The last REPLAY_LIMIT dispatches, for RESUME. */
  events: DispatchPayload[];
  connection: Connection | null;
  /** False once the client closed with 1000/1001 or the fake dropped it for good: RESUME gets INVALID_SESSION. */
  resumable: boolean;
}

/** One WebSocket: plain JSON text frames, a zlib-stream (one deflate context, sync-flushed per payload), or
 * per-payload zlib after an IDENTIFY with `compress: true`. */
class Connection {
  readonly socket: WebSocket;
  readonly query: IdentifyRecord['query'];
  session: Session | null = null;
  identifyCompress = false;
  private readonly deflate: Deflate | null;
  private sending: Promise<void> = Promise.resolve();

  constructor(socket: WebSocket, query: IdentifyRecord['query']) {
    this.socket = socket;
    this.query = query;
    this.deflate = query.compress === 'zlib-stream' ? createDeflate() : null;
  }

  send(payload: JsonObject | DispatchPayload): void {
    const text = JSON.stringify(payload);
    const deflate = this.deflate;
    if (deflate === null) {
      if (this.socket.readyState === this.socket.OPEN) this.socket.send(this.identifyCompress ? deflateSync(text) : text);
      return;
    }
    this.sending = this.sending.then(
      () =>
        new Promise<void>((resolve) => {
          const chunks: Buffer[] = [];
          const collect = (chunk: Buffer): void => {
            chunks.push(chunk);
          };
          deflate.on('data', collect);
          deflate.write(text);
          deflate.flush(constants.Z_SYNC_FLUSH, () => {
            deflate.off('data', collect);
            if (this.socket.readyState === this.socket.OPEN) this.socket.send(Buffer.concat(chunks));
            resolve();
          });
        }),
    );
  }

  close(): void {
    this.deflate?.close();
  }
}

export class FakeGateway {
  readonly url: string;
  readonly identifies: IdentifyRecord[] = [];
  resumes = 0;
  private readonly server: WebSocketServer;
  private readonly deps: GatewayDeps;
  private readonly connections = new Set<Connection>();
  private readonly sessions: Session[] = [];

  constructor(httpServer: Server, url: string, deps: GatewayDeps) {
    this.url = url;
    this.deps = deps;
    this.server = new WebSocketServer({ server: httpServer, path: '/gateway' });
    this.server.on('connection', (socket, request) => this.accept(socket, request));
  }

  /** Whether some session is connected, or can still resume and will get what is dispatched now on replay. */
  get hasSession(): boolean {
    return this.sessions.some((session) => session.resumable || session.connection !== null);
  }

  get connected(): boolean {
    return [...this.connections].some((connection) => connection.session !== null);
  }

  /** Sends a dispatch (op 0) to every live session; a session between connections gets it on RESUME. */
  dispatch(type: string, data: Json): void {
    if (!this.hasSession) throw new Error(`fake Discord: cannot dispatch ${type}: no client has identified (await waitForIdentify() first)`);
    for (const session of this.sessions) {
      if (session.resumable || session.connection !== null) this.dispatchTo(session, type, data);
    }
  }

  /**
   * Drops every connection with close code 4000, which discord.js answers by resuming. With `resumable: false` the
   * sessions are invalidated first, so the RESUME gets INVALID_SESSION and the client identifies again.
   */
  disconnect(options: { resumable?: boolean } = {}): void {
    for (const connection of this.connections) {
      if (options.resumable === false && connection.session) connection.session.resumable = false;
      connection.socket.close(GATEWAY_CLOSE.unknownError, 'fake Discord: disconnected by the test');
    }
  }

  /**
   * Ends every connection with 4004, a code discord.js does not reconnect after: a client still connected when the
   * fake closes would otherwise retry every 500 ms for ever, even after `client.destroy()`, and keep its process alive.
   */
  async close(): Promise<void> {
    await Promise.all(
      [...this.connections].map(async (connection) => {
        const closed = new Promise<void>((resolve) => connection.socket.once('close', () => resolve()));
        connection.socket.close(GATEWAY_CLOSE.authenticationFailed, 'fake Discord closed; destroy the client first');
        const timer = setTimeout(() => connection.socket.terminate(), 1_000);
        await closed;
        clearTimeout(timer);
        connection.close();
      }),
    );
    this.connections.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: WebSocket, request: IncomingMessage): void {
    const params = new URL(request.url ?? '/', 'http://localhost').searchParams;
    const query = { v: params.get('v'), encoding: params.get('encoding'), compress: params.get('compress') };
    if (query.v !== '10') {
      socket.close(GATEWAY_CLOSE.invalidApiVersion, `fake Discord speaks gateway v10, was asked for v=${query.v}`);
      return;
    }
    if ((query.encoding !== null && query.encoding !== 'json') || (query.compress !== null && query.compress !== 'zlib-stream')) {
      socket.close(GATEWAY_CLOSE.decodeError, `fake Discord supports encoding=json and compress=zlib-stream only`);
      return;
    }
    const connection = new Connection(socket, query);
    this.connections.add(connection);
    socket.on('message', (data, isBinary) => this.receive(connection, data, isBinary));
    socket.on('close', (code) => this.closed(connection, code));
    socket.on('error', () => socket.terminate());
    connection.send({ op: GATEWAY_OPCODE.hello, d: { heartbeat_interval: this.deps.heartbeatIntervalMs }, s: null, t: null });
  }

  private receive(connection: Connection, data: RawData, isBinary: boolean): void {
    let payload: unknown;
    try {
      payload = isBinary ? undefined : JSON.parse(rawText(data));
    } catch {
      payload = undefined;
    }
    if (!isJsonObject(payload) || typeof payload.op !== 'number') {
      connection.socket.close(GATEWAY_CLOSE.decodeError, 'Decode error');
      return;
    }
    const { op, d } = payload;
    if (op === GATEWAY_OPCODE.heartbeat) {
      connection.send({ op: GATEWAY_OPCODE.heartbeatAck, d: null, s: null, t: null });
    } else if (op === GATEWAY_OPCODE.identify) {
      this.identify(connection, d ?? null);
    } else if (op === GATEWAY_OPCODE.resume) {
      this.resume(connection, d ?? null);
    } else if (!IGNORED_OPCODES.has(op)) {
      connection.socket.close(GATEWAY_CLOSE.unknownOpcode, 'Unknown opcode');
    } else if (connection.session === null) {
      connection.socket.close(GATEWAY_CLOSE.notAuthenticated, 'Not authenticated');
    }
  }

  /** IDENTIFY and RESUME alike: a fresh connection with the bot's token, else the socket is closed as Discord does. */
  private authenticates(connection: Connection, d: Json): d is JsonObject {
    if (connection.session !== null) {
      connection.socket.close(GATEWAY_CLOSE.alreadyAuthenticated, 'Already authenticated');
      return false;
    }
    if (!isJsonObject(d) || d.token !== this.deps.token) {
      connection.socket.close(GATEWAY_CLOSE.authenticationFailed, 'Authentication failed');
      return false;
    }
    return true;
  }

  private identify(connection: Connection, d: Json): void {
    if (!this.authenticates(connection, d)) return;
    const session: Session = { id: this.deps.newSessionId(), seq: 0, events: [], connection, resumable: true };
    this.sessions.push(session);
    connection.session = session;
    connection.identifyCompress = d.compress === true && connection.query.compress === null;
    const intents = typeof d.intents === 'number' ? d.intents : 0;
    this.dispatchTo(session, 'READY', this.deps.ready(session.id, this.url));
    if ((intents & GUILDS_INTENT) !== 0) {
      for (const guild of this.deps.guildCreates()) this.dispatchTo(session, 'GUILD_CREATE', guild);
    }
    this.identifies.push({
      intents,
      shard: d.shard ?? null,
      compress: d.compress === true,
      properties: d.properties ?? null,
      query: connection.query,
      sessionId: session.id,
      at: Date.now(),
    });
    this.deps.feed.notify();
  }

  private resume(connection: Connection, d: Json): void {
    if (!this.authenticates(connection, d)) return;
    const session = this.sessions.find((candidate) => candidate.id === d.session_id);
    if (!session || !session.resumable) {
      connection.send({ op: GATEWAY_OPCODE.invalidSession, d: false, s: null, t: null });
      return;
    }
    session.connection?.socket.close(GATEWAY_CLOSE.unknownError, 'Session resumed elsewhere');
    session.connection = connection;
    connection.session = session;
    const since = typeof d.seq === 'number' ? d.seq : 0;
    for (const event of session.events) if (event.s > since) connection.send(event);
    this.dispatchTo(session, 'RESUMED', {});
    this.resumes += 1;
    this.deps.feed.notify();
  }

  private closed(connection: Connection, code: number): void {
    this.connections.delete(connection);
    connection.close();
    const session = connection.session;
    if (session && session.connection === connection) {
      session.connection = null;
      // A client that closes with 1000 or 1001 ends its session (Gateway › Disconnecting).
      if (code === 1000 || code === 1001) session.resumable = false;
    }
    this.deps.feed.notify();
  }

  private dispatchTo(session: Session, type: string, data: Json): void {
    session.seq += 1;
    const event: DispatchPayload = { op: GATEWAY_OPCODE.dispatch, t: type, s: session.seq, d: data };
    session.events.push(event);
    if (session.events.length > REPLAY_LIMIT) session.events.shift();
    session.connection?.send(event);
  }
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data instanceof ArrayBuffer ? new Uint8Array(data) : data).toString('utf8');
}
