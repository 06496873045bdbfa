// The worker registry in Redis: each worker's announcement under a key that expires unless its heartbeat renews it.

import type { Redis } from 'ioredis';
import { KNOWN_STEPS_KEY, parseAnnouncement, WORKER_CHANNEL, WORKER_SET_KEY, workerKey, type WorkerAnnouncement } from './protocol.js';

/** A worker is taken for gone when it has missed this many heartbeats in a row. */
export const MISSED_HEARTBEATS = 3;

/** Every live worker's announcement, by id; drops ids whose announcement has expired from the set. */
export async function readWorkers(redis: Redis): Promise<WorkerAnnouncement[]> {
  const ids = await redis.smembers(WORKER_SET_KEY);
  if (ids.length === 0) return [];
  const values = await redis.mget(ids.map(workerKey));
  const live: WorkerAnnouncement[] = [];
  const gone: string[] = [];
  ids.forEach((id, index) => {
    const announcement = parseAnnouncement(values[index]);
    if (announcement) live.push(announcement);
    else gone.push(id);
  });
  if (gone.length > 0) await redis.srem(WORKER_SET_KEY, ...gone);
  return live.sort((a, b) => a.id.localeCompare(b.id));
}

/** Whether a live-looking announcement is this worker's own before a restart: the same host, its process gone. */
function restartedHere(existing: WorkerAnnouncement, own: Pick<WorkerAnnouncement, 'host'>): boolean {
  if (existing.host !== own.host) return false;
  try {
    process.kill(existing.pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** The step counts some worker announced since `since` (epoch ms), ascending. */
export async function readKnownSteps(redis: Redis, since: number): Promise<number[]> {
  const seen = await redis.hgetall(KNOWN_STEPS_KEY);
  return Object.entries(seen)
    .filter(([steps, at]) => /^\d+$/.test(steps) && Number(at) >= since)
    .map(([steps]) => Number(steps))
    .sort((a, b) => a - b);
}

/** Another process already announces itself under this worker id. */
export class DuplicateWorkerError extends Error {
  override readonly name = 'DuplicateWorkerError';
}

/**
 * Throws a DuplicateWorkerError when another live process announces itself under this id (a process before a
 * restart on the same host, now gone, does not count). A worker checks before loading its model, and again as it
 * announces itself.
 */
export async function assertWorkerIdFree(redis: Redis, own: Pick<WorkerAnnouncement, 'id' | 'host'> & { instance?: string }): Promise<void> {
  const existing = parseAnnouncement(await redis.get(workerKey(own.id)));
  if (!existing || existing.instance === own.instance || restartedHere(existing, own)) return;
  throw new DuplicateWorkerError(
    `another worker process (on ${existing.host}, seen ${Math.round((Date.now() - existing.lastSeen) / 1000)} s ago) already uses the worker id "${own.id}"; give each worker its own WORKER_ID`,
  );
}

export type Announcer = {
  /** Announces the worker (throws a DuplicateWorkerError when the id is live elsewhere) and starts the heartbeat. */
  start(): Promise<void>;
  /** Says at once that the worker is busy with `job`, or idle again. */
  setState(state: 'idle', job?: undefined): Promise<void>;
  setState(state: 'busy', job: string): Promise<void>;
  /** Stops the heartbeat and removes the announcement. */
  close(): Promise<void>;
};

/**
 * Keeps `announcement` in Redis under a key with a TTL of MISSED_HEARTBEATS heartbeats, renewed every
 * `heartbeatMs`: a worker killed with -9 leaves the registry within that time. Each change is published on
 * WORKER_CHANNEL so the bot hears it at once.
 */
export function createAnnouncer(
  redis: Redis,
  announcement: Omit<WorkerAnnouncement, 'state' | 'job' | 'lastSeen'>,
  options: { heartbeatMs: number; onError?: (error: unknown) => void },
): Announcer {
  let state: Pick<WorkerAnnouncement, 'state' | 'job'> = { state: 'idle' };
  let timer: NodeJS.Timeout | undefined;
  let writing: Promise<void> | undefined;
  let closed = false;
  const key = workerKey(announcement.id);

  const write = async (): Promise<void> => {
    const value: WorkerAnnouncement = { ...announcement, ...state, lastSeen: Date.now() };
    await redis
      .multi()
      .set(key, JSON.stringify(value), 'PX', options.heartbeatMs * MISSED_HEARTBEATS)
      .sadd(WORKER_SET_KEY, announcement.id)
      .hset(KNOWN_STEPS_KEY, Object.fromEntries(announcement.steps.map((steps) => [String(steps), String(value.lastSeen)])))
      .publish(WORKER_CHANNEL, announcement.id)
      .exec();
  };
  // one write at a time: while Redis is away the heartbeat waits for it instead of piling up
  const beat = (): void => {
    if (writing || closed) return;
    writing = write()
      .catch((error: unknown) => options.onError?.(error))
      .finally(() => (writing = undefined));
  };

  return {
    async start() {
      await assertWorkerIdFree(redis, announcement);
      await write();
      timer = setInterval(beat, options.heartbeatMs);
    },
    async setState(next: 'idle' | 'busy', job?: string) {
      state = next === 'busy' ? { state: 'busy', job } : { state: 'idle' };
      await writing;
      if (!closed) await write().catch((error: unknown) => options.onError?.(error));
    },
    async close() {
      closed = true;
      clearInterval(timer);
      await writing;
      if (redis.status !== 'ready') return;
      await redis.multi().del(key).srem(WORKER_SET_KEY, announcement.id).publish(WORKER_CHANNEL, announcement.id).exec().catch(() => undefined);
    },
  };
}
