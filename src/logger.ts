// The one logger: structured JSON lines (pino) on stdout, level from LOG_LEVEL.

import { pino, type Logger } from 'pino';

export type { Logger };

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** A root logger; parts take `logger.child({ part: 'engine' })`. */
export function createLogger(options: { level?: LogLevel; name?: string; destination?: NodeJS.WritableStream } = {}): Logger {
  const settings = { level: options.level ?? 'info', name: options.name ?? 'lightning-bot' };
  return options.destination ? pino(settings, options.destination) : pino(settings);
}
