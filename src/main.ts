// Wiring only: the config and its errors, the app, and a graceful stop on SIGINT or SIGTERM.

import { createApp } from './app.js';
import { ConfigError, loadConfig, loadDotEnv, type Config } from './config.js';
import { EngineError, ModelFolderError } from './diffusion/index.js';
import { createLogger } from './logger.js';
import { prepareModelFolder } from './models-fetch/first-start.js';

const NO_PLATFORM = `No chat platform is configured, so there is nothing to serve.
  Discord: set DISCORD_TOKEN and DISCORD_APPLICATION_ID (and DISCORD_GUILD_ID to register commands to one server).
  Slack: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET, and SLACK_APP_TOKEN for Socket Mode (else HTTP on SLACK_PORT).
Put them in .env (see .env.example) or the environment, then run npm start again; both may be set.`;

function exit(message: string): never {
  process.stderr.write(`${message.trimEnd()}\n`);
  process.exit(1);
}

loadDotEnv();
let config: Config;
try {
  config = loadConfig();
} catch (error) {
  if (error instanceof ConfigError) exit(error.message);
  throw error;
}
if (!config.discord && !config.slack) exit(NO_PLATFORM);
const modelProblem = await prepareModelFolder(config);
if (modelProblem !== undefined) exit(modelProblem);

const logger = createLogger({ level: config.logLevel });
const app = createApp(config, { logger });

// signals are handled from the start: a stop during model loading or login still closes what has started
let stopping = false;
let starting: Promise<unknown> = Promise.resolve();
async function stop(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'stopping: finishing the running image, keeping the queue for the next start');
  setTimeout(() => {
    logger.error('stopping took too long; exiting now');
    process.exit(1);
  }, config.stopTimeoutMs + 15_000).unref();
  await starting.catch(() => undefined);
  await app.close();
  logger.info('stopped');
  process.exit(0);
}
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));

starting = app.start();
try {
  await starting;
} catch (error) {
  if (stopping) await new Promise(() => {}); // stop() finishes and exits
  logger.fatal({ err: error }, 'the bot could not start');
  await app.close().catch(() => undefined);
  exit(error instanceof EngineError || error instanceof ModelFolderError ? error.message : `The bot could not start: ${(error as Error).message}`);
}
if (!stopping) logger.info({ discord: Boolean(config.discord), slack: Boolean(config.slack) }, 'ready');
