// The service: imagine, reroll, upscale, vary and cancel — the only thing platforms call. It records jobs, admits
// them through the limits, runs them one at a time from the fair queue and hands results to the job's platform.

import type { Logger } from '../logger.js';
import type { Engine, GenerationOutput } from '../diffusion/index.js';
import { composeGrid, decodeImage, encodeForUpload, imageFileName, type EncodedImage } from '../render/index.js';
import type { ImageCache } from './image-cache.js';
import type { Job, JobKind, JobStore, JobTimings, NewJob } from './jobs.js';
import type { Limits, LimitSubject } from './limits.js';
import { createPolicy, requestRefusal, type Policy } from './policy.js';
import type { FairQueue } from './queue.js';
import type { Refusal } from './refusal.js';
import { ASPECT_SIZES, imageNoise, imageRecipe, randomSeed, type GenerationRequest, type Platform } from './request.js';

/** Who is asking, and where. */
export type Requester = { platform: Platform; userId: string; guildId: string | null; channelId: string; direct?: boolean };

/** How far a running job is: the text encoders, UNet step `step` of `steps`, or the VAE. */
export type JobProgress = { stage: 'text' | 'unet' | 'vae'; step: number; steps: number };

/**
 * What a waiting or running job's status message shows. `waiting`: queued, but no GPU can take it now (the engine is
 * restarting, or no connected worker has its step count); it stays queued and runs when one can.
 */
export type StatusUpdate =
  | { state: 'queued'; position: number }
  | { state: 'waiting'; position: number; reason: 'restarting' | 'no_worker' }
  | { state: 'running'; progress?: JobProgress };

export type ResultDelivery = {
  file: EncodedImage;
  fileName: string;
  /** Seed of each image, in order. */
  seeds: number[];
  /** Size of each image as generated (the file holds a grid of them, or one, possibly scaled to fit the upload). */
  width: number;
  height: number;
  /** Wall time from the request to the finished images. */
  elapsedMs: number;
  truncated: boolean;
  /** Served from the image cache without the GPU. */
  fromCache: boolean;
};

/** What a platform gives the service so it can report on and deliver that platform's jobs, even after a restart. */
export type PlatformAdapter = {
  /** The largest attachment this job's reply may carry. */
  maxUploadBytes(job: Job): number;
  /** The job moved in the queue (position 1 runs next) or started. Called often; throttle edits. */
  onStatus(job: Job, update: StatusUpdate): void;
  /** Posts the result; returns the id of the message that shows it. */
  deliverResult(job: Job, result: ResultDelivery): Promise<string | undefined>;
  deliverFailure(job: Job, refusal: Refusal): Promise<void>;
};

export type ServiceConfig = {
  /** Words refused in prompts (whole words, any case). */
  blockedWords: readonly string[];
  /** Channels where images may be made; empty: every channel. Direct messages are always allowed. */
  allowedChannels: readonly string[];
  variationStrength: number;
  /** How long `close()` waits for the running job and deliveries. */
  stopTimeoutMs?: number;
};

export type ServiceDeps = {
  engine: Pick<Engine, 'generate' | 'info'>;
  store: JobStore;
  limits: Limits;
  queue: FairQueue;
  images: ImageCache;
  logger: Logger;
  now?: () => number;
};

export type Submission = { ok: true; job: Job; position: number } | { ok: false; refusal: Refusal };

const userKey = (platform: Platform, userId: string): string => `${platform}:${userId}`;

export class Service {
  private readonly config: ServiceConfig;
  private readonly deps: ServiceDeps;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly adapters = new Map<Platform, PlatformAdapter>();
  /** Jobs waiting in the queue, by id, with the position each was last told. */
  private readonly waiting = new Map<string, { job: Job; position: number }>();
  private readonly deliveries = new Set<Promise<void>>();
  private running: Promise<void> | undefined;
  private runningJob: Job | undefined;
  private lastSteps: number | undefined;
  private stopping = false;
  private started = false;
  /** Jobs made by this process before `start()`: not left over from a previous run, so never queued again. */
  private readonly takenBeforeStart = new Set<string>();
  private readonly policy: Policy;

  constructor(config: ServiceConfig, deps: ServiceDeps) {
    this.config = config;
    this.deps = deps;
    this.logger = deps.logger.child({ part: 'service' });
    this.now = deps.now ?? Date.now;
    this.policy = createPolicy(config);
  }

  registerPlatform(platform: Platform, adapter: PlatformAdapter): void {
    this.adapters.set(platform, adapter);
  }

  /** Step counts users may choose. */
  get installedSteps(): readonly number[] {
    return this.deps.engine.info?.steps ?? [];
  }

  /**
   * Queues again every job a crash or stop left unfinished (platforms must be registered first). Jobs this process
   * took itself — a platform may take requests before `start()` — are left alone, whatever stage they are in.
   */
  start(): void {
    const left = this.deps.store.unfinished().filter((job) => !this.takenBeforeStart.has(job.id));
    this.takenBeforeStart.clear();
    this.started = true;
    for (const job of left) {
      if (job.status === 'running') this.deps.store.markQueued(job.id);
      this.enqueue({ ...job, status: 'queued' });
    }
    if (left.length > 0) this.logger.info({ jobs: left.map((job) => job.id) }, 'jobs from before the restart are queued again');
    this.pump();
  }

  /** The cheap checks, in memory: stopping, channel policy and the word list. Platforms call it before their ack. */
  precheck(requester: Requester, prompt?: string): Refusal | undefined {
    if (this.stopping) return { code: 'shutting_down' };
    return requestRefusal(this.policy, requester, prompt);
  }

  imagine(requester: Requester, request: GenerationRequest, reply: Record<string, unknown>): Promise<Submission> {
    return this.submit(requester, 'imagine', request, null, reply);
  }

  /** The same prompt and settings with a new seed. */
  async reroll(requester: Requester, parentId: string, reply: Record<string, unknown>): Promise<Submission> {
    const parent = this.parentFor(requester, parentId);
    if ('code' in parent) return { ok: false, refusal: parent };
    const { variation: _variation, ...request } = parent.request;
    return this.submit(requester, 'reroll', { ...request, seed: randomSeed() }, parent, reply);
  }

  /** Image `index` alone at full size: from the cache when it is there, else made again from its seed. */
  async upscale(requester: Requester, parentId: string, index: number, reply: Record<string, unknown>): Promise<Submission> {
    const parent = this.parentFor(requester, parentId, index);
    if ('code' in parent) return { ok: false, refusal: parent };
    const request: GenerationRequest = { ...parent.request, count: 1, seed: parent.request.seed + index };
    const cached = await this.deps.images.get(parent.id, index).catch(() => undefined);
    if (!cached) return this.submit(requester, 'upscale', request, parent, reply, index);
    const refusal = this.precheck(requester);
    if (refusal) return { ok: false, refusal };
    const job = this.record({ ...this.newJob(requester, 'upscale', request, parent, reply), parentIndex: index });
    const started = this.now();
    const adapter = this.adapterFor(job);
    const { width, height } = ASPECT_SIZES[request.aspect];
    this.track(
      (async () => {
        const file: EncodedImage = { data: cached, format: 'png', contentType: 'image/png', extension: 'png', width, height };
        const maxBytes = adapter.maxUploadBytes(job);
        const fitted = cached.length <= maxBytes ? file : await encodeForUpload(await decodeImage(cached), maxBytes);
        await this.deliver(job, adapter, { file: fitted, seeds: [request.seed], elapsedMs: this.now() - started, truncated: false, fromCache: true });
      })(),
    );
    return { ok: true, job, position: 0 };
  }

  /** Variations of image `index`: its noise slerped toward new seeds. */
  async vary(requester: Requester, parentId: string, index: number, reply: Record<string, unknown>): Promise<Submission> {
    const parent = this.parentFor(requester, parentId, index);
    if ('code' in parent) return { ok: false, refusal: parent };
    const recipe = imageRecipe(parent.request, index);
    const request: GenerationRequest = {
      ...parent.request,
      seed: randomSeed(),
      variation: { parentSeed: recipe.seed, parentSteps: recipe.variations ?? [], strength: this.config.variationStrength },
    };
    return this.submit(requester, 'vary', request, parent, reply, index);
  }

  /** Cancels a waiting job; only its owner may. */
  cancel(requester: Requester, jobId: string): { ok: true } | { ok: false; refusal: Refusal } {
    const job = this.deps.store.get(jobId);
    if (!job || job.platform !== requester.platform) return { ok: false, refusal: { code: 'unknown_job' } };
    if (job.userId !== requester.userId) return { ok: false, refusal: { code: 'not_owner' } };
    if (job.status !== 'queued' || !this.deps.queue.remove(jobId)) return { ok: false, refusal: { code: 'not_cancellable' } };
    this.waiting.delete(jobId);
    this.deps.store.markCancelled(jobId);
    void this.deps.limits.refund(this.subject(job)).catch((error: unknown) => this.logger.warn({ err: error, job: jobId }, 'refund failed'));
    this.broadcastPositions();
    return { ok: true };
  }

  job(id: string): Job | undefined {
    return this.deps.store.get(id);
  }

  /**
   * Stops taking work (new requests get a polite refusal), lets the running job and its delivery finish within the
   * stop timeout, and leaves waiting jobs in the store for the next start.
   */
  async close(): Promise<void> {
    this.stopping = true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.config.stopTimeoutMs ?? 60_000);
    });
    // the running job hands its delivery over when the engine is done, so wait for one, then the other
    const finished = (async () => {
      await this.running;
      while (this.deliveries.size > 0) await Promise.allSettled([...this.deliveries]);
      return 'done' as const;
    })();
    const outcome = await Promise.race([finished, timeout]);
    clearTimeout(timer);
    if (outcome === 'timeout') this.logger.warn({ running: this.runningJob?.id }, 'stopped before the running job finished; it runs again at the next start');
    this.logger.info({ waiting: this.deps.queue.size }, 'service stopped; waiting jobs stay queued for the next start');
  }

  private parentFor(requester: Requester, parentId: string, index?: number): Job | Refusal {
    const parent = this.deps.store.get(parentId);
    if (!parent || parent.platform !== requester.platform) return { code: 'unknown_job' };
    if (parent.guildId !== requester.guildId) return { code: 'foreign_job' };
    if (index !== undefined && (!Number.isInteger(index) || index < 0 || index >= parent.request.count)) return { code: 'unknown_job' };
    return parent;
  }

  private newJob(requester: Requester, kind: JobKind, request: GenerationRequest, parent: Job | null, reply: Record<string, unknown>) {
    return {
      kind,
      platform: requester.platform,
      guildId: requester.guildId,
      channelId: requester.channelId,
      userId: requester.userId,
      request,
      parentId: parent?.id ?? null,
      parentIndex: null,
      reply,
    };
  }

  private subject(job: Pick<Job, 'platform' | 'userId' | 'guildId' | 'request'>): LimitSubject {
    return {
      userKey: userKey(job.platform, job.userId),
      guildKey: job.guildId === null ? null : `${job.platform}:${job.guildId}`,
      images: job.request.count,
    };
  }

  private async submit(
    requester: Requester,
    kind: JobKind,
    request: GenerationRequest,
    parent: Job | null,
    reply: Record<string, unknown>,
    parentIndex: number | null = null,
  ): Promise<Submission> {
    const refusal = this.precheck(requester, request.prompt);
    if (refusal) return { ok: false, refusal };
    if (!this.installedSteps.includes(request.steps)) {
      return { ok: false, refusal: { code: 'steps_unavailable', steps: request.steps, installed: this.installedSteps } };
    }
    const subject = this.subject({ ...requester, request });
    const admission = await this.deps.limits.admit(subject, {
      waitingForUser: this.deps.queue.countFor(subject.userKey),
      waitingTotal: this.deps.queue.size,
    });
    if (!admission.ok) return { ok: false, refusal: admission.refusal };
    let job: Job;
    try {
      job = this.record({ ...this.newJob(requester, kind, request, parent, reply), parentIndex });
    } catch (error) {
      this.logger.error({ err: error }, 'could not record a job');
      await this.deps.limits.refund(subject).catch(() => undefined);
      return { ok: false, refusal: { code: 'generation_failed' } };
    }
    this.enqueue(job);
    this.pump();
    return { ok: true, job, position: this.waiting.get(job.id)?.position ?? 0 };
  }

  private record(job: NewJob): Job {
    const created = this.deps.store.create(job);
    if (!this.started) this.takenBeforeStart.add(created.id);
    return created;
  }

  private enqueue(job: Job): void {
    this.deps.queue.push({ jobId: job.id, userKey: userKey(job.platform, job.userId), steps: job.request.steps, images: job.request.count, enqueuedAt: job.createdAt });
    this.waiting.set(job.id, { job, position: 0 });
    this.broadcastPositions();
  }

  /** Tells every waiting job whose place changed. */
  private broadcastPositions(): void {
    for (const [jobId, position] of this.deps.queue.positions()) {
      const entry = this.waiting.get(jobId);
      if (!entry || entry.position === position) continue;
      entry.position = position;
      this.adapters.get(entry.job.platform)?.onStatus(entry.job, { state: 'queued', position });
    }
  }

  private adapterFor(job: Job): PlatformAdapter {
    const adapter = this.adapters.get(job.platform);
    if (!adapter) throw new Error(`no ${job.platform} adapter is registered`);
    return adapter;
  }

  /** Starts the next job when the engine is free. */
  private pump(): void {
    if (this.running || this.stopping) return;
    for (;;) {
      const next = this.deps.queue.take({ warmSteps: this.lastSteps });
      if (!next) return;
      const entry = this.waiting.get(next.jobId);
      this.waiting.delete(next.jobId);
      if (!entry || !this.adapters.has(entry.job.platform)) {
        this.logger.warn({ job: next.jobId }, 'a queued job has no platform to deliver to; it stays queued in the store for a start with that platform');
        continue;
      }
      this.runningJob = entry.job;
      this.running = this.run(entry.job).finally(() => {
        this.running = undefined;
        this.runningJob = undefined;
        this.pump();
      });
      this.broadcastPositions();
      return;
    }
  }

  /** Runs one job on the engine; encoding and delivery go on after the engine is handed the next job. */
  private async run(job: Job): Promise<void> {
    const adapter = this.adapterFor(job);
    this.deps.store.markRunning(job.id);
    adapter.onStatus(job, { state: 'running' });
    const started = this.now();
    const { width, height } = ASPECT_SIZES[job.request.aspect];
    let output: GenerationOutput;
    try {
      output = await this.deps.engine.generate({ prompt: job.request.prompt, steps: job.request.steps, width, height, images: imageNoise(job.request) });
    } catch (error) {
      this.logger.error({ err: error, job: job.id }, 'generation failed');
      this.deps.store.markFailed(job.id, (error as Error).message);
      await this.deps.limits.refund(this.subject(job)).catch(() => undefined);
      this.track(adapter.deliverFailure(job, { code: 'generation_failed' }).catch((failure: unknown) => this.logger.error({ err: failure, job: job.id }, 'could not report a failure')));
      return;
    }
    this.lastSteps = job.request.steps;
    this.deps.queue.recordUsage(userKey(job.platform, job.userId), job.request.count * job.request.steps);
    const generateMs = this.now() - started;
    this.track(
      (async () => {
        // let run() return first, so the engine gets the next job before the grid is composed on this thread
        await new Promise((resolve) => setImmediate(resolve));
        const image = output.images.length === 1 ? output.images[0] : composeGrid(output.images);
        const file = await encodeForUpload(image, adapter.maxUploadBytes(job));
        const seeds = imageNoise(job.request).map((_, i) => job.request.seed + i);
        await this.deliver(job, adapter, { file, seeds, elapsedMs: this.now() - job.createdAt, truncated: output.truncated, fromCache: false }, {
          queuedMs: started - job.createdAt,
          generateMs,
          stages: output.timings,
        });
        for (const [index, single] of output.images.entries()) {
          await this.deps.images.put(job.id, index, single).catch((error: unknown) => this.logger.warn({ err: error, job: job.id }, 'could not cache an image'));
        }
      })(),
    );
  }

  private async deliver(
    job: Job,
    adapter: PlatformAdapter,
    result: Omit<ResultDelivery, 'fileName' | 'width' | 'height'>,
    timings: JobTimings = { queuedMs: 0, generateMs: 0 },
  ): Promise<void> {
    try {
      const messageId = await adapter.deliverResult(job, {
        ...result,
        ...ASPECT_SIZES[job.request.aspect],
        fileName: imageFileName(job.id, result.file.extension),
      });
      if (messageId) this.deps.store.setResultMessage(job.id, messageId);
      this.deps.store.markDone(job.id, timings);
    } catch (error) {
      this.logger.error({ err: error, job: job.id }, 'could not deliver a result');
      this.deps.store.markFailed(job.id, `delivery failed: ${(error as Error).message}`);
    }
  }

  private track(work: Promise<void>): void {
    const tracked = work.catch((error: unknown) => this.logger.error({ err: error }, 'background work failed')).finally(() => this.deliveries.delete(tracked));
    this.deliveries.add(tracked);
  }
}

/** Builds the service; the caller registers platforms, calls `start()`, and `close()` at the end. */
export function createService(config: ServiceConfig, deps: ServiceDeps): Service {
  return new Service(config, deps);
}
