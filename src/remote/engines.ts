// The engine ENGINE names: this process's own (local), the GPU workers through Redis (remote), or both together.

import type { Config } from '../config.js';
import { createEngine, type EngineOptions } from '../diffusion/index.js';
import type { Logger } from '../logger.js';
import { createCompositeEngine, type StartableEngine } from './composite.js';
import { MISSED_HEARTBEATS } from './registry.js';
import { createRemoteEngine } from './remote-engine.js';

/** The engine in this process, as the settings say: the bot's own GPU (ENGINE=local or both) or a GPU worker's. */
export function localEngineOptions(config: Config): EngineOptions {
  return {
    modelDir: config.modelDir,
    provider: config.provider,
    deviceId: config.cudaDeviceId,
    lazyUnets: config.lazyUnets,
    cpuThreads: config.cpuThreads,
    ...(config.safety.enabled ? { safety: { threshold: config.safety.threshold } } : {}),
  };
}

/** Builds the configured engine (nothing starts until `start()`); the caller closes it. */
export function createConfiguredEngine(config: Config, deps: { logger: Logger }): StartableEngine {
  const local = (): StartableEngine => createEngine(localEngineOptions(config), deps);
  if (config.engine === 'local') return local();
  const redisUrl = config.limits.redisUrl;
  if (!redisUrl) throw new Error(`ENGINE=${config.engine} needs REDIS_URL`); // loadConfig says so first
  const remote = createRemoteEngine(
    {
      redisUrl,
      pollMs: Math.min(config.workers.heartbeatMs, 1000),
      // a worker is taken for gone after this long, so a job nobody can run is handed back as soon as that is known
      orphanMs: MISSED_HEARTBEATS * config.workers.heartbeatMs,
      // with no model of its own, the bot has no step counts to offer until a worker has announced some
      waitForSteps: config.engine === 'remote',
    },
    deps,
  );
  return config.engine === 'remote' ? remote : createCompositeEngine([local(), remote]);
}
