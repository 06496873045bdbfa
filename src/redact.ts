// Secrets and bytes out of everything the bot prints: tokens, webhook URLs, response_urls, URL passwords and
// Authorization headers become "[redacted]"; request bodies and byte arrays are never written out.

export const REDACTED = '[redacted]';

/** Text patterns of secrets, each with what stays visible. Order matters: whole URLs before the tokens inside them. */
const SECRET_PATTERNS: readonly (readonly [RegExp, string])[] = [
  // a password (or a token) in a URL's userinfo: redis://default:secret@host, https://token@host
  [/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#"]+@/gi, `$1${REDACTED}@`],
  // Discord interaction and webhook tokens in REST paths: /webhooks/<application>/<token>, /interactions/<id>/<token>
  [/(\/(?:webhooks|interactions)\/\d+\/)[\w.-]+/g, `$1${REDACTED}`],
  // Slack response_urls and incoming webhooks: hooks.slack.com/commands/T…/…/<secret>
  [/(\/(?:commands|actions|services|workflows|triggers)\/[A-Z0-9]+\/[\w]+\/)[\w-]+/g, `$1${REDACTED}`],
  // Authorization header values, wherever they were printed
  [/\b(Bot|Bearer|Basic)\s+[\w.~+/=-]{16,}/g, `$1 ${REDACTED}`],
  // Slack tokens (xoxb-, xoxp-, xoxa-, xoxe-, xapp-…)
  [/\b(xox[a-z](?:\.xox[a-z])?|xapp)-[\w-]+/g, `$1-${REDACTED}`],
  // Hugging Face tokens
  [/\bhf_[A-Za-z0-9]{16,}/g, `hf_${REDACTED}`],
  // a Discord bot token printed bare: base64(user id).timestamp.hmac
  [/\b[\w-]{16,}\.[\w-]{4,}\.[\w-]{20,}\b/g, REDACTED],
];

/** Keys whose values are secrets, in any object that is logged (headers, job delivery data, options). */
const SECRET_KEYS = /^(authorization|proxy-authorization|cookie|set-cookie|x-slack-signature|token|bot_?token|app_?token|signing_?secret|client_?secret|secret|password|pass|response_?url|webhook_?url|access_?token|refresh_?token)$/i;

/** Keys that hold what was sent (a request's body and files), or an HTTP client's whole request: never logged. */
const REQUEST_KEYS = /^(requestBody|config|request|response|files)$/;

/** Longest string kept whole; longer ones are cut (a stack trace fits). */
const MAX_STRING = 4000;
const MAX_ITEMS = 50;
const MAX_DEPTH = 8;

/** `text` with every known secret and every secret-shaped substring replaced by "[redacted]". */
export function redactText(text: string, secrets: readonly string[] = []): string {
  let out = text;
  // longest first, so a secret that contains another is replaced whole
  for (const secret of [...secrets].sort((a, b) => b.length - a.length)) if (secret.length >= 4) out = out.split(secret).join(REDACTED);
  for (const [pattern, replacement] of SECRET_PATTERNS) out = out.replace(pattern, replacement);
  return out;
}

/** A setting's value fit to quote in an error: the password or token in a URL's userinfo masked. */
export function maskUrlCredentials(value: string): string {
  return value.replace(/^((?:[a-z][a-z0-9+.-]*:)?\/\/)?[^\s/?#]*@/i, (_match, scheme: string | undefined) => `${scheme ?? ''}${REDACTED}@`);
}

const isBytes = (value: object): value is ArrayBufferView | ArrayBuffer => ArrayBuffer.isView(value) || value instanceof ArrayBuffer || value instanceof SharedArrayBuffer;

/** A JSON'd Buffer, `{ type: 'Buffer', data: [...] }`, as an HTTP client's error may already hold. */
const isJsonBuffer = (value: Record<string, unknown>): boolean => value.type === 'Buffer' && Array.isArray(value.data);

/**
 * A copy of `value` fit for a log line: strings redacted, secret keys masked, bytes and request bodies replaced by a
 * note of their size, errors as `{ type, message, stack, code, … }` (their own fields, `cause` included), cycles
 * and depth cut. Never throws.
 */
export function sanitizeForLog(value: unknown, secrets: readonly string[] = []): unknown {
  const seen = new WeakSet<object>();
  const visit = (current: unknown, depth: number, inError: boolean): unknown => {
    switch (typeof current) {
      case 'string':
        return redactText(current.length > MAX_STRING ? `${current.slice(0, MAX_STRING)}… (${current.length} characters)` : current, secrets);
      case 'bigint':
        return current.toString();
      case 'function':
      case 'symbol':
        return undefined;
      case 'object':
        break;
      default:
        return current;
    }
    if (current === null) return null;
    if (isBytes(current)) return `[${current.byteLength} bytes]`;
    if (seen.has(current)) return '[circular]';
    if (depth >= MAX_DEPTH) return '[nested too deep]';
    seen.add(current);
    try {
      if (Array.isArray(current)) {
        if (current.length > 16 && current.every((item) => typeof item === 'number')) return `[${current.length} numbers]`;
        const items = current.slice(0, MAX_ITEMS).map((item) => visit(item, depth + 1, inError));
        return current.length > MAX_ITEMS ? [...items, `… ${current.length - MAX_ITEMS} more`] : items;
      }
      if (current instanceof Error) return visitError(current, depth);
      if (current instanceof Date) return current.toISOString();
      if (current instanceof Map) return visit(Object.fromEntries(current), depth, inError);
      if (current instanceof Set) return visit([...current], depth, inError);
      const record = current as Record<string, unknown>;
      if (isJsonBuffer(record)) return `[${(record.data as unknown[]).length} bytes]`;
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(record)) {
        const field = record[key];
        if (field === undefined) continue;
        if (SECRET_KEYS.test(key) && (typeof field === 'string' || typeof field === 'number')) out[key] = REDACTED;
        else if (key === 'requestBody' || (inError && REQUEST_KEYS.test(key))) out[key] = '[not logged]';
        else out[key] = visit(field, depth + 1, inError);
      }
      return out;
    } finally {
      seen.delete(current);
    }
  };
  const visitError = (error: Error, depth: number): Record<string, unknown> => {
    const fields: Record<string, unknown> = { type: error.constructor?.name ?? error.name, message: error.message };
    if (error.name && error.name !== fields.type) fields.name = error.name;
    if (error.stack) fields.stack = error.stack;
    for (const key of Object.keys(error)) if (!(key in fields)) fields[key] = (error as unknown as Record<string, unknown>)[key];
    if (error.cause !== undefined && !('cause' in fields)) fields.cause = error.cause;
    const out: Record<string, unknown> = {};
    for (const [key, field] of Object.entries(fields)) {
      if (field === undefined) continue;
      if (SECRET_KEYS.test(key) && typeof field === 'string') out[key] = REDACTED;
      else if (REQUEST_KEYS.test(key)) out[key] = '[not logged]';
      else out[key] = visit(field, depth + 1, true);
    }
    return out;
  };
  try {
    return visit(value, 0, false);
  } catch (error) {
    return `[could not be logged: ${redactText((error as Error).message, secrets)}]`;
  }
}
