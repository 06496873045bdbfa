// The remote engine against real `npm run worker` processes on the tiny model and a real redis-server.

import { mkdtempSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isRetryableEngineError, type EngineOutput, type EngineRequest } from '../../../src/core/engine-port.js';
import { createLogger } from '../../../src/logger.js';
import { inspectWorkers } from '../../../src/remote/doctor.js';
import { KEY_PREFIX, resultKey } from '../../../src/remote/protocol.js';
import { readWorkers } from '../../../src/remote/registry.js';
import { createRemoteEngine, type RemoteEngine } from '../../../src/remote/remote-engine.js';
import { writeTinyModelFolder } from '../../../models/tiny/generate.js';
import { redisServerMissing, startRedisServer, type RedisServer } from '../../setup/redis.js';
import { jobLines, startWorkerProcess, type WorkerProcess } from './worker-processes.js';

const missing = redisServerMissing();
if (missing) console.warn(missing);

const root = mkdtempSync(join(tmpdir(), 'remote-'));
const fullModel = join(root, 'model');
const fourStepModel = join(root, 'model-4');

/** A logger whose JSON lines the test can read. */
function captureLogger(): { logger: ReturnType<typeof createLogger>; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: createLogger({ level: 'info', destination }), lines };
}

let counter = 0;
const request = (steps: number, overrides: Partial<EngineRequest> = {}): EngineRequest => ({
  prompt: 'a lighthouse at dusk',
  steps,
  width: 256,
  height: 256,
  images: [{ seed: 7 }, { seed: 8 }],
  jobId: `job${String(++counter).padStart(9, 'x')}`,
  ...overrides,
});

/** Waits until `check` holds, polling every 20 ms. */
async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Hands the requests over in order, each once `canTake` allows (as the service's fair queue does), and resolves
 * with their outputs in the same order.
 */
async function runInOrder(engine: RemoteEngine, requests: readonly EngineRequest[]): Promise<EngineOutput[]> {
  const results: Promise<EngineOutput>[] = [];
  for (const next of requests) {
    await until(() => engine.canTake(next.steps), `a free worker for ${next.steps} steps`, 60_000);
    results.push(engine.generate(next));
  }
  return Promise.all(results);
}

function workersOf(outputs: readonly EngineOutput[]): string[] {
  return [...new Set(outputs.map((output) => output.worker!))].sort();
}

beforeAll(async () => {
  await writeTinyModelFolder(fullModel);
  await writeTinyModelFolder(fourStepModel, { steps: [4] });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe.skipIf(missing)('GPU workers through Redis and BullMQ', () => {
  let server: RedisServer;
  let redis: Redis;
  const workers: WorkerProcess[] = [];
  const engines: RemoteEngine[] = [];

  async function worker(id: string, modelDir = fullModel): Promise<WorkerProcess> {
    const started = await startWorkerProcess(id, { redisUrl: server.url, modelDir });
    workers.push(started);
    return started;
  }

  async function engine(logger = captureLogger().logger): Promise<RemoteEngine> {
    const made = createRemoteEngine({ redisUrl: server.url, pollMs: 200, orphanMs: 2_000, waitForSteps: true }, { logger });
    engines.push(made);
    await made.start();
    return made;
  }

  beforeAll(async () => {
    server = await startRedisServer();
    redis = new Redis(server.url, { maxRetriesPerRequest: null });
  });
  afterEach(async () => {
    await Promise.all(engines.splice(0).map((made) => made.close()));
    await Promise.all(workers.splice(0).map((started) => started.stop('SIGKILL')));
    if (redis.status === 'ready') await redis.flushall();
  });
  afterAll(async () => {
    redis?.disconnect();
    await server?.stop();
  });

  it('spreads jobs over the workers, hands over only what free workers can take, and brings the pixels back once', async () => {
    const [a, b, c] = await Promise.all([worker('gpu-a'), worker('gpu-b'), worker('gpu-c', fourStepModel)]);
    const bot = await engine();
    await until(() => bot.connectedWorkers.length === 3, 'three workers in the registry');
    expect(bot.info?.steps).toEqual([1, 2, 4, 8]);
    expect(bot.connectedWorkers.map((w) => [w.id, w.steps, w.state, w.device])).toEqual([
      ['gpu-a', [1, 2, 4, 8], 'idle', 'cpu'],
      ['gpu-b', [1, 2, 4, 8], 'idle', 'cpu'],
      ['gpu-c', [4], 'idle', 'cpu'],
    ]);

    // what npm run doctor prints about them
    const report = await inspectWorkers(server.url, 'remote');
    expect(report.healthy).toBe(true);
    expect(report.lines.map((line) => line.text.replace(/last seen \d+ s ago, up \d+ s/, 'last seen …'))).toEqual([
      `gpu-a on ${hostname()} (cpu), steps 1/2/4/8, idle, last seen …`,
      `gpu-b on ${hostname()} (cpu), steps 1/2/4/8, idle, last seen …`,
      `gpu-c on ${hostname()} (cpu), steps 4, idle, last seen …`,
    ]);

    // two 8-step jobs take the two workers that have 8 steps; the 4-step-only worker can still take a 4-step job
    const first = [request(8, { width: 512, height: 512 }), request(8, { width: 512, height: 512 })];
    const running = first.map((r) => bot.generate(r));
    expect(bot.canTake(8)).toBe(false);
    expect(bot.canTake(4)).toBe(true);
    expect(bot.canTake(2)).toBe(false);
    const third = bot.generate(request(4));
    expect(bot.canTake(4)).toBe(false);
    const outputs = await Promise.all([...running, third]);
    // (which worker takes the 4-step job is BullMQ's race: a worker that fetched two at once gives one back)
    expect(outputs.slice(0, 2).every((output) => output.worker === 'gpu-a' || output.worker === 'gpu-b')).toBe(true);

    const many = await runInOrder(bot, Array.from({ length: 9 }, () => request(4)));
    expect(workersOf(many)).toEqual(['gpu-a', 'gpu-b', 'gpu-c']);
    // the same seeds give the same pixels whichever worker ran them, and nothing is left behind in Redis
    for (const output of many) {
      expect(output.images.map((image) => [image.width, image.height, image.data.length])).toEqual([
        [256, 256, 256 * 256 * 3],
        [256, 256, 256 * 256 * 3],
      ]);
      expect(Buffer.from(output.images[1].data).equals(Buffer.from(many[0].images[1].data))).toBe(true);
      // the worker's safety classifier (the tiny one answers 0.01) scored each image, and the verdicts came along
      expect(output.safety?.map((verdict) => verdict.flagged)).toEqual([false, false]);
      expect(output.safety?.[0].score).toBeCloseTo(0.01, 3);
    }
    expect(Buffer.from(many[0].images[0].data).equals(Buffer.from(many[0].images[1].data))).toBe(false);
    expect(await redis.keys(`${KEY_PREFIX}:results:*`)).toEqual([]);
    // every job ran exactly once, and each worker's log names it
    const started = [a, b, c].flatMap((w) => w.lines.filter((line) => line.msg === 'job started'));
    expect(started).toHaveLength(12);
    expect(started.every((line) => typeof line.worker === 'string' && typeof line.job === 'string')).toBe(true);
  });

  it('never gives an 8-step job to a worker that has only 4 steps, says when no worker can run one, and a late worker gets it', async () => {
    expect(await inspectWorkers(server.url, 'remote')).toEqual({
      healthy: false,
      lines: [{ level: 'bad', text: 'ENGINE=remote but no GPU worker is connected: start `npm run worker` on a GPU host with this REDIS_URL' }],
    });
    const four = await worker('gpu-four', fourStepModel);
    const bot = await engine();
    await until(() => bot.connectedWorkers.length === 1, 'the worker in the registry');
    // the steps of a worker that left stay offered for a while: here none ever had 8
    expect(bot.info?.steps).toEqual([4]);
    expect(bot.availability(8)).toEqual({ state: 'unavailable', reason: 'no_worker', detail: expect.stringContaining('no connected GPU worker has the 8-step UNet') });
    expect(bot.canTake(8)).toBe(false);

    // a job handed over anyway is taken back once no worker can run it for orphanMs, as a retryable error
    const orphan = request(8);
    const refused = await bot.generate(orphan).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(isRetryableEngineError(refused)).toBe(true);
    expect((refused as { code: string }).code).toBe('unavailable');
    expect(jobLines(four, 'job started', orphan.jobId!)).toEqual([]);

    let changes = 0;
    bot.onChange(() => changes++);
    const late = await worker('gpu-late');
    await until(() => bot.availability(8).state === 'ready', 'the late worker to be seen');
    expect(changes).toBeGreaterThan(0);
    expect(bot.info?.steps).toEqual([1, 2, 4, 8]);
    expect(bot.canTake(8)).toBe(true);
    const outputs = await runInOrder(bot, [orphan, request(8), request(4), request(4), request(8)]);
    expect(outputs.map((output, index) => [index, output.worker])).toEqual([
      [0, 'gpu-late'],
      [1, 'gpu-late'],
      expect.anything(),
      expect.anything(),
      [4, 'gpu-late'],
    ]);
    expect(four.lines.filter((line) => line.msg === 'job started' && line.steps !== 4)).toEqual([]);
    expect(late.lines.filter((line) => line.msg === 'job started').length).toBeGreaterThanOrEqual(3);
  });

  it('refuses a second worker process with the same id, and a worker without REDIS_URL, in one sentence', async () => {
    await worker('gpu-same');
    await expect(worker('gpu-same')).rejects.toThrow(
      /another worker process \(on .+, seen \d+ s ago\) already uses the worker id "gpu-same"; give each worker its own WORKER_ID/,
    );
    await expect(startWorkerProcess('gpu-none', { redisUrl: '', modelDir: fullModel })).rejects.toThrow(
      'npm run worker needs REDIS_URL: the Redis server the bot uses (ENGINE=remote or both on the bot), e.g. REDIS_URL=redis://gpu-hub:6379',
    );
  });

  it('runs a job again on another worker when its worker is killed with -9 mid-job, and delivers it once', async () => {
    const [a, b] = await Promise.all([worker('gpu-a'), worker('gpu-b')]);
    const { logger, lines } = captureLogger();
    const bot = await engine(logger);
    await until(() => bot.connectedWorkers.length === 2, 'two workers in the registry');
    // big enough to be mid-run when the kill lands: eight 1024² images, 8 steps
    const big = request(8, { width: 1024, height: 1024, images: Array.from({ length: 8 }, (_, i) => ({ seed: 100 + i })) });
    let resolved = 0;
    const result = bot.generate(big).then((output) => (resolved++, output));
    const startedHere = (w: WorkerProcess): boolean => jobLines(w, 'job started', big.jobId!).length > 0;
    await until(() => startedHere(a) || startedHere(b), 'a worker to start the job');
    const startedOn = startedHere(a) ? a : b;
    await startedOn.stop('SIGKILL');
    const survivor = startedOn === a ? b : a;

    const output = await result;
    expect(output.worker).toBe(survivor.id);
    expect(output.images).toHaveLength(8);
    expect(jobLines(survivor, 'job done', big.jobId!)).toHaveLength(1);
    expect(jobLines(startedOn, 'job done', big.jobId!)).toEqual([]);
    expect(lines.some((line) => line.msg === 'a GPU worker left' && line.worker === startedOn.id)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(resolved).toBe(1);
    expect(await redis.exists(resultKey(big.jobId!))).toBe(0);
    // the survivor is free again and the dead worker is out of the registry
    await until(() => bot.canTake(8), 'the survivor to be free');
    expect((await readWorkers(redis)).map((w) => w.id)).toEqual([survivor.id]);
  });

  it('loses nothing when Redis restarts mid-queue: both sides reconnect and every job is delivered', async () => {
    const [a, b] = await Promise.all([worker('gpu-a'), worker('gpu-b')]);
    const { logger, lines } = captureLogger();
    const bot = await engine(logger);
    await until(() => bot.connectedWorkers.length === 2, 'two workers in the registry');
    const requests = Array.from({ length: 8 }, () => request(4, { width: 512, height: 512, images: [{ seed: 1 }, { seed: 2 }, { seed: 3 }, { seed: 4 }] }));
    const done: EngineOutput[] = [];
    const all = (async () => {
      for (const next of requests) {
        await until(() => bot.canTake(next.steps), 'a free worker', 60_000);
        void bot.generate(next).then((output) => done.push(output));
      }
    })();
    await until(() => done.length >= 2, 'the first results');
    // no persistence: Redis comes back empty, as after a crash without AOF
    await server.stop();
    server = await startRedisServer({ port: server.port });
    await all;
    await until(() => done.length === requests.length, 'every result after the restart', 60_000);
    expect(workersOf(done)).toEqual(['gpu-a', 'gpu-b']);
    // both workers are back in the new Redis's registry and take work
    await until(async () => (await readWorkers(redis)).length === 2, 'both workers to announce themselves again');
    const after = await runInOrder(bot, [request(4), request(4)]);
    expect(after).toHaveLength(2);
    // the jobs running when Redis went were added again and ran again; each resolved once
    expect(lines.filter((line) => String(line.msg).startsWith('BullMQ no longer has a job in flight')).length).toBeGreaterThan(0);
    expect(new Set(done.map((output) => output)).size).toBe(requests.length);
    expect(a.child.exitCode).toBeNull();
    expect(b.child.exitCode).toBeNull();
  });

  it('delivers the result of a job that finished while the bot was away, without running it again', async () => {
    const a = await worker('gpu-a');
    const first = await engine();
    await until(() => first.connectedWorkers.length === 1, 'the worker in the registry');
    const job = request(8, { width: 1024, height: 1024, images: Array.from({ length: 4 }, (_, i) => ({ seed: 10 + i })) });
    const closed = first.generate(job).catch((error: unknown) => error);
    await a.waitForLine((line) => line.msg === 'job started' && line.job === job.jobId);
    await first.close();
    expect(isRetryableEngineError(await closed)).toBe(true);
    await a.waitForLine((line) => line.msg === 'job done' && line.job === job.jobId);

    const second = await engine();
    const output = await second.generate(job);
    expect(output.worker).toBe('gpu-a');
    expect(output.images).toHaveLength(4);
    expect(jobLines(a, 'job started', job.jobId!)).toHaveLength(1);
    expect(await redis.exists(resultKey(job.jobId!))).toBe(0);
  });
});
