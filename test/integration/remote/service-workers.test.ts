// The service driving GPU workers end to end: the bot's service in this process, `npm run worker` processes on the
// tiny model, a real redis-server between them.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ImageCache } from '../../../src/core/image-cache.js';
import { JobStore, type Job } from '../../../src/core/jobs.js';
import { createLimits, type LimitsConfig } from '../../../src/core/limits.js';
import { createFairQueue } from '../../../src/core/queue.js';
import type { Refusal } from '../../../src/core/refusal.js';
import type { GenerationRequest } from '../../../src/core/request.js';
import { createService, type PlatformAdapter, type Requester, type ResultDelivery, type StatusUpdate } from '../../../src/core/service.js';
import { createLogger } from '../../../src/logger.js';
import { createRemoteEngine, type RemoteEngine } from '../../../src/remote/remote-engine.js';
import { writeTinyModelFolder } from '../../../models/tiny/generate.js';
import { redisServerMissing, startRedisServer, type RedisServer } from '../../setup/redis.js';
import { jobLines, startWorkerProcess, type WorkerProcess } from './worker-processes.js';

const missing = redisServerMissing();
if (missing) console.warn(missing);

/** A platform stand-in that records what the service asks it to show. */
class RecordingPlatform implements PlatformAdapter {
  readonly statuses: { jobId: string; update: StatusUpdate }[] = [];
  readonly results = new Map<string, ResultDelivery[]>();
  readonly failures = new Map<string, Refusal>();
  maxUploadBytes(): number {
    return 10 * 2 ** 20;
  }
  onStatus(job: Job, update: StatusUpdate): void {
    this.statuses.push({ jobId: job.id, update });
  }
  async deliverResult(job: Job, result: ResultDelivery): Promise<string> {
    this.results.set(job.id, [...(this.results.get(job.id) ?? []), result]);
    return `message-${job.id}`;
  }
  async deliverFailure(job: Job, refusal: Refusal): Promise<void> {
    this.failures.set(job.id, refusal);
  }
}

const root = mkdtempSync(join(tmpdir(), 'service-workers-'));
const modelDir = join(root, 'model');
const logger = createLogger({ level: 'silent' });
const limitsConfig: LimitsConfig = { userBurst: 5, userRefillMs: 60_000, maxQueuedPerUser: 2, guildDailyImages: null, maxQueueLength: 50, exemptUsers: [], bannedUsers: [] };
const member = (userId: string): Requester => ({ platform: 'discord', userId, guildId: 'g1', channelId: 'c1' });
const request = (overrides: Partial<GenerationRequest> = {}): GenerationRequest => ({ prompt: 'a lighthouse at dusk', steps: 4, seed: 42, aspect: '1:1', count: 4, ...overrides });

async function until(check: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

beforeAll(async () => {
  await writeTinyModelFolder(modelDir, { steps: [2, 4] });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe.skipIf(missing)('the service with GPU workers', () => {
  let server: RedisServer;
  const workers: WorkerProcess[] = [];
  const closers: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    server = await startRedisServer();
  });
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
    await Promise.all(workers.splice(0).map((w) => w.stop('SIGKILL')));
  });
  afterAll(async () => {
    await server?.stop();
  });

  /** A bot: service, store (in `name`.sqlite, so a second bot can take over the first one's jobs), remote engine. */
  async function bot(name: string, stopTimeoutMs = 30_000) {
    const engine: RemoteEngine = createRemoteEngine({ redisUrl: server.url, pollMs: 200, orphanMs: 2_000, waitForSteps: true }, { logger });
    const store = new JobStore(join(root, `${name}.sqlite`));
    const images = new ImageCache(join(root, `${name}-images`), 50 * 2 ** 20);
    const limits = createLimits(limitsConfig, { logger });
    const platform = new RecordingPlatform();
    const service = createService({ blockedWords: [], allowedChannels: [], variationStrength: 0.25, stopTimeoutMs, run: { noWorkerNoticeMs: 1_000 } }, { engine, store, limits, queue: createFairQueue(), images, logger });
    service.registerPlatform('discord', platform);
    await engine.start();
    await images.start();
    await limits.start();
    service.start();
    let closed = false;
    const close = async (): Promise<void> => {
      if (closed) return;
      closed = true;
      await service.close();
      await limits.close();
      await engine.close();
      store.close();
    };
    closers.push(close);
    return { engine, store, platform, service, close };
  }

  it('runs members’ jobs on the workers, records which worker made each, and delivers each once', async () => {
    workers.push(...(await Promise.all([startWorkerProcess('gpu-a', { redisUrl: server.url, modelDir }), startWorkerProcess('gpu-b', { redisUrl: server.url, modelDir })])));
    const { engine, store, platform, service } = await bot('spread');
    await until(() => engine.connectedWorkers.length === 2, 'both workers');
    const ids: string[] = [];
    for (const [index, name] of ['ann', 'ben', 'cat', 'dan'].entries()) {
      const submission = await service.imagine(member(name), request({ seed: 100 + index, steps: index % 2 ? 2 : 4 }), { token: `t-${name}` });
      if (!submission.ok) throw new Error(`refused: ${submission.refusal.code}`);
      ids.push(submission.job.id);
    }
    await until(() => ids.every((id) => store.get(id)?.status === 'done'), 'every job done');
    const made = ids.map((id) => store.get(id)!.worker);
    expect(new Set(made)).toEqual(new Set(['gpu-a', 'gpu-b']));
    for (const id of ids) {
      expect(platform.results.get(id)).toHaveLength(1);
      const meta = await sharp(platform.results.get(id)![0].file.data).metadata();
      // a 2×2 grid of 1024² images, with its gutters
      expect([meta.width! > 2048, meta.width === meta.height]).toEqual([true, true]);
      expect(platform.statuses.some((s) => s.jobId === id && s.update.state === 'running' && s.update.progress?.stage === 'unet')).toBe(true);
    }
    expect(workers.flatMap((w) => ids.flatMap((id) => jobLines(w, 'job started', id)))).toHaveLength(4);
  });

  it('tells a member plainly when no worker can run the job, keeps it queued, and runs it when a worker joins', async () => {
    // a worker has been here (so the bot offers its steps), and has gone
    const gpu = await startWorkerProcess('gpu-gone', { redisUrl: server.url, modelDir });
    workers.push(gpu);
    const { engine, store, platform, service } = await bot('waiting');
    await until(() => engine.connectedWorkers.length === 1, 'the worker');
    await gpu.stop('SIGTERM');
    await until(() => engine.connectedWorkers.length === 0, 'the worker to leave');
    const submission = await service.imagine(member('eve'), request({ count: 1 }), {});
    if (!submission.ok) throw new Error(`refused: ${submission.refusal.code}`);
    const id = submission.job.id;
    // the service tells once the job has waited noWorkerNoticeMs; the engine says why
    expect(engine.availability(4)).toMatchObject({ state: 'unavailable', reason: 'no_worker' });
    await until(() => platform.statuses.some((s) => s.jobId === id && s.update.state === 'waiting'), 'the member to be told', 20_000);
    expect(store.get(id)?.status).toBe('queued');
    workers.push(await startWorkerProcess('gpu-back', { redisUrl: server.url, modelDir }));
    await until(() => store.get(id)?.status === 'done', 'the job to run on the new worker');
    expect(store.get(id)?.worker).toBe('gpu-back');
  });

  it('delivers the job a worker was running while the bot restarted, without running it twice', async () => {
    const gpu = await startWorkerProcess('gpu-a', { redisUrl: server.url, modelDir });
    workers.push(gpu);
    const first = await bot('restart', 100);
    const submission = await first.service.imagine(member('fay'), request({ steps: 4, count: 4, aspect: '16:9' }), { token: 't-fay' });
    if (!submission.ok) throw new Error(`refused: ${submission.refusal.code}`);
    const id = submission.job.id;
    await gpu.waitForLine((line) => line.msg === 'job started' && line.job === id);
    await first.close();
    expect(first.platform.results.has(id)).toBe(false);

    const second = await bot('restart');
    await until(() => second.store.get(id)?.status === 'done', 'the job to be delivered after the restart');
    expect(second.platform.results.get(id)).toHaveLength(1);
    expect(second.store.get(id)?.worker).toBe('gpu-a');
    expect(jobLines(gpu, 'job started', id)).toHaveLength(1);
  });
});
