// What a failed Slack call means for a delivery: try again later (Slack is down, slow or limiting us), or give that
// way up (the bot is not in the channel, the channel is gone or archived, the response_url is used up).

import { DeliveryError } from '../../core/delivery-error.js';

export type SlackFault = { retryable: true; retryAfterMs: number | undefined; reason: string } | { retryable: false; reason: string };

/** Slack's `error` codes that mean "not now" rather than "never" (Web API method pages, "Errors"). */
const PASSING_ERRORS = new Set(['internal_error', 'fatal_error', 'service_unavailable', 'request_timeout', 'ratelimited', 'rate_limited', 'team_added_to_org']);

/** A response_url POST Slack refused: 404 `used_url` / `expired_url` never work again; 5xx may. */
export class ResponseUrlError extends Error {
  override readonly name = 'ResponseUrlError';
  readonly status: number;
  constructor(status: number, detail: string) {
    super(`response_url answered ${status}${detail ? `: ${detail}` : ''}`);
    this.status = status;
  }
}

type CodedError = Error & { code?: string; data?: { error?: string }; retryAfter?: number; statusCode?: number; original?: Error };

/**
 * Classifies an error from `@slack/web-api` (its `code` names the kind: platform, rate-limited, HTTP, request) or
 * from a response_url POST. The delivery client retries a 5xx or a reset twice before this sees it.
 */
export function slackFault(error: unknown): SlackFault {
  if (error instanceof ResponseUrlError) {
    const reason = error.message;
    return error.status >= 500 || error.status === 429 ? { retryable: true, retryAfterMs: undefined, reason } : { retryable: false, reason };
  }
  const coded = error as CodedError;
  switch (coded?.code) {
    case 'slack_webapi_rate_limited_error':
      return { retryable: true, retryAfterMs: typeof coded.retryAfter === 'number' ? coded.retryAfter * 1000 : undefined, reason: `rate limited for ${coded.retryAfter} s` };
    case 'slack_webapi_platform_error': {
      const code = coded.data?.error ?? 'unknown_error';
      return PASSING_ERRORS.has(code) ? { retryable: true, retryAfterMs: undefined, reason: code } : { retryable: false, reason: code };
    }
    case 'slack_webapi_http_error': {
      const status = coded.statusCode ?? 0;
      const reason = `HTTP ${status}`;
      return status >= 500 || status === 408 ? { retryable: true, retryAfterMs: undefined, reason } : { retryable: false, reason };
    }
    case 'slack_webapi_request_error':
      return { retryable: true, retryAfterMs: undefined, reason: coded.original?.message ?? coded.message };
    default:
      // a failed upload POST, a reset fetch to a response_url, or anything unforeseen: it may work later
      return { retryable: true, retryAfterMs: undefined, reason: error instanceof Error ? error.message : String(error) };
  }
}

export function deliveryError(fault: SlackFault, what: string, cause: unknown): DeliveryError {
  return fault.retryable
    ? new DeliveryError(`${what}: Slack is unavailable (${fault.reason})`, { retryable: true, retryAfterMs: fault.retryAfterMs, cause })
    : new DeliveryError(`${what}: Slack refused it (${fault.reason})`, { retryable: false, cause });
}

/**
 * The delivery client's retries: a couple of quick ones for a blip, no more, since the service retries deliveries
 * with backoff for minutes and across restarts (the Web API's default, ten retries in about 30 minutes, would hold
 * each delivery in memory instead).
 */
export const DELIVERY_RETRY = { retries: 2, factor: 2, minTimeout: 250, maxTimeout: 1_000 } as const;
