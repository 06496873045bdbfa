// The service: imagine, reroll, upscale, vary and cancel — the only thing platforms call. It checks, admits and
// records jobs (submit), runs them from the fair queue on the engine (run.ts) and posts their results (deliver.ts).

import type { Logger } from '../logger.js';
import { cacheKey, DEFAULT_DELIVERY_RETRY, Deliverer, type DeliveryRetry, type DeliveryTarget } from './deliver.js';
import type { GenerationEngine } from './engine-port.js';
import type { ImageCache } from './image-cache.js';
import type { Job, JobKind, JobStore } from './jobs.js';
import type { Limits, LimitSubject } from './limits.js';
import { createPolicy, requestRefusal, type Policy } from './policy.js';
import type { FairQueue } from './queue.js';
import type { Refusal } from './refusal.js';
import { imageRecipe, randomSeed, type GenerationRequest, type Platform } from './request.js';
import type { SafetyMode } from './safety-policy.js';
import type { ServerKey, ServerSettings, SettingsChange, SettingsStore } from './settings.js';
import { DEFAULT_RUN_CONFIG, Runner, userKey, type RunConfig } from './run.js';

export type { ResultDelivery } from './deliver.js';

/** Who is asking, and where. */
export type Requester = {
  platform: Platform;
  userId: string;
  guildId: string | null;
  channelId: string;
  direct?: boolean;
  /** A Discord channel marked age-restricted, where flagged images are posted as they are. */
  nsfwChannel?: boolean;
};

/** The server a requester or job belongs to, for its settings; none in a Discord DM. */
export function serverOf(where: { platform: Platform; guildId: string | null }): ServerKey | undefined {
  return where.guildId === null ? undefined : { platform: where.platform, guildId: where.guildId };
}

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

/** What a platform gives the service so it can report on and deliver that platform's jobs, even after a restart. */
export type PlatformAdapter = DeliveryTarget & {
  /** The job moved in the queue (position 1 runs next), waits for a GPU, started, or made progress. Called often; throttle edits. */
  onStatus(job: Job, update: StatusUpdate): void;
};

export type ServiceConfig = {
  /** Words refused in prompts (whole words, any case). */
  blockedWords: readonly string[];
  /** Channels where images may be made; empty: every channel. Direct messages are always allowed. */
  allowedChannels: readonly string[];
  variationStrength: number;
  /** How long `close()` waits for the running jobs and their deliveries. */
  stopTimeoutMs?: number;
  /** How long a platform that cannot be reached is tried again before the member is told. */
  deliveryRetry?: Partial<DeliveryRetry>;
  /** Tries for a job the engine lost, and when members hear that no worker can run their job. */
  run?: Partial<RunConfig>;
  /** The image safety check (SAFETY=on): the default mode for servers that set none, and whether DMs get flagged images. */
  safety?: { enabled: boolean; mode: SafetyMode; dmAllowed: boolean };
};

export type ServiceDeps = {
  engine: GenerationEngine;
  store: JobStore;
  limits: Limits;
  queue: FairQueue;
  images: ImageCache;
  logger: Logger;
  now?: () => number;
  /** Per-server settings (word list, channels, safety mode); without it every server uses the config's. */
  settings?: SettingsStore;
};

export type Submission = { ok: true; job: Job; position: number } | { ok: false; refusal: Refusal };

/** The image a U job makes, as `grid:index`: U jobs of the same image share it. */
const upscaleKey = (job: Job): string => cacheKey(job, 0).join(':');

/** Finished jobs whose reply data is cleaned of secrets per start (older ones are cleaned as they finish). */
const PRUNE_BATCH = 5_000;

/**
 * The service. Each step has one owner, so every job ends delivered or its owner told:
 * - submit (here): the cheap checks, atomic admission through the limits, the record in the store, the queue;
 * - run (`Runner`): fair order onto the engine, positions and waits shown, lost jobs queued again;
 * - deliver (`Deliverer`): cache, encode, post with retries for minutes, or tell the member.
 */
export class Service {
  private readonly config: ServiceConfig;
  private readonly deps: ServiceDeps;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly adapters = new Map<Platform, PlatformAdapter>();
  private readonly policy: Policy;
  private readonly runner: Runner;
  private readonly deliverer: Deliverer;
  /** Admissions under way: counted as waiting, so concurrent requests cannot overrun the queue caps. */
  private readonly admitting = new Map<string, number>();
  private admittingTotal = 0;
  /** U jobs being made, by the image they make (`parent:index`), with the U clicks of the same image that wait on them. */
  private readonly upscales = new Map<string, { leader: string; followers: Job[] }>();
  private stopping = false;
  private started = false;
  /** Jobs made by this process before `start()`: not left over from a previous run, so never queued again. */
  private readonly takenBeforeStart = new Set<string>();

  constructor(config: ServiceConfig, deps: ServiceDeps) {
    this.config = config;
    this.deps = deps;
    this.logger = deps.logger.child({ part: 'service' });
    this.now = deps.now ?? Date.now;
    this.policy = createPolicy(config);
    this.deliverer = new Deliverer(
      { ...DEFAULT_DELIVERY_RETRY, ...config.deliveryRetry },
      {
        store: deps.store,
        images: deps.images,
        logger: deps.logger,
        now: this.now,
        target: (job) => this.adapters.get(job.platform),
        refund: (job) => this.refund(job),
        onCached: (job, cached) => this.settleUpscale(job, cached),
        onFailed: (job) => this.settleUpscale(job, false),
        ...(config.safety?.enabled ? { safety: (job: Job) => this.safetyRule(job) } : {}),
      },
    );
    this.runner = new Runner(
      { ...DEFAULT_RUN_CONFIG, ...config.run },
      {
        engine: deps.engine,
        store: deps.store,
        queue: deps.queue,
        deliverer: this.deliverer,
        logger: deps.logger,
        now: this.now,
        canReport: (job) => this.adapters.has(job.platform),
        onStatus: (job, update) => this.adapters.get(job.platform)?.onStatus(job, update),
      },
    );
  }

  registerPlatform(platform: Platform, adapter: PlatformAdapter): void {
    this.adapters.set(platform, adapter);
  }

  /** Step counts users may choose. */
  get installedSteps(): readonly number[] {
    return this.deps.engine.info?.steps ?? [];
  }

  /**
   * Picks up what a crash or stop left unfinished (platforms must be registered first): made but not posted →
   * posted from the image cache (or made again when the cache lost it); queued or running → queued again. Jobs
   * this process took itself (a platform may take requests before `start()`) are left alone.
   */
  start(): void {
    const left = this.deps.store.unfinished().filter((job) => !this.takenBeforeStart.has(job.id));
    this.takenBeforeStart.clear();
    this.started = true;
    if (left.length > 0) this.logger.info({ jobs: left.map((job) => job.id) }, 'picking up jobs from before the restart');
    for (const job of left) void this.resume(job);
    this.pruneFinished();
  }

  private async resume(job: Job): Promise<void> {
    if (!this.adapters.has(job.platform)) {
      this.logger.warn({ job: job.id, platform: job.platform }, 'a job from before the restart has no platform here; it stays in the store for a start with that platform');
      return;
    }
    if (job.status === 'delivering') {
      const pngs = await Promise.all(Array.from({ length: job.request.count }, (_, i) => this.deps.images.get(...cacheKey(job, i)).catch(() => undefined)));
      if (pngs.every((png): png is Buffer => png !== undefined)) {
        this.deliverer.fromCache(job, pngs, { fromCache: false });
        return;
      }
      this.logger.info({ job: job.id }, 'the images of a job made before the restart are gone from the cache; making them again from their seeds');
    }
    if (job.status !== 'queued') this.deps.store.markQueued(job.id);
    const queued = { ...job, status: 'queued' as const };
    if (job.kind === 'upscale') await this.makeUpscale(queued);
    else this.runner.enqueue(queued);
  }

  /** Drops platform secrets (interaction tokens, response URLs) that finished jobs still keep. */
  private pruneFinished(): void {
    try {
      let pruned = 0;
      for (const job of this.deps.store.unpruned(PRUNE_BATCH)) {
        const adapter = this.adapters.get(job.platform);
        if (!adapter) continue;
        this.deps.store.pruneReply(job.id, adapter.forgetReply ? adapter.forgetReply(job) : job.reply);
        pruned++;
      }
      if (pruned > 0) this.logger.info({ jobs: pruned }, 'dropped the reply tokens of finished jobs');
    } catch (error) {
      this.logger.warn({ err: error }, 'could not drop the reply tokens of finished jobs');
    }
  }

  /**
   * The checks that need no I/O — stopping, channel policy and the word list, the server's own included (the
   * settings are held in memory) — for a platform to run before its ack.
   */
  precheck(requester: Requester, prompt?: string): Refusal | undefined {
    if (this.stopping) return { code: 'shutting_down' };
    const policy = this.deps.settings ? this.deps.settings.settings(serverOf(requester)).policy : this.policy;
    return requestRefusal(policy, requester, prompt);
  }

  /** The safety rule for a job's server: its own mode, else the default. */
  private safetyRule(job: Job): { mode: SafetyMode; dmAllowed: boolean } {
    const safety = this.config.safety!;
    return { mode: this.deps.settings?.settings(serverOf(job)).safetyMode ?? safety.mode, dmAllowed: safety.dmAllowed };
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

  /**
   * Image `index` alone at full size, through the same checks and limits as any request: from the cache when it is
   * there, else made again from its seed — once, however many clicks of the same U come while it is being made.
   */
  async upscale(requester: Requester, parentId: string, clickedIndex: number, reply: Record<string, unknown>): Promise<Submission> {
    const clicked = this.parentFor(requester, parentId, clickedIndex);
    if ('code' in clicked) return { ok: false, refusal: clicked };
    // U on a U result is the same image of the same grid: link the job to the grid, so one cached copy serves both
    const grid = clicked.kind === 'upscale' && clicked.parentId !== null ? this.deps.store.get(clicked.parentId) : undefined;
    const [parent, index] = grid && clicked.parentIndex !== null ? [grid, clicked.parentIndex] : [clicked, clickedIndex];
    const request: GenerationRequest = { ...parent.request, count: 1, seed: parent.request.seed + index };
    // `parent` is a grid here, so image `index` of it is cached under its own id
    const cached = this.upscales.has(`${parent.id}:${index}`) || this.deps.images.has(parent.id, index);
    const submission = await this.submit(requester, 'upscale', request, parent, reply, index, { needsEngine: !cached, enqueue: false });
    if (submission.ok) await this.makeUpscale(submission.job);
    return submission;
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
    if (job.status !== 'queued' || !(this.runner.remove(jobId) || this.dropFollower(jobId))) return { ok: false, refusal: { code: 'not_cancellable' } };
    this.deps.store.markCancelled(jobId);
    this.refund(job);
    const adapter = this.adapters.get(job.platform);
    if (adapter?.forgetReply) this.deps.store.pruneReply(jobId, adapter.forgetReply(job));
    if (job.kind === 'upscale') this.settleUpscale(job, false);
    return { ok: true };
  }

  job(id: string): Job | undefined {
    return this.deps.store.get(id);
  }

  /**
   * /imagine-settings: the settings in force for the requester's server, after `change` when given (the platform
   * has checked that the requester is one of its admins). Applies at once; logged with who changed what.
   */
  serverSettings(requester: Requester, change?: SettingsChange): { ok: true; settings: ServerSettings; changed: readonly string[] } | { ok: false; refusal: Refusal } {
    const server = serverOf(requester);
    if (!server || requester.direct) return { ok: false, refusal: { code: 'no_server' } };
    const settings = this.deps.settings;
    if (!settings) return { ok: false, refusal: { code: 'generation_failed' } };
    if (!change) return { ok: true, settings: settings.settings(server), changed: [] };
    return settings.change(server, requester.userId, change);
  }

  /**
   * Stops taking work (new requests get a polite refusal) and stops retrying posts, lets the running jobs and their
   * first post finish within the stop timeout, and leaves the rest in the store for the next start.
   */
  async close(): Promise<void> {
    this.stopping = true;
    this.deliverer.stop();
    const deadline = this.now() + (this.config.stopTimeoutMs ?? 60_000);
    const ran = await this.runner.close(deadline - this.now());
    const delivered = await this.deliverer.close(Math.max(0, deadline - this.now()));
    if (!ran) this.logger.warn({ running: this.runner.running }, 'stopped before the running jobs finished; they run again at the next start');
    if (ran && !delivered) this.logger.warn('stopped before every result was posted; they are posted at the next start');
    this.logger.info({ waiting: this.deps.queue.size }, 'service stopped; waiting jobs stay queued for the next start');
  }

  private parentFor(requester: Requester, parentId: string, index?: number): Job | Refusal {
    const parent = this.deps.store.get(parentId);
    if (!parent || parent.platform !== requester.platform) return { code: 'unknown_job' };
    if (parent.guildId !== requester.guildId) return { code: 'foreign_job' };
    if (index !== undefined && (!Number.isInteger(index) || index < 0 || index >= parent.request.count)) return { code: 'unknown_job' };
    return parent;
  }

  private subject(job: Pick<Job, 'platform' | 'userId' | 'guildId' | 'request'>): LimitSubject {
    const server = serverOf(job);
    return {
      userKey: userKey(job),
      guildKey: job.guildId === null ? null : `${job.platform}:${job.guildId}`,
      images: job.request.count,
      // the server's own daily quota, when its admins set one
      ...(server && this.deps.settings ? { dailyQuota: this.deps.settings.settings(server).dailyQuota } : {}),
    };
  }

  private refund(job: Job): void {
    void this.deps.limits.refund(this.subject(job)).catch((error: unknown) => this.logger.warn({ err: error, job: job.id }, 'refund failed'));
  }

  /**
   * Checks, admits and records a job, then queues it (unless the caller places it itself). Admission is atomic:
   * requests under admission count as waiting, so concurrent ones cannot overrun the per-user and total caps.
   */
  private async submit(
    requester: Requester,
    kind: JobKind,
    request: GenerationRequest,
    parent: Job | null,
    reply: Record<string, unknown>,
    parentIndex: number | null = null,
    options: { needsEngine?: boolean; enqueue?: boolean } = {},
  ): Promise<Submission> {
    const refusal = this.precheck(requester, request.prompt);
    if (refusal) return { ok: false, refusal };
    if (options.needsEngine !== false && !this.installedSteps.includes(request.steps)) {
      return { ok: false, refusal: { code: 'steps_unavailable', steps: request.steps, installed: this.installedSteps } };
    }
    const subject = this.subject({ ...requester, request });
    const waiting = {
      waitingForUser: this.runner.countFor(subject.userKey) + (this.admitting.get(subject.userKey) ?? 0),
      waitingTotal: this.deps.queue.size + this.admittingTotal,
    };
    this.admitting.set(subject.userKey, (this.admitting.get(subject.userKey) ?? 0) + 1);
    this.admittingTotal++;
    try {
      const admission = await this.deps.limits.admit(subject, waiting);
      if (!admission.ok) return { ok: false, refusal: admission.refusal };
      if (this.stopping) {
        await this.deps.limits.refund(subject).catch(() => undefined);
        return { ok: false, refusal: { code: 'shutting_down' } };
      }
      let job: Job;
      try {
        job = this.deps.store.create({ kind, platform: requester.platform, guildId: requester.guildId, channelId: requester.channelId, userId: requester.userId, nsfwChannel: requester.nsfwChannel === true, request, parentId: parent?.id ?? null, parentIndex, reply });
        if (!this.started) this.takenBeforeStart.add(job.id);
      } catch (error) {
        this.logger.error({ err: error }, 'could not record a job');
        await this.deps.limits.refund(subject).catch(() => undefined);
        return { ok: false, refusal: { code: 'generation_failed' } };
      }
      if (options.enqueue !== false) this.runner.enqueue(job);
      return { ok: true, job, position: this.runner.positionOf(job.id) };
    } finally {
      // released only now, with the job queued: nothing else ran between the count and the queue
      const left = (this.admitting.get(subject.userKey) ?? 1) - 1;
      if (left > 0) this.admitting.set(subject.userKey, left);
      else this.admitting.delete(subject.userKey);
      this.admittingTotal--;
    }
  }

  /** A recorded U job: from the cache, else joined to the U of the same image under way, else made on the engine. */
  private async makeUpscale(job: Job): Promise<void> {
    const [imageOf, imageIndex] = cacheKey(job, 0);
    const key = upscaleKey(job);
    const making = this.upscales.get(key);
    if (making && making.leader !== job.id) {
      making.followers.push(job);
      return;
    }
    const cached = await this.deps.images.get(imageOf, imageIndex).catch(() => undefined);
    if (cached) {
      this.deliverer.fromCache(job, [cached], { fromCache: true });
      return;
    }
    const joined = this.upscales.get(key);
    if (joined) {
      joined.followers.push(job);
      return;
    }
    this.upscales.set(key, { leader: job.id, followers: [] });
    this.runner.enqueue(job);
  }

  /** A U job's image is cached (its followers are posted from there), or it failed (they are made on their own). */
  private settleUpscale(job: Job, cached: boolean): void {
    if (job.kind !== 'upscale') return;
    const key = upscaleKey(job);
    const making = this.upscales.get(key);
    if (!making || making.leader !== job.id) return;
    this.upscales.delete(key);
    for (const follower of making.followers) void this.makeUpscale(follower);
    if (!cached && making.followers.length > 0) this.logger.info({ job: job.id, waiting: making.followers.map((f) => f.id) }, 'a U job did not leave its image in the cache; the clicks that waited on it are made on their own');
  }

  private dropFollower(jobId: string): boolean {
    for (const making of this.upscales.values()) {
      const at = making.followers.findIndex((job) => job.id === jobId);
      if (at >= 0) {
        making.followers.splice(at, 1);
        return true;
      }
    }
    return false;
  }
}

/** Builds the service; the caller registers platforms, calls `start()`, and `close()` at the end. */
export function createService(config: ServiceConfig, deps: ServiceDeps): Service {
  return new Service(config, deps);
}
