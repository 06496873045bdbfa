// Status edits per job within a budget: queue positions can change many times a second and progress every UNet step,
// while platforms allow far fewer edits (Slack's response_url five in all). Discord and Slack each say how to show a
// status and how many edits they allow; this decides which updates are worth an edit, and when.

import type { Job } from '../core/jobs.js';
import type { StatusUpdate } from '../core/service.js';

/**
 * How many status edits one job may cause. `maxQueueEdits` < `maxEdits`, so a job that moved a lot in the queue still
 * has an edit left to say it is running.
 */
export type StatusBudget = {
  /** At most one edit per job this often. */
  intervalMs: number;
  /** Status edits per job at most, every state included (the result is not a status). */
  maxEdits: number;
  /** Of those, at most this many show a queue position (queued or waiting). */
  maxQueueEdits: number;
  /**
   * A new position is shown at once when it is at most this share of the one on screen (0.75: 8 → 6, 2 → 1), else
   * only once `stalePositionMs` have passed since the last edit.
   */
  meaningfulShare: number;
  stalePositionMs: number;
};

/** Discord: interaction-webhook edits are not counted against the global limit, but each is a request per job. */
export const DISCORD_STATUS_BUDGET: StatusBudget = { intervalMs: 2_000, maxEdits: 6, maxQueueEdits: 4, meaningfulShare: 0.75, stalePositionMs: 5_000 };

export type StatusThrottleOptions = {
  budget: StatusBudget;
  now: () => number;
  /** Shows a status; `edits` is how many this job had before. Failures are the caller's to log. */
  show: (job: Job, update: StatusUpdate, edits: number) => Promise<void>;
};

type Entry = {
  lastShownAt: number;
  /** What is on screen now, if a status was shown. */
  shown?: StatusUpdate;
  edits: number;
  queueEdits: number;
  pending?: StatusUpdate;
  timer?: NodeJS.Timeout;
  dueAt: number;
  finished: boolean;
};

const isQueueState = (update: StatusUpdate): update is Extract<StatusUpdate, { position: number }> => update.state !== 'running';

export class StatusThrottle {
  private readonly options: StatusThrottleOptions;
  private readonly entries = new Map<string, Entry>();

  constructor(options: StatusThrottleOptions) {
    this.options = options;
  }

  /** Schedules the latest status to be shown when the budget allows; one not worth an edit is dropped. */
  update(job: Job, update: StatusUpdate): void {
    const entry = this.entry(job.id);
    if (entry.finished) return;
    // a position reported after the job started running is stale
    if (isQueueState(update) && (entry.pending?.state === 'running' || entry.shown?.state === 'running')) return;
    const wait = this.waitFor(entry, update);
    if (wait === undefined) {
      // nothing new to show: a position still waiting is outdated by this one
      if (entry.pending && isQueueState(entry.pending)) {
        entry.pending = undefined;
        clearTimeout(entry.timer);
        entry.timer = undefined;
      }
      return;
    }
    entry.pending = update;
    const dueAt = this.options.now() + wait;
    if (entry.timer && entry.dueAt <= dueAt) return;
    clearTimeout(entry.timer);
    entry.dueAt = dueAt;
    entry.timer = setTimeout(() => void this.flush(job, entry), wait);
  }

  /** Whether the job has a status waiting to be shown. */
  pending(jobId: string): boolean {
    return this.entries.get(jobId)?.pending !== undefined;
  }

  /** Whether any status was shown (or is waiting) for the job. */
  seen(jobId: string): boolean {
    const entry = this.entries.get(jobId);
    return entry !== undefined && (entry.shown !== undefined || entry.pending !== undefined);
  }

  finished(jobId: string): boolean {
    return this.entries.get(jobId)?.finished ?? false;
  }

  /** Edits shown for the job so far. */
  edits(jobId: string): number {
    return this.entries.get(jobId)?.edits ?? 0;
  }

  /** No more status for this job: its result or failure takes over. */
  finish(jobId: string): void {
    const entry = this.entry(jobId);
    entry.finished = true;
    entry.pending = undefined;
    clearTimeout(entry.timer);
    entry.timer = undefined;
    // dropped a little later, once an edit in flight has settled
    setTimeout(() => this.entries.delete(jobId), this.options.budget.intervalMs).unref();
  }

  close(): void {
    for (const entry of this.entries.values()) clearTimeout(entry.timer);
    this.entries.clear();
  }

  /**
   * Milliseconds until `update` may be shown, or undefined when it is not worth an edit: the budget is spent, or it
   * says what the screen already says.
   */
  private waitFor(entry: Entry, update: StatusUpdate): number | undefined {
    const { budget, now } = this.options;
    if (entry.edits >= budget.maxEdits) return undefined;
    const shown = entry.shown;
    const sinceShown = now() - entry.lastShownAt;
    const after = (ms: number) => Math.max(0, ms - sinceShown);
    if (!isQueueState(update)) {
      if (shown?.state !== 'running') return after(budget.intervalMs);
      // progress: only a later step than the one shown, and the slot stays free for nothing else
      if (!update.progress || JSON.stringify(update.progress) === JSON.stringify(shown.progress)) return undefined;
      return after(budget.intervalMs);
    }
    if (entry.queueEdits >= budget.maxQueueEdits) return undefined;
    if (!shown) return 0;
    if (!isQueueState(shown)) return undefined;
    const sameState = shown.state === update.state && (shown.state !== 'waiting' || update.state !== 'waiting' || shown.reason === update.reason);
    if (sameState && shown.position === update.position) return undefined;
    if (!sameState || update.position <= shown.position * budget.meaningfulShare) return after(budget.intervalMs);
    return after(Math.max(budget.intervalMs, budget.stalePositionMs));
  }

  private async flush(job: Job, entry: Entry): Promise<void> {
    entry.timer = undefined;
    const update = entry.pending;
    entry.pending = undefined;
    if (!update || entry.finished) return;
    const { budget } = this.options;
    if (entry.edits >= budget.maxEdits || (isQueueState(update) && entry.queueEdits >= budget.maxQueueEdits)) return;
    entry.lastShownAt = this.options.now();
    entry.shown = update;
    const edits = entry.edits++;
    if (isQueueState(update)) entry.queueEdits++;
    await this.options.show(job, update, edits);
  }

  private entry(jobId: string): Entry {
    let entry = this.entries.get(jobId);
    if (!entry) {
      entry = { lastShownAt: 0, edits: 0, queueEdits: 0, dueAt: 0, finished: false };
      this.entries.set(jobId, entry);
    }
    return entry;
  }
}
