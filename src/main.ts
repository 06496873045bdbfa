// Wiring only: the config and its errors, the platform tokens checked, the app, and a graceful stop on SIGINT,
// SIGTERM or SIGHUP.

import { createApp, type App } from './app.js';
import { ConfigError, configSecrets, loadConfig, loadDotEnv, type Config } from './config.js';
import { createLogger } from './logger.js';
import { prepareModelFolder } from './models-fetch/first-start.js';
import { redactText } from './redact.js';
import { checkPlatformAccess, explainStartError, StartError } from './start-checks.js';

const HOW_TO_ADD_CHAT = `  Discord: set DISCORD_TOKEN and DISCORD_APPLICATION_ID (and DISCORD_GUILD_ID to register commands to one server).
  Slack: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET, and SLACK_APP_TOKEN for Socket Mode (else HTTP on SLACK_PORT).
Put them in .env (see .env.example) or the environment, then run npm start again; both may be set.`;

const NO_PLATFORM = `WEB_PORT is 0 and no chat platform is configured, so there is nothing to serve.
  Web: leave WEB_PORT empty (7860) or set it to a port, for the playground page and the HTTP API.
${HOW_TO_ADD_CHAT}`;

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
if (!config.discord && !config.slack && !config.web) exit(NO_PLATFORM);
const modelProblem = await prepareModelFolder(config);
if (modelProblem !== undefined) exit(modelProblem);

const secrets = configSecrets(config);
const logger = createLogger({ level: config.logLevel, secrets });

/** Ends the bot on a failure it cannot serve past: one sentence on stderr, the details in the log. */
function cannotStart(error: unknown): never {
  const sentence = explainStartError(error, config);
  logger.fatal({ err: error, reason: sentence }, 'the bot could not start');
  exit(sentence ?? `The bot could not start: ${redactText(error instanceof Error ? error.message : String(error), secrets)} (the log line "the bot could not start" has the details).`);
}

// a fault nothing caught is logged without secrets and ends the process; the store keeps the jobs for the next start
for (const event of ['uncaughtException', 'unhandledRejection'] as const) {
  process.on(event, (error: unknown) => {
    logger.fatal({ err: error, event }, 'unexpected error; stopping');
    exit(`The bot stopped on an unexpected error: ${redactText(error instanceof Error ? error.message : String(error), secrets)} (details in the log; waiting jobs run at the next start).`);
  });
}

try {
  // before createApp: Bolt's App calls auth.test as it is made and leaves a failure unhandled
  await checkPlatformAccess(config);
} catch (error) {
  if (error instanceof StartError) {
    logger.fatal({ reason: error.message }, 'the bot could not start');
    exit(error.message);
  }
  throw error;
}

let app: App;
try {
  app = createApp(config, { logger });
} catch (error) {
  cannotStart(error);
}

// signals are handled from the start: a stop during model loading or login still closes what has started.
// SIGHUP (the terminal closed, or `kill -HUP`) stops the same way: settings are read at start, so a reload is a restart
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
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void stop(signal));

starting = app.start();
try {
  await starting;
} catch (error) {
  if (stopping) await new Promise(() => {}); // stop() finishes and exits
  await app.close().catch(() => undefined);
  cannotStart(error);
}
if (!stopping) {
  logger.info({ discord: Boolean(config.discord), slack: Boolean(config.slack), web: app.web?.url ?? false }, 'ready');
  // with the web alone, the terminal says where it is and how to add a chat platform
  if (app.web?.url && !config.discord && !config.slack) process.stderr.write(`Serving the web playground and API on ${app.web.url}. To add a chat platform:\n${HOW_TO_ADD_CHAT}\n`);
}
