// The fake Socket Mode endpoint (docs.slack.dev/apis/events-api/using-socket-mode): tickets, hello, envelopes out, acks in.

import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { ChangeFeed } from '../changes.js';
import { isJsonObject, type Json, type JsonObject } from './objects.js';

/** Envelope types Slack sends over Socket Mode. */
export type EnvelopeType = 'slash_commands' | 'interactive' | 'events_api';

/** Reasons of a `disconnect` message: Slack's `warning` (10 s notice), `refresh_requested` (now) and `link_disabled`. */
export type DisconnectReason = 'warning' | 'refresh_requested' | 'link_disabled';

/** One WebSocket connection the bot made with a ticket from `apps.connections.open`. */
export interface SocketConnectionRecord {
  id: number;
  ticket: string;
  connectedAt: number;
  /** Null while open. */
  closedAt: number | null;
  closeCode: number | null;
}

/** A text frame the bot sent that was not the ack of an envelope the fake is waiting on. */
export interface StrayFrame {
  connectionId: number;
  text: string;
  at: number;
}

export interface SocketModeDeps {
  feed: ChangeFeed;
  appId: string;
  /** Called with each ack: the envelope id and the ack's `payload` (`{}` for a bare `ack()`). */
  onAck(envelopeId: string, payload: JsonObject): boolean;
}

interface Connection {
  record: SocketConnectionRecord;
  socket: WebSocket;
}

const PATH = '/socket';

export class FakeSocketMode {
  readonly connections: SocketConnectionRecord[] = [];
  readonly strayFrames: StrayFrame[] = [];
  private readonly server = new WebSocketServer({ noServer: true });
  private readonly live = new Set<Connection>();
  private readonly tickets = new Set<string>();
  private readonly deps: SocketModeDeps;
  private readonly wsOrigin: string;

  constructor(wsOrigin: string, deps: SocketModeDeps) {
    this.wsOrigin = wsOrigin;
    this.deps = deps;
  }

  /** `apps.connections.open`'s `url`: a one-use ticket for the next connection. */
  issueUrl(): string {
    const ticket = randomBytes(16).toString('hex');
    this.tickets.add(ticket);
    return `${this.wsOrigin}${PATH}?ticket=${ticket}&app_id=${this.deps.appId}`;
  }

  get openCount(): number {
    return this.live.size;
  }

  /** Takes an HTTP upgrade for `/socket`; false for any other path, so the caller can refuse it. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const url = new URL(request.url ?? '/', 'http://localhost');
    if (url.pathname !== PATH) return false;
    const ticket = url.searchParams.get('ticket') ?? '';
    if (!this.tickets.delete(ticket)) {
      socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return true;
    }
    this.server.handleUpgrade(request, socket, head, (webSocket) => this.accept(webSocket, ticket));
    return true;
  }

  /**
   * Sends an envelope to the newest open connection, as Slack sends each envelope to one of an app's connections.
   * Throws when no connection is open.
   */
  send(type: EnvelopeType, payload: JsonObject, acceptsResponsePayload: boolean): string {
    const connection = [...this.live].at(-1);
    if (!connection) throw new Error(`fake Slack: no Socket Mode connection is open to send a ${type} envelope (await waitForSocket() first)`);
    const envelopeId = randomUUID();
    const envelope: JsonObject = { envelope_id: envelopeId, payload, type, accepts_response_payload: acceptsResponsePayload };
    if (type === 'events_api') Object.assign(envelope, { retry_attempt: 0, retry_reason: '' });
    connection.socket.send(JSON.stringify(envelope));
    return envelopeId;
  }

  /** Sends `{ type: 'disconnect', reason }` on every open connection; `@slack/socket-mode` closes and reconnects. */
  disconnect(reason: DisconnectReason): void {
    for (const connection of this.live) {
      connection.socket.send(JSON.stringify({ type: 'disconnect', reason, debug_info: { host: 'fake-slack' } }));
    }
  }

  /** Closes every connection (1001 Going Away; terminated after 1 s if the client does not answer) and the server. */
  async close(): Promise<void> {
    await Promise.all(
      [...this.live].map(async ({ socket }) => {
        const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
        socket.close(1001, 'fake Slack closed');
        const timer = setTimeout(() => socket.terminate(), 1_000);
        await closed;
        clearTimeout(timer);
      }),
    );
    this.live.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: WebSocket, ticket: string): void {
    const record: SocketConnectionRecord = { id: this.connections.length + 1, ticket, connectedAt: Date.now(), closedAt: null, closeCode: null };
    const connection: Connection = { record, socket };
    this.connections.push(record);
    this.live.add(connection);
    socket.on('message', (data, isBinary) => this.receive(connection, data, isBinary));
    socket.on('close', (code) => {
      this.live.delete(connection);
      record.closedAt = Date.now();
      record.closeCode = code;
      this.deps.feed.notify();
    });
    socket.on('error', () => socket.terminate());
    socket.send(
      JSON.stringify({
        type: 'hello',
        num_connections: this.live.size,
        debug_info: { host: 'fake-slack', build_number: 1, approximate_connection_time: 3600 },
        connection_info: { app_id: this.deps.appId },
      }),
    );
    this.deps.feed.notify();
  }

  private receive(connection: Connection, data: RawData, isBinary: boolean): void {
    const text = isBinary ? '' : data.toString();
    let frame: Json = null;
    try {
      frame = JSON.parse(text) as Json;
    } catch {
      frame = null;
    }
    if (isJsonObject(frame) && typeof frame.envelope_id === 'string') {
      const payload = isJsonObject(frame.payload) ? frame.payload : {};
      if (this.deps.onAck(frame.envelope_id, payload)) return;
    }
    this.strayFrames.push({ connectionId: connection.record.id, text, at: Date.now() });
    this.deps.feed.notify();
  }
}
