// Which failed posts the service should try again later, and which can never work, for Discord and Slack errors as
// their clients raise them.

import { DiscordAPIError, HTTPError, RateLimitError } from 'discord.js';
import { describe, expect, it } from 'vitest';
import { deliveryError, rejectLongRateLimits, routeFault } from '../../../src/platforms/discord/faults.js';
import { ResponseUrlError, slackFault } from '../../../src/platforms/slack/faults.js';

const url = 'https://discord.example/api/v10/channels/1/messages';
const apiError = (status: number, code: number, message: string) => new DiscordAPIError({ code, message }, code, status, 'POST', url, { body: undefined, files: undefined });
const slackError = (code: string, extra: Record<string, unknown>) => Object.assign(new Error(code), { code, ...extra });

describe('Discord faults', () => {
  it('retries outages, resets and rate limits, with the wait Discord asked for', () => {
    expect(routeFault(new HTTPError(503, 'Service Unavailable', 'PATCH', url, { body: undefined, files: undefined }))).toMatchObject({ retryable: true });
    expect(routeFault(apiError(502, 0, 'Bad Gateway'))).toMatchObject({ retryable: true });
    const limited = new RateLimitError({ timeToReset: 12_000, limit: 5, method: 'POST', hash: 'h', url, route: '/channels/:id/messages', majorParameter: '1', global: false, retryAfter: 12_000, sublimitTimeout: 0, scope: 'user' });
    expect(routeFault(limited)).toMatchObject({ retryable: true, retryAfterMs: 12_000 });
    const reset = new TypeError('fetch failed', { cause: Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }) });
    expect(routeFault(reset)).toMatchObject({ retryable: true, reason: 'ECONNRESET' });
    expect(routeFault(new DOMException('This operation was aborted', 'AbortError'))).toMatchObject({ retryable: true });
  });

  it('gives a route up when it can never work', () => {
    for (const [status, code, message] of [
      [401, 50027, 'Invalid Webhook Token'],
      [403, 50001, 'Missing Access'],
      [404, 10003, 'Unknown Channel'],
      [403, 50007, 'Cannot send messages to this user'],
    ] as const) {
      expect(routeFault(apiError(status, code, message))).toMatchObject({ retryable: false });
    }
    const error = deliveryError({ retryable: false, reason: '403 50001 Missing Access' }, 'deliver the result', undefined);
    expect([error.retryable, error.message]).toEqual([false, 'deliver the result: no route can reach the member (403 50001 Missing Access)']);
  });

  it('lets discord.js wait out short limits and rejects long ones on writes only', () => {
    expect(rejectLongRateLimits({ retryAfter: 2_000, method: 'PATCH' })).toBe(false);
    expect(rejectLongRateLimits({ retryAfter: 30_000, method: 'PATCH' })).toBe(true);
    expect(rejectLongRateLimits({ retryAfter: 30_000, method: 'GET' })).toBe(false);
  });
});

describe('Slack faults', () => {
  it('retries outages and rate limits, with the wait Slack asked for', () => {
    expect(slackFault(slackError('slack_webapi_rate_limited_error', { retryAfter: 3 }))).toMatchObject({ retryable: true, retryAfterMs: 3_000 });
    expect(slackFault(slackError('slack_webapi_http_error', { statusCode: 503 }))).toMatchObject({ retryable: true });
    expect(slackFault(slackError('slack_webapi_request_error', { original: new Error('read ECONNRESET') }))).toMatchObject({ retryable: true, reason: 'read ECONNRESET' });
    expect(slackFault(slackError('slack_webapi_platform_error', { data: { error: 'internal_error' } }))).toMatchObject({ retryable: true });
    expect(slackFault(new ResponseUrlError(503, ''))).toMatchObject({ retryable: true });
  });

  it('gives up where the bot can never post', () => {
    for (const code of ['not_in_channel', 'channel_not_found', 'is_archived', 'invalid_auth', 'user_not_in_channel']) {
      expect(slackFault(slackError('slack_webapi_platform_error', { data: { error: code } }))).toEqual({ retryable: false, reason: code });
    }
    expect(slackFault(new ResponseUrlError(404, '{"ok":false,"error":"used_url"}'))).toMatchObject({ retryable: false });
  });
});
