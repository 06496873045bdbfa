// The bot as a real OS process (`node dist/src/main.js`): started with a chosen environment, its JSON log lines
// parsed for tests to wait on, its engine worker found through /proc, and everything it left behind killed at the end.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** `dist/src/main.js`, absolute, so the bot can run from a working directory without a `.env`. */
export const MAIN_SCRIPT = fileURLToPath(new URL('../../dist/src/main.js', import.meta.url));

/** One pino line from stdout (`level` 30 is info, 50 error), or `{ msg }` for a line that was not JSON. */
export type LogLine = { level?: number; msg?: string; time?: number; [field: string]: unknown };

export type Exit = { code: number | null; signal: NodeJS.Signals | null; at: number };

export type BotProcess = {
  readonly pid: number;
  readonly child: ChildProcess;
  /** Parsed stdout lines so far (live: it grows). */
  readonly logs: readonly LogLine[];
  /** Everything written to stderr so far. */
  readonly stderr: () => string;
  /** Settles when the process has exited and its output is read to the end. */
  readonly exited: Promise<Exit>;
  /** The first log line, past or future, that matches; rejects with the transcript after `timeoutMs` or on exit. */
  waitForLog(predicate: (line: LogLine) => boolean, timeoutMs: number, what: string): Promise<LogLine>;
  /** Every log line and stderr, for a failure message. */
  transcript(): string;
};

/** Pids of every process a test started (bots and the workers found in them), for `killLeftovers()`. */
const started = new Set<number>();
// should the test process end without its afterAll (a timeout, a crash), a bot left behind would outlive it
process.once('exit', () => {
  for (const pid of started) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/**
 * Starts `node dist/src/main.js` in `cwd` with exactly `env` (nothing inherited from the test runner). The caller
 * stops it (a signal, then `await bot.exited`); `killLeftovers()` in afterAll kills whatever is still alive.
 */
export function startBot(options: { cwd: string; env: Record<string, string>; detached?: boolean; uid?: number; gid?: number }): BotProcess {
  if (existsSync(join(options.cwd, '.env'))) throw new Error(`${options.cwd} has a .env, which main.js would load; run the bot from a clean folder`);
  const child = spawn(process.execPath, [MAIN_SCRIPT], {
    cwd: options.cwd,
    env: options.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.detached ?? false,
    // another user, for file permissions that root would ignore
    ...(options.uid !== undefined ? { uid: options.uid, gid: options.gid ?? options.uid } : {}),
  });
  if (child.pid === undefined) throw new Error(`could not start ${MAIN_SCRIPT}`);
  started.add(child.pid);
  const logs: LogLine[] = [];
  let stderr = '';
  let partial = '';
  let exit: Exit | undefined;
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const waiter of [...waiters]) waiter();
  };
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) if (line.trim()) logs.push(parseLine(line));
    notify();
  });
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => (stderr += chunk));
  // 'close', not 'exit': the output is complete only once both pipes have ended
  const exited = new Promise<Exit>((resolve) => {
    child.once('close', (code, signal) => {
      started.delete(child.pid!);
      if (partial.trim()) logs.push(parseLine(partial));
      exit = { code, signal, at: Date.now() };
      resolve(exit);
      notify();
    });
  });

  const transcript = (): string =>
    [`--- bot ${child.pid} stdout (${logs.length} lines) ---`, ...logs.map((line) => JSON.stringify(line)), `--- stderr ---`, stderr, `--- exit: ${JSON.stringify(exit ?? null)} ---`].join('\n');

  const waitForLog = (predicate: (line: LogLine) => boolean, timeoutMs: number, what: string): Promise<LogLine> =>
    new Promise((resolve, reject) => {
      const check = () => {
        const found = logs.find(predicate);
        if (found) return finish(() => resolve(found));
        if (exit) return finish(() => reject(new Error(`the bot exited before logging ${what}\n${transcript()}`)));
      };
      const timer = setTimeout(() => finish(() => reject(new Error(`no ${what} within ${timeoutMs} ms\n${transcript()}`))), timeoutMs);
      const finish = (settle: () => void) => {
        clearTimeout(timer);
        waiters.delete(check);
        settle();
      };
      waiters.add(check);
      check();
    });

  return { pid: child.pid, child, logs, stderr: () => stderr, exited, waitForLog, transcript };
}

function parseLine(line: string): LogLine {
  try {
    const parsed: unknown = JSON.parse(line);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as LogLine;
  } catch {
    // not pino's: a native library or Node itself wrote it
  }
  return { msg: line };
}

/** Direct children of `pid`, from every thread's `/proc/<pid>/task/<tid>/children` (Linux). */
export function childPids(pid: number): number[] {
  const children: number[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  for (const task of tasks) {
    try {
      for (const id of readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim().split(/\s+/)) {
        if (/^\d+$/.test(id)) children.push(Number(id));
      }
    } catch {
      // the thread ended while we read
    }
  }
  for (const child of children) started.add(child);
  return children;
}

/**
 * Whether `pid` still runs. `process.kill(pid, 0)` also succeeds for a zombie, which an orphan stays when the
 * container's pid 1 does not reap, so a process in state Z counts as gone.
 */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // the state follows the parenthesised command name, which may itself hold spaces
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Resolves true once `pid` is gone, false if it still runs after `timeoutMs`. */
export async function waitUntilGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isRunning(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(25);
  }
  return true;
}

/** SIGKILLs every started bot and worker that still runs; returns the pids it had to kill. */
export async function killLeftovers(): Promise<number[]> {
  const killed: number[] = [];
  for (const pid of started) {
    if (!isRunning(pid)) continue;
    try {
      process.kill(pid, 'SIGKILL');
      killed.push(pid);
    } catch {
      // it exited meanwhile
    }
  }
  for (const pid of killed) await waitUntilGone(pid, 5_000);
  started.clear();
  return killed;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
