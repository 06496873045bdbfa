// Which addresses only this machine can reach, and which Host headers name this server: the web needs no token on
// loopback, and there it answers only to loopback names, so a page elsewhere cannot reach it by rebinding a DNS name.

import { isIP } from 'node:net';

/** Whether listening on `host` is reachable from this machine alone: localhost, 127.0.0.0/8 or ::1. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (bare === 'localhost' || bare.endsWith('.localhost')) return true;
  if (isIP(bare) === 4) return bare.startsWith('127.');
  if (isIP(bare) === 6) return bare === '::1' || /^::ffff:127\./.test(bare);
  return false;
}

/** The host name of a Host header (`example.org:7860` → `example.org`, `[::1]:7860` → `::1`), lower case. */
export function hostName(header: string): string {
  const trimmed = header.trim().toLowerCase();
  if (trimmed.startsWith('[')) return trimmed.slice(1, trimmed.indexOf(']'));
  const colon = trimmed.lastIndexOf(':');
  return colon === -1 || trimmed.indexOf(':') !== colon ? trimmed : trimmed.slice(0, colon);
}

/** The address a client came from as a member id: IPv4-mapped IPv6 as plain IPv4. */
export function clientAddress(ip: string): string {
  return ip.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
}
