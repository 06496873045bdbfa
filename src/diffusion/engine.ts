// The bot's handle on the diffusion engine: owns the worker process, keeps one request committed ahead of the running
// one, times runs out, and restarts a dead or frozen worker with backoff for as long as the bot runs.

import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../logger.js';
import { clearPixelFolder, createPixelFolder, removePixelFolder, unpackPixels } from './pixel-transfer.js';
import type { PipelineOptions, PipelineRequest, ProgressEvent, StageTimings } from './pipeline.js';
import type { FailureKind, FromWorker, PixelTransferMode, ResultMessage, SerializedError, ToWorker, WorkerImage } from './protocol.js';
import type { SafetyVerdict } from './safety.js';
import type { PredictionType } from './scheduler.js';
import type { ResolvedProvider } from './session.js';

export type EngineOptions = PipelineOptions & {
  /** How long start-up (loading every session) may take before it counts as failed. */
  startTimeoutMs?: number;
  /** How long `close()` waits for the running request before killing the worker. */
  closeTimeoutMs?: number;
  /** The first wait before restarting a dead worker; it doubles after each failed life, up to `restartMaxDelayMs`. */
  restartDelayMs?: number;
  restartMaxDelayMs?: number;
  /** A run may take this many times the median of recent runs of the same steps, size and batch before it is killed. */
  runTimeoutMultiple?: number;
  /** The limit while there are no recent runs to go by (the first run of a shape; a lazily loaded UNet loads then). */
  firstRunTimeoutMs?: number;
  /** The least limit, so a short run on a busy machine is never taken for a frozen one. */
  minRunTimeoutMs?: number;
  /** Keep one request waiting inside the worker while another runs (default true; false is the old way, for benchmarks). */
  commitAhead?: boolean;
  /** How pixels cross from the worker (default `shared-file`; `message` is the old way, for benchmarks). */
  pixelTransfer?: PixelTransferMode;
};

export type EngineDeps = {
  logger: Logger;
  /** Starts the worker process from its script path; tests use it to hold the real worker and kill it. */
  startWorker?: (script: string) => ChildProcess;
};

export type EngineInfo = { provider: ResolvedProvider; steps: readonly number[]; modelDir: string };

/** Whether requests can run now, or why not: `restarting` while the worker starts again; `no_worker` when no runner has the steps. */
export type EngineAvailability =
  | { state: 'ready' }
  | {
      state: 'unavailable';
      reason: 'restarting' | 'no_worker';
      /** For the admin log. */
      detail: string;
    };

/** What the pixels cost to bring over from the worker: bytes, and ms from the worker having them to the bot having them. */
export type PixelTransferCost = { bytes: number; ms: number; mode: PixelTransferMode | 'message-fallback' };

export type GenerationOutput = {
  images: WorkerImage[];
  timings: StageTimings;
  truncated: boolean;
  prediction: PredictionType;
  transfer?: PixelTransferCost;
  /** Per image, the safety classifier's verdict; absent when SAFETY=off. */
  safety?: SafetyVerdict[];
};

/**
 * `crashed`: the worker died (or was killed) with the request posted to it; `timeout`: the request ran far longer
 * than runs like it do, so its worker was killed; `unavailable`: the worker is restarting, so nothing was posted.
 * These three (and `closed`) leave the job fit to run again.
 */
export type EngineErrorCode = FailureKind | 'crashed' | 'timeout' | 'unavailable' | 'not_started' | 'closed';

/** A failed start or request. `code` says whose problem it is; `problems` lists model-folder issues. */
export class EngineError extends Error {
  override readonly name = 'EngineError';
  readonly code: EngineErrorCode;
  readonly problems: readonly string[];
  constructor(code: EngineErrorCode, message: string, options: { problems?: readonly string[]; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.code = code;
    this.problems = options.problems ?? [];
  }
}

type Pending = {
  id: number;
  request: PipelineRequest & { jobId?: string };
  onProgress?: (event: ProgressEvent) => void;
  resolve: (output: GenerationOutput) => void;
  reject: (error: EngineError) => void;
  /** Armed while this request is the worker's current one. */
  timer?: NodeJS.Timeout;
  timedOut?: boolean;
};

const DEFAULTS = {
  startTimeoutMs: 600_000,
  closeTimeoutMs: 30_000,
  restartDelayMs: 1_000,
  restartMaxDelayMs: 60_000,
  runTimeoutMultiple: 5,
  firstRunTimeoutMs: 60_000,
  minRunTimeoutMs: 10_000,
} as const;
/** A worker that lived this long before dying starts the backoff over. */
const STABLE_LIFE_MS = 60_000;
/** Runs remembered per shape for the timeout's median. */
const RECENT_RUNS = 9;

/**
 * The worker always runs compiled JavaScript from `dist/` (Node 20 cannot start a `.ts` file): next to this file
 * when it runs from `dist/`, and from the build when the TypeScript source runs under the test runner.
 */
export function workerScript(): string {
  const own = import.meta.url;
  const script = fileURLToPath(own.endsWith('.ts') ? new URL('../../dist/src/diffusion/worker.js', own) : new URL('./worker.js', own));
  if (!existsSync(script)) throw new EngineError('internal', `the engine worker ${script} is missing; run \`npm run build\` first`);
  return script;
}

/**
 * A separate Node process, not a worker thread: a native abort in onnxruntime or CUDA then ends only the worker,
 * and killing a worker in the middle of a run is safe (terminating a worker thread there aborted the whole process
 * about one time in three with onnxruntime-node 1.30). 'advanced' serialization carries typed arrays.
 */
export function startWorkerProcess(script: string): ChildProcess {
  return fork(script, [], { serialization: 'advanced', execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

type State = 'new' | 'starting' | 'ready' | 'restarting' | 'closed';

export class Engine {
  /** What the last worker that started has installed; kept while a dead worker restarts. */
  info: EngineInfo | undefined;
  private readonly listeners = new Set<() => void>();
  private readonly options: EngineOptions;
  private readonly limits: { -readonly [K in keyof typeof DEFAULTS]: number };
  private readonly logger: Logger;
  private readonly startWorker: (script: string) => ChildProcess;
  private state: State = 'new';
  private worker: ChildProcess | undefined;
  private workerReadyAt = 0;
  /** Requests handed to the worker, in order: the running one, then at most one committed ahead. */
  private readonly posted: Pending[] = [];
  /** Requests given to `generate` beyond what may be posted (callers that do not ask `canTake` first). */
  private readonly waiting: Pending[] = [];
  private nextId = 1;
  private failedLives = 0;
  private lastFailure: string | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private readonly recentRuns = new Map<string, number[]>();
  private pixelFolder: string | undefined;
  private startWaiter: { resolve: (info: EngineInfo) => void; reject: (error: EngineError) => void } | undefined;
  private closedWaiter: (() => void) | undefined;

  constructor(options: EngineOptions, deps: EngineDeps) {
    this.options = options;
    this.limits = { ...DEFAULTS };
    for (const key of Object.keys(DEFAULTS) as (keyof typeof DEFAULTS)[]) this.limits[key] = options[key] ?? DEFAULTS[key];
    this.logger = deps.logger.child({ part: 'engine' });
    this.startWorker = deps.startWorker ?? startWorkerProcess;
  }

  /** Starts the worker and loads the models; rejects with an EngineError that says what is wrong. */
  async start(): Promise<EngineInfo> {
    if (this.state === 'closed') throw new EngineError('closed', 'the engine is closed');
    this.state = 'starting';
    this.pixelFolder ??= createPixelFolder();
    try {
      this.info = await this.spawn();
    } catch (error) {
      if (this.state === 'starting') this.state = 'new';
      throw error;
    }
    this.state = 'ready';
    this.logger.info({ ...this.info }, 'engine ready');
    this.changed();
    return this.info;
  }

  /**
   * Runs a request; resolves with RGB images. Requests run one at a time in the order they came; the worker holds the
   * next one while the current one runs. Rejects with `unavailable` while a dead worker restarts (nothing is queued
   * here for it: the caller keeps its queue and asks again when `onChange` fires), with `crashed` or `timeout` when
   * the worker died or froze under it, and with the worker's own failure otherwise.
   */
  generate(request: PipelineRequest & { jobId?: string }, onProgress?: (event: ProgressEvent) => void): Promise<GenerationOutput> {
    if (this.state === 'closed') return Promise.reject(new EngineError('closed', 'the engine is shutting down'));
    if (this.state === 'new') return Promise.reject(new EngineError('not_started', 'the engine has not started'));
    if (this.state !== 'ready') return Promise.reject(this.unavailable());
    return new Promise((resolve, reject) => {
      this.waiting.push({ id: this.nextId++, request, onProgress, resolve, reject });
      this.pump();
    });
  }

  /** Whether a request of this many steps can be handed over now: the worker is up, has them, and holds fewer than two. */
  canTake(steps: number): boolean {
    return this.availability(steps).state === 'ready' && this.posted.length + this.waiting.length < this.slots();
  }

  availability(steps: number): EngineAvailability {
    if (this.state === 'closed') return { state: 'unavailable', reason: 'no_worker', detail: 'the engine is closed' };
    if (this.state !== 'ready') {
      return { state: 'unavailable', reason: 'restarting', detail: this.lastFailure ? `the engine worker is restarting after: ${this.lastFailure}` : 'the engine worker is starting' };
    }
    if (!this.info?.steps.includes(steps)) {
      return { state: 'unavailable', reason: 'no_worker', detail: `no UNet for ${steps} steps is installed; installed: ${this.info?.steps.join(', ')}` };
    }
    return { state: 'ready' };
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Requests given to `generate` and not yet handed to the worker. */
  get queued(): number {
    return this.waiting.length;
  }

  /** Rejects waiting requests, lets the posted ones finish (up to `closeTimeoutMs`), then stops the worker. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearTimeout(this.restartTimer);
    for (const pending of this.waiting.splice(0)) pending.reject(new EngineError('closed', 'the engine is shutting down'));
    const worker = this.worker;
    if (worker) {
      const closed = new Promise<void>((resolve) => {
        this.closedWaiter = resolve;
      });
      this.post({ type: 'close' });
      const timeout = setTimeout(() => worker.kill('SIGKILL'), this.limits.closeTimeoutMs);
      await closed;
      clearTimeout(timeout);
    }
    for (const pending of this.posted.splice(0)) this.settle(pending, new EngineError('closed', 'the engine shut down before the request finished'));
    if (this.pixelFolder) removePixelFolder(this.pixelFolder);
    this.logger.info('engine closed');
    this.changed();
  }

  private slots(): number {
    return this.options.commitAhead === false ? 1 : 2;
  }

  private unavailable(): EngineError {
    return new EngineError('unavailable', this.lastFailure ? `the engine worker is restarting after: ${this.lastFailure}` : 'the engine worker is starting');
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }

  private spawn(): Promise<EngineInfo> {
    const worker = this.startWorker(workerScript());
    this.worker = worker;
    worker.on('message', (message: FromWorker) => this.onMessage(worker, message));
    worker.on('error', (error) => this.logger.error({ err: error }, 'engine worker process error'));
    worker.on('exit', (code, signal) => this.onExit(worker, code, signal));
    return new Promise<EngineInfo>((resolve, reject) => {
      const timeout = setTimeout(() => {
        this.startWaiter = undefined;
        worker.kill('SIGKILL');
        reject(new EngineError('model', `loading the models took longer than ${Math.round(this.limits.startTimeoutMs / 1000)} s`));
      }, this.limits.startTimeoutMs);
      this.startWaiter = {
        resolve: (info) => {
          clearTimeout(timeout);
          this.workerReadyAt = performance.now();
          resolve(info);
        },
        reject: (error) => {
          clearTimeout(timeout);
          worker.kill('SIGKILL');
          reject(error);
        },
      };
      const { startTimeoutMs: _s, closeTimeoutMs: _c, restartDelayMs: _r, restartMaxDelayMs: _m, runTimeoutMultiple: _t, firstRunTimeoutMs: _f, minRunTimeoutMs: _n, commitAhead: _a, pixelTransfer, ...pipelineOptions } =
        this.options;
      this.post({ type: 'start', options: pipelineOptions, pixelFolder: this.pixelFolder!, pixelTransfer: pixelTransfer ?? 'shared-file' });
    });
  }

  private post(message: ToWorker): void {
    if (this.worker?.connected) this.worker.send(message);
  }

  /** Hands waiting requests to the worker while it holds fewer than its slots; the first one posted is timed. */
  private pump(): void {
    while (this.state === 'ready' && this.posted.length < this.slots() && this.waiting.length > 0) {
      const next = this.waiting.shift()!;
      this.posted.push(next);
      this.post({ type: 'generate', id: next.id, request: next.request });
    }
    this.armHead();
  }

  /** Times the worker's current request (the first posted), from when it became current. */
  private armHead(): void {
    const head = this.posted[0];
    if (!head || head.timer || this.state !== 'ready') return;
    const limitMs = this.runLimitMs(head.request);
    head.timer = setTimeout(() => this.timeOut(head, limitMs), limitMs);
  }

  private runLimitMs(request: PipelineRequest): number {
    const recent = this.recentRuns.get(shapeKey(request));
    if (!recent?.length) return this.limits.firstRunTimeoutMs;
    return Math.max(this.limits.minRunTimeoutMs, this.limits.runTimeoutMultiple * median(recent));
  }

  private timeOut(head: Pending, limitMs: number): void {
    if (this.posted[0] !== head || !this.worker) return;
    head.timedOut = true;
    this.logger.error(
      { request: describeRequest(head.request), limitMs, pid: this.worker.pid },
      'a run took far longer than runs like it; killing and restarting the engine worker',
    );
    this.worker.kill('SIGKILL');
  }

  private onMessage(worker: ChildProcess, message: FromWorker): void {
    if (worker !== this.worker) return;
    switch (message.type) {
      case 'ready': {
        const info = { provider: message.provider, steps: message.steps, modelDir: message.modelDir };
        const waiter = this.startWaiter;
        this.startWaiter = undefined;
        waiter?.resolve(info);
        return;
      }
      case 'start-failed': {
        const waiter = this.startWaiter;
        this.startWaiter = undefined;
        waiter?.reject(toEngineError(message.error));
        return;
      }
      case 'progress':
        this.posted.find((pending) => pending.id === message.id)?.onProgress?.(message.event);
        return;
      case 'result':
      case 'failed': {
        const index = this.posted.findIndex((pending) => pending.id === message.id);
        if (index < 0) return;
        const [pending] = this.posted.splice(index, 1);
        clearTimeout(pending.timer);
        if (message.type === 'result') {
          this.failedLives = 0;
          this.remember(pending.request, message.timings.totalMs);
          this.receive(pending, message);
        } else {
          if (message.error.kind !== 'invalid_request') {
            this.logger.error({ request: describeRequest(pending.request), error: message.error }, 'generation failed');
          }
          pending.reject(toEngineError(message.error));
        }
        this.pump();
        this.changed();
        return;
      }
      case 'log':
        this.logger[message.level](message.details ?? {}, message.message);
        return;
      case 'closed':
        this.closedWaiter?.();
        return;
    }
  }

  /** Brings the pixels over (one read of the file, or the bytes in the message) and resolves. */
  private receive(pending: Pending, message: ResultMessage): void {
    try {
      const images = unpackPixels(message);
      const bytes = images.reduce((sum, image) => sum + image.data.byteLength, 0);
      const mode = 'ref' in message.pixels ? 'shared-file' : this.options.pixelTransfer === 'message' ? 'message' : 'message-fallback';
      pending.resolve({
        images,
        timings: message.timings,
        truncated: message.truncated,
        prediction: message.prediction,
        transfer: { bytes, ms: performance.timeOrigin + performance.now() - message.readyAt, mode },
        ...(message.safety ? { safety: message.safety } : {}),
      });
    } catch (error) {
      this.logger.error({ err: error, request: describeRequest(pending.request) }, 'could not read the pixels the engine worker made');
      pending.reject(new EngineError('internal', `could not read the pixels: ${(error as Error).message}`, { cause: error }));
    }
  }

  private remember(request: PipelineRequest, totalMs: number): void {
    const key = shapeKey(request);
    const recent = this.recentRuns.get(key) ?? [];
    recent.push(totalMs);
    if (recent.length > RECENT_RUNS) recent.shift();
    this.recentRuns.set(key, recent);
  }

  private settle(pending: Pending, error: EngineError): void {
    clearTimeout(pending.timer);
    pending.reject(error);
  }

  private onExit(worker: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (worker !== this.worker) return;
    this.worker = undefined;
    if (this.state === 'closed') {
      this.closedWaiter?.();
      return;
    }
    const how = signal ? `signal ${signal}` : `exit code ${code}`;
    const crashed = new EngineError('crashed', `the engine worker stopped unexpectedly (${how})`);
    if (this.startWaiter) {
      const waiter = this.startWaiter;
      this.startWaiter = undefined;
      waiter.reject(crashed);
      return;
    }
    const timedOut = this.posted.find((pending) => pending.timedOut);
    this.logger.error({ code, signal, posted: this.posted.map((pending) => describeRequest(pending.request)), timedOut: Boolean(timedOut) }, 'engine worker exited');
    this.lastFailure = timedOut ? 'a run that froze' : crashed.message;
    for (const pending of this.posted.splice(0)) {
      this.settle(pending, pending.timedOut ? new EngineError('timeout', 'the run took far longer than runs like it; the engine worker was restarted') : crashed);
    }
    for (const pending of this.waiting.splice(0)) pending.reject(this.unavailable());
    if (performance.now() - this.workerReadyAt >= STABLE_LIFE_MS) this.failedLives = 0;
    this.failedLives++;
    this.state = 'restarting';
    this.changed();
    this.scheduleRestart();
  }

  /** Waits `restartDelayMs` × 2^(failed lives − 1), at most `restartMaxDelayMs`, then starts a worker; never gives up. */
  private scheduleRestart(): void {
    const delayMs = Math.min(this.limits.restartMaxDelayMs, this.limits.restartDelayMs * 2 ** Math.max(0, this.failedLives - 1));
    this.logger.warn({ delayMs, failedLives: this.failedLives }, 'restarting the engine worker');
    this.restartTimer = setTimeout(() => void this.restart(), delayMs);
  }

  private async restart(): Promise<void> {
    if (this.state !== 'restarting') return;
    if (this.pixelFolder) clearPixelFolder(this.pixelFolder);
    try {
      const info = await this.spawn();
      if (this.state !== 'restarting') return;
      this.info = info;
      this.state = 'ready';
      this.lastFailure = undefined;
      this.logger.info({ ...info }, 'engine worker restarted');
      this.changed();
      this.pump();
    } catch (error) {
      if (this.state !== 'restarting') return;
      this.lastFailure = (error as Error).message;
      this.failedLives++;
      this.logger.error({ err: error }, 'the engine worker did not start again');
      this.scheduleRestart();
    }
  }
}

/** Builds the engine (nothing runs until `start()`). The caller owns it and calls `close()`. */
export function createEngine(options: EngineOptions, deps: EngineDeps): Engine {
  return new Engine(options, deps);
}

function toEngineError(error: SerializedError): EngineError {
  const engineError = new EngineError(error.kind, error.message, { problems: error.problems });
  if (error.stack) engineError.stack = error.stack;
  return engineError;
}

/** Runs of the same step count, size and batch take about as long as one another. */
function shapeKey(request: PipelineRequest): string {
  return `${request.steps}:${request.width}x${request.height}:${request.images.length}`;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** What the admin log may say about a request: its settings, never more of the prompt than a glimpse. */
function describeRequest(request: PipelineRequest & { jobId?: string }): Record<string, unknown> {
  return {
    ...(request.jobId ? { job: request.jobId } : {}),
    steps: request.steps,
    size: `${request.width}x${request.height}`,
    images: request.images.length,
    seeds: request.images.map((image) => image.seed),
    promptLength: request.prompt.length,
  };
}
