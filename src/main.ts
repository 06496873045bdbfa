// Wiring only: config → engine → service → Discord; stopped in reverse on SIGINT or SIGTERM.

import { join } from 'node:path';
import type { CommandContext } from '../commands/index.js';
import { ConfigError, loadConfig, loadDotEnv, type Config } from './config.js';
import { ImageCache } from './core/image-cache.js';
import { JobStore } from './core/jobs.js';
import { createLimits } from './core/limits.js';
import { createFairQueue } from './core/queue.js';
import { randomSeed } from './core/request.js';
import { createService } from './core/service.js';
import { createEngine, EngineError, findModelFolder, ModelFolderError } from './diffusion/index.js';
import { createLogger } from './logger.js';
import { createDiscord } from './platforms/discord/bot.js';

const NO_PLATFORM = `No chat platform is configured, so there is nothing to serve.
  Discord: set DISCORD_TOKEN and DISCORD_APPLICATION_ID (and DISCORD_GUILD_ID to register commands to one server).
Put them in .env (see .env.example) or the environment, then run npm start again.`;

function exit(message: string): never {
  process.stderr.write(`${message.trimEnd()}\n`);
  process.exit(1);
}

/** The step count used when a request names none: the configured one, or the nearest installed. */
function defaultSteps(config: Config, installed: readonly number[]): number {
  if (installed.includes(config.defaults.steps)) return config.defaults.steps;
  return [...installed].sort((a, b) => Math.abs(a - config.defaults.steps) - Math.abs(b - config.defaults.steps))[0];
}

async function main(): Promise<void> {
  loadDotEnv();
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) exit(error.message);
    throw error;
  }
  if (!config.discord) exit(NO_PLATFORM);
  try {
    findModelFolder(config.modelDir);
  } catch (error) {
    if (error instanceof ModelFolderError) exit(error.message);
    throw error;
  }
  const logger = createLogger({ level: config.logLevel });

  const engine = createEngine(
    { modelDir: config.modelDir, provider: config.provider, deviceId: config.cudaDeviceId, lazyUnets: config.lazyUnets, cpuThreads: config.cpuThreads },
    { logger },
  );
  try {
    await engine.start();
  } catch (error) {
    if (error instanceof EngineError) exit(error.message);
    throw error;
  }
  const installed = engine.info?.steps ?? [];
  const steps = defaultSteps(config, installed);
  if (steps !== config.defaults.steps) logger.warn({ configured: config.defaults.steps, used: steps, installed }, 'DEFAULT_STEPS is not installed; using the nearest installed step count');

  const store = new JobStore(join(config.dataDir, 'jobs.sqlite'));
  const images = new ImageCache(join(config.dataDir, 'images'), config.imageCacheBytes);
  await images.start();
  const limits = createLimits(config.limits, { logger });
  await limits.start();
  const service = createService(
    {
      blockedWords: config.blockedWords,
      allowedChannels: config.allowedChannels,
      variationStrength: config.variationStrength,
      defaults: { ...config.defaults, steps },
      stopTimeoutMs: config.stopTimeoutMs,
    },
    { engine, store, limits, queue: createFairQueue(), images, logger },
  );
  const commandContext = (): CommandContext => ({ installedSteps: engine.info?.steps ?? installed, defaults: { ...config.defaults, steps }, randomSeed });
  const discord = createDiscord(config.discord, { service, logger, commandContext });
  await discord.start();
  service.start();

  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping: finishing the running image, keeping the queue for the next start');
    setTimeout(() => {
      logger.error('stop took too long; exiting now');
      process.exit(1);
    }, config.stopTimeoutMs + 15_000).unref();
    await service.close();
    await discord.close();
    await limits.close();
    await engine.close();
    store.close();
    logger.info('stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

await main();
