// The service's submit, run and deliver steps under faults, with an engine stand-in whose capacity, availability and
// failures each test sets: every job ends delivered once or its owner told once.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { DeliveryError } from '../../../src/core/delivery-error.js';
import type { EngineAvailability, EngineOutput, EngineRequest, GenerationEngine } from '../../../src/core/engine-port.js';
import { ImageCache } from '../../../src/core/image-cache.js';
import { JobStore, type Job } from '../../../src/core/jobs.js';
import { createLimits, type LimitsConfig } from '../../../src/core/limits.js';
import { createFairQueue } from '../../../src/core/queue.js';
import type { Refusal } from '../../../src/core/refusal.js';
import type { GenerationRequest } from '../../../src/core/request.js';
import { createService, type PlatformAdapter, type Requester, type ResultDelivery, type ServiceConfig, type StatusUpdate } from '../../../src/core/service.js';
import { EngineError, type EngineInfo, type ProgressEvent } from '../../../src/diffusion/index.js';
import { createLogger } from '../../../src/logger.js';

const root = mkdtempSync(join(tmpdir(), 'service-steps-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const logger = createLogger({ level: 'silent' });
const alice: Requester = { platform: 'discord', userId: 'alice', guildId: 'g1', channelId: 'c1' };
const bob: Requester = { platform: 'discord', userId: 'bob', guildId: 'g1', channelId: 'c1' };
const request = (overrides: Partial<GenerationRequest> = {}): GenerationRequest => ({ prompt: 'a lighthouse', steps: 2, seed: 7, aspect: '1:1', count: 2, ...overrides });
const LIMITS: LimitsConfig = { userBurst: 100, userRefillMs: 1_000, maxQueuedPerUser: 20, guildDailyImages: null, maxQueueLength: 100, exemptUsers: [], bannedUsers: [] };

/** An engine stand-in: `slots` jobs at once, steps it has, availability and per-call behaviour set by the test. */
class StandInEngine implements GenerationEngine {
  info: EngineInfo | undefined = { provider: 'cpu', steps: [2, 4], modelDir: '(stand-in)' };
  slots = 1;
  /** Steps some free runner can take now (all installed ones by default). */
  takes: (steps: number) => boolean = () => true;
  state: EngineAvailability = { state: 'ready' };
  readonly calls: EngineRequest[] = [];
  busy = 0;
  maxBusy = 0;
  /** Each call takes the next behaviour; none left: images after `delayMs`. */
  readonly behaviours: ((request: EngineRequest) => Promise<EngineOutput>)[] = [];
  delayMs = 5;
  private readonly listeners = new Set<() => void>();

  canTake(steps: number): boolean {
    return this.state.state === 'ready' && Boolean(this.info?.steps.includes(steps)) && this.takes(steps) && this.busy < this.slots;
  }
  availability(): EngineAvailability {
    return this.state;
  }
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  changed(): void {
    for (const listener of this.listeners) listener();
  }
  async generate(request: EngineRequest, onProgress?: (event: ProgressEvent) => void): Promise<EngineOutput> {
    this.calls.push(request);
    this.busy++;
    this.maxBusy = Math.max(this.maxBusy, this.busy);
    try {
      const behaviour = this.behaviours.shift();
      if (behaviour) return await behaviour(request);
      onProgress?.({ stage: 'text', step: 0, steps: request.steps });
      await new Promise((resolve) => setTimeout(resolve, this.delayMs));
      for (let step = 1; step <= request.steps; step++) onProgress?.({ stage: 'unet', step, steps: request.steps });
      return made(request);
    } finally {
      this.busy--;
      this.changed();
    }
  }
}

/** Small images whose pixels say which seed made them. */
function made(request: EngineRequest): EngineOutput {
  return {
    images: request.images.map((noise) => ({ width: 8, height: 8, data: new Uint8Array(8 * 8 * 3).fill(noise.seed % 256) })),
    timings: {} as EngineOutput['timings'],
    truncated: false,
    prediction: 'epsilon',
  };
}

type Post = { jobId: string; result?: ResultDelivery; refusal?: Refusal; at: number };

/** A platform whose posts fail as the test says, recording every attempt and what landed. */
class ScriptedPlatform implements PlatformAdapter {
  readonly statuses: { jobId: string; update: StatusUpdate }[] = [];
  readonly attempts: Post[] = [];
  readonly landed: Post[] = [];
  /** Errors thrown by the next result posts, in order. */
  readonly resultErrors: Error[] = [];
  readonly failureErrors: Error[] = [];
  maxBytes = 10 * 2 ** 20;
  forgotten: string[] = [];
  maxUploadBytes(): number {
    return this.maxBytes;
  }
  onStatus(job: Job, update: StatusUpdate): void {
    this.statuses.push({ jobId: job.id, update });
  }
  async deliverResult(job: Job, result: ResultDelivery): Promise<string> {
    this.attempts.push({ jobId: job.id, result, at: Date.now() });
    const error = this.resultErrors.shift();
    if (error) throw error;
    this.landed.push({ jobId: job.id, result, at: Date.now() });
    return `message-${job.id}`;
  }
  async deliverFailure(job: Job, refusal: Refusal): Promise<void> {
    this.attempts.push({ jobId: job.id, refusal, at: Date.now() });
    const error = this.failureErrors.shift();
    if (error) throw error;
    this.landed.push({ jobId: job.id, refusal, at: Date.now() });
  }
  forgetReply(job: Job): Record<string, unknown> {
    this.forgotten.push(job.id);
    const { token: _token, ...rest } = job.reply;
    return rest;
  }
  /** What landed for a job, once it has. */
  async outcome(jobId: string, timeoutMs = 5_000): Promise<Post[]> {
    await vi.waitFor(() => expect(this.landed.some((post) => post.jobId === jobId)).toBe(true), { timeout: timeoutMs, interval: 5 });
    return this.landed.filter((post) => post.jobId === jobId);
  }
}

let counter = 0;
async function build(options: { engine?: StandInEngine; limits?: Partial<LimitsConfig>; config?: Partial<ServiceConfig>; dir?: string } = {}) {
  const dir = options.dir ?? join(root, `s${counter++}`);
  const engine = options.engine ?? new StandInEngine();
  const store = new JobStore(join(dir, 'jobs.sqlite'));
  const images = new ImageCache(join(dir, 'images'), 50 * 2 ** 20);
  await images.start();
  const limits = createLimits({ ...LIMITS, ...options.limits }, { logger });
  await limits.start();
  const platform = new ScriptedPlatform();
  const service = createService(
    { blockedWords: [], allowedChannels: [], variationStrength: 0.25, stopTimeoutMs: 5_000, deliveryRetry: { firstDelayMs: 20, maxDelayMs: 80, giveUpAfterMs: 1_500 }, ...options.config },
    { engine, store, limits, queue: createFairQueue(), images, logger },
  );
  service.registerPlatform('discord', platform);
  const close = async () => {
    await service.close();
    await limits.close();
    store.close();
  };
  return { dir, engine, store, images, limits, platform, service, close };
}

async function accepted(submission: Promise<{ ok: true; job: Job } | { ok: false; refusal: Refusal }>): Promise<Job> {
  const result = await submission;
  if (!result.ok) throw new Error(`refused: ${result.refusal.code}`);
  return result.job;
}

const status = (store: JobStore, id: string) => store.get(id)?.status;

describe('the deliver step', () => {
  it('posts a result once after the platform was down, waiting at least its Retry-After', async () => {
    const parts = await build();
    parts.service.start();
    const down = () => new DeliveryError('Discord answered 503', { retryable: true });
    parts.platform.resultErrors.push(down(), down(), new DeliveryError('rate limited', { retryable: true, retryAfterMs: 200 }));
    const job = await accepted(parts.service.imagine(alice, request(), { token: 'secret' }));
    const [posted] = await parts.platform.outcome(job.id);
    const tries = parts.platform.attempts.filter((post) => post.jobId === job.id);
    expect(tries).toHaveLength(4);
    expect(tries[3].at - tries[2].at).toBeGreaterThanOrEqual(190);
    expect(posted.result?.seeds).toEqual([7, 8]);
    await vi.waitFor(() => expect(status(parts.store, job.id)).toBe('done'));
    expect(parts.store.get(job.id)).toMatchObject({ resultMessageId: `message-${job.id}`, reply: {} });
    expect(parts.platform.forgotten).toEqual([job.id]);
    await parts.close();
  });

  it('tells the member once when the result can never be posted, and gives the images back to the limits', async () => {
    const parts = await build({ limits: { userBurst: 1, userRefillMs: 3_600_000 } });
    parts.service.start();
    parts.platform.resultErrors.push(new DeliveryError('not_in_channel', { retryable: false }));
    const job = await accepted(parts.service.imagine(alice, request(), {}));
    const landed = await parts.platform.outcome(job.id);
    expect(landed).toEqual([expect.objectContaining({ refusal: { code: 'delivery_failed' } })]);
    await vi.waitFor(() => expect(parts.store.get(job.id)).toMatchObject({ status: 'failed', error: 'delivery failed: not_in_channel' }));
    // the burst of one was refunded, so another request is admitted
    await vi.waitFor(async () => expect((await parts.service.imagine(alice, request(), {})).ok).toBe(true));
    await parts.close();
  });

  it('gives up after the retry window and tells the member instead', async () => {
    const parts = await build({ config: { deliveryRetry: { firstDelayMs: 20, maxDelayMs: 40, giveUpAfterMs: 300 } } });
    parts.service.start();
    for (let i = 0; i < 50; i++) parts.platform.resultErrors.push(new Error('socket hang up'));
    const job = await accepted(parts.service.imagine(alice, request(), {}));
    const landed = await parts.platform.outcome(job.id);
    expect(landed.map((post) => post.refusal)).toEqual([{ code: 'delivery_failed' }]);
    expect(parts.platform.attempts.filter((post) => post.result).length).toBeGreaterThan(3);
    await parts.close();
  });

  it('tells the member when the images cannot be encoded, instead of leaving the job running', async () => {
    const parts = await build();
    parts.service.start();
    parts.platform.maxBytes = 10; // no image fits in ten bytes
    const job = await accepted(parts.service.imagine(alice, request(), {}));
    expect(await parts.platform.outcome(job.id)).toEqual([expect.objectContaining({ refusal: { code: 'generation_failed' } })]);
    await vi.waitFor(() => expect(parts.store.get(job.id)?.status).toBe('failed'));
    expect(parts.store.get(job.id)?.error).toMatch(/^encoding failed: /);
    await parts.close();
  });

  it('posts after the next start what a stop left made but not posted, from the cache or made again', async () => {
    const dir = join(root, 'restart');
    const first = await build({ dir });
    first.service.start();
    for (let i = 0; i < 100; i++) first.platform.resultErrors.push(new DeliveryError('503', { retryable: true }));
    const cached = await accepted(first.service.imagine(alice, request({ seed: 100 }), {}));
    await vi.waitFor(() => expect(first.images.has(cached.id, 1)).toBe(true));
    await first.close();
    const again = await build({ dir });
    expect(again.store.get(cached.id)?.status).toBe('delivering');
    // a second job made but not posted whose images are gone: made again from its seed
    const lost = again.store.create({ kind: 'imagine', platform: 'discord', guildId: 'g1', channelId: 'c1', userId: 'bob', request: request({ seed: 200 }), parentId: null, parentIndex: null, reply: {} });
    again.store.markDelivering(lost.id, { queuedMs: 0, generateMs: 0 }, null);
    again.service.start();
    const [fromCache] = await again.platform.outcome(cached.id);
    const [remade] = await again.platform.outcome(lost.id);
    expect(fromCache.result?.seeds).toEqual([100, 101]);
    expect(remade.result?.seeds).toEqual([200, 201]);
    expect(again.engine.calls.map((call) => call.jobId)).toEqual([lost.id]);
    await vi.waitFor(() => expect([status(again.store, cached.id), status(again.store, lost.id)]).toEqual(['done', 'done']));
    await again.close();
  });
});

describe('the submit step', () => {
  it('admits concurrent requests atomically against the per-user cap', async () => {
    const engine = new StandInEngine();
    engine.state = { state: 'unavailable', reason: 'restarting', detail: 'held for the test' };
    const parts = await build({ engine, limits: { maxQueuedPerUser: 1 } });
    parts.service.start();
    const results = await Promise.all(Array.from({ length: 6 }, () => parts.service.imagine(alice, request(), {})));
    expect(results.filter((result) => result.ok)).toHaveLength(1);
    expect(results.filter((result) => !result.ok).map((result) => !result.ok && result.refusal.code)).toEqual(Array(5).fill('too_many_queued'));
    await parts.close();
  });

  it('makes a cold U once for ten fast clicks, and posts it to every click', async () => {
    const parts = await build();
    parts.service.start();
    const parent = await accepted(parts.service.imagine(alice, request({ count: 4, seed: 40 }), {}));
    await parts.platform.outcome(parent.id);
    await vi.waitFor(() => expect(parts.images.has(parent.id, 3)).toBe(true));
    // the cache lost image 2 (evicted)
    rmSync(join(parts.dir, 'images', `${parent.id}-2.png`));
    (parts.images as unknown as { entries: Map<string, number> }).entries.delete(`${parent.id}-2.png`);
    parts.engine.delayMs = 100;
    const clicks = await Promise.all(Array.from({ length: 10 }, (_, i) => accepted(parts.service.upscale(i % 2 ? bob : alice, parent.id, 2, {}))));
    for (const click of clicks) expect((await parts.platform.outcome(click.id)).map((post) => post.result?.seeds)).toEqual([[42]]);
    expect(parts.engine.calls.map((call) => call.images.map((image) => image.seed))).toEqual([[40, 41, 42, 43], [42]]);
    // now cached: one more click costs no GPU, and a U of the U finds the same copy
    const later = await accepted(parts.service.upscale(bob, parent.id, 2, {}));
    const ofTheU = await accepted(parts.service.upscale(bob, clicks[0].id, 0, {}));
    expect((await parts.platform.outcome(later.id))[0].result?.fromCache).toBe(true);
    expect((await parts.platform.outcome(ofTheU.id))[0].result?.fromCache).toBe(true);
    expect(parts.engine.calls).toHaveLength(2);
    await parts.close();
  });

  it('puts U clicks served from the cache through bans and limits', async () => {
    const parts = await build({ limits: { userBurst: 2, userRefillMs: 3_600_000, bannedUsers: ['discord:bob'] } });
    parts.service.start();
    const parent = await accepted(parts.service.imagine(alice, request(), {}));
    await vi.waitFor(() => expect(parts.images.has(parent.id, 1)).toBe(true));
    expect(await parts.service.upscale(bob, parent.id, 0, {})).toEqual({ ok: false, refusal: { code: 'banned' } });
    expect((await parts.service.upscale(alice, parent.id, 0, {})).ok).toBe(true);
    expect(await parts.service.upscale(alice, parent.id, 1, {})).toMatchObject({ ok: false, refusal: { code: 'rate_limited' } });
    await parts.close();
  });
});

describe('the run step', () => {
  it('runs as many jobs at once as the engine can take, first in fair order first', async () => {
    const engine = new StandInEngine();
    engine.slots = 3;
    engine.delayMs = 50;
    const parts = await build({ engine });
    parts.service.start();
    const jobs = await Promise.all([alice, bob, alice, bob].map((who) => accepted(parts.service.imagine(who, request(), {}))));
    for (const job of jobs) await parts.platform.outcome(job.id);
    expect(engine.maxBusy).toBe(3);
    await parts.close();
  });

  it('lets a job that a free runner can take go ahead of one none can, and tells that one plainly after a wait', async () => {
    const engine = new StandInEngine();
    engine.takes = (steps) => steps === 2;
    const parts = await build({ engine, config: { run: { noWorkerNoticeMs: 100 } } });
    engine.availability = () => ({ state: 'unavailable', reason: 'no_worker', detail: 'no worker has 4 steps' });
    parts.service.start();
    const eight = await accepted(parts.service.imagine(alice, request({ steps: 4 }), {}));
    const two = await accepted(parts.service.imagine(bob, request({ steps: 2 }), {}));
    await parts.platform.outcome(two.id);
    expect(status(parts.store, eight.id)).toBe('queued');
    await vi.waitFor(() => expect(parts.platform.statuses).toContainEqual({ jobId: eight.id, update: { state: 'waiting', position: 1, reason: 'no_worker' } }));
    // a worker with 4 steps joins
    engine.takes = () => true;
    engine.availability = () => ({ state: 'ready' });
    engine.changed();
    expect((await parts.platform.outcome(eight.id))[0].result).toBeDefined();
    await parts.close();
  });

  it('says the GPU is restarting, keeps the job queued, and runs it when the engine is back', async () => {
    const engine = new StandInEngine();
    const parts = await build({ engine });
    parts.service.start();
    engine.state = { state: 'unavailable', reason: 'restarting', detail: 'worker restarting' };
    engine.changed();
    const job = await accepted(parts.service.imagine(alice, request(), {}));
    expect(parts.platform.statuses).toContainEqual({ jobId: job.id, update: { state: 'waiting', position: 1, reason: 'restarting' } });
    expect(status(parts.store, job.id)).toBe('queued');
    engine.state = { state: 'ready' };
    engine.changed();
    expect((await parts.platform.outcome(job.id))[0].result).toBeDefined();
    await parts.close();
  });

  it('runs a job again once when the engine loses it, and tells its owner when it is lost twice', async () => {
    const engine = new StandInEngine();
    const crash = () => Promise.reject(new EngineError('crashed', 'the engine worker stopped unexpectedly (signal SIGKILL)'));
    engine.behaviours.push(crash);
    const parts = await build({ engine });
    parts.service.start();
    const once = await accepted(parts.service.imagine(alice, request(), {}));
    expect((await parts.platform.outcome(once.id))[0].result).toBeDefined();
    expect(engine.calls.filter((call) => call.jobId === once.id)).toHaveLength(2);
    engine.behaviours.push(crash, () => Promise.reject(new EngineError('timeout', 'the run took longer than 60 s')));
    const twice = await accepted(parts.service.imagine(alice, request(), {}));
    expect(await parts.platform.outcome(twice.id)).toEqual([expect.objectContaining({ refusal: { code: 'generation_failed' } })]);
    await vi.waitFor(() => expect(parts.store.get(twice.id)).toMatchObject({ status: 'failed', error: 'the run took longer than 60 s' }));
    await parts.close();
  });

  it('shows running, then step progress', async () => {
    const parts = await build();
    parts.service.start();
    const job = await accepted(parts.service.imagine(alice, request({ steps: 2 }), {}));
    await parts.platform.outcome(job.id);
    const updates = parts.platform.statuses.filter((entry) => entry.jobId === job.id).map((entry) => entry.update);
    expect(updates).toEqual([
      { state: 'running' },
      { state: 'running', progress: { stage: 'text', step: 0, steps: 2 } },
      { state: 'running', progress: { stage: 'unet', step: 1, steps: 2 } },
      { state: 'running', progress: { stage: 'unet', step: 2, steps: 2 } },
    ]);
    await parts.close();
  });
});
