// The one logger: structured JSON lines (pino) on stdout, level from LOG_LEVEL, with secrets and bytes kept out.

import { pino, type Logger } from 'pino';
import { redactText, sanitizeForLog } from './redact.js';

export type { Logger };

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export type LoggerOptions = {
  level?: LogLevel;
  name?: string;
  destination?: NodeJS.WritableStream;
  /** Values never to print (the configured tokens and secrets), on top of the secret-shaped patterns in redact.ts. */
  secrets?: readonly string[];
};

/**
 * A root logger; parts take `logger.child({ part: 'engine' })` (bindings are ids, not records). Every logged object
 * goes through `sanitizeForLog` (discord.js errors carry the request's URL, with the interaction token, and its body,
 * with the PNG), and every finished line through `redactText`.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const secrets = options.secrets?.filter(Boolean) ?? [];
  const settings: pino.LoggerOptions = {
    level: options.level ?? 'info',
    name: options.name ?? 'lightning-bot',
    formatters: {
      log: (object) => sanitizeForLog(object, secrets) as Record<string, unknown>,
    },
    // pino's own error serializer would take the sanitised error for a new one and rebuild it; it is whole already
    serializers: { err: (error: unknown) => error },
    // the last word on every line, child bindings and messages included: secret-shaped text and the configured secrets
    hooks: { streamWrite: (line) => redactText(line, secrets) },
  };
  return options.destination ? pino(settings, options.destination) : pino(settings);
}
