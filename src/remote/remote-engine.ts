// The bot's engine when GPU workers run the model: hands jobs to BullMQ only when a free worker can take them, and
// brings their results back from Redis, once.

import { randomUUID } from 'node:crypto';
import { Queue, QueueEvents, type Job as BullJob } from 'bullmq';
import type { EngineOutput, EngineRequest, GenerationEngine } from '../core/engine-port.js';
import { EngineError, type EngineAvailability, type EngineErrorCode, type EngineInfo, type ProgressEvent } from '../diffusion/index.js';
import type { Logger } from '../logger.js';
import { bullConnection } from './connection-options.js';
import {
  decodeFailure,
  KEEP_COMPLETED,
  KEEP_FAILED,
  KEY_PREFIX,
  queueName,
  WORKER_CHANNEL,
  type RemoteJobData,
  type RemoteJobResult,
  type RemoteProgress,
  type WorkerAnnouncement,
} from './protocol.js';
import { createQueueConnection, type QueueConnection } from './redis.js';
import { readKnownSteps, readWorkers } from './registry.js';
import { ResultError, takeResult } from './results.js';

export type RemoteEngineConfig = {
  redisUrl: string;
  /** How often the registry is read besides the workers' own announcements (ms). */
  pollMs: number;
  /**
   * How long a handed-over job may wait with no live worker able to run it before it is taken back from BullMQ and
   * `generate` rejects with `unavailable` (the service queues it again and tells the member).
   */
  orphanMs: number;
  /** Whether `start()` waits until some worker has ever announced its step counts (a bot that runs no model itself). */
  waitForSteps: boolean;
  connectTimeoutMs?: number;
};

/** Retryable failures of the remote engine that the local engine has no code for. */
export class RemoteEngineError extends Error {
  override readonly name = 'RemoteEngineError';
  readonly code: 'unavailable' | 'timeout';
  constructor(code: 'unavailable' | 'timeout', message: string) {
    super(message);
    this.code = code;
  }
}

type Pending = {
  id: string;
  steps: number;
  data: RemoteJobData;
  onProgress?: (event: ProgressEvent) => void;
  resolve: (output: EngineOutput) => void;
  reject: (error: Error) => void;
  promise: Promise<EngineOutput>;
  /** A worker has said it runs the job (its first progress, or its announcement). */
  started: boolean;
  worker?: string;
  /** Reading the result is under way; a second `completed` (event and look-up both) must not read it again. */
  finishing: boolean;
  settled: boolean;
  /** Since when no live worker has had the job's steps. */
  orphanedSince?: number;
};

/** How many settled job ids to remember, so a late announcement of a finished job does not mark its worker busy. */
const FINISHED_MEMORY = 1000;
/** Steps announced within this window stay offered while their workers are away (restarts, maintenance). */
const KNOWN_STEPS_MS = 7 * 24 * 3600 * 1000;
/** The registry is also compared with BullMQ's own job states every this many polls (missed events, lost jobs). */
const RESYNC_EVERY_POLLS = 5;

/** Whether every job (by steps) can be given its own worker among `workers` (steps each has): a small bipartite matching. */
export function canMatch(jobs: readonly number[], workers: readonly (readonly number[])[]): boolean {
  if (jobs.length > workers.length) return false;
  const owner: (number | undefined)[] = workers.map(() => undefined);
  const place = (job: number, seen: boolean[]): boolean => {
    for (let w = 0; w < workers.length; w++) {
      if (seen[w] || !workers[w].includes(jobs[job])) continue;
      seen[w] = true;
      const current = owner[w];
      if (current === undefined || place(current, seen)) {
        owner[w] = job;
        return true;
      }
    }
    return false;
  };
  return jobs.every((_, job) => place(job, workers.map(() => false)));
}

export class RemoteEngine implements GenerationEngine {
  info: EngineInfo | undefined;
  private readonly config: RemoteEngineConfig;
  private readonly logger: Logger;
  private connection: QueueConnection | undefined;
  private subscriber: QueueConnection | undefined;
  private readonly queues = new Map<number, { queue: Queue; events: QueueEvents; ready: Promise<unknown> }>();
  private readonly pending = new Map<string, Pending>();
  private readonly finished = new Set<string>();
  private workers: WorkerAnnouncement[] = [];
  private knownSteps: number[] = [];
  private readonly listeners = new Set<() => void>();
  private pollTimer: NodeJS.Timeout | undefined;
  private polls = 0;
  private refreshing: Promise<void> | undefined;
  private refreshAgain = false;
  private signature = '';
  private closed = false;
  private started = false;

  constructor(config: RemoteEngineConfig, deps: { logger: Logger }) {
    this.config = config;
    this.logger = deps.logger.child({ part: 'remote-engine' });
  }

  /** Connects to Redis, reads the registry and listens to it; rejects when Redis cannot be reached. */
  async start(): Promise<EngineInfo> {
    const timeout = this.config.connectTimeoutMs ?? 10_000;
    this.connection = createQueueConnection(this.config.redisUrl, 'bot', { logger: this.logger, onReconnect: () => void this.resync() });
    this.subscriber = createQueueConnection(this.config.redisUrl, 'bot-registry', { logger: this.logger });
    await Promise.all([this.connection.ready(timeout), this.subscriber.ready(timeout)]);
    this.subscriber.redis.on('message', () => this.refresh());
    await this.subscriber.redis.subscribe(WORKER_CHANNEL);
    await this.refresh();
    for (const steps of this.knownSteps) this.queueFor(steps);
    if (this.config.waitForSteps && this.knownSteps.length === 0) {
      this.logger.warn('no GPU worker has joined yet; waiting for one (start `npm run worker` on a GPU host with the same REDIS_URL)');
      await new Promise<void>((resolve) => {
        const check = (): void => {
          if (this.knownSteps.length > 0 || this.closed) {
            this.listeners.delete(check);
            resolve();
          }
        };
        this.listeners.add(check);
        this.pollTimer = setInterval(() => this.refresh(), this.config.pollMs);
      });
      clearInterval(this.pollTimer);
    }
    if (this.closed) throw new EngineError('closed', 'the engine is closed');
    this.pollTimer = setInterval(() => this.poll(), this.config.pollMs);
    this.started = true;
    this.changed();
    this.logger.info({ steps: this.info?.steps, workers: this.workers.map(describeWorker) }, 'remote engine ready');
    return this.info!;
  }

  /** The live workers as last read from the registry. */
  get connectedWorkers(): readonly WorkerAnnouncement[] {
    return this.workers;
  }

  /** Whether a live worker says it is running this job now (a job handed over before this process started). */
  runs(jobId: string): boolean {
    return this.workers.some((worker) => worker.state === 'busy' && worker.job === jobId);
  }

  canTake(steps: number): boolean {
    if (!this.started || this.closed) return false;
    const free = this.workers.filter((worker) => !this.isBusy(worker)).map((worker) => worker.steps);
    const unstarted = [...this.pending.values()].filter((p) => !p.settled && !p.started && !p.finishing).map((p) => p.steps);
    return canMatch([...unstarted, steps], free);
  }

  availability(steps: number): EngineAvailability {
    if (this.closed) return { state: 'unavailable', reason: 'no_worker', detail: 'the remote engine is closed' };
    if (this.workers.some((worker) => worker.steps.includes(steps))) return { state: 'ready' };
    const detail =
      this.workers.length === 0
        ? 'no GPU worker is connected'
        : `no connected GPU worker has the ${steps}-step UNet (connected: ${this.workers.map(describeWorker).join('; ')})`;
    return { state: 'unavailable', reason: 'no_worker', detail };
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Hands the request to BullMQ under the job id (re-adding an id BullMQ has is a no-op), or attaches to what BullMQ
   * already has for that id: a job still running, or a result made while this process was away.
   */
  generate(request: EngineRequest, onProgress?: (event: ProgressEvent) => void): Promise<EngineOutput> {
    if (this.closed) return Promise.reject(new EngineError('closed', 'the engine is shutting down'));
    if (!this.started) return Promise.reject(new EngineError('not_started', 'the engine has not started'));
    const { jobId, ...pipelineRequest } = request;
    const id = jobId ?? randomUUID();
    const existing = this.pending.get(id);
    if (existing && !existing.settled) return existing.promise;
    let resolve!: (output: EngineOutput) => void;
    let reject!: (error: Error) => void;
    const promise = new Promise<EngineOutput>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const entry: Pending = {
      id,
      steps: request.steps,
      data: { request: pipelineRequest, jobId: id },
      onProgress,
      resolve,
      reject,
      promise,
      started: false,
      finishing: false,
      settled: false,
    };
    this.pending.set(id, entry);
    this.finished.delete(id);
    this.changed();
    void this.submit(entry).catch((error: unknown) => this.settle(entry, { error: asError(error) }));
    return promise;
  }

  /** Stops listening; jobs in flight reject with `closed` and stay in BullMQ, so the next start picks up their results. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.pollTimer);
    for (const entry of this.pending.values()) this.settle(entry, { error: new EngineError('closed', 'the engine is shutting down') });
    this.changed();
    await Promise.all(
      [...this.queues.values()].map(async ({ queue, events }) => {
        await events.close().catch(() => undefined);
        await queue.close().catch(() => undefined);
      }),
    );
    await this.subscriber?.close();
    await this.connection?.close();
  }

  // ——— handing over ———

  private queueFor(steps: number): { queue: Queue; events: QueueEvents; ready: Promise<unknown> } {
    let found = this.queues.get(steps);
    if (found) return found;
    const name = queueName(steps);
    const queue = new Queue(name, { connection: bullConnection(this.config.redisUrl, 'bot-queue'), prefix: KEY_PREFIX });
    const events = new QueueEvents(name, { connection: bullConnection(this.config.redisUrl, 'bot-events'), prefix: KEY_PREFIX });
    const quiet = (error: Error): void => this.logger.debug({ queue: name, err: { message: error.message } }, 'BullMQ connection error');
    queue.on('error', quiet);
    events.on('error', quiet);
    events.on('progress', ({ jobId, data }) => this.onProgress(jobId, data as RemoteProgress));
    events.on('completed', ({ jobId, returnvalue }) => {
      const entry = this.pending.get(jobId);
      if (entry && !entry.settled) void this.complete(entry, parseReturnValue(returnvalue));
    });
    events.on('failed', ({ jobId, failedReason }) => {
      const entry = this.pending.get(jobId);
      if (entry && !entry.settled) void this.onFailed(entry, failedReason);
    });
    events.on('stalled', ({ jobId }) => {
      const entry = this.pending.get(jobId);
      if (!entry || entry.settled) return;
      this.logger.warn({ job: jobId, worker: entry.worker }, 'the worker running a job stopped answering; BullMQ gives the job to the next free worker');
      entry.started = false;
      entry.worker = undefined;
      this.changed();
    });
    found = { queue, events, ready: events.waitUntilReady() };
    this.queues.set(steps, found);
    return found;
  }

  private async submit(entry: Pending): Promise<void> {
    const { queue, ready } = this.queueFor(entry.steps);
    await ready; // events are read from here on, so none about this job is missed
    const job = await queue.getJob(entry.id);
    if (job && (await this.attach(entry, job))) return;
    await this.add(entry);
  }

  /** Follows a job BullMQ already holds; false when it must be added afresh. */
  private async attach(entry: Pending, job: BullJob): Promise<boolean> {
    const state = await job.getState();
    if (state === 'completed') {
      this.logger.info({ job: entry.id, worker: job.processedBy }, 'picking up a result made while the bot was away');
      await this.complete(entry, parseReturnValue(job.returnvalue));
      return true;
    }
    if (state === 'failed') {
      if (isRetryableCode(decodeFailure(job.failedReason).code)) {
        await job.remove().catch(() => undefined);
        return false;
      }
      await this.onFailed(entry, job.failedReason);
      return true;
    }
    if (state === 'unknown') return false;
    this.logger.info({ job: entry.id, state }, 'following a job BullMQ already has');
    return true;
  }

  private async add(entry: Pending): Promise<void> {
    const { queue } = this.queueFor(entry.steps);
    await queue.add('generate', entry.data, {
      jobId: entry.id,
      // BullMQ does not retry by itself: a failure goes back to the service, which decides (stalls are BullMQ's)
      attempts: 1,
      removeOnComplete: KEEP_COMPLETED,
      removeOnFail: KEEP_FAILED,
    });
    this.logger.debug({ job: entry.id, steps: entry.steps }, 'handed a job to the GPU workers');
  }

  // ——— what comes back ———

  private onProgress(jobId: string, data: RemoteProgress | undefined): void {
    const entry = this.pending.get(jobId);
    if (!entry || entry.settled || !data || typeof data.worker !== 'string') return;
    if (!entry.started || entry.worker !== data.worker) {
      entry.started = true;
      entry.worker = data.worker;
      entry.orphanedSince = undefined;
      this.logger.info({ job: jobId, worker: data.worker, steps: entry.steps }, 'a worker started the job');
      this.changed();
    }
    if (data.stage && typeof data.step === 'number' && typeof data.steps === 'number') {
      entry.onProgress?.({ stage: data.stage, step: data.step, steps: data.steps });
    }
  }

  private async complete(entry: Pending, result: RemoteJobResult | undefined): Promise<void> {
    if (entry.finishing || entry.settled) return;
    entry.finishing = true;
    this.changed();
    try {
      if (!result || typeof result.resultKey !== 'string' || !Array.isArray(result.images)) {
        throw new ResultError(`the job's return value is not a result: ${JSON.stringify(result)?.slice(0, 200)}`);
      }
      const images = await takeResult(this.connection!.redis, result.resultKey, result.images);
      if (!images) {
        // expired, or lost with a Redis restart: the images are gone, so the job runs again
        this.logger.warn({ job: entry.id, worker: result.worker }, 'the result of a finished job is gone from Redis; running the job again');
        const { queue } = this.queueFor(entry.steps);
        await queue.remove(entry.id).catch(() => undefined);
        entry.started = false;
        entry.worker = undefined;
        entry.finishing = false;
        await this.add(entry);
        this.changed();
        return;
      }
      this.logger.info({ job: entry.id, worker: result.worker, totalMs: Math.round(result.timings.totalMs) }, 'a worker made the images');
      this.settle(entry, { output: { images, timings: result.timings, truncated: result.truncated, prediction: result.prediction, worker: result.worker, ...(result.safety ? { safety: result.safety } : {}) } });
    } catch (error) {
      this.logger.error({ job: entry.id, worker: result?.worker, err: error }, 'could not read a result from Redis');
      this.settle(entry, { error: new EngineError('internal', `could not read the result: ${asError(error).message}`) });
    }
  }

  private async onFailed(entry: Pending, reason: string | undefined): Promise<void> {
    const { code, message } = decodeFailure(reason);
    const error = toEngineError(code, message);
    if (isRetryableCode(code)) {
      // the job itself is fine: take BullMQ's failed copy away so the next generate runs it afresh
      await this.queueFor(entry.steps)
        .queue.remove(entry.id)
        .catch(() => undefined);
    }
    this.logger[code === 'invalid_request' ? 'info' : 'warn']({ job: entry.id, worker: entry.worker, code, reason: message }, 'a worker could not make the images');
    this.settle(entry, { error });
  }

  private settle(entry: Pending, outcome: { output: EngineOutput } | { error: Error }): void {
    if (entry.settled) return;
    entry.settled = true;
    this.pending.delete(entry.id);
    this.finished.add(entry.id);
    if (this.finished.size > FINISHED_MEMORY) this.finished.delete(this.finished.values().next().value!);
    if ('output' in outcome) entry.resolve(outcome.output);
    else entry.reject(outcome.error);
    this.changed();
  }

  // ——— the registry ———

  /** A worker is busy while it runs one of our jobs, or says it runs a job we have not seen finish. */
  private isBusy(worker: WorkerAnnouncement): boolean {
    // a job whose result is being read has left its worker: the worker takes the next job meanwhile
    for (const entry of this.pending.values()) if (entry.started && !entry.finishing && entry.worker === worker.id) return true;
    return worker.state === 'busy' && worker.job !== undefined && !this.finished.has(worker.job);
  }

  /** Reads the registry (coalescing calls that come while a read is under way) and tells listeners what changed. */
  private refresh(): Promise<void> {
    if (this.refreshing) {
      this.refreshAgain = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      do {
        this.refreshAgain = false;
        const redis = this.connection?.redis;
        if (!redis || redis.status !== 'ready') return;
        try {
          const [workers, known] = await Promise.all([readWorkers(redis), readKnownSteps(redis, Date.now() - KNOWN_STEPS_MS)]);
          this.apply(workers, known);
        } catch (error) {
          this.logger.debug({ err: { message: asError(error).message } }, 'could not read the worker registry');
        }
      } while (this.refreshAgain && !this.closed);
    })().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private apply(workers: WorkerAnnouncement[], known: number[]): void {
    const before = new Map(this.workers.map((worker) => [worker.id, worker]));
    for (const worker of workers) {
      if (!before.has(worker.id)) this.logger.info({ worker: worker.id, host: worker.host, device: worker.device, steps: worker.steps }, 'a GPU worker joined');
      // its announcement may say which of our jobs it runs before its first progress event does
      const entry = worker.state === 'busy' && worker.job ? this.pending.get(worker.job) : undefined;
      if (entry && !entry.settled && !entry.started) {
        entry.started = true;
        entry.worker = worker.id;
        entry.orphanedSince = undefined;
      }
    }
    const now = new Set(workers.map((worker) => worker.id));
    for (const [id] of before) if (!now.has(id)) this.logger.warn({ worker: id }, 'a GPU worker left');
    // a job whose worker left is not running any more, whatever BullMQ's lock still says
    for (const entry of this.pending.values()) {
      if (entry.started && entry.worker && !now.has(entry.worker)) {
        this.logger.warn({ job: entry.id, worker: entry.worker }, 'the worker of a running job left; the job runs again once BullMQ sees it stalled');
        entry.started = false;
        entry.worker = undefined;
      }
    }
    this.workers = workers;
    this.knownSteps = [...new Set([...known, ...workers.flatMap((worker) => worker.steps)])].sort((a, b) => a - b);
    for (const steps of this.knownSteps) this.queueFor(steps);
    const provider = workers.some((worker) => worker.provider === 'cuda') || workers.length === 0 ? 'cuda' : 'cpu';
    this.info = { provider, steps: this.knownSteps, modelDir: '(GPU workers)' };
    const signature = JSON.stringify([workers.map((w) => [w.id, w.instance, w.state, w.job, w.steps]), this.knownSteps]);
    if (signature !== this.signature) {
      this.signature = signature;
      this.changed();
    }
  }

  private poll(): void {
    void this.refresh().then(() => {
      this.takeBackOrphans();
      if (++this.polls % RESYNC_EVERY_POLLS === 0) void this.resync();
    });
  }

  /**
   * A job no live worker can run (its steps are nowhere now) is taken back from BullMQ after `orphanMs`, so the
   * service holds it and tells the member; BullMQ keeps a job some worker holds (its lock stands).
   */
  private takeBackOrphans(): void {
    const now = Date.now();
    for (const entry of this.pending.values()) {
      if (entry.settled || entry.started || entry.finishing) continue;
      if (this.workers.some((worker) => worker.steps.includes(entry.steps))) {
        entry.orphanedSince = undefined;
        continue;
      }
      entry.orphanedSince ??= now;
      if (now - entry.orphanedSince < this.config.orphanMs) continue;
      void this.queueFor(entry.steps)
        .queue.remove(entry.id)
        .then((removed) => {
          if (removed !== 1 || entry.settled) return;
          const availability = this.availability(entry.steps);
          const detail = availability.state === 'unavailable' ? availability.detail : 'no worker took it';
          this.logger.warn({ job: entry.id, steps: entry.steps, detail }, 'took a job back from BullMQ: no worker can run it now');
          this.settle(entry, { error: new RemoteEngineError('unavailable', detail) });
        })
        .catch(() => undefined);
    }
  }

  /**
   * Compares each job in flight with what BullMQ holds: after a Redis restart that lost them, jobs are added again;
   * a job that finished while its events were missed is completed or failed from its record.
   */
  private async resync(): Promise<void> {
    for (const entry of [...this.pending.values()]) {
      if (entry.settled || entry.finishing || this.closed) continue;
      try {
        const job = await this.queueFor(entry.steps).queue.getJob(entry.id);
        if (entry.settled || entry.finishing) continue;
        if (!job) {
          this.logger.warn({ job: entry.id, steps: entry.steps }, 'BullMQ no longer has a job in flight (Redis lost it); adding it again');
          entry.started = false;
          entry.worker = undefined;
          await this.add(entry);
          this.changed();
        } else {
          const state = await job.getState();
          if (state === 'completed') await this.complete(entry, parseReturnValue(job.returnvalue));
          else if (state === 'failed') await this.onFailed(entry, job.failedReason);
        }
      } catch (error) {
        this.logger.debug({ job: entry.id, err: { message: asError(error).message } }, 'could not check a job in flight');
      }
    }
  }

  private changed(): void {
    for (const listener of [...this.listeners]) listener();
  }
}

/** Builds the remote engine (nothing connects until `start()`). The caller owns it and calls `close()`. */
export function createRemoteEngine(config: RemoteEngineConfig, deps: { logger: Logger }): RemoteEngine {
  return new RemoteEngine(config, deps);
}

/** `id (host, device, steps 1/2/4, busy)` for logs and messages. */
export function describeWorker(worker: WorkerAnnouncement): string {
  return `${worker.id} (${worker.host}, ${worker.device}, steps ${worker.steps.join('/')}, ${worker.state})`;
}

function parseReturnValue(value: unknown): RemoteJobResult | undefined {
  if (typeof value === 'string') {
    try {
      return JSON.parse(value) as RemoteJobResult;
    } catch {
      return undefined;
    }
  }
  return (value ?? undefined) as RemoteJobResult | undefined;
}

const RETRYABLE_WORKER_CODES = ['crashed', 'closed', 'not_started', 'unavailable', 'timeout'] as const;

function isRetryableCode(code: string): boolean {
  return (RETRYABLE_WORKER_CODES as readonly string[]).includes(code);
}

/** The worker's failure as the error the service expects: the engine's own codes, retryable ones kept retryable. */
function toEngineError(code: string, message: string): Error {
  if (code === 'crashed' || code === 'closed') return new EngineError(code, message);
  if (code === 'not_started' || code === 'unavailable') return new RemoteEngineError('unavailable', message);
  if (code === 'timeout') return new RemoteEngineError('timeout', message);
  const known: readonly EngineErrorCode[] = ['invalid_request', 'model', 'internal'];
  return new EngineError(known.includes(code as EngineErrorCode) ? (code as EngineErrorCode) : 'internal', message);
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
