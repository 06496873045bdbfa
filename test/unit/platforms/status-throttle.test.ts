// The status budget: which updates become edits, and when, under a burst of queue moves and progress steps.

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Job } from '../../../src/core/jobs.js';
import type { StatusUpdate } from '../../../src/core/service.js';
import { DISCORD_STATUS_BUDGET, StatusThrottle, type StatusBudget } from '../../../src/platforms/status-throttle.js';
import { SLACK_STATUS_BUDGET } from '../../../src/platforms/slack/app.js';

const job = (id: string) => ({ id }) as Job;

function throttle(budget: StatusBudget) {
  const shown: { at: number; update: StatusUpdate; edits: number }[] = [];
  const started = Date.now();
  const status = new StatusThrottle({ budget, now: Date.now, show: async (_job, update, edits) => void shown.push({ at: Date.now() - started, update, edits }) });
  return { status, shown };
}

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe('StatusThrottle', () => {
  it('shows the first position at once, coalesces a stream of moves, and keeps an edit for "running"', async () => {
    const { status, shown } = throttle(DISCORD_STATUS_BUDGET);
    // 60 places, one move every 200 ms, as a busy queue drains
    for (let position = 60; position >= 1; position--) {
      status.update(job('a'), { state: 'queued', position });
      await vi.advanceTimersByTimeAsync(200);
    }
    status.update(job('a'), { state: 'running' });
    await vi.advanceTimersByTimeAsync(10_000);
    const queued = shown.filter((entry) => entry.update.state === 'queued');
    expect(queued.length).toBe(DISCORD_STATUS_BUDGET.maxQueueEdits);
    expect(queued[0]).toMatchObject({ at: 0, update: { position: 60 } });
    // each later one is a real move (at most 3/4 of the one on screen) and at least the interval apart
    for (let i = 1; i < queued.length; i++) {
      const [before, after] = [queued[i - 1], queued[i]] as { at: number; update: { position: number } }[];
      expect(after.update.position).toBeLessThanOrEqual(before.update.position * 0.75);
      expect(after.at - before.at).toBeGreaterThanOrEqual(DISCORD_STATUS_BUDGET.intervalMs);
    }
    expect(shown.at(-1)?.update).toEqual({ state: 'running' });
    expect(shown.length).toBeLessThanOrEqual(DISCORD_STATUS_BUDGET.maxEdits);
  });

  it('shows a small move only once it is stale, and nothing that repeats the screen', async () => {
    const { status, shown } = throttle(DISCORD_STATUS_BUDGET);
    status.update(job('a'), { state: 'queued', position: 10 });
    await vi.advanceTimersByTimeAsync(100);
    status.update(job('a'), { state: 'queued', position: 9 });
    await vi.advanceTimersByTimeAsync(DISCORD_STATUS_BUDGET.stalePositionMs - 200);
    expect(shown.map((entry) => entry.update)).toEqual([{ state: 'queued', position: 10 }]);
    await vi.advanceTimersByTimeAsync(200);
    expect(shown.map((entry) => entry.update)).toEqual([{ state: 'queued', position: 10 }, { state: 'queued', position: 9 }]);
    status.update(job('a'), { state: 'queued', position: 9 });
    await vi.advanceTimersByTimeAsync(10_000);
    expect(shown).toHaveLength(2);
  });

  it('shows waiting as soon as the interval allows, whatever the position', async () => {
    const { status, shown } = throttle(DISCORD_STATUS_BUDGET);
    status.update(job('a'), { state: 'queued', position: 3 });
    await vi.advanceTimersByTimeAsync(10);
    status.update(job('a'), { state: 'waiting', position: 3, reason: 'restarting' });
    await vi.advanceTimersByTimeAsync(DISCORD_STATUS_BUDGET.intervalMs);
    expect(shown.map((entry) => entry.update.state)).toEqual(['queued', 'waiting']);
  });

  it('limits progress to one edit per interval, and stops at the budget', async () => {
    const { status, shown } = throttle(SLACK_STATUS_BUDGET);
    status.update(job('a'), { state: 'running' });
    for (let step = 1; step <= 40; step++) {
      status.update(job('a'), { state: 'running', progress: { stage: 'unet', step, steps: 40 } });
      await vi.advanceTimersByTimeAsync(250);
    }
    await vi.advanceTimersByTimeAsync(10_000);
    expect(shown.length).toBe(SLACK_STATUS_BUDGET.maxEdits);
    expect(shown.map((entry) => entry.edits)).toEqual([0, 1, 2, 3]);
    for (let i = 1; i < shown.length; i++) expect(shown[i].at - shown[i - 1].at).toBeGreaterThanOrEqual(SLACK_STATUS_BUDGET.intervalMs);
  });

  it('drops a late position once the job runs, and everything once it is finished', async () => {
    const { status, shown } = throttle(DISCORD_STATUS_BUDGET);
    status.update(job('a'), { state: 'queued', position: 1 });
    status.update(job('a'), { state: 'running' });
    status.update(job('a'), { state: 'queued', position: 1 });
    await vi.advanceTimersByTimeAsync(10);
    expect(shown.map((entry) => entry.update)).toEqual([{ state: 'running' }]);
    status.update(job('a'), { state: 'running', progress: { stage: 'vae', step: 0, steps: 1 } });
    status.finish('a');
    await vi.advanceTimersByTimeAsync(10_000);
    expect(shown).toHaveLength(1);
    status.close();
  });
});
