import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, configSecrets, loadConfig, SETTINGS } from '../../src/config.js';

describe('loadConfig', () => {
  it('has defaults for everything', () => {
    expect(loadConfig({})).toEqual({
      engine: 'local',
      workers: { workerId: `${hostname()}-gpu0`, lockMs: 30_000, heartbeatMs: 5_000 },
      discord: undefined,
      slack: undefined,
      web: { host: '127.0.0.1', port: 7860, tokens: [], resultsMaxBytes: 2048 * 2 ** 20 },
      defaults: { steps: 4, count: 4, aspect: '1:1' },
      blockedWords: [],
      allowedChannels: [],
      safety: { enabled: true, threshold: 0.5, mode: 'spoiler', dmAllowed: false },
      limits: { userBurst: 5, userRefillMs: 60_000, maxQueuedPerUser: 2, guildDailyImages: null, maxQueueLength: 50, exemptUsers: [], bannedUsers: [], redisUrl: undefined },
      imageCacheBytes: 2048 * 2 ** 20,
      stopTimeoutMs: 60_000,
      modelDir: resolve('models/sdxl-lightning'),
      provider: 'auto',
      cudaDeviceId: 0,
      lazyUnets: false,
      modelAutoFetch: false,
      cpuThreads: undefined,
      variationStrength: 0.25,
      dataDir: resolve('data'),
      logLevel: 'info',
    });
  });

  it('reads every setting', () => {
    const config = loadConfig({
      MODEL_DIR: '/models/lightning',
      EXECUTION_PROVIDER: 'cuda',
      CUDA_DEVICE_ID: '1',
      LAZY_UNETS: 'true',
      MODEL_AUTO_FETCH: 'true',
      CPU_THREADS: '4',
      VARIATION_STRENGTH: '0.5',
      DATA_DIR: '/var/lib/bot',
      LOG_LEVEL: 'debug',
    });
    expect(config).toMatchObject({
      modelDir: '/models/lightning',
      provider: 'cuda',
      cudaDeviceId: 1,
      lazyUnets: true,
      modelAutoFetch: true,
      cpuThreads: 4,
      variationStrength: 0.5,
      dataDir: '/var/lib/bot',
      logLevel: 'debug',
    });
  });

  it('reads the Discord, policy and limit settings', () => {
    const config = loadConfig({
      DISCORD_TOKEN: 'token',
      DISCORD_APPLICATION_ID: '123',
      DISCORD_GUILD_ID: '456',
      DISCORD_API_URL: 'http://127.0.0.1:9999/api',
      BLOCKED_WORDS: ' gore, nsfw ,,',
      ALLOWED_CHANNELS: '1,2',
      USER_BURST: '3',
      USER_REFILL_SECONDS: '30',
      GUILD_DAILY_IMAGES: '200',
      EXEMPT_USERS: 'discord:1,slack:U02',
      REDIS_URL: 'redis://127.0.0.1:6379',
      DEFAULT_ASPECT: '16:9',
    });
    expect(config.discord).toEqual({ token: 'token', applicationId: '123', guildId: '456', apiUrl: 'http://127.0.0.1:9999/api' });
    expect(config.blockedWords).toEqual(['gore', 'nsfw']);
    expect(config.allowedChannels).toEqual(['1', '2']);
    expect(config.limits).toMatchObject({ userBurst: 3, userRefillMs: 30_000, guildDailyImages: 200, exemptUsers: ['discord:1', 'slack:U02'], redisUrl: 'redis://127.0.0.1:6379' });
    expect(config.defaults.aspect).toBe('16:9');
  });

  it('says when only half of the Discord settings are there, and what else is malformed', () => {
    expect(() => loadConfig({ DISCORD_TOKEN: 'token' })).toThrow('DISCORD_TOKEN and DISCORD_APPLICATION_ID enable Discord together; set both or neither');
    expect(() => loadConfig({ EXEMPT_USERS: '1234' })).toThrow('EXEMPT_USERS entries look like discord:1234, slack:U0123 or web:127.0.0.1; found "1234"');
    expect(() => loadConfig({ REDIS_URL: 'localhost:6379' })).toThrow('REDIS_URL must start with redis:// or rediss://; found "localhost:6379"');
    expect(() => loadConfig({ DEFAULT_COUNT: '9' })).toThrow('DEFAULT_COUNT must be a whole number from 1 to 4; found "9"');
  });

  it('reads the engine and worker settings, and says what remote engines need', () => {
    const config = loadConfig({ ENGINE: 'both', REDIS_URL: 'redis://127.0.0.1:6379', WORKER_ID: 'box-2.gpu_1', WORKER_LOCK_SECONDS: '10', WORKER_HEARTBEAT_SECONDS: '2' });
    expect(config.engine).toBe('both');
    expect(config.workers).toEqual({ workerId: 'box-2.gpu_1', lockMs: 10_000, heartbeatMs: 2_000 });
    expect(loadConfig({ CUDA_DEVICE_ID: '3' }).workers.workerId).toBe(`${hostname()}-gpu3`);
    expect(() => loadConfig({ ENGINE: 'remote' })).toThrow('ENGINE=remote needs REDIS_URL: the Redis server the GPU workers (npm run worker) use');
    expect(() => loadConfig({ ENGINE: 'gpu' })).toThrow('ENGINE must be one of local, remote, both; found "gpu"');
    expect(() => loadConfig({ WORKER_ID: 'a b' })).toThrow('WORKER_ID may hold letters, digits, dots, dashes and underscores, at most 64; found "a b"');
    expect(() => loadConfig({ WORKER_LOCK_SECONDS: '1' })).toThrow('WORKER_LOCK_SECONDS must be a whole number from 2 to 3600; found "1"');
  });

  it('never quotes a password or token from a URL setting', () => {
    const problems = (env: NodeJS.ProcessEnv): readonly string[] => {
      try {
        loadConfig(env);
      } catch (error) {
        return (error as ConfigError).problems;
      }
      return [];
    };
    expect(
      problems({
        REDIS_URL: 'https://default:hunter2@redis.example.com:6379',
        DISCORD_API_URL: 'ftp://proxy-user:s3cret@proxy.example/api',
        SLACK_API_URL: 'ws://xoxb-123-abc@slack.example/api/',
      }),
    ).toEqual([
      'DISCORD_API_URL must be an http(s) URL; found "ftp://[redacted]@proxy.example/api"',
      'SLACK_API_URL must be an http(s) URL; found "ws://[redacted]@slack.example/api/"',
      'REDIS_URL must start with redis:// or rediss://; found "https://[redacted]@redis.example.com:6379"',
    ]);
    expect(problems({ REDIS_URL: ':hunter2@localhost:6379' })).toEqual(['REDIS_URL must start with redis:// or rediss://; found "[redacted]@localhost:6379"']);
    expect(problems({ REDIS_URL: 'redis://:hunter2@localhost:6379' })).toEqual([]);
  });

  it('says when a Slack token sits in the other token’s setting, quoting only its kind', () => {
    const app = 'xapp-1-A0123-4567-abcdef0123456789';
    const bot = 'xoxb-1234-5678-abcdefghijkl';
    let error: unknown;
    try {
      loadConfig({ SLACK_BOT_TOKEN: app, SLACK_SIGNING_SECRET: 'secret', SLACK_APP_TOKEN: bot });
    } catch (caught) {
      error = caught;
    }
    expect((error as ConfigError).problems).toEqual([
      'SLACK_BOT_TOKEN holds an app-level token (xapp-…); it takes the Bot User OAuth Token (xoxb-…, OAuth & Permissions), and the xapp- token goes in SLACK_APP_TOKEN',
      'SLACK_APP_TOKEN must be an app-level token (xapp-…, Basic Information → App-Level Tokens, scope connections:write); found one starting with "xoxb-…"',
    ]);
    expect((error as ConfigError).message).not.toContain('abcdef');
  });

  it('lists the configured secrets for the logger', () => {
    const config = loadConfig({
      DISCORD_TOKEN: 'discord-token',
      DISCORD_APPLICATION_ID: '1',
      SLACK_BOT_TOKEN: 'xoxb-bot',
      SLACK_SIGNING_SECRET: 'signing',
      SLACK_APP_TOKEN: 'xapp-app',
      REDIS_URL: 'redis://default:hunter2@localhost:6379',
    });
    expect(configSecrets(config)).toEqual(['discord-token', 'xoxb-bot', 'signing', 'xapp-app', 'hunter2']);
    expect(configSecrets(loadConfig({}))).toEqual([]);
  });

  it('treats empty values as unset', () => {
    expect(loadConfig({ EXECUTION_PROVIDER: '', CUDA_DEVICE_ID: ' ' }).provider).toBe('auto');
  });

  it('reads the safety settings, and names a bad one', () => {
    expect(loadConfig({ SAFETY: 'off', SAFETY_THRESHOLD: '0.35', SAFETY_MODE: 'hide', SAFETY_DM_ALLOWED: 'true' }).safety).toEqual({ enabled: false, threshold: 0.35, mode: 'hide', dmAllowed: true });
    expect(() => loadConfig({ SAFETY: 'yes', SAFETY_THRESHOLD: '2', SAFETY_MODE: 'blur' })).toThrow(ConfigError);
    try {
      loadConfig({ SAFETY: 'yes', SAFETY_THRESHOLD: '2', SAFETY_MODE: 'blur' });
    } catch (error) {
      expect((error as ConfigError).problems).toEqual([
        'SAFETY must be one of on, off; found "yes"',
        'SAFETY_THRESHOLD must be a number from 0 to 1; found "2"',
        'SAFETY_MODE must be one of off, spoiler, hide; found "blur"',
      ]);
    }
  });

  it('lists every bad value in one error, one sentence each', () => {
    let error: unknown;
    try {
      loadConfig({ EXECUTION_PROVIDER: 'gpu', CUDA_DEVICE_ID: '1e3', VARIATION_STRENGTH: '1.5', LAZY_UNETS: 'yes', CPU_THREADS: '0' });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toEqual([
      'EXECUTION_PROVIDER must be one of auto, cuda, cpu; found "gpu"',
      'CUDA_DEVICE_ID must be a whole number from 0 to 63; found "1e3"',
      'LAZY_UNETS must be one of true, false; found "yes"',
      'CPU_THREADS must be a whole number from 1 to 1024; found "0"',
      'VARIATION_STRENGTH must be a number from 0 to 1; found "1.5"',
    ]);
  });

  it('documents every setting it reads in .env.example', async () => {
    const { readFileSync } = await import('node:fs');
    const example = readFileSync(new URL('../../.env.example', import.meta.url), 'utf8');
    for (const name of Object.keys(SETTINGS)) expect(example).toContain(`${name}=`);
  });
});
