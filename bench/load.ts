// `npm run bench:load`: simulated users against the real service and a timed stand-in engine; prints measured figures.
//
// Real: the service, the SQLite job store, the limits (generous, so nobody is refused unless a cap says so), the fair
// queue, the image cache, sharp's encoding, and the worker process with its IPC and pixel transfer. Stood in: the model
// (bench/standin-worker.ts sleeps the time an H100 would take) and the platform (an adapter that notes the time of each
// status and delivery). Light users send a request every --light-gap-s seconds on average (exponential gaps); heavy
// users keep the per-user cap of jobs waiting, sending again the moment one of theirs starts. A probe user, while the
// queue is non-empty, times service.imagine() (the work before a platform's ack) and cancels what it queued.
// Run: npm run bench:load -- [--seconds 60] [--pixels flat] [--wait spin] …  (flags in NUMERIC_FLAGS; Ctrl-C stops early)

import { fork } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance, type IntervalHistogram } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ImageCache } from '../src/core/image-cache.js';
import { JobStore, type Job } from '../src/core/jobs.js';
import { createLimits, type LimitsConfig } from '../src/core/limits.js';
import { createFairQueue, type FairQueue } from '../src/core/queue.js';
import type { RefusalCode } from '../src/core/refusal.js';
import { ASPECT_SIZES, type Aspect, type GenerationRequest } from '../src/core/request.js';
import { createService, type PlatformAdapter, type Requester, type ServiceDeps, type Submission } from '../src/core/service.js';
import { createEngine, type EngineOptions } from '../src/diffusion/index.js';
import { composeGrid, encodeForUpload } from '../src/render/index.js';
import { createLogger } from '../src/logger.js';
import { machineLine } from './stats.js';
import type { PixelMode, WaitMode } from './standin-worker.js';

// ——— settings ———

const WHOLE = /^\d+$/;
const DECIMAL = /^\d+(\.\d+)?$/;

/** Numeric flags: default, the pattern a value must match, the least value allowed, and what it means. */
const NUMERIC_FLAGS = {
  seconds: { fallback: '60', pattern: WHOLE, least: 1, meaning: 'wall time of the load, whole seconds' },
  'light-users': { fallback: '30', pattern: WHOLE, least: 0, meaning: 'users who send now and then' },
  'light-gap-s': { fallback: '30', pattern: DECIMAL, least: 0.1, meaning: "mean seconds between one light user's requests" },
  'heavy-users': { fallback: '3', pattern: WHOLE, least: 0, meaning: 'users who keep the per-user cap of jobs waiting' },
  'ms-per-step': { fallback: '25', pattern: DECIMAL, least: 0, meaning: 'stand-in UNet ms per image per step' },
  'vae-ms': { fallback: '30', pattern: DECIMAL, least: 0, meaning: 'stand-in VAE decode ms per image' },
  'text-ms': { fallback: '5', pattern: DECIMAL, least: 0, meaning: 'stand-in text encoders ms per request' },
  'probe-ms': { fallback: '100', pattern: DECIMAL, least: 1, meaning: 'mean ms between probe commands' },
  seed: { fallback: '1', pattern: WHOLE, least: 0, meaning: 'seed of every simulated choice' },
  'engine-seconds': { fallback: '15', pattern: WHOLE, least: 0, meaning: 'wall time of each engine-alone run (0 skips them)' },
} as const satisfies Record<string, { fallback: string; pattern: RegExp; least: number; meaning: string }>;

type NumericFlag = keyof typeof NUMERIC_FLAGS;

const WAIT_MEANINGS = {
  sleep: 'waits on timers, idle like a worker blocked on the GPU',
  spin: 'busy-waits, taking a CPU core like a worker spinning on the CUDA stream',
} as const satisfies Record<WaitMode, string>;

const PIXEL_MEANINGS = {
  photo: 'photo-like texture (realistic PNG/WebP cost)',
  flat: 'one colour per image (encoding almost free)',
} as const satisfies Record<PixelMode, string>;

type Settings = Record<NumericFlag, number> & { wait: WaitMode; pixels: PixelMode };

function readSettings(argv: readonly string[]): Settings {
  const numericOptions = Object.fromEntries(Object.keys(NUMERIC_FLAGS).map((name) => [name, { type: 'string' as const }]));
  const { values } = parseArgs({ args: [...argv], options: { ...numericOptions, wait: { type: 'string' }, pixels: { type: 'string' } } });
  const read = values as Record<string, string | undefined>;
  const numbers = Object.fromEntries(
    (Object.entries(NUMERIC_FLAGS) as [NumericFlag, (typeof NUMERIC_FLAGS)[NumericFlag]][]).map(([name, flag]) => {
      const value = read[name] ?? flag.fallback;
      if (!flag.pattern.test(value) || Number(value) < flag.least) {
        throw new Error(`--${name} (${flag.meaning}): expected a number of at least ${flag.least}, like ${flag.fallback}; found "${value}"`);
      }
      return [name, Number(value)];
    }),
  ) as Record<NumericFlag, number>;
  const choice = <T extends string>(name: string, meanings: Record<T, string>, fallback: T): T => {
    const value = read[name] ?? fallback;
    if (!Object.hasOwn(meanings, value)) throw new Error(`--${name}: expected ${Object.keys(meanings).join(' or ')}; found "${value}"`);
    return value as T;
  };
  return { ...numbers, wait: choice('wait', WAIT_MEANINGS, 'sleep'), pixels: choice('pixels', PIXEL_MEANINGS, 'photo') };
}

/** Limits no simulated user reaches except the per-user waiting cap, which heavy users live at. */
const LIMITS: LimitsConfig = {
  userBurst: 10_000,
  userRefillMs: 1_000,
  maxQueuedPerUser: 2,
  guildDailyImages: 1_000_000,
  maxQueueLength: 1_000,
  exemptUsers: [],
  bannedUsers: [],
};

/** Discord's attachment limit without boosts (DEFAULT_ATTACHMENT_LIMIT in src/platforms/discord/bot.ts). */
const UPLOAD_LIMIT_BYTES = 10 * 2 ** 20;
const IMAGE_CACHE_BYTES = 512 * 2 ** 20;
/** How long the service may finish the running job and the delivery backlog after the load stops. */
const STOP_TIMEOUT_MS = 25_000;
const GUILDS = 3;
/** monitorEventLoopDelay records the whole interval between its timer's runs, this included; the figures subtract it. */
const LOOP_DELAY_RESOLUTION_MS = 10;

/** What users ask for, weighted: mostly the default 4 steps and a 2×2 grid, some single images and other step counts. */
const STEP_WEIGHTS: readonly [number, number][] = [
  [1, 1],
  [2, 2],
  [4, 5],
  [8, 2],
];
const COUNT_WEIGHTS: readonly [number, number][] = [
  [1, 3],
  [2, 1],
  [3, 1],
  [4, 5],
];
const ASPECT_WEIGHTS: readonly [Aspect, number][] = [
  ['1:1', 6],
  ['16:9', 1],
  ['9:16', 1],
  ['4:3', 1],
  ['3:4', 1],
];
const PROMPTS = [
  'a lighthouse at dusk, golden hour, 35mm photo',
  'a red fox in fresh snow, telephoto',
  'isometric pixel-art bakery at night',
  'an astronaut reading in a greenhouse, soft light',
  'watercolour map of an imaginary harbour town',
] as const;

// ——— seeded choices ———

/**
 * mulberry32 (Tommy Ettinger): a 32-bit state, uniform floats in [0, 1). Seed 1 gives 0.6270739405881613, then
 * 0.002735721180215478. One instance per simulated user, so a user's requests do not depend on timing.
 */
class Mulberry32 {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  }

  /** An exponential gap with mean `mean` (gaps of a Poisson process). */
  exponential(mean: number): number {
    return -mean * Math.log(1 - this.next());
  }

  weighted<T>(table: readonly (readonly [T, number])[]): T {
    let left = this.next() * table.reduce((sum, [, weight]) => sum + weight, 0);
    for (const [value, weight] of table) {
      left -= weight;
      if (left < 0) return value;
    }
    return table[table.length - 1][0];
  }

  uint32(): number {
    return Math.floor(this.next() * 2 ** 32);
  }
}

function mean(table: readonly (readonly [number, number])[]): number {
  const total = table.reduce((sum, [, weight]) => sum + weight, 0);
  return table.reduce((sum, [value, weight]) => sum + value * weight, 0) / total;
}

// ——— measurements ———

type UserClass = 'light' | 'heavy' | 'probe';

/** Epoch ms with sub-ms precision; the stand-in worker stamps its busy times on the same clock. */
const clock = (): number => performance.timeOrigin + performance.now();

type JobRecord = {
  userClass: UserClass;
  /** Job.createdAt: the store's Date.now when the job was recorded. */
  createdAt: number;
  images: number;
  startedAt?: number;
  generatedAt?: number;
  deliveredAt?: number;
  bytes?: number;
  format?: string;
  failed?: boolean;
};

/** One engine.generate call as the service made it, in the order the worker ran them. */
type EngineCall = { jobId: string | undefined; calledAt: number; resolvedAt?: number; images: number; steps: number };

type Busy = { start: number; end: number; images: number; steps: number };
type Interval = readonly [number, number];

function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

const average = (values: readonly number[]): number => (values.length ? values.reduce((sum, value) => sum + value, 0) / values.length : Number.NaN);

/** Total length of the overlap of two sorted lists of disjoint intervals. */
function overlapMs(a: readonly Interval[], b: readonly Interval[]): number {
  let total = 0;
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    total += Math.max(0, Math.min(a[i][1], b[j][1]) - Math.max(a[i][0], b[j][0]));
    if (a[i][1] < b[j][1]) i++;
    else j++;
  }
  return total;
}

const lengthMs = (intervals: readonly Interval[]): number => intervals.reduce((sum, [from, to]) => sum + to - from, 0);

/** A FairQueue that notes its size, with the time, after every change. */
function observedQueue(queue: FairQueue, onSize: (size: number) => void): FairQueue {
  return {
    push(job) {
      queue.push(job);
      onSize(queue.size);
    },
    remove(jobId) {
      const removed = queue.remove(jobId);
      onSize(queue.size);
      return removed;
    },
    take(options) {
      const job = queue.take(options);
      onSize(queue.size);
      return job;
    },
    recordUsage: (userKey, cost) => queue.recordUsage(userKey, cost),
    positions: () => queue.positions(),
    waiting: () => queue.waiting(),
    roundOf: (jobId) => queue.roundOf(jobId),
    get size() {
      return queue.size;
    },
    countFor: (userKey) => queue.countFor(userKey),
    has: (jobId) => queue.has(jobId),
  };
}

/** A logger destination that counts warnings and errors and keeps the first few messages. */
function countingLog(): { destination: Writable; count: () => number; first: string[] } {
  let count = 0;
  const first: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        count++;
        if (first.length < 3) first.push((JSON.parse(line) as { msg?: string }).msg ?? line);
      }
      done();
    },
  });
  return { destination, count: () => count, first };
}

// ——— formatting ———

const ms = (value: number): string => (Number.isNaN(value) ? '–' : `${value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0)} ms`);
const seconds = (value: number): string => (Number.isNaN(value) ? '–' : `${(value / 1000).toFixed(value < 10_000 ? 2 : 1)} s`);
const percent = (share: number): string => (Number.isNaN(share) ? '–' : `${(share * 100).toFixed(1)} %`);
const bytes = (count: number): string => (count < 2 ** 20 ? `${(count / 2 ** 10).toFixed(1)} KiB` : `${(count / 2 ** 20).toFixed(1)} MiB`);
const perMinute = (count: number, windowMs: number): string => ((count * 60_000) / windowMs).toFixed(1);
const weights = (table: readonly (readonly [unknown, number])[]): string => table.map(([value, weight]) => `${value}×${weight}`).join(' ');

// ——— the run ———

/** What one run measured. Times are epoch ms on `clock`. */
type Measured = {
  windowStart: number;
  windowEnd: number;
  records: JobRecord[];
  calls: EngineCall[];
  /** The fair queue's size after every change. */
  sizes: { at: number; size: number }[];
  busy: Busy[];
  submissions: { light: number; heavy: number };
  refusals: Map<string, number>;
  probeAnswerMs: number[];
  probeDueMs: number[];
  probesSkipped: number;
  probesRan: number;
  loopDelay: IntervalHistogram;
  cpu: NodeJS.CpuUsage;
  loopUtilization: number;
  peakRss: number;
  backlogAtStop: number;
  waitingAtStop: { userClass: UserClass; waitedMs: number }[];
  drainedMs: number;
  logged: { count: number; first: string[] };
};

/** Builds the bot's core on a temp dir, runs the simulated users for `settings.seconds`, stops, and cleans up. */
async function runLoad(settings: Settings, workerPath: string): Promise<Measured> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-load-'));
  const busyLog = join(dir, 'busy.log');
  const log = countingLog();
  const logger = createLogger({ level: 'warn', destination: log.destination });
  const store = new JobStore(join(dir, 'jobs.sqlite'));
  const images = new ImageCache(join(dir, 'images'), IMAGE_CACHE_BYTES);
  const limits = createLimits(LIMITS, { logger });
  const workerArgs = standinArgs(settings, busyLog);
  const engine = createEngine(
    { modelDir: '(stand-in)', provider: 'cuda', deviceId: 0 },
    { logger, startWorker: () => fork(workerPath, workerArgs, { serialization: 'advanced', execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }) },
  );

  const records = new Map<string, JobRecord>();
  const calls: EngineCall[] = [];
  const sizes: { at: number; size: number }[] = [{ at: clock(), size: 0 }];
  const submissions = { light: 0, heavy: 0 };
  const refusals = new Map<string, number>();
  const probeAnswerMs: number[] = [];
  const probeDueMs: number[] = [];
  let probesSkipped = 0;
  let probesRan = 0;
  let active = false;

  const classOf = (userId: string): UserClass => userId.split('-')[0] as UserClass;
  const record = (job: Job): JobRecord => {
    let found = records.get(job.id);
    if (!found) {
      found = { userClass: classOf(job.userId), createdAt: job.createdAt, images: job.request.count };
      records.set(job.id, found);
    }
    return found;
  };

  const queue = observedQueue(createFairQueue(), (size) => sizes.push({ at: clock(), size }));
  const measuredEngine: ServiceDeps['engine'] = {
    get info() {
      return engine.info;
    },
    canTake: (steps) => engine.canTake(steps),
    availability: (steps) => engine.availability(steps),
    onChange: (listener) => engine.onChange(listener),
    async generate(request, onProgress) {
      const call: EngineCall = { jobId: request.jobId, calledAt: clock(), images: request.images.length, steps: request.steps };
      calls.push(call);
      const output = await engine.generate(request, onProgress);
      call.resolvedAt = clock();
      const job = call.jobId === undefined ? undefined : records.get(call.jobId);
      if (job) job.generatedAt = call.resolvedAt;
      return output;
    },
  };

  type SimUser<C extends UserClass> = { userClass: C; requester: Requester; random: Mulberry32; submitting: number; timer?: NodeJS.Timeout };
  const seeds = new Mulberry32(settings.seed);
  const user = <C extends UserClass>(userClass: C, index: number): SimUser<C> => ({
    userClass,
    requester: { platform: 'discord', userId: `${userClass}-${index}`, guildId: `guild-${index % GUILDS}`, channelId: `channel-${index % GUILDS}` },
    random: new Mulberry32(seeds.uint32()),
    submitting: 0,
  });
  const lightUsers = Array.from({ length: settings['light-users'] }, (_, i) => user('light', i));
  const heavyUsers = new Map(Array.from({ length: settings['heavy-users'] }, (_, i) => user('heavy', i)).map((u) => [u.requester.userId, u]));
  const probe = user('probe', 0);

  const nextRequest = (random: Mulberry32): GenerationRequest => ({
    prompt: PROMPTS[Math.floor(random.next() * PROMPTS.length)],
    steps: random.weighted(STEP_WEIGHTS),
    seed: random.uint32(),
    aspect: random.weighted(ASPECT_WEIGHTS),
    count: random.weighted(COUNT_WEIGHTS),
  });

  const noteRefusal = (userClass: UserClass, code: RefusalCode): void => {
    const key = `${code} (${userClass})`;
    refusals.set(key, (refusals.get(key) ?? 0) + 1);
  };

  const submit = async (sim: SimUser<'light' | 'heavy'>): Promise<Submission> => {
    submissions[sim.userClass]++;
    const submission = await service.imagine(sim.requester, nextRequest(sim.random), { user: sim.requester.userId });
    if (!submission.ok) noteRefusal(sim.userClass, submission.refusal.code);
    return submission;
  };

  /** A heavy user sends again until the cap of waiting jobs is reached. */
  const topUp = async (sim: SimUser<'heavy'>): Promise<void> => {
    const userKey = `${sim.requester.platform}:${sim.requester.userId}`;
    while (active && queue.countFor(userKey) + sim.submitting < LIMITS.maxQueuedPerUser) {
      sim.submitting++;
      const submission = await submit(sim).finally(() => sim.submitting--);
      if (!submission.ok) return;
    }
  };

  const scheduleLight = (sim: SimUser<'light'>): void => {
    sim.timer = setTimeout(() => {
      if (!active) return;
      scheduleLight(sim);
      void submit(sim);
    }, sim.random.exponential(settings['light-gap-s'] * 1000));
  };

  /** Times imagine() as a platform's handler would run it, then cancels the job so the probe adds no GPU work. */
  const scheduleProbe = (): void => {
    const gap = probe.random.exponential(settings['probe-ms']);
    const due = clock() + gap;
    probe.timer = setTimeout(async () => {
      if (!active) return;
      scheduleProbe();
      if (queue.size === 0) {
        probesSkipped++;
        return;
      }
      const called = clock();
      const submission = await service.imagine(probe.requester, { prompt: PROMPTS[0], steps: 4, seed: 1, aspect: '1:1', count: 1 }, {});
      const answered = clock();
      probeAnswerMs.push(answered - called);
      probeDueMs.push(answered - due);
      if (!submission.ok) noteRefusal('probe', submission.refusal.code);
      else if (!service.cancel(probe.requester, submission.job.id).ok) probesRan++;
    }, gap);
  };

  const adapter: PlatformAdapter = {
    maxUploadBytes: () => UPLOAD_LIMIT_BYTES,
    onStatus(job, update) {
      if (update.state !== 'running' || record(job).startedAt !== undefined) return;
      record(job).startedAt = clock();
      const heavy = heavyUsers.get(job.userId);
      if (heavy && active) setImmediate(() => void topUp(heavy));
    },
    async deliverResult(job, result) {
      const found = record(job);
      found.deliveredAt = clock();
      found.bytes = result.file.data.length;
      found.format = result.file.format;
      return `message-${job.id}`;
    },
    async deliverFailure(job) {
      record(job).failed = true;
    },
  };

  const service = createService(
    { blockedWords: ['forbidden'], allowedChannels: [], variationStrength: 0.25, stopTimeoutMs: STOP_TIMEOUT_MS },
    { engine: measuredEngine, store, limits, queue, images, logger },
  );
  service.registerPlatform('discord', adapter);

  const loopDelay = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });
  let peakRss = 0;
  let rssSampler: NodeJS.Timeout | undefined;
  const stopUsers = (): void => {
    active = false;
    for (const sim of [...lightUsers, ...heavyUsers.values(), probe]) clearTimeout(sim.timer);
    clearInterval(rssSampler);
  };

  try {
    await engine.start();
    await images.start();
    await limits.start();
    service.start();

    const cpuAtStart = process.cpuUsage();
    const loopAtStart = performance.eventLoopUtilization();
    rssSampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 250);
    active = true;
    const windowStart = clock();
    loopDelay.enable();
    for (const sim of lightUsers) scheduleLight(sim);
    for (const sim of heavyUsers.values()) void topUp(sim);
    scheduleProbe();

    // Ctrl-C ends the load early; the figures and the clean-up still follow
    const interrupted = new AbortController();
    const interrupt = (): void => interrupted.abort();
    process.once('SIGINT', interrupt);
    await sleep(settings.seconds * 1000, undefined, { signal: interrupted.signal }).catch(() => console.log('interrupted: reporting the load so far'));
    process.off('SIGINT', interrupt);

    stopUsers();
    const windowEnd = clock();
    loopDelay.disable();
    const cpu = process.cpuUsage(cpuAtStart);
    const loop = performance.eventLoopUtilization(loopAtStart);
    const backlogAtStop = [...records.values()].filter((r) => r.generatedAt !== undefined && r.deliveredAt === undefined && !r.failed).length;
    const waitingAtStop = queue.waiting().map((job) => ({ userClass: classOf(job.userKey.split(':')[1]), waitedMs: Date.now() - job.enqueuedAt }));

    await service.close();
    const drainedMs = clock() - windowEnd;
    await engine.close(); // the worker has logged its last generation once it is closed
    const busy: Busy[] = readFileSync(busyLog, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [start, end, count, steps] = line.split(' ').map(Number);
        return { start, end, images: count, steps };
      });
    return {
      windowStart,
      windowEnd,
      records: [...records.values()],
      calls,
      sizes,
      busy,
      submissions,
      refusals,
      probeAnswerMs,
      probeDueMs,
      probesSkipped,
      probesRan,
      loopDelay,
      cpu,
      loopUtilization: loop.utilization,
      peakRss,
      backlogAtStop,
      waitingAtStop,
      drainedMs,
      logged: { count: log.count(), first: log.first },
    };
  } finally {
    stopUsers();
    await engine.close();
    await limits.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function report(settings: Settings, measured: Measured): void {
  const { windowStart, windowEnd, calls, sizes, busy, submissions, refusals, probeAnswerMs, probeDueMs, probesSkipped, probesRan, loopDelay, cpu } = measured;
  const all = measured.records;
  const windowMs = windowEnd - windowStart;
  const inWindow = (at: number | undefined): at is number => at !== undefined && at >= windowStart && at <= windowEnd;

  const generated = calls.filter((call) => inWindow(call.resolvedAt));
  const delivered = all.filter((r) => inWindow(r.deliveredAt));
  const imageCount = (list: readonly { images: number }[]): number => list.reduce((sum, item) => sum + item.images, 0);
  console.log(
    `throughput: generated ${perMinute(generated.length, windowMs)} jobs/min, ${perMinute(imageCount(generated), windowMs)} images/min; ` +
      `delivered ${perMinute(delivered.length, windowMs)} jobs/min, ${perMinute(imageCount(delivered), windowMs)} images/min ` +
      `(submitted: ${submissions.light} light, ${submissions.heavy} heavy)`,
  );

  const waitLine = (userClass: UserClass): string => {
    const waits = all.filter((r) => r.userClass === userClass && inWindow(r.startedAt)).map((r) => r.startedAt! - r.createdAt);
    const left = measured.waitingAtStop.filter((w) => w.userClass === userClass);
    const oldest = left.length ? `, oldest ${seconds(Math.max(...left.map((w) => w.waitedMs)))}` : '';
    return `${userClass} p50 ${seconds(percentile(waits, 50))}, p95 ${seconds(percentile(waits, 95))} (n=${waits.length}; ${left.length} still waiting at the end${oldest})`;
  };
  console.log(`queue wait (recorded → running): ${waitLine('light')}; ${waitLine('heavy')}`);

  const lightTotals = all.filter((r) => r.userClass === 'light' && inWindow(r.deliveredAt)).map((r) => r.deliveredAt! - r.createdAt);
  const encodeLags = all.filter((r) => inWindow(r.generatedAt) && r.deliveredAt !== undefined).map((r) => r.deliveredAt! - r.generatedAt!);
  const grids = all.filter((r) => r.bytes !== undefined);
  const formats = new Map<string, number>();
  for (const r of grids) formats.set(r.format!, (formats.get(r.format!) ?? 0) + 1);
  console.log(
    `delivery: light request → delivered p50 ${seconds(percentile(lightTotals, 50))}, p95 ${seconds(percentile(lightTotals, 95))}; ` +
      `images back → delivered (grid, encode, earlier deliveries) p50 ${ms(percentile(encodeLags, 50))}, p95 ${ms(percentile(encodeLags, 95))}; ` +
      `${measured.backlogAtStop} generated but undelivered at the end of the load, drained in ${seconds(measured.drainedMs)}; ` +
      `files ${[...formats].map(([format, count]) => `${count} ${format}`).join(', ')}, median ${bytes(percentile(grids.map((r) => r.bytes!), 50))}`,
  );

  // duty cycle: the worker's own busy time, against the time the queue held a job
  const busyIntervals: Interval[] = busy.map((b) => [b.start, b.end]);
  const windowInterval: Interval[] = [[windowStart, windowEnd]];
  const nonEmpty: Interval[] = [];
  let openedAt: number | undefined;
  for (const { at, size } of sizes) {
    if (size > 0 && openedAt === undefined) openedAt = at;
    if (size === 0 && openedAt !== undefined) {
      nonEmpty.push([openedAt, at]);
      openedAt = undefined;
    }
  }
  if (openedAt !== undefined) nonEmpty.push([openedAt, windowEnd]);
  const nonEmptyInWindow: Interval[] = nonEmpty.map(([from, to]) => [Math.max(from, windowStart), Math.min(to, windowEnd)] as const).filter(([from, to]) => to > from);
  const busyShare = overlapMs(busyIntervals, windowInterval) / windowMs;
  const nonEmptyShare = lengthMs(nonEmptyInWindow) / windowMs;
  const busyWhileWaiting = overlapMs(busyIntervals, nonEmptyInWindow) / lengthMs(nonEmptyInWindow);
  const inFlightIntervals: Interval[] = calls.filter((c) => c.resolvedAt !== undefined).map((c) => [c.calledAt, c.resolvedAt!]);
  console.log(
    `engine duty cycle: worker busy ${percent(busyShare)} of the load; queue non-empty ${percent(nonEmptyShare)} of it; ` +
      `busy while the queue was non-empty ${percent(busyWhileWaiting)} (goal ≥ 97 %); generate() in flight, as the service sees it, ${percent(overlapMs(inFlightIntervals, windowInterval) / windowMs)}`,
  );

  // where the time between two jobs goes, when the next one was already waiting
  const sizeAt = (at: number): number => {
    let low = 0;
    let high = sizes.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if (sizes[middle].at <= at) low = middle;
      else high = middle - 1;
    }
    return sizes[low].size;
  };
  if (busy.length !== calls.length) console.log(`warning: the worker logged ${busy.length} generations for ${calls.length} engine calls; the gap split below is off`);
  const gaps: { total: number; back: number; service: number; out: number }[] = [];
  for (let k = 0; k + 1 < Math.min(busy.length, calls.length); k++) {
    const [done, next] = [calls[k], calls[k + 1]];
    if (done.resolvedAt === undefined || !inWindow(busy[k].end) || sizeAt(done.resolvedAt) === 0) continue;
    gaps.push({
      total: busy[k + 1].start - busy[k].end,
      back: done.resolvedAt - busy[k].end,
      service: next.calledAt - done.resolvedAt,
      out: busy[k + 1].start - next.calledAt,
    });
  }
  const split = (pick: (gap: (typeof gaps)[number]) => number): string => {
    const values = gaps.map(pick);
    return `min ${ms(percentile(values, 0))}, mean ${ms(average(values))}, p50 ${ms(percentile(values, 50))}, p95 ${ms(percentile(values, 95))}, max ${ms(percentile(values, 100))}`;
  };
  const busyMs = busy.map((b) => b.end - b.start);
  const modelledMs = busy.map((b) => settings['text-ms'] + b.images * (b.steps * settings['ms-per-step'] + settings['vae-ms']));
  console.log(`engine gaps with a job waiting (n=${gaps.length}; the worker was busy ${ms(average(busyMs))} per job, the model says ${ms(average(modelledMs))}):`);
  console.log(`  worker done → next job starts in the worker: ${split((g) => g.total)}`);
  console.log(`    result message reaches the service:        ${split((g) => g.back)}`);
  console.log(`    service hands the engine the next job:     ${split((g) => g.service)}`);
  console.log(`    generate message reaches the worker:       ${split((g) => g.out)}`);

  const lateMs = (nanoseconds: number): number => Math.max(0, nanoseconds / 1e6 - LOOP_DELAY_RESOLUTION_MS);
  console.log(
    `main thread while saturated: imagine() answered p50 ${ms(percentile(probeAnswerMs, 50))}, p99 ${ms(percentile(probeAnswerMs, 99))}, ` +
      `max ${ms(percentile(probeAnswerMs, 100))} (n=${probeAnswerMs.length}, goal p99 ≤ 100 ms); counted from when the command was due ` +
      `(timer lateness too) p99 ${ms(percentile(probeDueMs, 99))}; ${probesSkipped} probes skipped with an empty queue, ${probesRan} could not be cancelled`,
  );
  console.log(
    `event loop: delay p50 ${ms(lateMs(loopDelay.percentile(50)))}, p99 ${ms(lateMs(loopDelay.percentile(99)))}, max ${ms(lateMs(loopDelay.max))}; ` +
      `utilization ${percent(measured.loopUtilization)}; bot process CPU ${((cpu.user + cpu.system) / 1000 / windowMs).toFixed(2)} cores (JS and libvips threads); peak RSS ${bytes(measured.peakRss)}`,
  );
  console.log(`other load: 1-minute load average ${loadavg()[0].toFixed(2)} after the run, this run's own share included`);
  console.log(`refusals: ${refusals.size ? [...refusals].map(([key, count]) => `${count} ${key}`).join(', ') : 'none'}; warnings and errors logged: ${measured.logged.count}${measured.logged.first.length ? ` (${measured.logged.first.join('; ')})` : ''}`);
}

// ——— the engine alone ———

/** The stand-in worker's arguments for a run that logs its busy times to `busyLog`. */
function standinArgs(settings: Settings, busyLog: string): string[] {
  return [
    ...['--ms-per-step', String(settings['ms-per-step']), '--vae-ms', String(settings['vae-ms']), '--text-ms', String(settings['text-ms'])],
    ...['--wait', settings.wait, '--pixels', settings.pixels, '--busy-log', busyLog],
  ];
}

/**
 * The engine under a queue that never empties, without the service: a runner posts whenever `canTake` allows (as the
 * service does once it asks), and composes and encodes each grid on this thread as the service does. Returns the
 * worker's busy share of the window, and the jobs and transfer times seen.
 */
async function runEngineAlone(
  settings: Settings,
  workerPath: string,
  options: Pick<EngineOptions, 'commitAhead' | 'pixelTransfer'>,
): Promise<{ duty: number; jobs: number; transferMs: number[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-engine-'));
  const busyLog = join(dir, 'busy.log');
  const engine = createEngine(
    { modelDir: '(stand-in)', provider: 'cuda', deviceId: 0, ...options },
    { logger: createLogger({ level: 'warn' }), startWorker: () => fork(workerPath, standinArgs(settings, busyLog), { serialization: 'advanced', execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }) },
  );
  const random = new Mulberry32(settings.seed);
  const transferMs: number[] = [];
  let jobs = 0;
  let active = true;
  const inFlight = new Set<Promise<void>>();
  const next = (): Parameters<typeof engine.generate>[0] => {
    const { width, height } = ASPECT_SIZES[random.weighted(ASPECT_WEIGHTS)];
    const count = random.weighted(COUNT_WEIGHTS);
    return { prompt: PROMPTS[0], steps: random.weighted(STEP_WEIGHTS), width, height, images: Array.from({ length: count }, (_, i) => ({ seed: i })) };
  };
  let pending = next();
  const feed = (): void => {
    while (active && engine.canTake(pending.steps)) {
      const job = engine.generate(pending).then(async (output) => {
        transferMs.push(output.transfer?.ms ?? Number.NaN);
        await new Promise((resolve) => setImmediate(resolve));
        const image = output.images.length === 1 ? output.images[0] : composeGrid(output.images);
        await encodeForUpload(image, UPLOAD_LIMIT_BYTES);
        jobs++;
      });
      inFlight.add(job);
      void job.finally(() => inFlight.delete(job));
      pending = next();
    }
  };
  try {
    await engine.start();
    const stop = engine.onChange(feed);
    const windowStart = clock();
    feed();
    await sleep(settings['engine-seconds'] * 1000);
    active = false;
    const windowEnd = clock();
    stop();
    await Promise.allSettled([...inFlight]);
    await engine.close();
    const busy: Interval[] = readFileSync(busyLog, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [start, end] = line.split(' ').map(Number);
        return [start, end] as const;
      });
    return { duty: overlapMs(busy, [[windowStart, windowEnd]]) / (windowEnd - windowStart), jobs, transferMs };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function reportEngineAlone(settings: Settings, workerPath: string): Promise<void> {
  if (settings['engine-seconds'] === 0) return;
  const ways = [
    { name: 'before: one request at a time, pixels inside the IPC message', options: { commitAhead: false, pixelTransfer: 'message' } },
    { name: 'after: one committed ahead, pixels through a tmpfs file', options: { commitAhead: true, pixelTransfer: 'shared-file' } },
  ] as const;
  const duties: number[] = [];
  for (const way of ways) {
    const { duty, jobs, transferMs } = await runEngineAlone(settings, workerPath, way.options);
    duties.push(duty);
    console.log(
      `engine alone, queue never empty, ${settings['engine-seconds']} s, ${way.name}: worker busy ${percent(duty)} (goal ≥ 98 %); ${jobs} jobs; ` +
        `pixels worker → bot p50 ${ms(percentile(transferMs, 50))}, p95 ${ms(percentile(transferMs, 95))}`,
    );
  }
  console.log(`engine alone, ratio in this run: idle share ${((1 - duties[0]) / (1 - duties[1])).toFixed(1)}× smaller with one committed ahead`);
}

async function main(): Promise<void> {
  const settings = readSettings(process.argv.slice(2));
  const workerPath = fileURLToPath(new URL('./standin-worker.js', import.meta.url));
  if (!existsSync(workerPath)) throw new Error(`${workerPath} is missing; run \`npx tsc -p tsconfig.build.json\` first`);

  const meanImages = mean(COUNT_WEIGHTS);
  const modelledJobMs = settings['text-ms'] + meanImages * (mean(STEP_WEIGHTS) * settings['ms-per-step'] + settings['vae-ms']);
  console.log(`machine: ${await machineLine()}`);
  console.log(`other load: 1-minute load average ${loadavg()[0].toFixed(2)} on ${availableParallelism()} cores before the run (the figures assume a quiet machine)`);
  console.log(
    `load: ${settings.seconds} s; ${settings['light-users']} light users (a request every ${settings['light-gap-s']} s on average, exponential gaps), ` +
      `${settings['heavy-users']} heavy users (keep ${LIMITS.maxQueuedPerUser} waiting); probe every ~${settings['probe-ms']} ms while the queue is non-empty; seed ${settings.seed}`,
  );
  console.log(`mix: steps ${weights(STEP_WEIGHTS)}, images ${weights(COUNT_WEIGHTS)}, aspects ${weights(ASPECT_WEIGHTS)}`);
  console.log(
    `stand-in engine: ${settings['text-ms']} ms + ${settings['ms-per-step']} ms per image-step + ${settings['vae-ms']} ms VAE per image; ` +
      `wait ${settings.wait} (${WAIT_MEANINGS[settings.wait]}), pixels ${settings.pixels} (${PIXEL_MEANINGS[settings.pixels]}); ` +
      `modelled mean ${ms(modelledJobMs)} per job → capacity ${perMinute(1, modelledJobMs)} jobs/min, ${perMinute(meanImages, modelledJobMs)} images/min`,
  );
  report(settings, await runLoad(settings, workerPath));
  await reportEngineAlone(settings, workerPath);
}

await main();
