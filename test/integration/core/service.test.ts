import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ImageCache } from '../../../src/core/image-cache.js';
import { JobStore, type Job } from '../../../src/core/jobs.js';
import { createLimits, type LimitsConfig } from '../../../src/core/limits.js';
import { createFairQueue } from '../../../src/core/queue.js';
import type { Refusal } from '../../../src/core/refusal.js';
import type { GenerationRequest } from '../../../src/core/request.js';
import { createService, type PlatformAdapter, type Requester, type ResultDelivery, type Service, type StatusUpdate } from '../../../src/core/service.js';
import { createEngine, type Engine } from '../../../src/diffusion/index.js';
import { createLogger } from '../../../src/logger.js';
import { writeTinyModelFolder } from '../../../models/tiny/generate.js';

/** A platform stand-in that records what the service asks it to show. */
class RecordingPlatform implements PlatformAdapter {
  readonly statuses: { jobId: string; update: StatusUpdate }[] = [];
  readonly results = new Map<string, ResultDelivery>();
  readonly failures = new Map<string, Refusal>();
  private readonly waiters = new Map<string, () => void>();
  maxUploadBytes(): number {
    return 10 * 2 ** 20;
  }
  onStatus(job: Job, update: StatusUpdate): void {
    this.statuses.push({ jobId: job.id, update });
  }
  async deliverResult(job: Job, result: ResultDelivery): Promise<string> {
    this.results.set(job.id, result);
    this.waiters.get(job.id)?.();
    return `message-${job.id}`;
  }
  async deliverFailure(job: Job, refusal: Refusal): Promise<void> {
    this.failures.set(job.id, refusal);
    this.waiters.get(job.id)?.();
  }
  /** Resolves when the job's result or failure has been delivered. */
  settled(jobId: string): Promise<void> {
    if (this.results.has(jobId) || this.failures.has(jobId)) return Promise.resolve();
    return new Promise((resolve) => this.waiters.set(jobId, resolve));
  }
}

const root = mkdtempSync(join(tmpdir(), 'service-'));
const modelDir = join(root, 'model');
const logger = createLogger({ level: 'silent' });
let engine: Engine;
const alice: Requester = { platform: 'discord', userId: 'alice', guildId: 'g1', channelId: 'c1' };
const bob: Requester = { platform: 'discord', userId: 'bob', guildId: 'g1', channelId: 'c1' };
const small = (overrides: Partial<GenerationRequest> = {}): GenerationRequest => ({ prompt: 'a lighthouse at dusk', steps: 2, seed: 42, aspect: '1:1', count: 2, ...overrides });
const limitsConfig: LimitsConfig = { userBurst: 5, userRefillMs: 60_000, maxQueuedPerUser: 2, guildDailyImages: null, maxQueueLength: 50, exemptUsers: [], bannedUsers: [] };

function build(name: string, overrides: { limits?: Partial<LimitsConfig>; blockedWords?: string[]; allowedChannels?: string[] } = {}) {
  const store = new JobStore(join(root, `${name}.sqlite`));
  const images = new ImageCache(join(root, `${name}-images`), 50 * 2 ** 20);
  const limits = createLimits({ ...limitsConfig, ...overrides.limits }, { logger });
  const platform = new RecordingPlatform();
  const service = createService(
    {
      blockedWords: overrides.blockedWords ?? ['forbidden'],
      allowedChannels: overrides.allowedChannels ?? [],
      variationStrength: 0.25,
      stopTimeoutMs: 30_000,
    },
    { engine, store, limits, queue: createFairQueue(), images, logger },
  );
  service.registerPlatform('discord', platform);
  return { store, images, limits, platform, service };
}

async function started(name: string, overrides?: Parameters<typeof build>[1]): Promise<ReturnType<typeof build>> {
  const parts = build(name, overrides);
  await parts.images.start();
  await parts.limits.start();
  parts.service.start();
  return parts;
}

async function stop(parts: { service: Service; limits: { close(): Promise<void> }; store: JobStore }): Promise<void> {
  await parts.service.close();
  await parts.limits.close();
  parts.store.close();
}

beforeAll(async () => {
  await writeTinyModelFolder(modelDir, { steps: [1, 2, 4] });
  engine = createEngine({ modelDir, provider: 'cpu', deviceId: 0 }, { logger });
  await engine.start();
});
afterAll(async () => {
  await engine.close();
  rmSync(root, { recursive: true, force: true });
});

describe('the service', () => {
  it('records, runs and delivers a job, then keeps its images for U buttons', async () => {
    const parts = await started('basic');
    const submission = await parts.service.imagine(alice, small(), { token: 'x' });
    expect(submission.ok).toBe(true);
    if (!submission.ok) return;
    await parts.platform.settled(submission.job.id);
    const result = parts.platform.results.get(submission.job.id)!;
    expect(result).toMatchObject({ seeds: [42, 43], truncated: false, fromCache: false });
    const meta = await sharp(result.file.data).metadata();
    expect([meta.format, meta.width! > 2048, meta.height]).toEqual(['png', true, 1024]);
    expect(parts.platform.statuses.filter((s) => s.jobId === submission.job.id).map((s) => s.update.state)).toContain('running');
    await new Promise((resolve) => setTimeout(resolve, 500));
    const job = parts.store.get(submission.job.id)!;
    expect(job).toMatchObject({ status: 'done', resultMessageId: `message-${job.id}`, reply: { token: 'x' } });
    expect(job.timings?.generateMs).toBeGreaterThan(0);
    expect(await parts.images.get(job.id, 1)).toBeInstanceOf(Buffer);
    await stop(parts);
  });

  it('refuses with data: blocked words, disallowed channels, uninstalled steps, limits', async () => {
    const parts = await started('refusals', { allowedChannels: ['c1'], limits: { userBurst: 1 } });
    const refusal = async (requester: Requester, request: GenerationRequest) => {
      const submission = await parts.service.imagine(requester, request, {});
      return submission.ok ? 'accepted' : submission.refusal.code;
    };
    expect(await refusal(alice, small({ prompt: 'a FORBIDDEN cat' }))).toBe('blocked_word');
    expect(await refusal(alice, small({ prompt: 'unforbiddenness' }))).toBe('accepted');
    expect(await refusal({ ...bob, channelId: 'c2' }, small())).toBe('channel_not_allowed');
    expect(await refusal({ ...bob, guildId: null, channelId: 'dm' }, small({ steps: 8 }))).toBe('steps_unavailable');
    expect(await refusal(bob, small())).toBe('accepted');
    expect(await refusal(bob, small())).toBe('rate_limited');
    await stop(parts);
  });

  it('upscales from the cache without the GPU, or remakes the exact image from its seed', async () => {
    const parts = await started('upscale');
    const grid = await parts.service.imagine(alice, small({ count: 4, steps: 1 }), {});
    if (!grid.ok) throw new Error('refused');
    await parts.platform.settled(grid.job.id);
    await new Promise((resolve) => setTimeout(resolve, 800));
    const cached = await parts.service.upscale(bob, grid.job.id, 2, {});
    if (!cached.ok) throw new Error('refused');
    await parts.platform.settled(cached.job.id);
    expect(parts.platform.results.get(cached.job.id)).toMatchObject({ fromCache: true, seeds: [44] });
    const fromCache = await sharp(parts.platform.results.get(cached.job.id)!.file.data).raw().toBuffer();

    // with the cache emptied, U3 runs again on the GPU from seed 44: the same image, but a batch of one rounds a few
    // values differently from a batch of four in onnxruntime's kernels (a handful of bytes, by one level)
    const empty = build('upscale-nocache');
    await empty.images.start();
    await empty.limits.start();
    empty.service.start();
    const parent = empty.store.create({ kind: 'imagine', platform: 'discord', guildId: 'g1', channelId: 'c1', userId: 'alice', request: small({ count: 4, steps: 1 }), parentId: null, parentIndex: null, reply: {} });
    empty.store.markDone(parent.id, { queuedMs: 0, generateMs: 0 });
    const remade = await empty.service.upscale(bob, parent.id, 2, {});
    if (!remade.ok) throw new Error('refused');
    await empty.platform.settled(remade.job.id);
    const result = empty.platform.results.get(remade.job.id)!;
    expect(result).toMatchObject({ fromCache: false, seeds: [44] });
    const remadePixels = await sharp(result.file.data).raw().toBuffer();
    expect(remadePixels.length).toBe(fromCache.length);
    let differing = 0;
    let maxDiff = 0;
    for (let i = 0; i < fromCache.length; i++) {
      const diff = Math.abs(remadePixels[i] - fromCache[i]);
      maxDiff = Math.max(maxDiff, diff);
      if (diff > 0) differing++;
    }
    expect(maxDiff).toBeLessThanOrEqual(1);
    expect(differing / fromCache.length).toBeLessThan(1e-4);
    await stop(empty);
    await stop(parts);
  });

  it('varies an image from its own noise and re-rolls with a new seed', async () => {
    const parts = await started('vary');
    const grid = await parts.service.imagine(alice, small(), {});
    if (!grid.ok) throw new Error('refused');
    await parts.platform.settled(grid.job.id);
    const vary = await parts.service.vary(bob, grid.job.id, 1, {});
    const reroll = await parts.service.reroll(bob, grid.job.id, {});
    if (!vary.ok || !reroll.ok) throw new Error('refused');
    expect(vary.job).toMatchObject({ kind: 'vary', parentId: grid.job.id, parentIndex: 1, userId: 'bob' });
    expect(vary.job.request.variation).toEqual({ parentSeed: 43, parentSteps: [], strength: 0.25 });
    expect(reroll.job.request).toMatchObject({ prompt: 'a lighthouse at dusk', steps: 2, count: 2 });
    expect(reroll.job.request.seed).not.toBe(42);
    // a variation of a variation keeps the whole history of its noise
    const again = await parts.service.vary(alice, vary.job.id, 0, {});
    if (!again.ok) throw new Error('refused');
    expect(again.job.request.variation).toEqual({ parentSeed: 43, parentSteps: [{ seed: vary.job.request.seed, strength: 0.25 }], strength: 0.25 });
    await Promise.all([vary, reroll, again].map((s) => (s.ok ? parts.platform.settled(s.job.id) : undefined)));
    await stop(parts);
  });

  it('refuses clicks on unknown or foreign jobs and bad image numbers', async () => {
    const parts = await started('clicks');
    const grid = await parts.service.imagine(alice, small(), {});
    if (!grid.ok) throw new Error('refused');
    const code = (submission: Awaited<ReturnType<Service['reroll']>>) => (submission.ok ? 'accepted' : submission.refusal.code);
    expect(code(await parts.service.reroll(bob, 'nosuchjob222', {}))).toBe('unknown_job');
    expect(code(await parts.service.reroll({ ...bob, guildId: 'g2' }, grid.job.id, {}))).toBe('foreign_job');
    expect(code(await parts.service.upscale(bob, grid.job.id, 2, {}))).toBe('unknown_job');
    expect(code(await parts.service.reroll({ ...bob, platform: 'slack' }, grid.job.id, {}))).toBe('unknown_job');
    await parts.platform.settled(grid.job.id);
    await stop(parts);
  });

  it('lets only the owner cancel a waiting job, and gives the token back', async () => {
    const parts = await started('cancel', { limits: { userBurst: 3, maxQueuedPerUser: 5 } });
    // the engine takes one job running and one committed ahead; the third waits
    const first = await parts.service.imagine(alice, small({ steps: 4, count: 4 }), {});
    const ahead = await parts.service.imagine(alice, small(), {});
    const second = await parts.service.imagine(alice, small(), {});
    if (!first.ok || !ahead.ok || !second.ok) throw new Error('refused');
    expect([ahead.position, second.position]).toEqual([0, 1]);
    expect(parts.service.cancel(bob, second.job.id)).toEqual({ ok: false, refusal: { code: 'not_owner' } });
    expect(parts.service.cancel(alice, first.job.id)).toEqual({ ok: false, refusal: { code: 'not_cancellable' } });
    expect(parts.service.cancel(alice, ahead.job.id)).toEqual({ ok: false, refusal: { code: 'not_cancellable' } });
    expect(parts.service.cancel(alice, second.job.id)).toEqual({ ok: true });
    expect(parts.store.get(second.job.id)?.status).toBe('cancelled');
    const third = await parts.service.imagine(alice, small(), {});
    expect(third.ok).toBe(true);
    await parts.platform.settled(first.job.id);
    await parts.platform.settled(ahead.job.id);
    if (third.ok) await parts.platform.settled(third.job.id);
    expect(parts.platform.results.has(second.job.id)).toBe(false);
    await stop(parts);
  });

  it('stops politely: refuses new work, finishes the running job, keeps the waiting ones for the next start', async () => {
    const parts = await started('stop', { limits: { maxQueuedPerUser: 5 } });
    const running = await parts.service.imagine(alice, small({ steps: 4, count: 4 }), {});
    const ahead = await parts.service.imagine(alice, small({ seed: 7 }), {});
    const waiting = await parts.service.imagine(alice, small(), {});
    if (!running.ok || !ahead.ok || !waiting.ok) throw new Error('refused');
    const closing = parts.service.close();
    const late = await parts.service.imagine(bob, small(), {});
    expect(late).toEqual({ ok: false, refusal: { code: 'shutting_down' } });
    await closing;
    // what the engine had taken (running, and one committed ahead) is finished and posted; the rest waits
    expect(parts.store.get(running.job.id)?.status).toBe('done');
    expect(parts.store.get(ahead.job.id)?.status).toBe('done');
    expect(parts.store.get(waiting.job.id)?.status).toBe('queued');
    await parts.limits.close();
    parts.store.close();

    // the next start delivers what was left
    const next = await started('stop');
    await next.platform.settled(waiting.job.id);
    expect(next.platform.results.get(waiting.job.id)?.seeds).toEqual([42, 43]);
    await stop(next);
  });

  it('queues again jobs a crash left running or queued, and delivers them', async () => {
    const store = new JobStore(join(root, 'crash.sqlite'));
    const base = { kind: 'imagine' as const, platform: 'discord' as const, guildId: 'g1', channelId: 'c1', parentId: null, parentIndex: null, reply: { token: 'old' } };
    const wasRunning = store.create({ ...base, userId: 'alice', request: small() });
    store.markRunning(wasRunning.id);
    const wasQueued = store.create({ ...base, userId: 'bob', request: small({ seed: 7 }) });
    store.close();
    const parts = await started('crash');
    await Promise.all([parts.platform.settled(wasRunning.id), parts.platform.settled(wasQueued.id)]);
    expect(parts.platform.results.get(wasQueued.id)?.seeds).toEqual([7, 8]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect([parts.store.get(wasRunning.id)?.status, parts.store.get(wasQueued.id)?.status]).toEqual(['done', 'done']);
    await stop(parts);
  });
});

describe('a failing engine', () => {
  it('marks the job failed, tells its owner and gives the token back', async () => {
    // a model folder whose 4-step UNet is broken: loading it fails on first use, as a bad GPU load would
    const brokenDir = join(root, 'broken-model');
    await writeTinyModelFolder(brokenDir, { steps: [2, 4] });
    writeFileSync(join(brokenDir, 'unet_4step', 'model.onnx'), 'not a model');
    const broken = createEngine({ modelDir: brokenDir, provider: 'cpu', deviceId: 0, lazyUnets: true }, { logger });
    await broken.start();
    const parts = build('broken', { limits: { userBurst: 1 } });
    await parts.images.start();
    await parts.limits.start();
    const service = createService(
      { blockedWords: [], allowedChannels: [], variationStrength: 0.25 },
      { engine: broken, store: parts.store, limits: parts.limits, queue: createFairQueue(), images: parts.images, logger },
    );
    service.registerPlatform('discord', parts.platform);
    service.start();
    const submission = await service.imagine(alice, small({ steps: 4 }), {});
    if (!submission.ok) throw new Error('refused');
    await parts.platform.settled(submission.job.id);
    expect(parts.platform.failures.get(submission.job.id)).toEqual({ code: 'generation_failed' });
    // told first, then recorded: a stop in between leaves the job to be done again, never untold
    await vi.waitFor(() => expect(parts.store.get(submission.job.id)).toMatchObject({ status: 'failed', error: expect.stringContaining('unet_4step/model.onnx') }));
    // the burst of one was given back
    expect((await service.imagine(alice, small({ steps: 2 }), {})).ok).toBe(true);
    await service.close();
    await broken.close();
    await parts.limits.close();
    parts.store.close();
  });
});
