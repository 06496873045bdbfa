// What `npm run doctor` says about the GPU workers: each connected one, and whether the configured ENGINE can work.

import { Redis } from 'ioredis';
import type { EngineChoice } from '../config.js';
import { maskUrlCredentials } from '../redact.js';
import type { WorkerAnnouncement } from './protocol.js';
import { readWorkers } from './registry.js';

export type WorkerReport = { lines: { level: 'ok' | 'warn' | 'bad'; text: string }[]; healthy: boolean };

/** `gpu-a on box-1 (cuda:0), steps 1/2/4/8, busy with job abc, last seen 2 s ago, up 3 h` */
export function describeAnnouncement(worker: WorkerAnnouncement, now = Date.now()): string {
  const ago = Math.max(0, Math.round((now - worker.lastSeen) / 1000));
  const up = Math.round((now - worker.startedAt) / 1000);
  const upText = up < 120 ? `${up} s` : up < 7200 ? `${Math.round(up / 60)} min` : `${Math.round(up / 3600)} h`;
  const state = worker.state === 'busy' ? `busy${worker.job ? ` with job ${worker.job}` : ''}` : 'idle';
  return `${worker.id} on ${worker.host} (${worker.device}), steps ${worker.steps.join('/')}, ${state}, last seen ${ago} s ago, up ${upText}`;
}

/** Reads the registry at `redisUrl` (within 3 s) and judges it against ENGINE. */
export async function inspectWorkers(redisUrl: string | undefined, engine: EngineChoice): Promise<WorkerReport> {
  const needed = engine !== 'local';
  if (!redisUrl) {
    return { lines: [{ level: 'ok', text: 'ENGINE=local: this process runs the model; no GPU workers (set REDIS_URL and ENGINE=remote or both to add some)' }], healthy: true };
  }
  const redis = new Redis(redisUrl, { lazyConnect: true, connectTimeout: 3000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    const workers = await readWorkers(redis);
    const lines: WorkerReport['lines'] = workers.map((worker) => ({ level: 'ok', text: describeAnnouncement(worker) }));
    if (workers.length === 0) {
      lines.push({
        level: needed ? 'bad' : 'ok',
        text: needed ? `ENGINE=${engine} but no GPU worker is connected: start \`npm run worker\` on a GPU host with this REDIS_URL` : 'no GPU workers connected (ENGINE=local does not use them)',
      });
    } else if (!needed) {
      lines.push({ level: 'warn', text: `ENGINE=local: the bot does not use these workers; set ENGINE=remote or both` });
    }
    return { lines, healthy: !needed || workers.length > 0 };
  } catch (error) {
    const text = `cannot read the worker registry at ${maskUrlCredentials(redisUrl)}: ${(error as Error).message}`;
    return { lines: [{ level: needed ? 'bad' : 'warn', text }], healthy: !needed };
  } finally {
    redis.disconnect();
  }
}
