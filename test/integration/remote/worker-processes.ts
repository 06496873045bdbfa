// `npm run worker` processes for the remote tests: started from dist/ on a model folder, their log lines kept.

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const WORKER_SCRIPT = fileURLToPath(new URL('../../../dist/src/cli/worker.js', import.meta.url));

export type WorkerProcess = {
  id: string;
  child: ChildProcess;
  /** Every JSON log line so far. */
  lines: Record<string, unknown>[];
  /** Resolves with the first log line that `match` accepts (now or later). */
  waitForLine(match: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Ends the process with `signal` and waits until it is gone. */
  stop(signal?: NodeJS.Signals): Promise<void>;
};

export type WorkerSettings = { redisUrl: string; modelDir: string; lockSeconds?: number; heartbeatSeconds?: number };

/** Starts a worker and waits for its "ready" line (within 60 s). */
export async function startWorkerProcess(id: string, settings: WorkerSettings): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [WORKER_SCRIPT], {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      REDIS_URL: settings.redisUrl,
      MODEL_DIR: settings.modelDir,
      WORKER_ID: id,
      EXECUTION_PROVIDER: 'cpu',
      // one onnxruntime thread per worker: several share this machine's cores
      CPU_THREADS: '1',
      WORKER_LOCK_SECONDS: String(settings.lockSeconds ?? 2),
      WORKER_HEARTBEAT_SECONDS: String(settings.heartbeatSeconds ?? 1),
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Record<string, unknown>[] = [];
  const waiters: { match: (line: Record<string, unknown>) => boolean; resolve: (line: Record<string, unknown>) => void }[] = [];
  let readyLine: (() => void) | undefined;
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    let newline: number;
    while ((newline = stdout.indexOf('\n')) >= 0) {
      const text = stdout.slice(0, newline);
      stdout = stdout.slice(newline + 1);
      if (text.startsWith(`worker ${id} ready`)) readyLine?.();
      if (!text.startsWith('{')) continue;
      const line = JSON.parse(text) as Record<string, unknown>;
      lines.push(line);
      for (const waiter of [...waiters]) {
        if (waiter.match(line)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(line);
        }
      }
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = once(child, 'exit');
  const ready = new Promise<void>((resolve, reject) => {
    readyLine = resolve;
    void exited.then(([code, signal]) => reject(new Error(`worker ${id} exited (${code ?? signal}) before it was ready: ${stderr}`)));
    setTimeout(() => reject(new Error(`worker ${id} was not ready within 60 s: ${stderr}`)), 60_000).unref();
  });
  const worker: WorkerProcess = {
    id,
    child,
    lines,
    waitForLine(match, timeoutMs = 30_000) {
      const found = lines.find(match);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`worker ${id}: no matching log line within ${timeoutMs} ms`)), timeoutMs);
        waiters.push({ match, resolve: (line) => (clearTimeout(timer), resolve(line)) });
      });
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await exited;
    },
  };
  try {
    await ready;
  } catch (error) {
    await worker.stop('SIGKILL');
    throw error;
  }
  return worker;
}

/** Log lines of `worker` with message `msg` about `job`. */
export function jobLines(worker: WorkerProcess, msg: string, job: string): Record<string, unknown>[] {
  return worker.lines.filter((line) => line.msg === msg && line.job === job);
}
