// Who is asking the web: a WEB_TOKEN (Bearer header, or the session cookie the login form sets), or on loopback
// without tokens the client's address. Each token is one member for the limits and the history.

import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { clientAddress } from './host.js';

export const SESSION_COOKIE = 'lightning_session';
/** How long a login lasts in the browser. */
export const SESSION_MAX_AGE_SECONDS = 30 * 24 * 3600;

/** A member of the web: the id the limits and the job store know them by. */
export type WebUser = { userId: string };

export type Auth = {
  /** Whether requests need a token at all. */
  readonly required: boolean;
  /** The member behind a request, or undefined when a token is required and none (or a wrong one) came. */
  identify(request: { headers: Record<string, string | string[] | undefined>; cookies: Record<string, string | undefined>; ip: string }): WebUser | undefined;
  /** The configured token `candidate` is, if it is one (compared in constant time). */
  matchToken(candidate: string): string | undefined;
  /** The cookie value that stands for a token: an HMAC of it, so the cookie never holds the token itself. */
  sessionFor(token: string): string;
};

const sha256 = (text: string): Buffer => createHash('sha256').update(text).digest();

/**
 * A token's member id: the first 12 hex digits of its SHA-256, so an admin can name it in EXEMPT_USERS
 * (`web:` + `printf %s "$TOKEN" | sha256sum | cut -c1-12`) and the logs never show the token.
 */
export function tokenUserId(token: string): string {
  return sha256(token).toString('hex').slice(0, 12);
}

function equal(a: string, b: string): boolean {
  // hashes first, so the comparison takes the same time whatever the lengths
  return timingSafeEqual(sha256(a), sha256(b));
}

export function createAuth(tokens: readonly string[]): Auth {
  const sessions = new Map(tokens.map((token) => [createHmac('sha256', token).update('lightning web session').digest('hex'), token]));
  const matchToken = (candidate: string): string | undefined => tokens.find((token) => equal(token, candidate));
  const matchSession = (cookie: string): string | undefined => [...sessions].find(([session]) => equal(session, cookie))?.[1];
  return {
    required: tokens.length > 0,
    matchToken,
    sessionFor: (token) => [...sessions].find(([, candidate]) => candidate === token)![0],
    identify(request) {
      if (tokens.length === 0) return { userId: clientAddress(request.ip) };
      const header = request.headers.authorization;
      const bearer = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1] : undefined;
      const cookie = request.cookies[SESSION_COOKIE];
      const token = (bearer && matchToken(bearer)) ?? (cookie ? matchSession(cookie) : undefined);
      return token === undefined ? undefined : { userId: tokenUserId(token) };
    },
  };
}
