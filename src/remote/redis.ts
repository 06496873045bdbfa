// Redis connections for the queue: retried forever (BullMQ requires maxRetriesPerRequest: null), outages logged once.

import { Redis } from 'ioredis';
import type { Logger } from '../logger.js';
import { maskUrlCredentials } from '../redact.js';

export type QueueConnection = {
  readonly redis: Redis;
  /** Resolves once connected; rejects with what to do when the first connection fails within `timeoutMs`. */
  ready(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
};

/** Reconnect after 0.2 s, 0.4 s, … up to 2 s between tries, for as long as it takes. */
const retryStrategy = (times: number): number => Math.min(times * 200, 2000);

/**
 * One connection, named for the logs (`role`). Commands made while Redis is away wait for it (offline queue) rather
 * than fail: a job handed to BullMQ during a Redis restart is added once it is back. `onReconnect` runs each time the
 * connection is ready again after it was lost.
 */
export function createQueueConnection(url: string, role: string, deps: { logger: Logger; onReconnect?: () => void }): QueueConnection {
  const logger = deps.logger;
  const redis = new Redis(url, { maxRetriesPerRequest: null, retryStrategy, connectionName: `lightning-${role}`, lazyConnect: false });
  let everReady = false;
  let lost = false;
  let closing = false;
  redis.on('ready', () => {
    if (lost) logger.info({ redis: maskUrlCredentials(url), role }, 'Redis connection is back');
    const reconnected = lost;
    everReady = true;
    lost = false;
    if (reconnected) deps.onReconnect?.();
  });
  redis.on('error', (error: Error) => {
    if (closing || lost || !everReady) return;
    lost = true;
    logger.warn({ redis: maskUrlCredentials(url), role, err: { message: error.message } }, 'Redis connection lost; reconnecting');
  });
  redis.on('close', () => {
    if (closing || !everReady || lost) return;
    lost = true;
    logger.warn({ redis: maskUrlCredentials(url), role }, 'Redis connection closed; reconnecting');
  });

  return {
    redis,
    async ready(timeoutMs) {
      if (redis.status === 'ready') return;
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`cannot reach Redis at ${maskUrlCredentials(url)} within ${Math.round(timeoutMs / 1000)} s; start Redis there or fix REDIS_URL`));
        }, timeoutMs);
        const onReady = (): void => (cleanup(), resolve());
        const cleanup = (): void => {
          clearTimeout(timer);
          redis.off('ready', onReady);
        };
        redis.on('ready', onReady);
      });
    },
    async close() {
      closing = true;
      // QUIT would wait in the offline queue for a Redis that is away
      if (redis.status !== 'ready') return redis.disconnect();
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
