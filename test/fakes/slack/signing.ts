// Slack's request signing (api.slack.com/authentication/verifying-requests-from-slack), and signed POSTs to a bot's Request URL.

import { createHmac } from 'node:crypto';

/** Which signature a signed POST carries: a correct one, a wrong one, or no signing headers at all. */
export type SignatureMode = 'good' | 'bad' | 'missing';

export interface SigningOptions {
  /** Default 'good'. */
  signature?: SignatureMode;
  /** `X-Slack-Request-Timestamp` in Unix seconds; default now. Slack's receivers refuse one more than 5 min old. */
  timestamp?: number;
}

/** What the bot's HTTP endpoint answered. */
export interface HttpAnswer {
  status: number;
  /** The body as text ('' for none). */
  body: string;
  contentType: string | null;
  /** Milliseconds from sending to the full answer. */
  elapsedMs: number;
}

/** `v0=` + hex HMAC-SHA256 of `v0:<timestamp>:<rawBody>` keyed with the signing secret. */
export function slackSignature(signingSecret: string, timestamp: number, rawBody: string): string {
  return `v0=${createHmac('sha256', signingSecret).update(`v0:${timestamp}:${rawBody}`).digest('hex')}`;
}

/**
 * POSTs `rawBody` as `application/x-www-form-urlencoded` (exactly that type, with no charset: Bolt's HTTPReceiver only
 * parses a form when the header is that string) with Slack's signing headers, as `options` asks.
 */
export async function postSigned(url: string, rawBody: string, signingSecret: string, options: SigningOptions = {}): Promise<HttpAnswer> {
  const mode = options.signature ?? 'good';
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
  const headers: Record<string, string> = {
    'content-type': 'application/x-www-form-urlencoded',
    'user-agent': 'Slackbot 1.0 (+https://api.slack.com/robots)',
  };
  if (mode !== 'missing') {
    headers['x-slack-request-timestamp'] = String(timestamp);
    headers['x-slack-signature'] = slackSignature(mode === 'good' ? signingSecret : `${signingSecret}-wrong`, timestamp, rawBody);
  }
  const started = Date.now();
  const response = await fetch(url, { method: 'POST', headers, body: rawBody });
  const body = await response.text();
  return { status: response.status, body, contentType: response.headers.get('content-type'), elapsedMs: Date.now() - started };
}
