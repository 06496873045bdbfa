// The web platform: a Fastify server on WEB_HOST:WEB_PORT with the playground page, its JSON and SSE API, and the
// A1111- and OpenAI-compatible endpoints, all on the same service as Discord and Slack. It is also the platform
// adapter for web jobs: statuses and results go to the job's event stream and the results folder.

import { join } from 'node:path';
import fastifyCookie from '@fastify/cookie';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { CommandContext } from '../../../commands/index.js';
import type { ImageCache } from '../../core/image-cache.js';
import type { Job, JobStore } from '../../core/jobs.js';
import type { Refusal } from '../../core/refusal.js';
import type { PlatformAdapter, Requester, ResultDelivery, Service, StatusUpdate, Submission } from '../../core/service.js';
import type { Logger } from '../../logger.js';
import { registerA1111 } from './a1111.js';
import { registerApi } from './api.js';
import { createAuth, type Auth } from './auth.js';
import type { Activity, Outcome, WebContext } from './context.js';
import { apiFamily, bodyError, refusalError, SERVER_FAULT, validationError, WebError } from './errors.js';
import { JobEvents, type WebEvent } from './events.js';
import { hostName, isLoopbackHost } from './host.js';
import { registerOpenAi } from './openai.js';
import { loadPage, registerPage } from './page.js';
import { WebResults, type StoredResult } from './results.js';
import { failureOf, jobView, refusalEventData, statusEventData } from './views.js';

export type WebConfig = {
  host: string;
  /** 0 picks a free port (tests); `url` says which. */
  port: number;
  /** Access tokens; empty only on a loopback host. */
  tokens: readonly string[];
  /** Where delivered results are kept (the history's files), and how many bytes of them at most. */
  resultsDir: string;
  resultsMaxBytes?: number;
  /** The model folder's name, for A1111 clients that list models. */
  modelName: string;
};

export type WebDeps = {
  service: Service;
  store: JobStore;
  images: ImageCache;
  logger: Logger;
  commandContext: () => CommandContext;
  now?: () => number;
};

/** Request bodies are capped here: a prompt is at most 1000 characters, and nothing the web takes is larger. */
export const MAX_BODY_BYTES = 64 * 1024;
/** The web keeps files whole: no byte budget, so a grid is lossless PNG and each image can be cut out of it. */
const WEB_FILE_BYTES = 1024 * 2 ** 20;
/** A finished job's events stay this long for a stream that reconnects late. */
const KEEP_FINISHED_EVENTS_MS = 10 * 60_000;

type Waiter = (outcome: Outcome) => void;

export class WebPlatform implements PlatformAdapter {
  private readonly config: WebConfig;
  private readonly deps: WebDeps;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly auth: Auth;
  private readonly events = new JobEvents({ keepFinishedMs: KEEP_FINISHED_EVENTS_MS });
  private readonly results: WebResults;
  private readonly waiters = new Map<string, Set<Waiter>>();
  /** Waiting and running web jobs, by id, with when they started running. */
  private readonly active = new Map<string, { job: Job; runningSince: number | undefined }>();
  private readonly app: FastifyInstance;
  private address: string | undefined;

  constructor(config: WebConfig, deps: WebDeps) {
    this.config = config;
    this.deps = deps;
    this.logger = deps.logger.child({ part: 'web' });
    this.now = deps.now ?? Date.now;
    this.auth = createAuth(config.tokens);
    this.results = new WebResults(config.resultsDir, deps.images, config.resultsMaxBytes);
    this.app = this.build();
  }

  /** The address it serves, once started: `http://127.0.0.1:7860`. */
  get url(): string | undefined {
    return this.address;
  }

  /** Registers with the service, keeps the results folder ready, and listens. */
  async start(): Promise<void> {
    this.deps.service.registerPlatform('web', this);
    await this.results.start();
    await this.app.listen({ host: this.config.host, port: this.config.port });
    const bound = this.app.server.address();
    const port = typeof bound === 'object' && bound ? bound.port : this.config.port;
    const host = this.config.host.includes(':') ? `[${this.config.host}]` : this.config.host;
    this.address = `http://${host}:${port}`;
    this.logger.info({ url: this.address, tokens: this.config.tokens.length }, `web playground and API on ${this.address}`);
  }

  /** Ends open event streams and stops listening. */
  async close(): Promise<void> {
    this.events.close();
    await this.app.close();
  }

  // ——— the service's side ———

  maxUploadBytes(): number {
    return WEB_FILE_BYTES;
  }

  onStatus(job: Job, update: StatusUpdate): void {
    const entry = this.active.get(job.id) ?? { job, runningSince: undefined };
    if (update.state === 'running' && entry.runningSince === undefined) entry.runningSince = this.now();
    this.active.set(job.id, entry);
    this.events.publish(job.id, update.state, statusEventData(update));
  }

  /** Keeps the result on disk and tells the job's listeners; no browser needs to be there (it fetches it later). */
  async deliverResult(job: Job, result: ResultDelivery): Promise<string | undefined> {
    const stored = await this.results.save(job.id, result);
    this.active.delete(job.id);
    this.events.publish(job.id, 'done', { job: jobView(job, stored) });
    this.settle({ job, stored });
    return result.fileName;
  }

  async deliverFailure(job: Job, refusal: Refusal): Promise<void> {
    this.active.delete(job.id);
    const failed = refusal.code === 'generation_failed' || refusal.code === 'delivery_failed';
    const data = refusalEventData(refusal);
    this.events.publish(job.id, failed ? 'failed' : 'refused', data);
    this.settle({ job, failure: data });
  }

  /** A web job's reply holds nothing secret, so the store may keep it whole. */
  forgetReply(job: Job): Record<string, unknown> {
    return job.reply;
  }

  // ——— what the routes share ———

  private settle(outcome: Outcome): void {
    const waiters = this.waiters.get(outcome.job.id);
    this.waiters.delete(outcome.job.id);
    for (const waiter of waiters ?? []) waiter(outcome);
  }

  /** Called when a member cancels one of their waiting jobs. */
  cancelled(job: Job): void {
    this.active.delete(job.id);
    const data = { message: 'Cancelled.' };
    this.events.publish(job.id, 'cancelled', data);
    this.settle({ job, failure: { code: 'cancelled', message: data.message } });
  }

  private requester(request: FastifyRequest): Requester {
    // the web is one place: no channel policy applies (like a DM), and GUILD_DAILY_IMAGES counts all its images
    return { platform: 'web', userId: request.webUser!.userId, guildId: 'web', channelId: 'web', direct: true };
  }

  private ownJob(request: FastifyRequest, jobId: string): Job {
    const job = /^[a-z0-9]{1,40}$/.test(jobId) ? this.deps.store.get(jobId) : undefined;
    if (!job || job.platform !== 'web' || job.userId !== request.webUser?.userId) throw refusalError({ code: 'unknown_job' });
    return job;
  }

  private async accepted(submission: Promise<Submission>): Promise<{ job: Job; position: number }> {
    const result = await submission;
    if (!result.ok) throw refusalError(result.refusal);
    return { job: result.job, position: result.position };
  }

  private async outcome(jobId: string): Promise<Outcome> {
    const waiting = new Promise<Outcome>((resolve) => {
      const set = this.waiters.get(jobId) ?? new Set();
      set.add(resolve);
      this.waiters.set(jobId, set);
    });
    // a job that ended before the wait began (or before a restart) answers from the store
    const job = this.deps.store.get(jobId);
    const stored = job && (await this.results.get(jobId));
    if (job && stored) return { job, stored };
    if (job?.status === 'failed') return { job, failure: refusalEventData(failureOf(job)) };
    if (job?.status === 'cancelled') return { job, failure: { code: 'cancelled', message: 'Cancelled.' } };
    return waiting;
  }

  private async currentEvent(job: Job): Promise<WebEvent> {
    const stored = await this.results.get(job.id);
    const latest = this.events.latest(job.id);
    if (latest) return latest;
    const id = `${this.events.epoch}.0`;
    if (stored) return { id, type: 'done', data: { job: jobView(job, stored) } };
    switch (job.status) {
      case 'failed':
        return { id, type: 'failed', data: refusalEventData(failureOf(job)) };
      case 'cancelled':
        return { id, type: 'cancelled', data: { message: 'Cancelled.' } };
      case 'queued':
        return { id, type: 'queued', data: { state: 'queued', message: 'Queued' } };
      default:
        return { id, type: 'running', data: statusEventData({ state: 'running' }) };
    }
  }

  private activity(userId: string): Activity[] {
    return [...this.active.values()]
      .filter((entry) => entry.job.userId === userId)
      .map((entry) => ({ ...entry, event: this.events.latest(entry.job.id)! }))
      .filter((entry) => entry.event !== undefined)
      .sort((a, b) => a.job.createdAt - b.job.createdAt);
  }

  private context(): WebContext {
    return {
      service: this.deps.service,
      store: this.deps.store,
      results: this.results,
      events: this.events,
      logger: this.logger,
      commandContext: this.deps.commandContext,
      modelName: this.config.modelName,
      maxBodyBytes: MAX_BODY_BYTES,
      loginRequired: this.auth.required,
      requester: (request) => this.requester(request),
      ownJob: (request, jobId) => this.ownJob(request, jobId),
      accepted: (submission) => this.accepted(submission),
      outcome: (jobId) => this.outcome(jobId),
      currentEvent: (job) => this.currentEvent(job),
      activity: (userId) => this.activity(userId),
      cancelled: (job) => this.cancelled(job),
    };
  }

  // ——— the server ———

  private build(): FastifyInstance {
    const app = Fastify({
      bodyLimit: MAX_BODY_BYTES,
      // event streams stay open; a stop ends them rather than waiting for every browser to leave
      forceCloseConnections: true,
      // wrong types are errors, not coerced ("4" is not 4), and unknown fields are seen, not silently dropped
      ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: true, allErrors: false } },
      // the page's JSON says which request failed; Fastify's own request log would repeat every poll
      logger: false,
    });
    app.decorateRequest('webUser', undefined);
    // cookies are read in the guard below, which runs before the plugin's own hook would
    void app.register(fastifyCookie, { hook: false });
    // bodies are JSON (or the login form): text/plain would reach the routes as a string
    app.removeContentTypeParser('text/plain');
    // the login form posts application/x-www-form-urlencoded, read with the platform's own URLSearchParams
    app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 4096 }, (_request, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(body as string)));
    });
    app.addHook('onRequest', async (request, reply) => this.guard(request, reply));
    app.addHook('onSend', async (request, reply, payload) => {
      void reply.header('X-Content-Type-Options', 'nosniff').header('Referrer-Policy', 'no-referrer').header('X-Frame-Options', 'DENY');
      return payload;
    });
    app.setErrorHandler((error: FastifyError, request, reply) => this.answerError(error, request, reply));
    app.setNotFoundHandler((request, reply) => {
      const error = new WebError(404, 'not_found', `There is nothing at ${request.method} ${request.url.split('?')[0]}.`);
      return reply.code(404).send(error.body(apiFamily(request.url)));
    });
    const context = this.context();
    const page = loadPage();
    registerPage(app, context, { auth: this.auth, page });
    registerApi(app, context);
    registerA1111(app, context);
    registerOpenAi(app, context);
    return app;
  }

  /**
   * Before every route: the Host must name this server when no token guards it (a DNS name rebound to 127.0.0.1
   * would otherwise make another site same-origin); cross-site requests are refused; then the member is identified.
   */
  private async guard(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (!this.auth.required) {
      const host = hostName(request.headers.host ?? '');
      if (!isLoopbackHost(host) && host !== this.config.host.toLowerCase()) {
        throw new WebError(403, 'wrong_host', 'This server answers only at its own address (127.0.0.1 or localhost); open it there.');
      }
    }
    const origin = request.headers.origin;
    const site = request.headers['sec-fetch-site'];
    if ((origin !== undefined && !sameOrigin(origin, request.headers.host)) || site === 'cross-site') {
      throw new WebError(403, 'cross_site', 'Cross-site requests are refused; use the page this server serves.');
    }
    const path = request.url.split('?')[0];
    if (PUBLIC_PATHS.has(path)) return;
    const cookies = request.headers.cookie ? this.app.parseCookie(request.headers.cookie) : {};
    request.webUser = this.auth.identify({ headers: request.headers, cookies, ip: request.ip });
    if (request.webUser) return;
    if (request.method === 'GET' && path === '/') {
      await reply.redirect('/login', 303);
      return;
    }
    void reply.header('WWW-Authenticate', 'Bearer');
    throw new WebError(401, 'unauthorized', 'Send the access token (Authorization: Bearer <WEB_TOKEN>), or log in at /login.');
  }

  private answerError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
    const family = apiFamily(request.url);
    const known =
      error instanceof WebError
        ? error
        : error.validation
          ? validationError(error.validation as Parameters<typeof validationError>[0])
          : bodyError(error.code, MAX_BODY_BYTES);
    if (known) {
      if (known.retryAfterMs !== undefined) void reply.header('Retry-After', String(Math.max(1, Math.ceil(known.retryAfterMs / 1000))));
      return reply.code(known.status).send(known.body(family));
    }
    // Fastify's other client errors (a forbidden __proto__ key, a bad header) are the client's, and say what they are
    if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
      const client = new WebError(error.statusCode, 'bad_request', `The request is not valid: ${error.message.replace(/\.?$/, '.')}`);
      return reply.code(client.status).send(client.body(family));
    }
    this.logger.error({ err: error, method: request.method, path: request.url.split('?')[0] }, 'a web request failed');
    return reply.code(500).send(new WebError(500, 'server_error', SERVER_FAULT).body(family));
  }
}

/** Pages and files anyone may fetch: the login form and what it needs. */
const PUBLIC_PATHS = new Set(['/login', '/style.css', '/favicon.svg']);

function sameOrigin(origin: string, host: string | undefined): boolean {
  if (!host) return false;
  try {
    return new URL(origin).host === host.toLowerCase();
  } catch {
    return false;
  }
}

export function createWeb(config: Omit<WebConfig, 'resultsDir' | 'modelName'> & { dataDir: string; modelDir: string }, deps: WebDeps): WebPlatform {
  const { dataDir, modelDir, ...rest } = config;
  return new WebPlatform({ ...rest, resultsDir: join(dataDir, 'web'), modelName: modelDir.split(/[\\/]/).filter(Boolean).pop() ?? 'sdxl-lightning' }, deps);
}

export type { StoredResult };
