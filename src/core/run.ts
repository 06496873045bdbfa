// The run step: jobs wait in the fair queue and go to the engine as soon as it can take them — one GPU, or many
// workers — in fair order. It tells waiting members where they stand (and plainly when no GPU can take their job),
// re-queues a job the engine lost, and hands made images to the deliver step.

import type { Logger } from '../logger.js';
import type { Deliverer } from './deliver.js';
import { isRetryableEngineError, type GenerationEngine } from './engine-port.js';
import type { Job, JobStore } from './jobs.js';
import type { FairQueue } from './queue.js';
import { ASPECT_SIZES, imageNoise } from './request.js';
import type { StatusUpdate } from './service.js';

export type RunConfig = {
  /** How often a job the engine lost (worker crash, run timeout) is tried; then its owner is told it failed. */
  maxAttempts: number;
  /** A job no connected worker can run is shown as such once it has waited this long (a worker may be joining). */
  noWorkerNoticeMs: number;
};

export const DEFAULT_RUN_CONFIG: RunConfig = { maxAttempts: 2, noWorkerNoticeMs: 10_000 };

export type RunDeps = {
  engine: GenerationEngine;
  store: JobStore;
  queue: FairQueue;
  deliverer: Deliverer;
  logger: Logger;
  now: () => number;
  /** Whether this job's platform is here to hear about it (a job of a platform not configured now stays queued). */
  canReport(job: Job): boolean;
  onStatus(job: Job, update: StatusUpdate): void;
};

export const userKey = (job: Pick<Job, 'platform' | 'userId'>): string => `${job.platform}:${job.userId}`;

type Waiting = { job: Job; shown: string | undefined; queuedAt: number };

const statusKey = (update: StatusUpdate): string => (update.state === 'running' ? 'running' : `${update.state}:${update.position}`);

export class Runner {
  private readonly config: RunConfig;
  private readonly deps: RunDeps;
  private readonly logger: Logger;
  private readonly waiting = new Map<string, Waiting>();
  private readonly active = new Map<string, Promise<void>>();
  private readonly attempts = new Map<string, number>();
  private lastSteps: number | undefined;
  private stopping = false;
  private noticeTimer: NodeJS.Timeout | undefined;
  private readonly unsubscribe: () => void;

  constructor(config: RunConfig, deps: RunDeps) {
    this.config = config;
    this.deps = deps;
    this.logger = deps.logger.child({ part: 'run' });
    this.unsubscribe = deps.engine.onChange(() => {
      this.pump();
      this.broadcast();
    });
  }

  /** Jobs waiting in the queue. */
  get size(): number {
    return this.waiting.size;
  }

  countFor(key: string): number {
    return this.deps.queue.countFor(key);
  }

  /** Puts a recorded job in the fair queue and starts it when the engine can take it. */
  enqueue(job: Job): void {
    this.deps.queue.push({ jobId: job.id, userKey: userKey(job), steps: job.request.steps, images: job.request.count, enqueuedAt: job.createdAt });
    this.waiting.set(job.id, { job, shown: undefined, queuedAt: this.deps.now() });
    this.pump();
    this.broadcast();
  }

  /** A waiting job's place in line: 1 is handed to the engine next; 0 once the engine has it. */
  positionOf(jobId: string): number {
    return this.deps.queue.positions().get(jobId) ?? 0;
  }

  /** Takes a waiting job out of the queue (cancelled); false when it is not waiting. */
  remove(jobId: string): boolean {
    if (!this.deps.queue.remove(jobId)) return false;
    this.waiting.delete(jobId);
    this.broadcast();
    return true;
  }

  /** Stops handing jobs to the engine and waits for the runs under way (or the timeout). */
  async close(timeoutMs: number): Promise<boolean> {
    this.stopping = true;
    this.unsubscribe();
    clearTimeout(this.noticeTimer);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    const done = await Promise.race([Promise.allSettled([...this.active.values()]).then(() => true), timeout]);
    clearTimeout(timer);
    return done;
  }

  get running(): readonly string[] {
    return [...this.active.keys()];
  }

  /** Hands the engine every job it can take now, first in fair order first. */
  pump(): void {
    while (!this.stopping) {
      const next = this.deps.queue.take({ warmSteps: this.lastSteps, runnable: (steps) => this.deps.engine.canTake(steps) });
      if (!next) return;
      const entry = this.waiting.get(next.jobId);
      this.waiting.delete(next.jobId);
      if (!entry) continue;
      const run = this.run(entry.job).finally(() => {
        this.active.delete(entry.job.id);
        this.pump();
        this.broadcast();
      });
      this.active.set(entry.job.id, run);
    }
  }

  /** Tells every waiting job whose status changed: its position, or that no GPU can take it now. */
  broadcast(): void {
    clearTimeout(this.noticeTimer);
    this.noticeTimer = undefined;
    const now = this.deps.now();
    let recheckAt = Infinity;
    for (const [jobId, position] of this.deps.queue.positions()) {
      const entry = this.waiting.get(jobId);
      if (!entry || !this.deps.canReport(entry.job)) continue;
      const availability = this.deps.engine.availability(entry.job.request.steps);
      let update: StatusUpdate = { state: 'queued', position };
      if (availability.state === 'unavailable') {
        const noticeAt = entry.queuedAt + (availability.reason === 'no_worker' ? this.config.noWorkerNoticeMs : 0);
        if (now >= noticeAt) update = { state: 'waiting', position, reason: availability.reason };
        else recheckAt = Math.min(recheckAt, noticeAt);
      }
      const key = statusKey(update);
      if (entry.shown === key) continue;
      if (update.state === 'waiting' && !entry.shown?.startsWith('waiting')) {
        this.logger.warn({ job: jobId, steps: entry.job.request.steps, detail: availability.state === 'unavailable' ? availability.detail : undefined }, 'a queued job waits for a GPU that can run it');
      }
      entry.shown = key;
      this.deps.onStatus(entry.job, update);
    }
    if (recheckAt < Infinity && !this.stopping) {
      this.noticeTimer = setTimeout(() => this.broadcast(), Math.max(0, recheckAt - now));
      this.noticeTimer.unref();
    }
  }

  private async run(job: Job): Promise<void> {
    const { store, engine, deliverer } = this.deps;
    store.markRunning(job.id);
    // handed over is being made: the engine runs it now, or right after the one it runs (committed ahead, not cancellable)
    this.deps.onStatus(job, { state: 'running' });
    const handedAt = this.deps.now();
    let runningAt: number | undefined;
    const { width, height } = ASPECT_SIZES[job.request.aspect];
    try {
      const output = await engine.generate({ prompt: job.request.prompt, steps: job.request.steps, width, height, images: imageNoise(job.request), jobId: job.id }, (event) => {
        runningAt ??= this.deps.now();
        this.deps.onStatus(job, { state: 'running', progress: { stage: event.stage, step: event.step, steps: event.steps } });
      });
      this.attempts.delete(job.id);
      this.lastSteps = job.request.steps;
      this.deps.queue.recordUsage(userKey(job), job.request.count * job.request.steps);
      if (output.worker) this.logger.info({ job: job.id, worker: output.worker }, 'made by a worker');
      deliverer.generated(job, output.images, {
        truncated: output.truncated,
        worker: output.worker,
        safety: output.safety,
        timings: { queuedMs: (runningAt ?? handedAt) - job.createdAt, generateMs: this.deps.now() - (runningAt ?? handedAt), stages: output.timings },
      });
    } catch (error) {
      if (this.stopping && isRetryableEngineError(error)) {
        this.logger.info({ job: job.id }, 'the engine stopped under a job; it runs again at the next start');
        return;
      }
      const code = (error as { code?: string }).code;
      // the engine could not take it after all (restarting): it never ran, so it keeps its tries
      const tries = code === 'unavailable' ? (this.attempts.get(job.id) ?? 0) : (this.attempts.get(job.id) ?? 0) + 1;
      if (isRetryableEngineError(error) && tries < this.config.maxAttempts) {
        this.attempts.set(job.id, tries);
        this.logger.warn({ err: error, job: job.id, tries }, 'the engine lost a job; it is queued again');
        store.markQueued(job.id);
        this.enqueue(job);
        return;
      }
      this.attempts.delete(job.id);
      this.logger.error({ err: error, job: job.id }, 'generation failed');
      deliverer.fail(job, { code: 'generation_failed' }, (error as Error).message);
    }
  }
}
