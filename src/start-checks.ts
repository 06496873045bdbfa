// Before the bot starts: the platform tokens are checked with one cheap call each, and a start-up failure an admin can
// fix becomes one sentence naming the setting or file and what to do.

// discord.js before Bolt, as in app.ts: each brings an undici, and the first one loaded sets the global dispatcher
import { DiscordAPIError, DiscordjsError, DiscordjsErrorCodes, HTTPError, REST, Routes } from 'discord.js';
import { webApi } from '@slack/bolt';
import type { Config } from './config.js';
import { describeDataDirError } from './core/store-errors.js';
import { EngineError, ModelFolderError } from './diffusion/index.js';
import { redactText } from './redact.js';

/** A problem the admin must fix before the bot can serve; its message is the sentence to print. */
export class StartError extends Error {
  override readonly name = 'StartError';
}

const DISCORD_API = 'https://discord.com/api';
const SLACK_API = 'https://slack.com/api/';
/** A check is one request; a slow network gets this long, and one retry. */
const CHECK_TIMEOUT_MS = 10_000;

const DISCORD_TOKEN_ADVICE = 'reset the token in the Discord developer portal (your application → Bot → Reset Token) and put the new one in DISCORD_TOKEN';
const SLACK_BOT_TOKEN_ADVICE = "copy the Bot User OAuth Token (xoxb-…) from your Slack app's OAuth & Permissions page into SLACK_BOT_TOKEN, reinstalling the app to the workspace if it was removed";
const SLACK_APP_TOKEN_ADVICE = "create an app-level token with the connections:write scope (your Slack app's Basic Information → App-Level Tokens), with Socket Mode enabled, and put it in SLACK_APP_TOKEN";

/** Slack's answers that mean the token itself is wrong, rather than the call. */
const SLACK_TOKEN_ERRORS = new Set(['invalid_auth', 'not_authed', 'account_inactive', 'token_revoked', 'token_expired', 'not_allowed_token_type', 'no_permission', 'team_access_not_granted']);

/** The code of a network failure (ECONNREFUSED, ENOTFOUND, UND_ERR_CONNECT_TIMEOUT…), looking through `cause`s. */
function networkCode(error: unknown): string | undefined {
  for (let current = error, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth++) {
    const code = (current as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && /^(E[A-Z]+|UND_ERR_[A-Z_]+)$/.test(code)) return code;
  }
  return undefined;
}

/**
 * Asks Discord which application DISCORD_TOKEN belongs to (`GET /applications/@me`): a wrong token or an application
 * id that does not match is a StartError, found in a second instead of after the models have loaded.
 */
export async function checkDiscordAccess(discord: NonNullable<Config['discord']>): Promise<void> {
  const api = discord.apiUrl ?? DISCORD_API;
  const rest = new REST({ api, retries: 1, timeout: CHECK_TIMEOUT_MS }).setToken(discord.token);
  let application: { id?: string; name?: string };
  try {
    application = (await rest.get(Routes.currentApplication())) as { id?: string; name?: string };
  } catch (error) {
    throw new StartError(describeDiscordFailure(error, api) ?? `Checking DISCORD_TOKEN with Discord at ${api} failed: ${redactText((error as Error).message, [discord.token])}; try again, or check DISCORD_API_URL.`);
  } finally {
    rest.clearHashSweeper();
    rest.clearHandlerSweeper();
  }
  if (application.id !== undefined && application.id !== discord.applicationId) {
    throw new StartError(
      `DISCORD_APPLICATION_ID is ${discord.applicationId}, but DISCORD_TOKEN belongs to the application ${application.id}${application.name ? ` ("${application.name}")` : ''}: ` +
        'copy the Application ID from the same application’s General Information page, or the token from its Bot page.',
    );
  }
}

function describeDiscordFailure(error: unknown, api: string): string | undefined {
  if ((error instanceof DiscordAPIError || error instanceof HTTPError) && error.status === 401) {
    return `Discord does not accept DISCORD_TOKEN (401 Unauthorized): ${DISCORD_TOKEN_ADVICE}.`;
  }
  if (error instanceof DiscordAPIError || error instanceof HTTPError) {
    return `Discord at ${api} answered ${error.status} (${error.message}) when asked about DISCORD_TOKEN's application: check DISCORD_API_URL, or try again later.`;
  }
  const code = networkCode(error);
  if (code) return `Could not reach Discord at ${api} to check DISCORD_TOKEN (${code}): check the network, or DISCORD_API_URL.`;
  return undefined;
}

/**
 * Checks SLACK_BOT_TOKEN with `auth.test` and, in Socket Mode, SLACK_APP_TOKEN with `apps.connections.open` (which
 * hands out a connection URL and opens nothing). Runs before Bolt's App is made: its constructor calls auth.test
 * at once and leaves a failure unhandled, which would end the process with a stack trace.
 */
export async function checkSlackAccess(slack: NonNullable<Config['slack']>): Promise<void> {
  const api = slack.apiUrl ?? SLACK_API;
  const options = { slackApiUrl: api, timeout: CHECK_TIMEOUT_MS, retryConfig: { retries: 1, minTimeout: 500 }, logLevel: webApi.LogLevel.ERROR };
  const secrets = [slack.botToken, slack.appToken ?? ''];
  try {
    await new webApi.WebClient(slack.botToken, options).auth.test();
  } catch (error) {
    throw new StartError(describeSlackFailure(error, api, 'SLACK_BOT_TOKEN', SLACK_BOT_TOKEN_ADVICE, secrets));
  }
  if (!slack.appToken) return;
  try {
    await new webApi.WebClient(slack.appToken, options).apps.connections.open();
  } catch (error) {
    throw new StartError(describeSlackFailure(error, api, 'SLACK_APP_TOKEN', SLACK_APP_TOKEN_ADVICE, secrets));
  }
}

function describeSlackFailure(error: unknown, api: string, setting: string, advice: string, secrets: string[]): string {
  const slackError = error as { code?: string; data?: { error?: string }; statusCode?: number };
  if (slackError.code === webApi.ErrorCode.PlatformError) {
    const answer = slackError.data?.error ?? 'unknown_error';
    if (SLACK_TOKEN_ERRORS.has(answer)) return `Slack does not accept ${setting} (${answer}): ${advice}.`;
    return `Slack answered "${answer}" when checking ${setting}: ${advice}.`;
  }
  if (slackError.code === webApi.ErrorCode.HTTPError) return `Slack at ${api} answered HTTP ${slackError.statusCode} when checking ${setting}: check SLACK_API_URL, or try again later.`;
  const code = networkCode(error);
  if (code) return `Could not reach Slack at ${api} to check ${setting} (${code}): check the network, or SLACK_API_URL.`;
  return `Checking ${setting} with Slack at ${api} failed: ${redactText((error as Error).message, secrets)}; try again, or check SLACK_API_URL.`;
}

/** Checks every configured platform's tokens, Discord and Slack at once; rejects with the first StartError. */
export async function checkPlatformAccess(config: Pick<Config, 'discord' | 'slack'>): Promise<void> {
  await Promise.all([config.discord && checkDiscordAccess(config.discord), config.slack && checkSlackAccess(config.slack)]);
}

/**
 * The sentence for a failure of `createApp` or `App.start()` that an admin can fix, or undefined for anything else
 * (a bug: the caller logs it in full and says so).
 */
export function explainStartError(error: unknown, config: Config): string | undefined {
  if (error instanceof StartError || error instanceof EngineError || error instanceof ModelFolderError) return error.message;
  const dataDir = describeDataDirError(error, config.dataDir);
  if (dataDir) return dataDir;
  // discord.js's login: the gateway information (GET /gateway/bot) answered 401
  if (error instanceof DiscordjsError && error.code === DiscordjsErrorCodes.TokenInvalid) return `Discord does not accept DISCORD_TOKEN: ${DISCORD_TOKEN_ADVICE}.`;
  const listen = error as NodeJS.ErrnoException & { port?: number };
  if (config.web && listen.syscall === 'listen' && listen.port === config.web.port) {
    const { host, port } = config.web;
    if (listen.code === 'EADDRINUSE') return `WEB_PORT ${port} is in use on ${host}: stop what listens there (another image UI?), set WEB_PORT to a free port, or WEB_PORT=0 to turn the web off.`;
    if (listen.code === 'EACCES') return `This user may not listen on WEB_PORT ${port}: ports below 1024 need privileges; set WEB_PORT to 1024 or above.`;
    if (listen.code === 'EADDRNOTAVAIL' || listen.code === 'ENOTFOUND') return `WEB_HOST ${host} is not an address of this machine: set it to one of its addresses, or 127.0.0.1.`;
  }
  if (config.slack && !config.slack.appToken && listen.syscall === 'listen') {
    const where = config.slack.host ?? 'every interface';
    if (listen.code === 'EADDRINUSE') return `SLACK_PORT ${config.slack.port} is in use on ${where}: stop what listens there, or set SLACK_PORT to a free port.`;
    if (listen.code === 'EACCES') return `This user may not listen on SLACK_PORT ${config.slack.port}: ports below 1024 need privileges; set SLACK_PORT to 1024 or above and forward to it.`;
    if (listen.code === 'EADDRNOTAVAIL') return `SLACK_HOST ${config.slack.host} is not an address of this machine: set it to one of its addresses, or leave it empty for every interface.`;
  }
  return undefined;
}
