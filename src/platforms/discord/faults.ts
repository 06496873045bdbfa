// What a failed Discord request means for a delivery: try the same route later (Discord is down, slow or limiting
// us), or give that route up and try the next one (the token expired, the channel is gone or closed to the bot).

import { DiscordAPIError, HTTPError, RateLimitError } from 'discord.js';
import { DeliveryError } from '../../core/delivery-error.js';

export type RouteFault = { retryable: true; retryAfterMs: number | undefined; reason: string } | { retryable: false; reason: string };

/** Socket-level failures that say nothing about the request itself (undici and Node codes). */
const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ENOTFOUND', 'ENETUNREACH', 'EHOSTUNREACH']);

function networkCode(error: unknown): string | undefined {
  for (let cause = error, depth = 0; cause instanceof Error && depth < 4; cause = cause.cause, depth++) {
    const code = (cause as { code?: unknown }).code;
    if (typeof code === 'string' && (NETWORK_CODES.has(code) || code.startsWith('UND_ERR'))) return code;
    if (cause.name === 'AbortError' || cause.name === 'TimeoutError') return cause.name;
  }
  return undefined;
}

/**
 * Classifies one failed request. discord.js has already retried 5xx and reset connections three times and waited out
 * short 429s by then (longer ones reject, see `rejectLongRateLimits`), so a retryable fault here is an outage.
 */
export function routeFault(error: unknown): RouteFault {
  if (error instanceof RateLimitError) return { retryable: true, retryAfterMs: error.retryAfter, reason: `429 rate limited for ${error.retryAfter} ms` };
  if (error instanceof HTTPError) return { retryable: true, retryAfterMs: undefined, reason: `${error.status} ${error.name}` };
  if (error instanceof DiscordAPIError) {
    const reason = `${error.status} ${String(error.code)} ${error.message}`;
    if (error.status === 429) {
      const seconds = (error.rawError as { retry_after?: unknown }).retry_after;
      return { retryable: true, retryAfterMs: typeof seconds === 'number' ? Math.ceil(seconds * 1000) : undefined, reason };
    }
    if (error.status >= 500) return { retryable: true, retryAfterMs: undefined, reason };
    // 401 an expired interaction token, 403 missing access or permissions, 404 an unknown channel, message or
    // webhook, 400/413 a body this route refuses: the same request here can never work
    return { retryable: false, reason };
  }
  const code = networkCode(error);
  if (code) return { retryable: true, retryAfterMs: undefined, reason: code };
  // anything else is not Discord's answer; say so, and let the service try again later
  return { retryable: true, retryAfterMs: undefined, reason: error instanceof Error ? error.message : String(error) };
}

/** The error for the service once every route has been tried (or one is down): retry later, or never. */
export function deliveryError(fault: RouteFault, what: string, cause: unknown): DeliveryError {
  return fault.retryable
    ? new DeliveryError(`${what}: Discord is unavailable (${fault.reason})`, { retryable: true, retryAfterMs: fault.retryAfterMs, cause })
    : new DeliveryError(`${what}: no route can reach the member (${fault.reason})`, { retryable: false, cause });
}

/** Rate limits longer than this reject instead of holding a delivery (discord.js would wait them out in silence). */
export const MAX_RATE_LIMIT_WAIT_MS = 10_000;

/** discord.js's `rejectOnRateLimit`: writes wait out short limits, and hand long ones to the service's retries. */
export function rejectLongRateLimits(limit: { retryAfter: number; method: string }): boolean {
  return limit.method.toUpperCase() !== 'GET' && limit.retryAfter > MAX_RATE_LIMIT_WAIT_MS;
}
