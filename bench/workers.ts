// For `npm run bench:load -- --workers N`: a redis-server, N worker processes on the timed stand-in, and the bot's
// remote engine over them. Everything binds 127.0.0.1 and is stopped by `close()`.

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import type { Logger } from '../src/logger.js';
import { createRemoteEngine, type RemoteEngine } from '../src/remote/remote-engine.js';

export type Fleet = {
  engine: RemoteEngine;
  busyLogs: string[];
  /** Resolves once the started engine sees every worker in the registry. */
  ready(): Promise<void>;
  close(): Promise<void>;
};

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill(signal);
  await exited;
}

/** Starts redis-server (no persistence), `count` workers with `standInArgs` (each its own busy log in `dir`), and the engine. */
export async function startFleet(count: number, standInArgs: (busyLog: string) => string[], dir: string, logger: Logger): Promise<Fleet> {
  const port = await freePort();
  const redisServer = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const url = `redis://127.0.0.1:${port}`;
  const children: ChildProcess[] = [];
  const close = async (): Promise<void> => {
    await Promise.all(children.map((child) => stopChild(child)));
    await stopChild(redisServer);
  };
  try {
    const probe = new Redis(url, { retryStrategy: (times) => (times > 50 ? null : 100) });
    probe.on('error', () => undefined);
    await probe.ping();
    probe.disconnect();
    const script = fileURLToPath(new URL('./remote-worker.js', import.meta.url));
    const busyLogs = Array.from({ length: count }, (_, i) => join(dir, `busy-${i}.log`));
    await Promise.all(
      busyLogs.map(async (busyLog, i) => {
        const child = spawn(process.execPath, [script, '--redis-url', url, '--id', `bench-gpu-${i}`, '--', ...standInArgs(busyLog)], { stdio: ['ignore', 'pipe', 'inherit'] });
        children.push(child);
        let out = '';
        await new Promise<void>((resolve, reject) => {
          child.stdout!.on('data', (chunk: Buffer) => {
            out += chunk.toString();
            if (out.includes('ready\n')) resolve();
          });
          child.once('exit', (code) => reject(new Error(`bench worker ${i} exited with ${code} before it was ready`)));
        });
      }),
    );
    const engine = createRemoteEngine({ redisUrl: url, pollMs: 1000, orphanMs: 3000, waitForSteps: true }, { logger });
    return {
      engine,
      busyLogs,
      async ready() {
        while (engine.connectedWorkers.length < count) await new Promise((resolve) => setTimeout(resolve, 50));
      },
      async close() {
        await engine.close();
        await close();
      },
    };
  } catch (error) {
    await close();
    throw error;
  }
}
