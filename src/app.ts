// Builds the whole bot from a config — engine, store, limits, queue, service, platforms — apart from starting it,
// so tests make a fresh one, talk to it for real and close it. `main.ts` only loads the config and handles signals.

import { join } from 'node:path';
import type { CommandContext, CommandDefinition } from '../commands/index.js';
import type { Config } from './config.js';
import { ImageCache } from './core/image-cache.js';
import { JobStore } from './core/jobs.js';
import { createLimits, type Limits } from './core/limits.js';
import { createFairQueue } from './core/queue.js';
import { randomSeed } from './core/request.js';
import { createService, type Service } from './core/service.js';
import { createSettingsStore, type ServerKey, type SettingsStore } from './core/settings.js';
import type { Logger } from './logger.js';
import { createDiscord, type DiscordBot } from './platforms/discord/bot.js';
import { createSlack, type SlackBot } from './platforms/slack/app.js';
import { createWeb, type WebPlatform } from './platforms/web/server.js';
import type { StartableEngine } from './remote/composite.js';
import { createConfiguredEngine } from './remote/engines.js';

export type App = {
  /** ENGINE: this process's engine, the GPU workers', or both. */
  readonly engine: StartableEngine;
  readonly service: Service;
  readonly store: JobStore;
  /** Per-server settings (/imagine-settings), in the jobs' database. */
  readonly settings: SettingsStore;
  readonly discord: DiscordBot | undefined;
  readonly slack: SlackBot | undefined;
  readonly web: WebPlatform | undefined;
  /** Starts the engine (rejects with an EngineError that says what is wrong), then the platforms, then the queue. */
  start(): Promise<void>;
  /** Stops in reverse: no new work, the running image finishes, platforms disconnect, the engine and store close. */
  close(): Promise<void>;
};

/** The step count used when a request names none: the configured one, or the nearest installed. */
export function defaultSteps(configured: number, installed: readonly number[]): number {
  if (installed.length === 0 || installed.includes(configured)) return configured;
  return [...installed].sort((a, b) => Math.abs(a - configured) - Math.abs(b - configured) || a - b)[0];
}

/** `commands`: what the platforms register and route (default: the COMMANDS list). */
export function createApp(config: Config, deps: { logger: Logger; commands?: readonly CommandDefinition[] }): App {
  const { logger, commands } = deps;
  const engine = createConfiguredEngine(config, { logger });
  const store = new JobStore(join(config.dataDir, 'jobs.sqlite'));
  const images = new ImageCache(join(config.dataDir, 'images'), config.imageCacheBytes);
  const limits: Limits = createLimits(config.limits, { logger });
  const defaults = () => ({ ...config.defaults, steps: defaultSteps(config.defaults.steps, engine.info?.steps ?? []) });
  const settings = createSettingsStore(
    {
      path: join(config.dataDir, 'jobs.sqlite'),
      defaults: {
        blockedWords: config.blockedWords,
        allowedChannels: config.allowedChannels,
        safetyMode: config.safety.mode,
        dailyQuota: config.limits.guildDailyImages,
        defaultSteps: config.defaults.steps,
      },
      installedSteps: () => engine.info?.steps ?? [],
    },
    { logger },
  );
  const service = createService(
    {
      blockedWords: config.blockedWords,
      allowedChannels: config.allowedChannels,
      variationStrength: config.variationStrength,
      stopTimeoutMs: config.stopTimeoutMs,
      safety: { enabled: config.safety.enabled, mode: config.safety.mode, dmAllowed: config.safety.dmAllowed },
    },
    { engine, store, limits, queue: createFairQueue(), images, logger, settings },
  );
  // a server's own default step count, when its admins set one (the settings keep it to an installed count)
  const commandContext = (server?: ServerKey): CommandContext => {
    const own = server ? settings.settings(server) : undefined;
    return { installedSteps: engine.info?.steps ?? [], defaults: { ...defaults(), ...(own?.own.defaultSteps ? { steps: own.defaultSteps } : {}) }, randomSeed };
  };
  const discord = config.discord ? createDiscord(config.discord, { service, logger, commandContext, commands }) : undefined;
  const slack = config.slack ? createSlack(config.slack, { service, logger, commandContext, commands }) : undefined;
  const web = config.web ? createWeb({ ...config.web, dataDir: config.dataDir, modelDir: config.modelDir }, { service, store, images, logger, commandContext }) : undefined;
  let started = { engine: false, limits: false, discord: false, slack: false, web: false };

  return {
    engine,
    service,
    store,
    settings,
    discord,
    slack,
    web,
    async start() {
      await engine.start();
      started.engine = true;
      const steps = defaults().steps;
      if (steps !== config.defaults.steps) {
        logger.warn({ configured: config.defaults.steps, used: steps, installed: engine.info?.steps }, 'DEFAULT_STEPS is not installed; using the nearest installed step count');
      }
      await images.start();
      await limits.start();
      started.limits = true;
      if (discord) {
        await discord.start();
        started.discord = true;
      }
      if (slack) {
        await slack.start();
        started.slack = true;
      }
      if (web) {
        await web.start();
        started.web = true;
      }
      service.start();
    },
    async close() {
      await service.close();
      if (started.web) await web?.close();
      if (started.slack) await slack?.close();
      if (started.discord) await discord?.close();
      if (started.limits) await limits.close();
      if (started.engine) await engine.close();
      settings.close();
      store.close();
      started = { engine: false, limits: false, discord: false, slack: false, web: false };
    },
  };
}
