// The connection options BullMQ's Queue, Worker and QueueEvents make their own Redis connections from.

import type { ConnectionOptions } from 'bullmq';

/**
 * BullMQ requires `maxRetriesPerRequest: null` (a blocking command must wait across reconnects); reconnecting every
 * 0.2–2 s instead of BullMQ's default of up to 20 s brings both sides back soon after a Redis restart.
 */
export function bullConnection(url: string, role: string): ConnectionOptions {
  return { url, maxRetriesPerRequest: null, retryStrategy: (times: number) => Math.min(times * 200, 2000), connectionName: `lightning-${role}` };
}
