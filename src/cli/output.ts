// What the command-line tools share: a logger that prints readable lines, and failing with one clear message.

import { Writable } from 'node:stream';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError, loadConfig, loadDotEnv, type Config } from '../config.js';
import { createLogger, type Logger, type LogLevel } from '../logger.js';

const LEVEL_NAMES: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warning', 50: 'error', 60: 'fatal' };

/** The one logger, printing `warning: message (key=value …)` lines on stderr instead of JSON. */
export function createCliLogger(level: LogLevel = 'warn'): Logger {
  const destination = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) {
        const { level: number, msg, time: _time, pid: _pid, hostname: _host, name: _name, part: _part, ...rest } = JSON.parse(line) as Record<string, unknown>;
        const details = Object.entries(rest)
          .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
          .join(' ');
        process.stderr.write(`${LEVEL_NAMES[number as number] ?? 'log'}: ${String(msg)}${details ? ` (${details})` : ''}\n`);
      }
      done();
    },
  });
  return createLogger({ level, destination });
}

/** Prints the message on stderr and exits with status 1 (2 for a usage error). */
export function fail(message: string, status: 1 | 2 = 1): never {
  process.stderr.write(`${message.trimEnd()}\n`);
  process.exit(status);
}

/** Reads `.env` and the environment (with `overrides` on top); a bad setting ends the command with its sentences. */
export function loadConfigOrFail(overrides: NodeJS.ProcessEnv = {}): Config {
  loadDotEnv();
  try {
    return loadConfig({ ...process.env, ...overrides });
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message);
    throw error;
  }
}

/**
 * `parseArgs`, ending the command with the usage: after a parse error's sentence (exit status 2), or alone for the
 * `help` option, which `config.options` must declare.
 */
export function parseArgsOrUsage<const T extends ParseArgsConfig & { options: { help: { type: 'boolean' } } }>(config: T, usage: string): ReturnType<typeof parseArgs<T>> {
  let parsed: ReturnType<typeof parseArgs<T>>;
  try {
    parsed = parseArgs(config);
  } catch (error) {
    fail(`${(error as Error).message}\n${usage}`, 2);
  }
  if ((parsed.values as { help?: boolean }).help) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  return parsed;
}
