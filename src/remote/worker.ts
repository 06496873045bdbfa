// A GPU worker: the local engine behind BullMQ workers, one per installed step count, taking one job at a time.

import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { UnrecoverableError, WaitingError, Worker, type Job as BullJob } from 'bullmq';
import { EngineError, type Engine, type EngineInfo } from '../diffusion/index.js';
import type { Logger } from '../logger.js';
import { bullConnection } from './connection-options.js';
import { encodeFailure, KEEP_COMPLETED, KEEP_FAILED, KEY_PREFIX, queueName, type RemoteJobData, type RemoteJobResult, type RemoteProgress, type WorkerAnnouncement } from './protocol.js';
import { createQueueConnection, type QueueConnection } from './redis.js';
import { assertWorkerIdFree, createAnnouncer, type Announcer } from './registry.js';
import { writeResult } from './results.js';

export type RemoteWorkerConfig = {
  redisUrl: string;
  /** The name in logs, the registry, doctor and each job record. */
  workerId: string;
  /**
   * BullMQ's lockDuration (renewed at half of it): a job whose worker stops renewing is moved back to waiting by
   * the next stall check (every `lockMs` too), so another worker runs it within about 2–3 × lockMs.
   */
  lockMs: number;
  heartbeatMs: number;
  /** The GPU, such as `cuda:1`, for the registry (the CPU provider is announced as `cpu`). */
  device?: string;
  connectTimeoutMs?: number;
};

export type RemoteWorkerDeps = {
  /** The engine this worker runs; started by `start()` and closed by `close()`. */
  engine: Pick<Engine, 'start' | 'generate' | 'close' | 'info'>;
  logger: Logger;
};

/**
 * A job may be stalled (its worker killed) this many times and still go back to waiting; one more and it fails.
 * Two allows a job to outlive a worker crash and a second crash elsewhere, not a job that kills every worker.
 */
const MAX_STALLED_COUNT = 2;

export class RemoteWorker {
  readonly id: string;
  private readonly config: RemoteWorkerConfig;
  private readonly engine: RemoteWorkerDeps['engine'];
  private readonly logger: Logger;
  private connection: QueueConnection | undefined;
  private announcer: Announcer | undefined;
  private readonly workers: Worker<RemoteJobData, RemoteJobResult>[] = [];
  private running: string | undefined;
  private closing: Promise<void> | undefined;
  private info: EngineInfo | undefined;

  constructor(config: RemoteWorkerConfig, deps: RemoteWorkerDeps) {
    this.config = config;
    this.id = config.workerId;
    this.engine = deps.engine;
    this.logger = deps.logger.child({ part: 'worker', worker: config.workerId });
  }

  /** Reaches Redis (fails fast when it cannot), loads the model, announces itself and starts taking jobs. */
  async start(): Promise<WorkerAnnouncement> {
    this.connection = createQueueConnection(this.config.redisUrl, `worker-${this.id}`, { logger: this.logger });
    await this.connection.ready(this.config.connectTimeoutMs ?? 10_000);
    // before the model loads, which takes minutes with the real one
    await assertWorkerIdFree(this.connection.redis, { id: this.id, host: hostname() });
    const info = await this.engine.start();
    this.info = info;
    const announcement: Omit<WorkerAnnouncement, 'state' | 'job' | 'lastSeen'> = {
      id: this.id,
      instance: randomUUID(),
      host: hostname(),
      pid: process.pid,
      device: info.provider === 'cuda' ? (this.config.device ?? 'cuda:0') : 'cpu',
      provider: info.provider,
      steps: [...info.steps],
      startedAt: Date.now(),
    };
    this.announcer = createAnnouncer(this.connection.redis, announcement, {
      heartbeatMs: this.config.heartbeatMs,
      onError: (error) => this.logger.debug({ err: { message: (error as Error).message } }, 'heartbeat failed'),
    });
    await this.announcer.start();
    for (const steps of info.steps) {
      const worker: Worker<RemoteJobData, RemoteJobResult> = new Worker<RemoteJobData, RemoteJobResult>(queueName(steps), (job, token) => this.process(worker, job, token), {
        connection: bullConnection(this.config.redisUrl, `worker-${this.id}`),
        prefix: KEY_PREFIX,
        name: this.id,
        concurrency: 1,
        lockDuration: this.config.lockMs,
        stalledInterval: this.config.lockMs,
        maxStalledCount: MAX_STALLED_COUNT,
        removeOnComplete: KEEP_COMPLETED,
        removeOnFail: KEEP_FAILED,
      });
      worker.on('error', (error: Error) => this.logger.debug({ queue: queueName(steps), err: { message: error.message } }, 'BullMQ worker error'));
      this.workers.push(worker);
    }
    this.logger.info({ ...announcement, lockMs: this.config.lockMs }, 'worker ready; taking jobs');
    return { ...announcement, state: 'idle', lastSeen: Date.now() };
  }

  /**
   * One job. The process runs one at a time across its step queues: a job that another queue's BullMQ worker
   * fetched in the same instant goes straight back to the front of its queue for another worker.
   */
  private async process(owner: Worker, job: BullJob<RemoteJobData, RemoteJobResult>, token: string | undefined): Promise<RemoteJobResult> {
    if (this.running || this.closing) {
      await job.moveToWait(token);
      throw new WaitingError();
    }
    const jobId = job.id!;
    this.running = jobId;
    for (const other of this.workers) if (other !== owner) void other.pause(true).catch(() => undefined);
    const started = performance.now();
    const { request } = job.data;
    const log = this.logger.child({ job: job.data.jobId });
    try {
      await this.announcer?.setState('busy', jobId);
      await job.updateProgress({ worker: this.id } satisfies RemoteProgress);
      log.info({ steps: request.steps, images: request.images.length, size: `${request.width}x${request.height}`, attempt: job.attemptsStarted }, 'job started');
      const output = await this.engine.generate(request, (event) => {
        void job.updateProgress({ worker: this.id, ...event } satisfies RemoteProgress).catch(() => undefined);
      });
      const { key, images } = await writeResult(this.connection!.redis, jobId, output.images);
      log.info({ ms: Math.round(performance.now() - started), totalMs: Math.round(output.timings.totalMs) }, 'job done');
      return { resultKey: key, worker: this.id, images, timings: output.timings, truncated: output.truncated, prediction: output.prediction, ...(output.safety ? { safety: output.safety } : {}) };
    } catch (error) {
      const code = error instanceof EngineError ? error.code : 'internal';
      const message = error instanceof Error ? error.message : String(error);
      if (code === 'invalid_request') log.info({ reason: message }, 'job refused');
      else log.error({ err: error, code }, 'job failed');
      // no BullMQ retries: the bot's service decides whether the job runs again
      throw new UnrecoverableError(encodeFailure(code, message));
    } finally {
      this.running = undefined;
      if (!this.closing) for (const other of this.workers) if (other !== owner) other.resume();
      await this.announcer?.setState('idle');
    }
  }

  /** Stops taking jobs, lets the running one finish, leaves the registry and closes the engine. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.all(this.workers.map((worker) => worker.close().catch(() => undefined)));
      await this.announcer?.close();
      await this.engine.close();
      await this.connection?.close();
      this.logger.info('worker stopped');
    })();
    return this.closing;
  }

  /** What the worker runs, once started. */
  get engineInfo(): EngineInfo | undefined {
    return this.info;
  }
}

/** Builds a worker (nothing runs until `start()`); the caller calls `close()`. */
export function createRemoteWorker(config: RemoteWorkerConfig, deps: RemoteWorkerDeps): RemoteWorker {
  return new RemoteWorker(config, deps);
}
