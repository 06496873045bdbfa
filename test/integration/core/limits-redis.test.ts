import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createLimits, REDIS_ID_PREFIX, type LimitsConfig, type LimitSubject, type Limits } from '../../../src/core/limits.js';
import { createLogger } from '../../../src/logger.js';
import { redisServerMissing, startRedisServer, type RedisServer } from '../../setup/redis.js';

const missing = redisServerMissing();
if (missing) console.warn(missing);

const CONFIG: LimitsConfig = {
  userBurst: 5,
  userRefillMs: 60_000,
  maxQueuedPerUser: 2,
  guildDailyImages: 12,
  maxQueueLength: 50,
  exemptUsers: [],
  bannedUsers: [],
};
const EMPTY_QUEUE = { waitingForUser: 0, waitingTotal: 0 };
const alice: LimitSubject = { userKey: 'discord:alice', guildKey: null, images: 4 };

/** A logger whose JSON lines land in `lines`. */
function capturedLogger() {
  const lines: { level: number; msg: string }[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: createLogger({ level: 'info', destination }), lines };
}

describe.skipIf(missing)('limits shared through Redis', () => {
  let server: RedisServer;
  const open: Limits[] = [];

  beforeAll(async () => {
    server = await startRedisServer();
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((limits) => limits.close()));
  });
  afterAll(async () => {
    await server?.stop();
  });

  async function process(config: Partial<LimitsConfig> = {}, logger = capturedLogger().logger): Promise<Limits> {
    const limits = createLimits({ ...CONFIG, redisUrl: server.url, ...config }, { logger });
    await limits.start();
    open.push(limits);
    return limits;
  }

  it('shares one user’s burst between two processes', async () => {
    const [a, b] = [await process(), await process()];
    const started = Date.now();
    for (const limits of [a, b, a, b, a]) expect(await limits.admit(alice, EMPTY_QUEUE)).toEqual({ ok: true });
    const sixth = await b.admit(alice, EMPTY_QUEUE);
    expect(sixth.ok).toBe(false);
    if (sixth.ok || sixth.refusal.code !== 'rate_limited') throw new Error(`expected rate_limited, got ${JSON.stringify(sixth)}`);
    // The bucket started with the first admit; the next grid comes 60 s after that.
    expect(sixth.refusal.retryAfterMs).toBeLessThanOrEqual(60_000);
    expect(sixth.refusal.retryAfterMs).toBeGreaterThan(60_000 - (Date.now() - started) - 50);
    expect((await a.admit(alice, EMPTY_QUEUE)).ok).toBe(false);

    // A refund on one process is a grid for the other.
    await b.refund(alice);
    expect(await a.admit(alice, EMPTY_QUEUE)).toEqual({ ok: true });
    expect((await b.admit(alice, EMPTY_QUEUE)).ok).toBe(false);

    // The keys sit under our prefix and expire once the bucket would be full again (6 × 60 s after the last take).
    const redis = new Redis(server.url);
    const settings = `b_${REDIS_ID_PREFIX}:user:b5:r60000-discord:alice_settings`;
    expect(await redis.keys(`b_${REDIS_ID_PREFIX}:*`)).toContain(settings);
    const ttl = await redis.pttl(settings);
    await redis.quit();
    expect(ttl).toBeGreaterThan(350_000);
    expect(ttl).toBeLessThanOrEqual(360_000);
  });

  it('takes a grid from a full bucket even when Redis applies a due refill in the same call', async () => {
    // increment_reservoir.lua decrements first and refills after, capped at the burst: without our correction a
    // bucket that had refilled lazily would be full again after the take.
    const [a, b] = [await process({ userBurst: 2, userRefillMs: 1_000 }), await process({ userBurst: 2, userRefillMs: 1_000 })];
    const carol = { ...alice, userKey: 'discord:carol' };
    expect(await a.admit(carol, EMPTY_QUEUE)).toEqual({ ok: true });
    // Two refills fall due, and no script runs meanwhile: bottleneck's heartbeat comes every 5 s, and b has no
    // limiter for carol yet (making one runs init.lua, which applies due refills first).
    await new Promise((resolve) => setTimeout(resolve, 2_100));
    expect(await a.admit(carol, EMPTY_QUEUE)).toEqual({ ok: true });
    expect(await a.admit(carol, EMPTY_QUEUE)).toEqual({ ok: true });
    const third = await b.admit(carol, EMPTY_QUEUE);
    expect(third).toMatchObject({ ok: false, refusal: { code: 'rate_limited' } });
    expect(!third.ok && third.refusal.code === 'rate_limited' && third.refusal.retryAfterMs).toBeLessThanOrEqual(1_000);
  });

  it('starts a bucket afresh when its keys have expired', async () => {
    const { logger, lines } = capturedLogger();
    const [a, b] = [await process({}, logger), await process({}, logger)];
    const dave = { ...alice, userKey: 'discord:dave' };
    for (const limits of [a, b, a, b, a]) await limits.admit(dave, EMPTY_QUEUE);
    expect((await b.admit(dave, EMPTY_QUEUE)).ok).toBe(false);

    const redis = new Redis(server.url);
    await redis.del(...(await redis.keys(`b_${REDIS_ID_PREFIX}:user:*-discord:dave_*`))); // what the TTL does
    await redis.quit();
    for (const limits of [b, a, b, a, b]) expect(await limits.admit(dave, EMPTY_QUEUE)).toEqual({ ok: true });
    expect((await a.admit(dave, EMPTY_QUEUE)).ok).toBe(false);
    expect(lines.filter((line) => line.level >= 40)).toEqual([]);
  });

  it('shares a guild’s daily images, and gives the grid back when the day is used up', async () => {
    const [a, b] = [await process(), await process()];
    const inGuild = (userKey: string): LimitSubject => ({ userKey, guildKey: 'slack:T1', images: 4 });
    expect(await a.admit(inGuild('slack:u1'), EMPTY_QUEUE)).toEqual({ ok: true });
    expect(await b.admit(inGuild('slack:u2'), EMPTY_QUEUE)).toEqual({ ok: true });
    expect(await a.admit(inGuild('slack:u3'), EMPTY_QUEUE)).toEqual({ ok: true });
    const over = await b.admit(inGuild('slack:u3'), EMPTY_QUEUE);
    expect(over).toMatchObject({ ok: false, refusal: { code: 'daily_quota', limit: 12 } });
    // u3 made one grid and was refused one: four are left in the shared bucket.
    for (const limits of [a, b, a, b]) expect(await limits.admit({ ...inGuild('slack:u3'), guildKey: null }, EMPTY_QUEUE)).toEqual({ ok: true });
    expect((await a.admit({ ...inGuild('slack:u3'), guildKey: null }, EMPTY_QUEUE)).ok).toBe(false);
  });

  it('admits in a few ms once the bucket exists', async () => {
    const a = await process();
    const bob = { ...alice, userKey: 'discord:bob' };
    await a.admit(bob, EMPTY_QUEUE); // creates the limiter (init script, subscriptions)
    await a.refund(bob);
    const started = performance.now();
    for (let i = 0; i < 5; i++) await a.admit(bob, EMPTY_QUEUE);
    const perAdmit = (performance.now() - started) / 5;
    console.info(`admit through Redis: ${perAdmit.toFixed(2)} ms each`);
    expect(perAdmit).toBeLessThan(50);
  });

  it('says what to do when Redis cannot be reached at start', async () => {
    const nowhere = `127.0.0.1:${server.port + 1}`; // nothing listens next door
    const limits = createLimits({ ...CONFIG, redisUrl: `redis://${nowhere}` });
    await expect(limits.start()).rejects.toThrow(
      `REDIS_URL redis://${nowhere}: cannot connect (connect ECONNREFUSED ${nowhere}); ` +
        'start Redis there or unset REDIS_URL to keep limits in this process',
    );
    await expect(limits.admit(alice, EMPTY_QUEUE)).rejects.toThrow('limits used before start() or after close()');
  });

  it('falls back to this process’s buckets, with a warning, while Redis is down', async () => {
    const own = await startRedisServer();
    const { logger, lines } = capturedLogger();
    const limits = createLimits({ ...CONFIG, redisUrl: own.url }, { logger });
    await limits.start();
    open.push(limits);
    expect(await limits.admit(alice, EMPTY_QUEUE)).toEqual({ ok: true });

    await own.stop();
    const started = performance.now();
    const results = [];
    for (let i = 0; i < 6; i++) results.push((await limits.admit(alice, EMPTY_QUEUE)).ok);
    expect(performance.now() - started).toBeLessThan(1_000);
    // A fresh bucket in this process: five grids, then a refusal.
    expect(results).toEqual([true, true, true, true, true, false]);
    const warnings = lines.filter((line) => line.level === 40).map((line) => line.msg);
    expect(warnings).toEqual(['Redis is unreachable; limits fall back to this process until it returns']);

    // Redis returns (empty: it kept nothing on disk) and the limits are shared again.
    const back = await startRedisServer({ port: own.port });
    try {
      await vi.waitFor(() => expect(lines.map((line) => line.msg)).toContain('Redis is back; limits are shared again'), { timeout: 10_000 });
      const other = await process({ redisUrl: back.url });
      for (const each of [limits, other, limits, other, limits]) expect(await each.admit(alice, EMPTY_QUEUE)).toEqual({ ok: true });
      expect((await other.admit(alice, EMPTY_QUEUE)).ok).toBe(false);
    } finally {
      await Promise.all(open.splice(0).map((each) => each.close()));
      await back.stop();
    }
  });
});
