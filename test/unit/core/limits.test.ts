import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLimits, utcDay, type LimitsConfig, type LimitSubject, type Limits } from '../../../src/core/limits.js';
import { refusalText } from '../../../src/core/refusal.js';

const CONFIG: LimitsConfig = {
  userBurst: 5,
  userRefillMs: 60_000,
  maxQueuedPerUser: 2,
  guildDailyImages: null,
  maxQueueLength: 50,
  exemptUsers: ['discord:admin'],
  bannedUsers: ['discord:troll'],
};
const EMPTY_QUEUE = { waitingForUser: 0, waitingTotal: 0 };
const alice: LimitSubject = { userKey: 'discord:alice', guildKey: 'discord:g1', images: 4 };

// Bottleneck's heartbeat (setInterval) and clock (Date) run on fake time; its event-loop yields (setTimeout 0) stay real.
beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date', 'setInterval', 'clearInterval'] });
  vi.setSystemTime(new Date('2025-03-14T12:00:00.000Z'));
});
afterEach(() => vi.useRealTimers());

const open: Limits[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((limits) => limits.close()));
});

async function started(config: Partial<LimitsConfig> = {}): Promise<Limits> {
  const limits = createLimits({ ...CONFIG, ...config });
  await limits.start();
  open.push(limits);
  return limits;
}

async function admitMany(limits: Limits, subject: LimitSubject, times: number) {
  const results = [];
  for (let i = 0; i < times; i++) results.push(await limits.admit(subject, EMPTY_QUEUE));
  return results;
}

describe('limits', () => {
  it('allows a burst of 5, then says exactly when the next grid comes back', async () => {
    const limits = await started();
    const burst = await admitMany(limits, alice, 5);
    expect(burst.every((result) => result.ok)).toBe(true);
    const refused = await limits.admit(alice, EMPTY_QUEUE);
    expect(refused).toEqual({ ok: false, refusal: { code: 'rate_limited', retryAfterMs: 60_000 } });

    vi.advanceTimersByTime(18_000);
    const later = await limits.admit(alice, EMPTY_QUEUE);
    expect(later).toEqual({ ok: false, refusal: { code: 'rate_limited', retryAfterMs: 42_000 } });
    expect(!later.ok && refusalText(later.refusal)).toMatchInlineSnapshot(`"You can imagine again in 42 s."`);

    // Other users have their own buckets.
    expect(await limits.admit({ ...alice, userKey: 'slack:bob' }, EMPTY_QUEUE)).toEqual({ ok: true });
  });

  it('refills one grid per interval, on the bucket’s own clock', async () => {
    const limits = await started();
    await limits.admit(alice, EMPTY_QUEUE); // the bucket starts now, its refill clock with it
    vi.advanceTimersByTime(45_000);
    await admitMany(limits, alice, 4);
    // The next grid comes 60 s after the bucket started, 15 s from now, not a whole interval after the refusal.
    expect(await limits.admit(alice, EMPTY_QUEUE)).toEqual({ ok: false, refusal: { code: 'rate_limited', retryAfterMs: 15_000 } });

    vi.advanceTimersByTime(15_000);
    expect(await limits.admit(alice, EMPTY_QUEUE)).toEqual({ ok: true });
    expect(await limits.admit(alice, EMPTY_QUEUE)).toEqual({ ok: false, refusal: { code: 'rate_limited', retryAfterMs: 60_000 } });

    // Refills stop at the burst size.
    vi.advanceTimersByTime(10 * 60_000);
    const afterRest = await admitMany(limits, alice, 6);
    expect(afterRest.map((result) => result.ok)).toEqual([true, true, true, true, true, false]);
  });

  it('hands out exactly the burst to concurrent requests', async () => {
    const limits = await started();
    const results = await Promise.all(Array.from({ length: 12 }, () => limits.admit(alice, EMPTY_QUEUE)));
    expect(results.filter((result) => result.ok)).toHaveLength(5);
  });

  it('caps the waiting jobs per user and in all, before taking a grid', async () => {
    const limits = await started();
    const tooMany = await limits.admit(alice, { waitingForUser: 2, waitingTotal: 2 });
    expect(tooMany).toEqual({ ok: false, refusal: { code: 'too_many_queued', limit: 2 } });
    expect(!tooMany.ok && refusalText(tooMany.refusal)).toMatchInlineSnapshot(
      `"You already have 2 images waiting; try again when one is done."`,
    );
    const full = await limits.admit(alice, { waitingForUser: 0, waitingTotal: 50 });
    expect(full).toEqual({ ok: false, refusal: { code: 'queue_full' } });
    expect(!full.ok && refusalText(full.refusal)).toMatchInlineSnapshot(`"The queue is full right now; try again in a minute."`);
    expect(await limits.admit(alice, { waitingForUser: 1, waitingTotal: 49 })).toEqual({ ok: true });
    // The refusals above took nothing: four more grids are left.
    expect((await admitMany(limits, alice, 5)).map((result) => result.ok)).toEqual([true, true, true, true, false]);
  });

  it('lets exempt users past every limit and refuses banned users first', async () => {
    const limits = await started({ guildDailyImages: 4 });
    const admin = { ...alice, userKey: 'discord:admin' };
    const crowded = { waitingForUser: 40, waitingTotal: 1000 };
    for (let i = 0; i < 20; i++) expect(await limits.admit(admin, crowded)).toEqual({ ok: true });
    // The admin's images did not count against the guild's day.
    expect(await limits.admit(alice, EMPTY_QUEUE)).toEqual({ ok: true });

    const banned = await limits.admit({ ...alice, userKey: 'discord:troll' }, EMPTY_QUEUE);
    expect(banned).toEqual({ ok: false, refusal: { code: 'banned' } });
    expect(!banned.ok && refusalText(banned.refusal)).toMatchInlineSnapshot(
      `"You cannot use this bot here; ask a server admin if you think that is a mistake."`,
    );
    const both = await started({ exemptUsers: ['discord:troll'] });
    expect(await both.admit({ ...alice, userKey: 'discord:troll' }, EMPTY_QUEUE)).toEqual({ ok: false, refusal: { code: 'banned' } });
  });

  it('keeps a server’s own daily quota, with or without a configured one, and gives refunds back to it', async () => {
    const limits = await started({ guildDailyImages: null, userBurst: 50 });
    const own = { ...alice, images: 2, dailyQuota: 3 };
    expect(await limits.admit(own, EMPTY_QUEUE)).toEqual({ ok: true });
    expect(await limits.admit(own, EMPTY_QUEUE)).toMatchObject({ ok: false, refusal: { code: 'daily_quota', limit: 3 } });
    await limits.refund(own);
    expect(await limits.admit(own, EMPTY_QUEUE)).toEqual({ ok: true });
    // another server without a quota of its own is not limited; the configured default applies to servers that set none
    expect(await limits.admit({ ...alice, guildKey: 'discord:g2', images: 4 }, EMPTY_QUEUE)).toEqual({ ok: true });
    const configured = await started({ guildDailyImages: 4, userBurst: 50 });
    expect(await configured.admit({ ...alice, images: 4, dailyQuota: 8 }, EMPTY_QUEUE)).toEqual({ ok: true });
    expect(await configured.admit({ ...alice, images: 4, dailyQuota: 8 }, EMPTY_QUEUE)).toEqual({ ok: true });
    expect(await configured.admit({ ...alice, guildKey: 'discord:g2', images: 4 }, EMPTY_QUEUE)).toEqual({ ok: true });
    expect(await configured.admit({ ...alice, guildKey: 'discord:g2', images: 1 }, EMPTY_QUEUE)).toMatchObject({ ok: false, refusal: { code: 'daily_quota', limit: 4 } });
  });

  it('keeps a daily image quota per guild until the next UTC midnight', async () => {
    vi.setSystemTime(new Date('2025-03-14T23:00:00.000Z'));
    const limits = await started({ guildDailyImages: 10 });
    const carol = { ...alice, userKey: 'discord:carol' };
    expect(await limits.admit(alice, EMPTY_QUEUE)).toEqual({ ok: true });
    expect(await limits.admit(carol, EMPTY_QUEUE)).toEqual({ ok: true });
    vi.advanceTimersByTime(1_000);
    const over = await limits.admit({ ...carol, images: 4 }, EMPTY_QUEUE);
    expect(over).toEqual({ ok: false, refusal: { code: 'daily_quota', limit: 10, retryAfterMs: 3_599_000 } });
    expect(!over.ok && refusalText(over.refusal)).toMatchInlineSnapshot(
      `"This server has used its 10 images for today; try again in 60 min."`,
    );
    // Two images still fit; other guilds and DMs have their own (or no) quota.
    expect(await limits.admit({ ...carol, images: 2 }, EMPTY_QUEUE)).toEqual({ ok: true });
    expect(await limits.admit({ ...carol, guildKey: 'discord:g2' }, EMPTY_QUEUE)).toEqual({ ok: true });
    expect(await limits.admit({ ...carol, guildKey: null }, EMPTY_QUEUE)).toEqual({ ok: true });
    // Carol's refused request gave its grid back: she has made 4 of her 5.
    expect(await limits.admit({ ...carol, guildKey: null }, EMPTY_QUEUE)).toEqual({ ok: true });
    expect((await limits.admit({ ...carol, guildKey: null }, EMPTY_QUEUE)).ok).toBe(false);

    vi.advanceTimersByTime(3_599_000); // 2025-03-15T00:00:00Z: a new day
    expect(await limits.admit({ ...alice, images: 4 }, EMPTY_QUEUE)).toEqual({ ok: true });
  });

  it('refund gives back the grid and the images, never above the limits', async () => {
    const limits = await started({ guildDailyImages: 8 });
    await admitMany(limits, alice, 2); // 8 images: the day is used up
    expect((await limits.admit({ ...alice, userKey: 'discord:dave' }, EMPTY_QUEUE)).ok).toBe(false);
    await limits.refund(alice);
    expect(await limits.admit({ ...alice, userKey: 'discord:dave' }, EMPTY_QUEUE)).toEqual({ ok: true });

    const dm = { ...alice, userKey: 'discord:erin', guildKey: null };
    await admitMany(limits, dm, 5);
    await limits.refund(dm);
    expect(await limits.admit(dm, EMPTY_QUEUE)).toEqual({ ok: true });
    expect((await limits.admit(dm, EMPTY_QUEUE)).ok).toBe(false);

    const fresh = { ...dm, userKey: 'discord:frank' };
    await limits.refund(fresh); // a full bucket stays at 5
    expect((await admitMany(limits, fresh, 6)).map((result) => result.ok)).toEqual([true, true, true, true, true, false]);
  });

  it('drops idle buckets only once they are full again', async () => {
    const limits = await started();
    await admitMany(limits, alice, 5);
    vi.advanceTimersByTime(60_000); // one grid back, and the sweep runs: the bucket is kept
    expect((await admitMany(limits, alice, 2)).map((result) => result.ok)).toEqual([true, false]);
    vi.advanceTimersByTime(10 * 60_000); // full again, swept, made fresh on the next request
    expect((await admitMany(limits, alice, 6)).map((result) => result.ok)).toEqual([true, true, true, true, true, false]);
  });

  it('checks its settings and its lifetime', async () => {
    expect(() => createLimits({ ...CONFIG, userRefillMs: 1_100 })).toThrow('limits.userRefillMs must be a positive multiple of 250 ms; found 1100');
    expect(() => createLimits({ ...CONFIG, userBurst: 0 })).toThrow('limits.userBurst must be a whole number ≥ 1; found 0');
    const limits = createLimits(CONFIG);
    await expect(limits.admit(alice, EMPTY_QUEUE)).rejects.toThrow('limits used before start() or after close()');
    await limits.start();
    await limits.close();
    await expect(limits.admit(alice, EMPTY_QUEUE)).rejects.toThrow('limits used before start() or after close()');
  });
});

describe('utcDay', () => {
  it('names the UTC day and the ms to its end', () => {
    expect(utcDay(Date.parse('2025-12-31T23:59:59.500Z'))).toEqual({ day: '2025-12-31', msToMidnight: 500 });
    expect(utcDay(Date.parse('2026-01-01T00:00:00.000Z'))).toEqual({ day: '2026-01-01', msToMidnight: 86_400_000 });
  });
});
