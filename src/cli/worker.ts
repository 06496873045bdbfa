// `npm run worker`: a GPU worker on this host. Loads the model from MODEL_DIR on CUDA_DEVICE_ID, joins the bot
// through REDIS_URL and takes its jobs one at a time, until SIGINT, SIGTERM or SIGHUP (the running job finishes first).

import { createEngine, EngineError } from '../diffusion/index.js';
import { configSecrets } from '../config.js';
import { createLogger } from '../logger.js';
import { redactText } from '../redact.js';
import { DuplicateWorkerError } from '../remote/registry.js';
import { localEngineOptions } from '../remote/engines.js';
import { createRemoteWorker } from '../remote/worker.js';
import { fail, loadConfigOrFail, parseArgsOrUsage } from './output.js';

const USAGE = `usage: npm run worker
  Settings come from .env and the environment: REDIS_URL (required), MODEL_DIR, EXECUTION_PROVIDER, CUDA_DEVICE_ID,
  WORKER_ID, WORKER_LOCK_SECONDS, WORKER_HEARTBEAT_SECONDS (see .env.example). Run one per GPU.`;

parseArgsOrUsage({ args: process.argv.slice(2), options: { help: { type: 'boolean', short: 'h', default: false } } }, USAGE);
const config = loadConfigOrFail();
const redisUrl = config.limits.redisUrl;
if (!redisUrl) fail('npm run worker needs REDIS_URL: the Redis server the bot uses (ENGINE=remote or both on the bot), e.g. REDIS_URL=redis://gpu-hub:6379');

const secrets = configSecrets(config);
const logger = createLogger({ level: config.logLevel, secrets, name: 'lightning-worker' });
const engine = createEngine(localEngineOptions(config), { logger });
const worker = createRemoteWorker(
  {
    redisUrl,
    workerId: config.workers.workerId,
    lockMs: config.workers.lockMs,
    heartbeatMs: config.workers.heartbeatMs,
    device: `cuda:${config.cudaDeviceId}`,
  },
  { engine, logger },
);

let stopping = false;
async function stop(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.info({ signal, worker: worker.id }, 'stopping: finishing the running job');
  setTimeout(() => {
    logger.error('stopping took too long; exiting now');
    process.exit(1);
  }, config.stopTimeoutMs + 15_000).unref();
  await worker.close();
  process.exit(0);
}
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void stop(signal));

try {
  const announcement = await worker.start();
  process.stdout.write(`worker ${announcement.id} ready on ${announcement.host} (${announcement.device}), steps ${announcement.steps.join(', ')}\n`);
} catch (error) {
  await worker.close().catch(() => undefined);
  if (error instanceof EngineError) {
    logger.fatal({ err: error, problems: error.problems }, 'the worker could not start');
    fail([`The worker could not load the model: ${error.message}`, ...error.problems.map((problem) => `  - ${problem}`)].join('\n'));
  }
  if (error instanceof DuplicateWorkerError) fail(error.message);
  fail(`The worker could not start: ${redactText(error instanceof Error ? error.message : String(error), secrets)}`);
}
