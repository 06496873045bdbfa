// Who may queue a grid now: bans, queue caps, a bottleneck token bucket per user and a daily image quota per guild.

import Bottleneck from 'bottleneck';
import { Redis } from 'ioredis';
import { createLogger, type Logger } from '../logger.js';
import type { Refusal } from './refusal.js';

export type LimitsConfig = {
  /** Grids a user may start at once (the bucket size). */
  userBurst: number;
  /** One grid comes back every this many ms; a multiple of 250 (bottleneck's heartbeat), as whole seconds are. */
  userRefillMs: number;
  /** Waiting jobs a user may have at once. */
  maxQueuedPerUser: number;
  /** Images per guild or workspace per UTC day; null turns the quota off. */
  guildDailyImages: number | null;
  /** Waiting jobs in the whole queue. */
  maxQueueLength: number;
  /** userKeys ("discord:123") free of the queue caps, the bucket and the quota. */
  exemptUsers: readonly string[];
  bannedUsers: readonly string[];
  /** When set, every bot process with the same URL shares the buckets and quotas through Redis. */
  redisUrl?: string;
};

/** Who asks: "platform:userId", "platform:guildId" (null in DMs), and how many images the grid has. */
/** `dailyQuota`: the server's own images per UTC day (a per-server setting); undefined: the configured quota. */
export type LimitSubject = { userKey: string; guildKey: string | null; images: number; dailyQuota?: number | null };

export type Admission = { ok: true } | { ok: false; refusal: Refusal };

/**
 * The limiter. `admit` runs before the platform's 3-second ack: in memory it costs a few event-loop turns, with
 * Redis one round trip per bucket. While Redis is unreachable the buckets of this process stand in (logged once).
 * Whoever calls `start()` calls `close()`.
 */
export type Limits = {
  /** Connects to Redis when `redisUrl` is set; rejects with what to do when it cannot. */
  start(): Promise<void>;
  close(): Promise<void>;
  /**
   * Checks, in order: banned, queue full, the user's waiting jobs, the user's bucket (takes one grid), the guild's
   * day (takes `images`). A refusal gives back whatever the earlier checks took.
   */
  admit(subject: LimitSubject, queue: { waitingForUser: number; waitingTotal: number }): Promise<Admission>;
  /** Gives back what an admitted job took (it failed before running, or was cancelled while waiting). */
  refund(subject: LimitSubject): Promise<void>;
};

export type LimitsDeps = {
  /** Wall clock for UTC days (ms). The buckets run on bottleneck's clock, Date.now, in every process. */
  now?: () => number;
  logger?: Logger;
};

/** Start of the id of every shared limiter; its Redis keys are `b_<id>_settings` and seven more (Scripts.coffee). */
export const REDIS_ID_PREFIX = 'lightning-limits';

const DAY_MS = 86_400_000;
/** Bottleneck's LocalDatastore applies refills on this heartbeat (Bottleneck.coffee, localStoreDefaults). */
const LOCAL_HEARTBEAT_MS = 250;
/** How often limiters that no longer matter are dropped from memory. */
const SWEEP_MS = 60_000;
const REDIS_CONNECT_TIMEOUT_MS = 3_000;
/** A Redis call that takes longer fails, and admit falls back to this process's buckets. */
const REDIS_COMMAND_TIMEOUT_MS = 500;
/** What bottleneck's Redis scripts answer when a limiter's keys, or its client's registration, are gone. */
const LOST_STATE = /\b(SETTINGS_KEY_NOT_FOUND|UNKNOWN_CLIENT)\b/;

export function createLimits(config: LimitsConfig, deps: LimitsDeps = {}): Limits {
  return new BottleneckLimits(config, deps);
}

/** The UTC day of an epoch-ms instant, "2025-01-31", and the ms until the next UTC midnight. */
export function utcDay(at: number): { day: string; msToMidnight: number } {
  return { day: new Date(at).toISOString().slice(0, 10), msToMidnight: DAY_MS - (((at % DAY_MS) + DAY_MS) % DAY_MS) };
}

/**
 * Limiters by key, made on first use with the id `<prefix>-<key>` as a Bottleneck.Group names them. Not a Group,
 * because Group.deleteKey is its only way to drop a limiter and it also deletes the shared Redis keys, while a
 * limiter must be dropped and made again, state kept, when bottleneck cannot recover it (see #use); and because
 * the Group's idle timeout counts from the last *registered job*, which incrementReservoir never makes, so it
 * would drop local buckets that are still refilling.
 */
class LimiterSet {
  readonly #limiters = new Map<string, Bottleneck>();
  readonly #idPrefix: string;
  readonly #options: Bottleneck.ConstructorOptions;

  constructor(idPrefix: string, options: Bottleneck.ConstructorOptions) {
    this.#idPrefix = idPrefix;
    this.#options = options;
  }

  get shared(): boolean {
    return this.#options.connection !== undefined;
  }

  id(key: string): string {
    return `${this.#idPrefix}-${key}`;
  }

  /** `reservoir`: a bucket that starts fuller or emptier than the set's (a server with its own quota; its key says so). */
  get(key: string, reservoir?: number): Bottleneck {
    let limiter = this.#limiters.get(key);
    if (!limiter) {
      limiter = new Bottleneck({ ...this.#options, ...(reservoir === undefined ? {} : { reservoir }), id: this.id(key) });
      this.#limiters.set(key, limiter);
    }
    return limiter;
  }

  /**
   * Stops the limiter in this process; shared state stays in Redis. A shared one unsubscribes without returning
   * that promise (IORedisConnection.__removeLimiter__), so drop shared limiters only while Redis is connected.
   */
  async drop(key: string): Promise<void> {
    const limiter = this.#limiters.get(key);
    if (!limiter) return;
    this.#limiters.delete(key);
    // RedisDatastore's disconnect returns nothing when the connection is shared, whatever the typings say.
    await Promise.resolve()
      .then(() => limiter.disconnect(false))
      .catch(() => {});
  }

  /** Forgets a limiter that never started: it has no heartbeat to stop. */
  forget(key: string): void {
    this.#limiters.delete(key);
  }

  entries(): [string, Bottleneck][] {
    return [...this.#limiters];
  }

  async clear(): Promise<void> {
    await Promise.all([...this.#limiters.keys()].map((key) => this.drop(key)));
  }
}

/** One store of buckets: in this process (LocalDatastore) or shared through Redis. */
type Buckets = {
  users: LimiterSet;
  guilds: LimiterSet | undefined;
  /** When the user's bucket last got (or would have got) a grid back, epoch ms on bottleneck's clock. */
  lastRefill(userKey: string, limiter: Bottleneck): Promise<number | undefined>;
};

type Shared = { redis: Redis; connection: Bottleneck.IORedisConnection; buckets: Buckets };

class BottleneckLimits implements Limits {
  readonly #config: LimitsConfig;
  readonly #now: () => number;
  readonly #logger: Logger;
  readonly #banned: ReadonlySet<string>;
  readonly #exempt: ReadonlySet<string>;
  readonly #ids: { users: string; guilds: string };
  #local: Buckets | undefined;
  #shared: Shared | undefined;
  #sweeper: NodeJS.Timeout | undefined;
  /** Each limiter's latest use, counted in #uses, so a sweep never drops a limiter a request is using. */
  readonly #lastUse = new WeakMap<Bottleneck, number>();
  #uses = 0;
  #usesAtLastSweep = 0;
  #redisDown = false;
  #warnedNoRefillClock = false;

  constructor(config: LimitsConfig, deps: LimitsDeps) {
    const positive = { userBurst: config.userBurst, maxQueuedPerUser: config.maxQueuedPerUser, maxQueueLength: config.maxQueueLength };
    for (const [name, value] of Object.entries(positive)) {
      if (!Number.isInteger(value) || value < 1) throw new RangeError(`limits.${name} must be a whole number ≥ 1; found ${value}`);
    }
    if (!Number.isInteger(config.userRefillMs) || config.userRefillMs <= 0 || config.userRefillMs % LOCAL_HEARTBEAT_MS !== 0) {
      throw new RangeError(`limits.userRefillMs must be a positive multiple of ${LOCAL_HEARTBEAT_MS} ms; found ${config.userRefillMs}`);
    }
    if (config.guildDailyImages !== null && (!Number.isInteger(config.guildDailyImages) || config.guildDailyImages < 1)) {
      throw new RangeError(`limits.guildDailyImages must be a whole number ≥ 1 or null; found ${config.guildDailyImages}`);
    }
    this.#config = config;
    this.#now = deps.now ?? (() => Date.now());
    this.#logger = (deps.logger ?? createLogger({ level: 'silent' })).child({ part: 'limits' });
    this.#banned = new Set(config.bannedUsers);
    this.#exempt = new Set(config.exemptUsers);
    // The settings are part of the ids, so processes with other settings never share a bucket, and a changed
    // setting takes effect at once (bottleneck keeps the settings a key was created with).
    this.#ids = {
      users: `${REDIS_ID_PREFIX}:user:b${config.userBurst}:r${config.userRefillMs}`,
      guilds: `${REDIS_ID_PREFIX}:guild:d${config.guildDailyImages ?? 0}`,
    };
  }

  async start(): Promise<void> {
    if (this.#local) throw new Error('limits already started');
    this.#local = {
      users: new LimiterSet(this.#ids.users, this.#userSettings()),
      guilds: this.#guildSet({}),
      lastRefill: async (_userKey, limiter) => (limiter as unknown as LocalLimiterInternals)._store?._lastReservoirIncrease,
    };
    this.#sweeper = setInterval(() => void this.#sweep(), SWEEP_MS).unref();
    if (!this.#config.redisUrl) return;
    try {
      this.#shared = await this.#connect(this.#config.redisUrl);
    } catch (error) {
      await this.close();
      throw error;
    }
  }

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    const { shared, local } = { shared: this.#shared, local: this.#local };
    this.#shared = undefined;
    this.#local = undefined;
    if (shared) {
      // First, so the limiters below stop without unsubscribing; waits for QUIT only while connected.
      const flush = shared.redis.status === 'ready';
      await shared.connection.disconnect(flush).catch(() => shared.connection.disconnect(false));
    }
    for (const buckets of [shared?.buckets, local]) {
      await Promise.all([buckets?.users.clear(), buckets?.guilds?.clear()]);
    }
  }

  async admit(subject: LimitSubject, queue: { waitingForUser: number; waitingTotal: number }): Promise<Admission> {
    if (this.#banned.has(subject.userKey)) return refuse({ code: 'banned' });
    if (this.#exempt.has(subject.userKey)) return { ok: true };
    if (queue.waitingTotal >= this.#config.maxQueueLength) return refuse({ code: 'queue_full' });
    if (queue.waitingForUser >= this.#config.maxQueuedPerUser) {
      return refuse({ code: 'too_many_queued', limit: this.#config.maxQueuedPerUser });
    }
    const shared = this.#usableShared();
    if (shared) {
      try {
        const admission = await this.#takeFrom(shared.buckets, subject);
        this.#answered();
        return admission;
      } catch (error) {
        this.#fellBack(error);
      }
    }
    return this.#takeFrom(this.#started(), subject);
  }

  async refund(subject: LimitSubject): Promise<void> {
    if (this.#exempt.has(subject.userKey) || this.#banned.has(subject.userKey)) return;
    const shared = this.#usableShared();
    if (shared) {
      try {
        await this.#giveTo(shared.buckets, subject);
        this.#answered();
        return;
      } catch (error) {
        this.#fellBack(error);
      }
    }
    return this.#giveTo(this.#started(), subject);
  }

  async #takeFrom(buckets: Buckets, subject: LimitSubject): Promise<Admission> {
    const { userBurst, guildDailyImages } = this.#config;
    const user = await this.#use(buckets.users, subject.userKey, (limiter) => takeTokens(limiter, 1, userBurst));
    if (!user.result.taken) {
      const [, lastRefill] = await Promise.all([user.result.undone, buckets.lastRefill(subject.userKey, user.limiter)]);
      return refuse({ code: 'rate_limited', retryAfterMs: this.#retryAfter(lastRefill) });
    }
    const quota = subject.dailyQuota === undefined ? guildDailyImages : subject.dailyQuota;
    if (quota === null || subject.guildKey === null || !buckets.guilds) return { ok: true };
    const { day, msToMidnight } = utcDay(this.#now());
    const guild = await this.#use(buckets.guilds, guildBucket(subject.guildKey, day, quota, guildDailyImages), (limiter) => takeTokens(limiter, subject.images, quota), quota);
    if (guild.result.taken) return { ok: true };
    await Promise.all([guild.result.undone, giveTokens(user.limiter, 1, userBurst)]);
    return refuse({ code: 'daily_quota', limit: quota, retryAfterMs: msToMidnight });
  }

  async #giveTo(buckets: Buckets, subject: LimitSubject): Promise<void> {
    const { userBurst, guildDailyImages } = this.#config;
    await this.#use(buckets.users, subject.userKey, (limiter) => giveTokens(limiter, 1, userBurst));
    const quota = subject.dailyQuota === undefined ? guildDailyImages : subject.dailyQuota;
    if (quota === null || subject.guildKey === null || !buckets.guilds) return;
    // Today's quota: a job admitted before midnight and refunded after it gives nothing to a fresh day (capped).
    const key = guildBucket(subject.guildKey, utcDay(this.#now()).day, quota, guildDailyImages);
    await this.#use(buckets.guilds, key, (limiter) => giveTokens(limiter, subject.images, quota), quota);
  }

  /**
   * Ms until the next grid comes back. Bottleneck adds `reservoirIncreaseAmount` once `reservoirIncreaseInterval`
   * has passed since its last increase (LocalDatastore heartbeat; process_tick.lua in Redis), and it moves that
   * clock even while the bucket is full, so the next grid comes at lastRefill + interval, not a whole interval
   * after the refusal.
   */
  #retryAfter(lastRefill: number | undefined): number {
    const interval = this.#config.userRefillMs;
    if (lastRefill === undefined) {
      if (!this.#warnedNoRefillClock) {
        this.#warnedNoRefillClock = true;
        this.#logger.warn('cannot read bottleneck’s refill clock (was bottleneck upgraded?); refusals say a whole refill interval');
      }
      return interval;
    }
    return Math.min(Math.max(lastRefill + interval - Date.now(), 0), interval);
  }

  /**
   * Runs `use` on the limiter for `key`. A shared limiter whose keys expired or vanished (Redis restarted), or whose
   * client registration lapsed, is made again, keeping what Redis still has, and `use` runs once more: bottleneck
   * 2.19 does this itself only for errors worded without "ERR ", which Redis 7 adds (bottleneck issues #205, #212).
   * Those checks fail before the script writes anything.
   */
  async #use<T>(set: LimiterSet, key: string, use: (limiter: Bottleneck) => Promise<T>, reservoir?: number): Promise<{ limiter: Bottleneck; result: T }> {
    const limiter = await this.#limiter(set, key, reservoir);
    try {
      return { limiter, result: await use(limiter) };
    } catch (error) {
      if (!set.shared || !LOST_STATE.test(error instanceof Error ? error.message : String(error))) throw error;
      this.#logger.debug({ key, err: error }, 'a shared limiter lost its Redis state; making it again');
      await set.drop(key);
      const again = await this.#limiter(set, key, reservoir);
      return { limiter: again, result: await use(again) };
    }
  }

  /** The set's limiter for `key`; a shared one that failed to start (Redis went away meanwhile) is made again once. */
  async #limiter(set: LimiterSet, key: string, reservoir?: number): Promise<Bottleneck> {
    let limiter = set.get(key, reservoir);
    if (set.shared && !(await limiter.ready().then(() => true, () => false))) {
      set.forget(key);
      limiter = set.get(key, reservoir);
    }
    this.#lastUse.set(limiter, ++this.#uses);
    return limiter;
  }

  async #connect(url: string): Promise<Shared> {
    const redis = new Redis(url, {
      // Commands fail at once while disconnected instead of queueing, so admit never waits on a dead Redis.
      enableOfflineQueue: false,
      commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
      connectTimeout: REDIS_CONNECT_TIMEOUT_MS,
      maxRetriesPerRequest: 1,
      retryStrategy: (attempt) => Math.min(attempt * 250, 5_000),
    });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no answer within ${REDIS_CONNECT_TIMEOUT_MS} ms`)), REDIS_CONNECT_TIMEOUT_MS);
        redis.once('ready', () => (clearTimeout(timer), resolve()));
        redis.once('error', (error: Error) => (clearTimeout(timer), reject(error)));
      });
    } catch (error) {
      redis.disconnect();
      const reason = error instanceof Error ? error.message : String(error);
      throw new Error(
        `REDIS_URL ${redactUrl(url)}: cannot connect (${reason}); ` +
          'start Redis there or unset REDIS_URL to keep limits in this process',
      );
    }
    redis.on('error', (error: Error) => this.#fellBack(error));
    redis.on('ready', () => this.#answered());
    // One connection (a client and its subscriber duplicate) for every shared limiter.
    const connection = new Bottleneck.IORedisConnection({ client: redis, Redis });
    connection.on('error', () => {}); // the subscriber's reconnect errors; the client's are logged above
    const users = new LimiterSet(this.#ids.users, {
      ...this.#userSettings(),
      connection,
      // Redis expires a bucket this long after its last take (refresh_expiration.lua): by then it is full again.
      timeout: (this.#config.userBurst + 1) * this.#config.userRefillMs,
    });
    // A day's quota outlives its day: it expires at most 25 h after its last take.
    const guilds = this.#guildSet({ connection, timeout: DAY_MS + 3_600_000 });
    const lastRefill = async (userKey: string): Promise<number | undefined> => {
      const value = await redis.hget(`b_${users.id(userKey)}_settings`, 'lastReservoirIncrease');
      return value === null || value === '' ? undefined : Number(value);
    };
    return { redis, connection, buckets: { users, guilds, lastRefill } };
  }

  #userSettings(): Bottleneck.ConstructorOptions {
    const { userBurst, userRefillMs } = this.#config;
    return {
      reservoir: userBurst,
      reservoirIncreaseAmount: 1,
      reservoirIncreaseInterval: userRefillMs,
      reservoirIncreaseMaximum: userBurst,
    };
  }

  /** Servers' daily buckets; always made, since a server may set its own quota when there is no default one. */
  #guildSet(options: Bottleneck.ConstructorOptions): LimiterSet | undefined {
    return new LimiterSet(this.#ids.guilds, { ...options, reservoir: this.#config.guildDailyImages ?? 0 });
  }

  #usableShared(): Shared | undefined {
    this.#started();
    const shared = this.#shared;
    if (!shared) return undefined;
    if (shared.redis.status === 'ready') return shared;
    this.#fellBack(new Error(`the Redis connection is ${shared.redis.status}`));
    return undefined;
  }

  #started(): Buckets {
    if (!this.#local) throw new Error('limits used before start() or after close()');
    return this.#local;
  }

  #answered(): void {
    if (!this.#redisDown) return;
    this.#redisDown = false;
    this.#logger.info('Redis is back; limits are shared again');
  }

  #fellBack(error: unknown): void {
    if (this.#redisDown) return;
    this.#redisDown = true;
    this.#logger.warn({ err: error }, 'Redis is unreachable; limits fall back to this process until it returns');
  }

  /**
   * Drops limiters that hold nothing: local buckets that are full again, local quotas of days gone by, and shared
   * limiters unused since the last sweep (Redis keeps their state). A request that took its limiter before `mark`
   * has its change queued ahead of our read (the local store applies each call after one setTimeout 0, in order);
   * one that came later may be using it, so it stays.
   */
  async #sweep(): Promise<void> {
    const mark = this.#uses;
    const idleSince = this.#usesAtLastSweep;
    this.#usesAtLastSweep = mark;
    const unusedSince = (limiter: Bottleneck, since: number): boolean => (this.#lastUse.get(limiter) ?? 0) <= since;
    try {
      const { local, shared } = { local: this.#local, shared: this.#shared };
      if (!local) return;
      const { userBurst } = this.#config;
      const today = utcDay(this.#now()).day;
      await Promise.all([
        ...local.users.entries().map(async ([key, limiter]) => {
          const full = ((await limiter.currentReservoir()) ?? 0) >= userBurst;
          if (full && unusedSince(limiter, mark)) await local.users.drop(key);
        }),
        ...(local.guilds?.entries() ?? []).filter(([key]) => !key.endsWith(`@${today}`)).map(([key]) => local.guilds?.drop(key)),
        ...(shared?.redis.status === 'ready' ? [shared.buckets.users, shared.buckets.guilds] : []).flatMap((set) =>
          (set?.entries() ?? []).filter(([, limiter]) => unusedSince(limiter, idleSince)).map(([key]) => set?.drop(key)),
        ),
      ]);
    } catch (error) {
      this.#logger.error({ err: error }, 'dropping idle limit buckets failed');
    }
  }
}

/** The field of bottleneck 2.19's LocalDatastore this file reads (src/LocalDatastore.coffee). */
type LocalLimiterInternals = { _store?: { _lastReservoirIncrease?: number } };

const refuse = (refusal: Refusal): Admission => ({ ok: false, refusal });

/**
 * Takes `amount` from a limiter's reservoir when it holds that many. When it does not, the take is being undone;
 * the caller awaits `undone` beside its next call (in Redis, both go out in one round trip).
 */
/**
 * A server's bucket for one UTC day. A server with its own quota gets a bucket named after it, so a changed quota
 * starts a bucket of its size at once (the day's count starts again), as a changed setting does for every bucket.
 */
function guildBucket(guildKey: string, day: string, quota: number, configured: number | null): string {
  return quota === configured ? `${guildKey}@${day}` : `${guildKey}#q${quota}@${day}`;
}

async function takeTokens(
  limiter: Bottleneck,
  amount: number,
  maximum: number,
): Promise<{ taken: true } | { taken: false; undone: Promise<number> }> {
  const left = await limiter.incrementReservoir(-amount);
  if (left < 0) {
    const undone = limiter.incrementReservoir(amount);
    undone.catch(() => {}); // the caller awaits it; this only keeps an early rejection from counting as unhandled
    return { taken: false, undone };
  }
  // In Redis, increment_reservoir.lua applies a refill that was due after our decrement and caps it at the
  // maximum, so a full bucket would lose nothing; a real take leaves at most maximum − amount.
  if (left > maximum - amount) await limiter.incrementReservoir(maximum - amount - left);
  return { taken: true };
}

/** Gives `amount` back to a limiter's reservoir, never above `maximum` (it may have refilled meanwhile). */
async function giveTokens(limiter: Bottleneck, amount: number, maximum: number): Promise<void> {
  const after = await limiter.incrementReservoir(amount);
  if (after > maximum) await limiter.incrementReservoir(maximum - after);
}

/** The URL without its password, for messages. */
function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparsable URL)';
  }
}
