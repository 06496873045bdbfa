// A real web platform on 127.0.0.1:0 for tests: the engine on a tiny model, SQLite, limits, queue and service, as
// app.ts builds them, plus a small HTTP client with a reader of Server-Sent Events.

import { join } from 'node:path';
import type { CommandContext } from '../../commands/index.js';
import { ImageCache } from '../../src/core/image-cache.js';
import { JobStore } from '../../src/core/jobs.js';
import { createLimits, type Limits, type LimitsConfig } from '../../src/core/limits.js';
import { createFairQueue } from '../../src/core/queue.js';
import { randomSeed } from '../../src/core/request.js';
import { createService, type Service, type ServiceConfig } from '../../src/core/service.js';
import type { Engine } from '../../src/diffusion/index.js';
import { createLogger, type Logger } from '../../src/logger.js';
import { createWeb, type WebPlatform } from '../../src/platforms/web/server.js';

export const LIMITS: LimitsConfig = { userBurst: 50, userRefillMs: 60_000, maxQueuedPerUser: 10, guildDailyImages: null, maxQueueLength: 50, exemptUsers: [], bannedUsers: [] };

export type WebUnderTest = { web: WebPlatform; service: Service; store: JobStore; images: ImageCache; limits: Limits; url: string; close(): Promise<void> };

export async function startWeb(
  engine: Engine,
  dataDir: string,
  options: { tokens?: string[]; limits?: Partial<LimitsConfig>; blockedWords?: string[]; defaults?: Partial<CommandContext['defaults']>; logger?: Logger; safety?: ServiceConfig['safety'] } = {},
): Promise<WebUnderTest> {
  const logger = options.logger ?? createLogger({ level: 'silent' });
  const store = new JobStore(join(dataDir, 'jobs.sqlite'));
  const images = new ImageCache(join(dataDir, 'images'), 50 * 2 ** 20);
  const limits = createLimits({ ...LIMITS, ...options.limits }, { logger });
  const service = createService({ blockedWords: options.blockedWords ?? ['forbidden'], allowedChannels: ['only-this-channel'], variationStrength: 0.25, stopTimeoutMs: 30_000, ...(options.safety ? { safety: options.safety } : {}) }, {
    engine,
    store,
    limits,
    queue: createFairQueue(),
    images,
    logger,
  });
  const commandContext = (): CommandContext => ({
    installedSteps: engine.info?.steps ?? [],
    defaults: { steps: 2, count: 2, aspect: '1:1', ...options.defaults },
    randomSeed,
  });
  const web = createWeb({ host: '127.0.0.1', port: 0, tokens: options.tokens ?? [], dataDir, modelDir: '/models/sdxl-lightning' }, { service, store, images, logger, commandContext });
  await images.start();
  await limits.start();
  await web.start();
  service.start();
  return {
    web,
    service,
    store,
    images,
    limits,
    url: web.url!,
    async close() {
      await service.close();
      await web.close();
      await limits.close();
      store.close();
    },
  };
}

export type SseEvent = { id: string; event: string; data: Record<string, unknown> };

/** Reads a text/event-stream until `until` returns true for an event, or the stream ends; returns what came. */
export async function readEvents(
  url: string,
  options: { headers?: Record<string, string>; until?: (event: SseEvent) => boolean; timeoutMs?: number } = {},
): Promise<{ status: number; contentType: string | null; events: SseEvent[]; ended: boolean }> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), options.timeoutMs ?? 30_000);
  const response = await fetch(url, { headers: { Accept: 'text/event-stream', ...options.headers }, signal: controller.signal });
  const events: SseEvent[] = [];
  let ended = false;
  if (response.ok && response.body) {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of response.body) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        let split: number;
        let stop = false;
        while ((split = buffer.indexOf('\n\n')) !== -1) {
          const block = buffer.slice(0, split);
          buffer = buffer.slice(split + 2);
          const fields: Record<string, string> = {};
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) continue;
            const colon = line.indexOf(':');
            if (colon === -1) continue;
            fields[line.slice(0, colon)] = line.slice(colon + 1).replace(/^ /, '');
          }
          if (fields.event === undefined) continue;
          const event = { id: fields.id, event: fields.event, data: JSON.parse(fields.data) as Record<string, unknown> };
          events.push(event);
          if (options.until?.(event)) stop = true;
        }
        if (stop) break;
      }
      ended = !controller.signal.aborted;
    } catch (error) {
      if (!controller.signal.aborted) throw error;
    } finally {
      clearTimeout(timer);
      controller.abort();
    }
  }
  return { status: response.status, contentType: response.headers.get('content-type'), events, ended };
}

export type Answer = { status: number; headers: Headers; json: Record<string, any>; text: string };

/** One request; the body is JSON unless it is already a string. */
export async function call(base: string, method: string, path: string, options: { body?: unknown; headers?: Record<string, string> } = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...options.headers };
  let body: string | undefined;
  if (options.body !== undefined) {
    body = typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
    headers['content-type'] ??= 'application/json';
  }
  const response = await fetch(`${base}${path}`, { method, headers, body, redirect: 'manual' });
  const text = await response.text();
  let json: Record<string, any> = {};
  try {
    json = JSON.parse(text) as Record<string, any>;
  } catch {
    // not JSON: the page, an image, a redirect
  }
  return { status: response.status, headers: response.headers, json, text };
}
