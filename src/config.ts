// Environment → typed config, with one clear sentence per bad value. The bot reads `.env` too.

import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { ASPECTS, type Aspect } from './core/request.js';
import { PROVIDER_CHOICES, type ProviderChoice } from './diffusion/provider.js';
import { SAFETY_MODES, type SafetyMode } from './core/safety-policy.js';
import { LOG_LEVELS, type LogLevel } from './logger.js';
import { isLoopbackHost } from './platforms/web/host.js';
import { maskUrlCredentials } from './redact.js';

/** Where images are made: this process's GPU, GPU workers joined through Redis (`npm run worker`), or both. */
export const ENGINE_CHOICES = ['local', 'remote', 'both'] as const;
export type EngineChoice = (typeof ENGINE_CHOICES)[number];

export type Config = {
  engine: EngineChoice;
  /** `npm run worker`, and the bot's side of it. */
  workers: {
    /** This worker's name in logs, the registry and job records. */
    workerId: string;
    /** BullMQ lockDuration: how long a job stays with a worker that stopped answering. */
    lockMs: number;
    /** How often a worker renews its announcement; it counts as gone after three missed. */
    heartbeatMs: number;
  };
  modelDir: string;
  provider: ProviderChoice;
  cudaDeviceId: number;
  /** Load each step count's UNet on first use instead of at start. */
  lazyUnets: boolean;
  /** With no usable model folder, `npm start` fetches and builds it without asking. */
  modelAutoFetch: boolean;
  /** CPU threads per onnxruntime session; undefined = onnxruntime's choice for the provider. */
  cpuThreads: number | undefined;
  /** How far a variation (V1–V4) moves from its parent's noise, 0–1. */
  variationStrength: number;
  dataDir: string;
  logLevel: LogLevel;
  /** Discord is enabled when its token and application id are set. */
  discord: { token: string; applicationId: string; guildId: string | undefined; apiUrl: string | undefined } | undefined;
  /** Slack is enabled when its bot token and signing secret are set; Socket Mode with an app token, else HTTP. */
  slack: { botToken: string; signingSecret: string; appToken: string | undefined; port: number; host: string | undefined; apiUrl: string | undefined } | undefined;
  /**
   * The web playground and HTTP API, on unless WEB_PORT is 0. `tokens`: who may use it (each token is one member for
   * the limits); empty only on a loopback host, where the client's address is the member.
   */
  web: { host: string; port: number; tokens: string[]; resultsMaxBytes: number } | undefined;
  defaults: { steps: number; count: number; aspect: Aspect };
  blockedWords: string[];
  allowedChannels: string[];
  /** The image safety check: on runs the classifier on every image; the mode and DM rule are server defaults. */
  safety: { enabled: boolean; threshold: number; mode: SafetyMode; dmAllowed: boolean };
  limits: {
    userBurst: number;
    userRefillMs: number;
    maxQueuedPerUser: number;
    guildDailyImages: number | null;
    maxQueueLength: number;
    exemptUsers: string[];
    bannedUsers: string[];
    redisUrl: string | undefined;
  };
  imageCacheBytes: number;
  stopTimeoutMs: number;
};

/** Every setting the bot reads, its default and its meaning (README and .env.example list the same). */
export const SETTINGS = {
  ENGINE: { default: 'local', help: `where images are made: ${ENGINE_CHOICES.join(', ')} (remote and both need REDIS_URL and \`npm run worker\` processes)` },
  WORKER_ID: { default: '', help: 'npm run worker: this worker’s name (empty: <host>-gpu<CUDA_DEVICE_ID>); one per worker process' },
  WORKER_LOCK_SECONDS: { default: '30', help: 'a job whose worker stops answering runs elsewhere after about 2–3 times this' },
  WORKER_HEARTBEAT_SECONDS: { default: '5', help: 'how often a worker says it is alive; it counts as gone after 3 missed' },
  MODEL_DIR: { default: 'models/sdxl-lightning', help: 'the SDXL-Lightning ONNX folder (see models/README.md)' },
  EXECUTION_PROVIDER: { default: 'auto', help: `where the model runs: ${PROVIDER_CHOICES.join(', ')}` },
  CUDA_DEVICE_ID: { default: '0', help: 'which GPU (index, as nvidia-smi numbers them)' },
  LAZY_UNETS: { default: 'false', help: 'load each step count’s UNet on first use (true) or all at start (false)' },
  MODEL_AUTO_FETCH: { default: 'false', help: 'true: with no model folder, npm start runs npm run models:fetch itself (else it asks on a terminal)' },
  CPU_THREADS: { default: '', help: 'CPU threads per onnxruntime session (empty: all cores on CPU, 1 with CUDA)' },
  VARIATION_STRENGTH: { default: '0.25', help: 'how far V1–V4 variations move from their image, 0–1' },
  DATA_DIR: { default: 'data', help: 'where the bot keeps its database and image cache' },
  LOG_LEVEL: { default: 'info', help: `log detail: ${LOG_LEVELS.join(', ')}` },
  DISCORD_TOKEN: { default: '', help: 'the bot token (Discord developer portal → Bot); with DISCORD_APPLICATION_ID it enables Discord' },
  DISCORD_APPLICATION_ID: { default: '', help: 'the application id (developer portal → General Information)' },
  DISCORD_GUILD_ID: { default: '', help: 'register commands to this one server (instant) instead of globally' },
  DISCORD_API_URL: { default: '', help: "REST base URL (default Discord's): a REST proxy, or a local fake in tests" },
  SLACK_BOT_TOKEN: { default: '', help: 'the xoxb- bot token; with SLACK_SIGNING_SECRET it enables Slack' },
  SLACK_SIGNING_SECRET: { default: '', help: 'the app’s signing secret (Basic Information), used to check HTTP requests' },
  SLACK_APP_TOKEN: { default: '', help: 'an xapp- app-level token with connections:write: Socket Mode, no public URL needed' },
  SLACK_PORT: { default: '3000', help: 'HTTP mode (no SLACK_APP_TOKEN): the port Slack’s requests arrive on, at /slack/events' },
  SLACK_HOST: { default: '', help: 'HTTP mode: the address to listen on (empty: every interface; 127.0.0.1 behind a local proxy)' },
  SLACK_API_URL: { default: '', help: "Slack Web API base URL (default Slack's), for tests against a local fake" },
  WEB_HOST: { default: '127.0.0.1', help: 'the address the web playground and HTTP API listen on (any other than loopback needs WEB_TOKEN)' },
  WEB_PORT: { default: '7860', help: 'the web playground and HTTP API port (0: no web)' },
  WEB_HISTORY_MB: { default: '2048', help: 'disk space for the web history\'s delivered files; the oldest are removed beyond it' },
  WEB_TOKEN: { default: '', help: 'comma-separated access tokens for the web (Bearer or the login form), each one member; required off loopback' },
  DEFAULT_STEPS: { default: '4', help: 'steps when a request names none (an installed step count)' },
  DEFAULT_COUNT: { default: '4', help: 'images per request when it names none, 1–4' },
  DEFAULT_ASPECT: { default: '1:1', help: `aspect ratio when a request names none: ${ASPECTS.join(', ')}` },
  BLOCKED_WORDS: { default: '', help: 'comma-separated words refused in prompts (whole words, any case)' },
  ALLOWED_CHANNELS: { default: '', help: 'comma-separated channel ids where images may be made (empty: all; DMs always)' },
  SAFETY: { default: 'on', help: 'on: check every image with the safety classifier in MODEL_DIR/safety_classifier (npm run models:fetch gets it); off: no image check' },
  SAFETY_THRESHOLD: { default: '0.5', help: 'the classifier score (0–1) from which an image is flagged; lower flags more' },
  SAFETY_MODE: { default: 'spoiler', help: `what a flagged image becomes outside age-restricted channels, until a server sets its own: ${SAFETY_MODES.join(', ')}` },
  SAFETY_DM_ALLOWED: { default: 'false', help: 'true: flagged images are posted as they are in direct messages with the bot' },
  USER_BURST: { default: '5', help: 'requests a member may make at once before waiting for refills' },
  USER_REFILL_SECONDS: { default: '60', help: 'seconds until a member gets one more request back' },
  MAX_QUEUED_PER_USER: { default: '2', help: 'waiting requests per member' },
  GUILD_DAILY_IMAGES: { default: '', help: 'images per server (or Slack workspace) per UTC day (empty: no quota)' },
  MAX_QUEUE_LENGTH: { default: '50', help: 'waiting requests in all; more are refused' },
  EXEMPT_USERS: { default: '', help: 'comma-separated platform:user ids free of limits, e.g. discord:1234' },
  BANNED_USERS: { default: '', help: 'comma-separated platform:user ids who may not use the bot' },
  REDIS_URL: { default: '', help: 'share limits between bot processes, and feed GPU workers (ENGINE=remote|both), through Redis, e.g. redis://127.0.0.1:6379' },
  IMAGE_CACHE_MB: { default: '2048', help: 'disk space for full-size images kept for U1–U4' },
  STOP_TIMEOUT_SECONDS: { default: '60', help: 'how long a stop waits for the running image' },
} as const satisfies Record<string, { default: string; help: string }>;

type SettingName = keyof typeof SETTINGS;

/** The shortest WEB_TOKEN accepted: 128 bits of hex. */
const MIN_WEB_TOKEN_LENGTH = 32;

/** Every bad setting at once, one sentence each. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`The configuration has ${problems.length === 1 ? 'a problem' : 'problems'}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.problems = problems;
  }
}

/** Reads `.env` in the working directory into `process.env` (existing variables win), when there is one. */
export function loadDotEnv(path = '.env'): void {
  if (existsSync(path)) process.loadEnvFile(path);
}

/** Builds the config from `env`; throws a ConfigError listing every bad value. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const raw = (name: SettingName): string => {
    const value = env[name]?.trim();
    return value === undefined || value === '' ? SETTINGS[name].default : value;
  };
  const oneOf = <T extends string>(name: SettingName, allowed: readonly T[]): T => {
    const value = raw(name);
    if ((allowed as readonly string[]).includes(value)) return value as T;
    problems.push(`${name} must be one of ${allowed.join(', ')}; found "${value}"`);
    return SETTINGS[name].default as T;
  };
  const integer = (name: SettingName, min: number, max: number): number | undefined => {
    const value = raw(name);
    if (value === '') return undefined;
    if (/^\d+$/.test(value) && Number(value) >= min && Number(value) <= max) return Number(value);
    problems.push(`${name} must be a whole number from ${min} to ${max}; found "${value}"`);
    return undefined;
  };
  const fraction = (name: SettingName): number => {
    const value = raw(name);
    if (/^(0(\.\d+)?|1(\.0+)?|\.\d+)$/.test(value)) return Number(value);
    problems.push(`${name} must be a number from 0 to 1; found "${value}"`);
    return Number(SETTINGS[name].default);
  };
  const flag = (name: SettingName): boolean => oneOf(name, ['true', 'false'] as const) === 'true';
  const list = (name: SettingName): string[] =>
    raw(name)
      .split(',')
      .map((item) => item.trim())
      .filter(Boolean);
  const optional = (name: SettingName): string | undefined => raw(name) || undefined;
  const userKeys = (name: SettingName): string[] => {
    const keys = list(name);
    for (const key of keys) {
      if (!/^(discord|slack):[A-Za-z0-9]+$|^web:[A-Za-z0-9.:]+$/.test(key)) problems.push(`${name} entries look like discord:1234, slack:U0123 or web:127.0.0.1; found "${key}"`);
    }
    return keys;
  };
  const discordToken = optional('DISCORD_TOKEN');
  const discordApplication = optional('DISCORD_APPLICATION_ID');
  if (Boolean(discordToken) !== Boolean(discordApplication)) {
    problems.push('DISCORD_TOKEN and DISCORD_APPLICATION_ID enable Discord together; set both or neither');
  }
  const apiUrl = optional('DISCORD_API_URL');
  // a URL is quoted with the password or token in its userinfo masked: config errors reach terminals and logs
  if (apiUrl && !/^https?:\/\//.test(apiUrl)) problems.push(`DISCORD_API_URL must be an http(s) URL; found "${maskUrlCredentials(apiUrl)}"`);
  const slackToken = optional('SLACK_BOT_TOKEN');
  const slackSecret = optional('SLACK_SIGNING_SECRET');
  if (Boolean(slackToken) !== Boolean(slackSecret)) problems.push('SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET enable Slack together; set both or neither');
  // a token is never quoted, only the kind its prefix names
  const tokenKind = (token: string): string => `"${/^[a-z]{4}-/.exec(token)?.[0] ?? token.slice(0, 3)}…"`;
  if (slackToken?.startsWith('xapp-')) {
    problems.push('SLACK_BOT_TOKEN holds an app-level token (xapp-…); it takes the Bot User OAuth Token (xoxb-…, OAuth & Permissions), and the xapp- token goes in SLACK_APP_TOKEN');
  }
  const slackAppToken = optional('SLACK_APP_TOKEN');
  if (slackAppToken && !slackAppToken.startsWith('xapp-')) {
    problems.push(`SLACK_APP_TOKEN must be an app-level token (xapp-…, Basic Information → App-Level Tokens, scope connections:write); found one starting with ${tokenKind(slackAppToken)}`);
  }
  const slackApiUrl = optional('SLACK_API_URL');
  if (slackApiUrl && !/^https?:\/\//.test(slackApiUrl)) problems.push(`SLACK_API_URL must be an http(s) URL; found "${maskUrlCredentials(slackApiUrl)}"`);
  const webPort = integer('WEB_PORT', 0, 65535) ?? 7860;
  const webHost = raw('WEB_HOST');
  const webTokens = list('WEB_TOKEN');
  // a token is never quoted: only how long it is
  for (const token of webTokens) {
    if (token.length < MIN_WEB_TOKEN_LENGTH || /\s/.test(token)) {
      problems.push(`WEB_TOKEN entries must be at least ${MIN_WEB_TOKEN_LENGTH} characters without spaces (one has ${token.length}); make one with: openssl rand -hex 32`);
    }
  }
  if (webPort !== 0 && !isLoopbackHost(webHost) && webTokens.length === 0) {
    problems.push(
      `WEB_HOST ${webHost} is reachable from other machines, so WEB_TOKEN must be set (anyone who finds the port could use the GPU): set WEB_TOKEN to a long random string (openssl rand -hex 32), or WEB_HOST=127.0.0.1, or WEB_PORT=0 to turn the web off`,
    );
  }
  const redisUrl = optional('REDIS_URL');
  if (redisUrl && !/^rediss?:\/\//.test(redisUrl)) problems.push(`REDIS_URL must start with redis:// or rediss://; found "${maskUrlCredentials(redisUrl)}"`);

  const provider = oneOf('EXECUTION_PROVIDER', PROVIDER_CHOICES);
  const cudaDeviceId = integer('CUDA_DEVICE_ID', 0, 63) ?? 0;
  const workerId = optional('WORKER_ID') ?? `${hostname()}-gpu${cudaDeviceId}`;
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(workerId)) problems.push(`WORKER_ID may hold letters, digits, dots, dashes and underscores, at most 64; found "${workerId}"`);
  const engine = oneOf('ENGINE', ENGINE_CHOICES);
  if (engine !== 'local' && !redisUrl) problems.push(`ENGINE=${engine} needs REDIS_URL: the Redis server the GPU workers (npm run worker) use`);

  const config: Config = {
    engine,
    workers: {
      workerId,
      lockMs: (integer('WORKER_LOCK_SECONDS', 2, 3600) ?? 30) * 1000,
      heartbeatMs: (integer('WORKER_HEARTBEAT_SECONDS', 1, 600) ?? 5) * 1000,
    },
    modelDir: resolve(raw('MODEL_DIR')),
    provider,
    cudaDeviceId,
    lazyUnets: flag('LAZY_UNETS'),
    modelAutoFetch: flag('MODEL_AUTO_FETCH'),
    cpuThreads: integer('CPU_THREADS', 1, 1024),
    variationStrength: fraction('VARIATION_STRENGTH'),
    dataDir: resolve(raw('DATA_DIR')),
    logLevel: oneOf('LOG_LEVEL', LOG_LEVELS),
    discord:
      discordToken && discordApplication ? { token: discordToken, applicationId: discordApplication, guildId: optional('DISCORD_GUILD_ID'), apiUrl } : undefined,
    slack:
      slackToken && slackSecret
        ? { botToken: slackToken, signingSecret: slackSecret, appToken: slackAppToken, port: integer('SLACK_PORT', 0, 65535) ?? 3000, host: optional('SLACK_HOST'), apiUrl: slackApiUrl }
        : undefined,
    web: webPort === 0 ? undefined : { host: webHost, port: webPort, tokens: webTokens, resultsMaxBytes: (integer('WEB_HISTORY_MB', 1, 10_000_000) ?? 2048) * 2 ** 20 },
    defaults: {
      steps: integer('DEFAULT_STEPS', 1, 50) ?? 4,
      count: integer('DEFAULT_COUNT', 1, 4) ?? 4,
      aspect: oneOf('DEFAULT_ASPECT', ASPECTS),
    },
    blockedWords: list('BLOCKED_WORDS'),
    allowedChannels: list('ALLOWED_CHANNELS'),
    safety: {
      enabled: oneOf('SAFETY', ['on', 'off'] as const) === 'on',
      threshold: fraction('SAFETY_THRESHOLD'),
      mode: oneOf('SAFETY_MODE', SAFETY_MODES),
      dmAllowed: flag('SAFETY_DM_ALLOWED'),
    },
    limits: {
      userBurst: integer('USER_BURST', 1, 10_000) ?? 5,
      userRefillMs: (integer('USER_REFILL_SECONDS', 1, 86_400) ?? 60) * 1000,
      maxQueuedPerUser: integer('MAX_QUEUED_PER_USER', 1, 1000) ?? 2,
      guildDailyImages: integer('GUILD_DAILY_IMAGES', 1, 1_000_000) ?? null,
      maxQueueLength: integer('MAX_QUEUE_LENGTH', 1, 100_000) ?? 50,
      exemptUsers: userKeys('EXEMPT_USERS'),
      bannedUsers: userKeys('BANNED_USERS'),
      redisUrl,
    },
    imageCacheBytes: (integer('IMAGE_CACHE_MB', 0, 10_000_000) ?? 2048) * 2 ** 20,
    stopTimeoutMs: (integer('STOP_TIMEOUT_SECONDS', 1, 3600) ?? 60) * 1000,
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/** The configured tokens and secrets, for the logger to keep out of every line. */
export function configSecrets(config: Config): string[] {
  const secrets = [config.discord?.token, config.slack?.botToken, config.slack?.signingSecret, config.slack?.appToken, ...(config.web?.tokens ?? [])];
  const redisPassword = config.limits.redisUrl ? /^rediss?:\/\/[^/@]*:([^/@]+)@/.exec(config.limits.redisUrl)?.[1] : undefined;
  return [...secrets, redisPassword].filter((secret): secret is string => Boolean(secret));
}
