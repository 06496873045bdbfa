// Slack's signed HTTP requests: Bolt's HTTPReceiver behind a check that also refuses a request replayed within the
// signature window and a timestamp from the future, both of which Bolt's own check (staleness only) lets through.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { ListenOptions } from 'node:net';
import { HTTPModuleFunctions, HTTPReceiver, LogLevel, verifySlackRequest, type App, type BufferedIncomingMessage, type Receiver } from '@slack/bolt';
import type { Logger } from '../../logger.js';

/** Bolt refuses a timestamp older than this (5 minutes, @slack/bolt verify-request.js), so replays come within it. */
export const SIGNATURE_WINDOW_SECONDS = 300;
/** How far ahead of this machine's clock a request's timestamp may be; clocks drift by seconds, not minutes. */
export const FUTURE_SKEW_SECONDS = 60;
/** Signatures remembered at most: far more than Slack sends one app in five minutes, and about 2 MB. */
export const MAX_REMEMBERED_SIGNATURES = 10_000;

export type ReplayVerdict = 'fresh' | 'replayed' | 'future' | 'stale';

export type ReplayGuardOptions = {
  windowSeconds?: number;
  futureSkewSeconds?: number;
  maxRemembered?: number;
  /** Milliseconds since the epoch. */
  now?: () => number;
};

const SWEEP_INTERVAL_MS = 10_000;

/**
 * Remembers the signatures of verified requests for as long as Bolt would accept them again: a signature covers the
 * timestamp and the whole body, so a second request with one already seen is a replay. Bounded in memory: expired
 * signatures are swept, and past `maxRemembered` the oldest is forgotten.
 */
export class ReplayGuard {
  private readonly windowMs: number;
  private readonly skewMs: number;
  private readonly maxRemembered: number;
  private readonly now: () => number;
  /** Signature → the time (ms) after which Bolt would refuse it as stale anyway. */
  private readonly seen = new Map<string, number>();
  private nextSweepAt = 0;

  constructor(options: ReplayGuardOptions = {}) {
    this.windowMs = (options.windowSeconds ?? SIGNATURE_WINDOW_SECONDS) * 1000;
    this.skewMs = (options.futureSkewSeconds ?? FUTURE_SKEW_SECONDS) * 1000;
    this.maxRemembered = options.maxRemembered ?? MAX_REMEMBERED_SIGNATURES;
    this.now = options.now ?? Date.now;
  }

  /** Judges a request whose signature has been verified, and remembers it when fresh. */
  check(timestampSeconds: number, signature: string): ReplayVerdict {
    const now = this.now();
    const sentAt = timestampSeconds * 1000;
    if (sentAt > now + this.skewMs) return 'future';
    // Bolt compares whole seconds, so a signature stays acceptable up to a second past the window
    const acceptableUntil = sentAt + this.windowMs + 1000;
    if (acceptableUntil <= now) return 'stale';
    this.sweep(now);
    const until = this.seen.get(signature);
    if (until !== undefined && until > now) return 'replayed';
    this.seen.delete(signature);
    this.seen.set(signature, acceptableUntil);
    if (this.seen.size > this.maxRemembered) this.seen.delete(this.seen.keys().next().value as string);
    return 'fresh';
  }

  /** How many signatures are remembered now. */
  get size(): number {
    return this.seen.size;
  }

  private sweep(now: number): void {
    if (now < this.nextSweepAt) return;
    this.nextSweepAt = now + SWEEP_INTERVAL_MS;
    for (const [signature, until] of this.seen) if (until <= now) this.seen.delete(signature);
  }
}

export type SlackReceiverOptions = {
  signingSecret: string;
  logger: Logger;
  /** The Request URL's path; default `/slack/events`. */
  endpoint?: string;
  /** Default: a guard with the window and skew above. */
  guard?: ReplayGuard;
};

/**
 * A Bolt receiver for HTTP mode: `new App({ receiver: createSlackReceiver(…) })`; `app.start({ port, host })` listens
 * and resolves with the server. Each POST to the endpoint is read whole, its signature checked with Bolt's
 * `verifySlackRequest`, its timestamp and signature checked against the guard, and only then handed to Bolt's
 * HTTPReceiver, which parses, acks and dispatches it. A refused request gets 401 and one warning, without the secret.
 */
export class SlackHttpReceiver implements Receiver {
  private readonly bolt: HTTPReceiver;
  private readonly signingSecret: string;
  private readonly logger: Logger;
  private readonly endpoint: string;
  private readonly guard: ReplayGuard;
  private server: Server | undefined;

  constructor(options: SlackReceiverOptions) {
    this.signingSecret = options.signingSecret;
    this.logger = options.logger;
    this.endpoint = options.endpoint ?? '/slack/events';
    this.guard = options.guard ?? new ReplayGuard();
    this.bolt = new HTTPReceiver({ signingSecret: options.signingSecret, endpoints: [this.endpoint], logLevel: LogLevel.ERROR });
  }

  init(app: App): void {
    this.bolt.init(app);
  }

  async start(listen: number | ListenOptions = 3000): Promise<Server> {
    if (this.server) throw new Error('the Slack receiver is already started');
    const server = createServer((request, response) => void this.handle(request, response));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(listen, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    return server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
    if (request.method !== 'POST' || path !== this.endpoint) return HTTPModuleFunctions.buildNoBodyResponse(response, 404);
    let buffered: BufferedIncomingMessage;
    try {
      buffered = await HTTPModuleFunctions.bufferIncomingMessage(request, HTTPModuleFunctions.defaultBodyLimit);
    } catch (error) {
      const tooLarge = HTTPModuleFunctions.isRawBodyError(error) && error.statusCode === 413;
      this.logger.warn({ reason: tooLarge ? 'body too large' : 'body not read', from: request.socket.remoteAddress }, 'refused a Slack request');
      return HTTPModuleFunctions.buildNoBodyResponse(response, tooLarge ? 413 : 400);
    }
    const reason = this.refusal(buffered);
    if (reason) {
      this.logger.warn({ reason, timestamp: buffered.headers['x-slack-request-timestamp'], from: request.socket.remoteAddress }, 'refused a Slack request');
      return HTTPModuleFunctions.buildNoBodyResponse(response, 401);
    }
    this.bolt.requestListener(buffered, response);
  }

  /** Why a request must be refused, or undefined to pass it on. */
  private refusal(request: BufferedIncomingMessage): string | undefined {
    const body = request.rawBody.toString();
    // Slack's SSL check is unsigned; Bolt answers it and drops everything else in its body
    if (request.headers['content-type'] === 'application/x-www-form-urlencoded' && new URLSearchParams(body).getAll('ssl_check').join() === '1') return undefined;
    const signature = request.headers['x-slack-signature'];
    const timestamp = request.headers['x-slack-request-timestamp'];
    if (typeof signature !== 'string' || typeof timestamp !== 'string') return 'unsigned';
    if (!/^\d{1,12}$/.test(timestamp)) return 'malformed timestamp';
    const seconds = Number(timestamp);
    try {
      verifySlackRequest({ signingSecret: this.signingSecret, body, headers: { 'x-slack-signature': signature, 'x-slack-request-timestamp': seconds } });
    } catch (error) {
      return /stale/.test((error as Error).message) ? 'stale' : 'bad signature';
    }
    const verdict = this.guard.check(seconds, signature);
    return verdict === 'fresh' ? undefined : verdict === 'replayed' ? 'replayed within the signature window' : verdict === 'future' ? 'timestamp in the future' : 'stale';
  }
}

export function createSlackReceiver(options: SlackReceiverOptions): SlackHttpReceiver {
  return new SlackHttpReceiver(options);
}
