// One error type for the web that knows how to present itself, in the shape each API family's clients read: ours
// (`{error: {code, message}}`), OpenAI's (`{error: {message, type, param, code}}`) and A1111's (`{error, detail}`).

import { refusalText, type Refusal, type RefusalCode } from '../../core/refusal.js';

/** Which API a route belongs to, by its path. */
export type ApiFamily = 'web' | 'openai' | 'a1111';

export function apiFamily(url: string): ApiFamily {
  if (url.startsWith('/v1/')) return 'openai';
  if (url.startsWith('/sdapi/')) return 'a1111';
  return 'web';
}

/** A request the web turns down: an HTTP status, a code, and the one sentence a person reads. */
export class WebError extends Error {
  override readonly name = 'WebError';
  readonly status: number;
  readonly code: string;
  /** The request field at fault, when one is (OpenAI clients read it as `param`). */
  readonly field: string | undefined;
  readonly retryAfterMs: number | undefined;
  constructor(status: number, code: string, message: string, options: { field?: string; retryAfterMs?: number } = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = options.field;
    this.retryAfterMs = options.retryAfterMs;
  }

  /** The JSON body for a client of `family`. */
  body(family: ApiFamily): Record<string, unknown> {
    if (family === 'openai') {
      const type = this.status === 429 ? 'rate_limit_error' : this.status === 401 ? 'authentication_error' : this.status >= 500 ? 'server_error' : 'invalid_request_error';
      return { error: { message: this.message, type, param: this.field ?? null, code: this.code } };
    }
    if (family === 'a1111') return { error: this.code, detail: this.message };
    return { error: { code: this.code, message: this.message, ...(this.field ? { field: this.field } : {}) } };
  }
}

/** The HTTP status for each refusal: limits are 429, what the member must change 400, a missing job 404. */
export const REFUSAL_STATUS = {
  rate_limited: 429,
  too_many_queued: 429,
  queue_full: 429,
  daily_quota: 429,
  banned: 403,
  blocked_word: 400,
  channel_not_allowed: 403,
  prompt_empty: 400,
  prompt_too_long: 400,
  invalid_option: 400,
  steps_unavailable: 400,
  unknown_job: 404,
  foreign_job: 404,
  not_owner: 403,
  not_cancellable: 409,
  generation_failed: 500,
  delivery_failed: 500,
  shutting_down: 503,
  not_admin: 403,
  no_server: 400,
} as const satisfies Record<RefusalCode, number>;

/** The field a refusal is about, for clients that point at it. */
function refusalField(refusal: Refusal): string | undefined {
  switch (refusal.code) {
    case 'invalid_option':
      return refusal.option;
    case 'steps_unavailable':
      return 'steps';
    case 'blocked_word':
    case 'prompt_empty':
    case 'prompt_too_long':
      return 'prompt';
    default:
      return undefined;
  }
}

export function refusalError(refusal: Refusal): WebError {
  const retryAfterMs = 'retryAfterMs' in refusal ? refusal.retryAfterMs : undefined;
  return new WebError(REFUSAL_STATUS[refusal.code], refusal.code, refusalText(refusal), { field: refusalField(refusal), retryAfterMs });
}

export const SERVER_FAULT = 'The server could not answer that; the admin has the details.';

/** A field of the wrong type or out of range: "The field "steps" must be a whole number." */
export function fieldError(field: string, expected: string): WebError {
  return new WebError(400, 'invalid_field', `The field "${field}" must be ${expected}.`, { field });
}

type AjvError = { keyword: string; instancePath: string; params: Record<string, unknown>; message?: string };

const TYPE_WORDS: Readonly<Record<string, string>> = {
  string: 'text (a JSON string)',
  integer: 'a whole number',
  number: 'a number',
  boolean: 'true or false',
  object: 'a JSON object',
  array: 'a JSON array',
};

/** The one sentence for the first schema violation Fastify's validator found, naming the field. */
export function validationError(errors: readonly AjvError[]): WebError {
  const first = errors[0];
  if (!first) return new WebError(400, 'invalid_body', 'The body is not valid for this request.');
  const path = first.instancePath.replace(/^\//, '').replaceAll('/', '.');
  if (first.keyword === 'required') {
    const field = [path, String(first.params.missingProperty)].filter(Boolean).join('.');
    return new WebError(400, 'missing_field', `The field "${field}" is required.`, { field });
  }
  if (first.keyword === 'additionalProperties') {
    const field = [path, String(first.params.additionalProperty)].filter(Boolean).join('.');
    return new WebError(400, 'unknown_field', `The field "${field}" is not known here; leave it out.`, { field });
  }
  if (path === '') return new WebError(400, 'invalid_body', 'The body must be a JSON object.');
  switch (first.keyword) {
    case 'type':
      return fieldError(path, TYPE_WORDS[String(first.params.type)] ?? String(first.params.type));
    case 'enum':
      return fieldError(path, `one of ${(first.params.allowedValues as unknown[]).map((value) => JSON.stringify(value)).join(', ')}`);
    case 'minimum':
      return fieldError(path, `at least ${String(first.params.limit)}`);
    case 'maximum':
      return fieldError(path, `at most ${String(first.params.limit)}`);
    case 'minLength':
      return fieldError(path, `at least ${String(first.params.limit)} characters long`);
    case 'maxLength':
      return fieldError(path, `at most ${String(first.params.limit)} characters long`);
    default:
      return fieldError(path, `valid (${first.message ?? first.keyword})`);
  }
}

/** Fastify's own errors about a body, each as one sentence. */
export function bodyError(code: string | undefined, maxBodyBytes: number): WebError | undefined {
  switch (code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new WebError(400, 'invalid_json', 'The body is not valid JSON.');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new WebError(400, 'invalid_json', 'The body is empty; send a JSON object.');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new WebError(413, 'body_too_large', `The body is larger than ${Math.round(maxBodyBytes / 1024)} KiB, the most this server reads.`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new WebError(415, 'unsupported_media_type', 'Send the body as JSON (Content-Type: application/json).');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new WebError(400, 'invalid_body', 'The body is shorter or longer than its Content-Length says.');
    default:
      return undefined;
  }
}
