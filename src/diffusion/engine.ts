// The bot's handle on the diffusion engine: owns the worker process, queues requests, restarts a dead worker.

import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../logger.js';
import type { PipelineOptions, PipelineRequest, ProgressEvent, StageTimings } from './pipeline.js';
import type { FailureKind, FromWorker, SerializedError, ToWorker, WorkerImage } from './protocol.js';
import type { SafetyVerdict } from './safety.js';
import type { PredictionType } from './scheduler.js';
import type { ResolvedProvider } from './session.js';

export type EngineOptions = PipelineOptions & {
  /** How long start-up (loading every session) may take before it counts as failed. */
  startTimeoutMs?: number;
  /** How long `close()` waits for the running request before killing the worker. */
  closeTimeoutMs?: number;
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

export type GenerationOutput = {
  images: WorkerImage[];
  timings: StageTimings;
  truncated: boolean;
  prediction: PredictionType;
  /** Per image, the safety classifier's verdict; absent when SAFETY=off. */
  safety?: SafetyVerdict[];
};

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
  request: PipelineRequest;
  onProgress?: (event: ProgressEvent) => void;
  resolve: (output: GenerationOutput) => void;
  reject: (error: EngineError) => void;
};

/** Restarts allowed in this window before the engine gives up on a worker that keeps dying. */
const RESTART_WINDOW_MS = 60_000;
const MAX_RESTARTS_IN_WINDOW = 3;

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

export class Engine {
  info: EngineInfo | undefined;
  private readonly listeners = new Set<() => void>();
  private readonly options: EngineOptions;
  private readonly logger: Logger;
  private readonly startWorker: (script: string) => ChildProcess;
  private worker: ChildProcess | undefined;
  private readonly queue: Pending[] = [];
  private inFlight: Pending | undefined;
  private nextId = 1;
  /** Set by the first successful start; requests made while a dead worker restarts wait for it. */
  private started = false;
  private closing = false;
  private failure: EngineError | undefined;
  private restarts: number[] = [];
  private startWaiter: { resolve: (info: EngineInfo) => void; reject: (error: EngineError) => void } | undefined;
  private closedWaiter: (() => void) | undefined;

  constructor(options: EngineOptions, deps: EngineDeps) {
    this.options = options;
    this.logger = deps.logger.child({ part: 'engine' });
    this.startWorker = deps.startWorker ?? startWorkerProcess;
  }

  /** Starts the worker and loads the models; rejects with an EngineError that says what is wrong. */
  async start(): Promise<EngineInfo> {
    if (this.closing) throw new EngineError('closed', 'the engine is closed');
    this.info = await this.spawn();
    this.started = true;
    this.logger.info({ ...this.info }, 'engine ready');
    this.changed();
    return this.info;
  }

  /** Queues a request; resolves with RGB images. Requests run one at a time, in the order they came. */
  generate(request: PipelineRequest, onProgress?: (event: ProgressEvent) => void): Promise<GenerationOutput> {
    if (this.closing) return Promise.reject(new EngineError('closed', 'the engine is shutting down'));
    if (this.failure) return Promise.reject(this.failure);
    if (!this.started) return Promise.reject(new EngineError('not_started', 'the engine has not started'));
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, request, onProgress, resolve, reject });
      this.pump();
    });
  }

  /** Whether a request of this many steps would start at once: the worker is up, has them, and is idle. */
  canTake(steps: number): boolean {
    return this.availability(steps).state === 'ready' && Boolean(this.info?.steps.includes(steps)) && !this.inFlight && this.queue.length === 0;
  }

  availability(_steps: number): EngineAvailability {
    if (this.failure) return { state: 'unavailable', reason: 'restarting', detail: this.failure.message };
    if (!this.info || this.startWaiter) return { state: 'unavailable', reason: 'restarting', detail: 'the engine worker is starting' };
    return { state: 'ready' };
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }

  /** Requests waiting behind the running one. */
  get waiting(): number {
    return this.queue.length;
  }

  /** Rejects waiting requests, lets the running one finish (up to `closeTimeoutMs`), then stops the worker. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const pending of this.queue.splice(0)) pending.reject(new EngineError('closed', 'the engine is shutting down'));
    const worker = this.worker;
    if (!worker) return;
    const closed = new Promise<void>((resolve) => {
      this.closedWaiter = resolve;
    });
    this.post({ type: 'close' });
    const timeout = setTimeout(() => worker.kill('SIGKILL'), this.options.closeTimeoutMs ?? 30_000);
    await closed;
    clearTimeout(timeout);
    this.logger.info('engine closed');
  }

  private spawn(): Promise<EngineInfo> {
    const worker = this.startWorker(workerScript());
    this.worker = worker;
    worker.on('message', (message: FromWorker) => this.onMessage(message));
    worker.on('error', (error) => this.logger.error({ err: error }, 'engine worker process error'));
    worker.on('exit', (code, signal) => this.onExit(worker, code, signal));
    return new Promise<EngineInfo>((resolve, reject) => {
      const timeout = setTimeout(
        () => {
          this.startWaiter = undefined;
          worker.kill('SIGKILL');
          reject(new EngineError('model', `loading the models took longer than ${Math.round((this.options.startTimeoutMs ?? 600_000) / 1000)} s`));
        },
        this.options.startTimeoutMs ?? 600_000,
      );
      this.startWaiter = {
        resolve: (info) => {
          clearTimeout(timeout);
          resolve(info);
        },
        reject: (error) => {
          clearTimeout(timeout);
          worker.kill('SIGKILL');
          reject(error);
        },
      };
      const { startTimeoutMs: _start, closeTimeoutMs: _close, ...pipelineOptions } = this.options;
      this.post({ type: 'start', options: pipelineOptions });
    });
  }

  private post(message: ToWorker): void {
    if (this.worker?.connected) this.worker.send(message);
  }

  private pump(): void {
    if (this.inFlight || !this.info || this.startWaiter) return;
    const next = this.queue.shift();
    if (!next) return;
    this.inFlight = next;
    this.post({ type: 'generate', id: next.id, request: next.request });
  }

  private onMessage(message: FromWorker): void {
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
        if (this.inFlight?.id === message.id) this.inFlight.onProgress?.(message.event);
        return;
      case 'result':
      case 'failed': {
        const pending = this.inFlight;
        if (!pending || pending.id !== message.id) return;
        this.inFlight = undefined;
        if (message.type === 'result') {
          pending.resolve({ images: message.images, timings: message.timings, truncated: message.truncated, prediction: message.prediction, ...(message.safety ? { safety: message.safety } : {}) });
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

  private onExit(worker: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (worker !== this.worker) return;
    this.worker = undefined;
    if (this.closing) {
      this.closedWaiter?.();
      return;
    }
    const how = signal ? `signal ${signal}` : `exit code ${code}`;
    const crashed = new EngineError('crashed', `the engine worker stopped unexpectedly (${how})`);
    this.logger.error({ code, signal, inFlight: this.inFlight && describeRequest(this.inFlight.request) }, 'engine worker exited');
    if (this.startWaiter) {
      const waiter = this.startWaiter;
      this.startWaiter = undefined;
      waiter.reject(crashed);
      return;
    }
    this.inFlight?.reject(crashed);
    this.inFlight = undefined;
    this.info = undefined;
    this.changed();
    void this.restart();
  }

  private async restart(): Promise<void> {
    const now = Date.now();
    this.restarts = this.restarts.filter((time) => now - time < RESTART_WINDOW_MS);
    this.restarts.push(now);
    if (this.restarts.length > MAX_RESTARTS_IN_WINDOW) {
      this.giveUp(new EngineError('crashed', `the engine worker died ${this.restarts.length} times within a minute; not restarting it`));
      return;
    }
    this.logger.warn('restarting the engine worker');
    this.info = undefined;
    try {
      this.info = await this.spawn();
      this.logger.info({ ...this.info }, 'engine worker restarted');
      this.pump();
      this.changed();
    } catch (error) {
      this.giveUp(error instanceof EngineError ? error : new EngineError('internal', (error as Error).message, { cause: error }));
    }
  }

  private giveUp(error: EngineError): void {
    this.failure = error;
    this.logger.error({ err: error }, 'the engine is out of service');
    for (const pending of this.queue.splice(0)) pending.reject(error);
    this.changed();
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

/** What the admin log may say about a request: its settings, never more of the prompt than a glimpse. */
function describeRequest(request: PipelineRequest): Record<string, unknown> {
  return {
    steps: request.steps,
    size: `${request.width}x${request.height}`,
    images: request.images.length,
    seeds: request.images.map((image) => image.seed),
    promptLength: request.prompt.length,
  };
}
