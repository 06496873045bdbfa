// Status edits per job at most once per interval: queue positions can change many times a second, platforms allow
// far fewer edits. Discord and Slack each say how to show a status; this says when.

import type { Job } from '../core/jobs.js';
import type { StatusUpdate } from '../core/service.js';

type Entry = { lastShownAt: number; edits: number; pending?: StatusUpdate; timer?: NodeJS.Timeout; finished: boolean };

export type StatusThrottleOptions = {
  intervalMs: number;
  now: () => number;
  /** Shows a status; `edits` is how many this job had before. Failures are the caller's to log. */
  show: (job: Job, update: StatusUpdate, edits: number) => Promise<void>;
};

export class StatusThrottle {
  private readonly options: StatusThrottleOptions;
  private readonly entries = new Map<string, Entry>();

  constructor(options: StatusThrottleOptions) {
    this.options = options;
  }

  /** Notes that a status is on screen now (the acknowledgement showed one), so the next edit waits an interval. */
  shown(jobId: string): void {
    this.entry(jobId).lastShownAt = this.options.now();
  }

  /** Schedules the latest status to be shown, no sooner than an interval after the last one. */
  update(job: Job, update: StatusUpdate): void {
    const entry = this.entry(job.id);
    if (entry.finished) return;
    entry.pending = update;
    if (entry.timer) return;
    const wait = Math.max(0, entry.lastShownAt + this.options.intervalMs - this.options.now());
    entry.timer = setTimeout(() => void this.flush(job, entry), wait);
  }

  /** Whether the job has a pending status not shown yet. */
  pending(jobId: string): boolean {
    return this.entries.get(jobId)?.pending !== undefined;
  }

  finished(jobId: string): boolean {
    return this.entries.get(jobId)?.finished ?? false;
  }

  /** No more status for this job: its result or failure takes over. */
  finish(jobId: string): void {
    const entry = this.entry(jobId);
    entry.finished = true;
    clearTimeout(entry.timer);
    entry.timer = undefined;
    // dropped a little later, once an edit in flight has settled
    setTimeout(() => this.entries.delete(jobId), this.options.intervalMs).unref();
  }

  close(): void {
    for (const entry of this.entries.values()) clearTimeout(entry.timer);
    this.entries.clear();
  }

  private async flush(job: Job, entry: Entry): Promise<void> {
    entry.timer = undefined;
    const update = entry.pending;
    entry.pending = undefined;
    if (!update || entry.finished) return;
    entry.lastShownAt = this.options.now();
    const edits = entry.edits++;
    await this.options.show(job, update, edits);
  }

  private entry(jobId: string): Entry {
    let entry = this.entries.get(jobId);
    if (!entry) {
      entry = { lastShownAt: 0, edits: 0, finished: false };
      this.entries.set(jobId, entry);
    }
    return entry;
  }
}
