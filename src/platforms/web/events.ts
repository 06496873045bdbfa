// Each web job's events — queued, waiting, running, done, failed, refused, cancelled — kept for a while in memory and
// sent to whoever listens, so an EventSource that reconnects with Last-Event-ID gets exactly what it missed.

import { randomBytes } from 'node:crypto';

export type WebEventType = 'queued' | 'waiting' | 'running' | 'done' | 'failed' | 'refused' | 'cancelled';
export const FINAL_EVENTS: ReadonlySet<WebEventType> = new Set(['done', 'failed', 'refused', 'cancelled']);

/** One event: `id` is `<process epoch>.<sequence>`, so ids from before a restart are told apart. */
export type WebEvent = { id: string; type: WebEventType; data: Record<string, unknown> };

type Listener = (event: WebEvent) => void;
/** `droppedUpTo`: the sequence of the newest event dropped for room (0: none). */
type Log = { events: WebEvent[]; listeners: Set<Listener>; droppedUpTo: number; dropTimer?: NodeJS.Timeout };

const sequenceOf = (event: WebEvent): number => Number(event.id.split('.')[1]);

/** Events kept per job; a job has a handful (one per queue move and step), the oldest go first. */
const MAX_EVENTS_PER_JOB = 64;

export class JobEvents {
  /** Tells this process's event ids from a previous one's. */
  readonly epoch = randomBytes(4).toString('hex');
  private sequence = 0;
  private readonly logs = new Map<string, Log>();
  private readonly keepFinishedMs: number;

  /** `keepFinishedMs`: how long a finished job's events stay for late reconnects. */
  constructor(options: { keepFinishedMs: number }) {
    this.keepFinishedMs = options.keepFinishedMs;
  }

  /** Records an event and hands it to every listener; a listener that throws is dropped, never the publisher. */
  publish(jobId: string, type: WebEventType, data: Record<string, unknown>): WebEvent {
    const log = this.log(jobId);
    const event: WebEvent = { id: `${this.epoch}.${++this.sequence}`, type, data };
    log.events.push(event);
    if (log.events.length > MAX_EVENTS_PER_JOB) {
      const dropped = log.events.splice(0, log.events.length - MAX_EVENTS_PER_JOB);
      log.droppedUpTo = sequenceOf(dropped[dropped.length - 1]);
    }
    for (const listener of [...log.listeners]) {
      try {
        listener(event);
      } catch {
        log.listeners.delete(listener);
      }
    }
    if (FINAL_EVENTS.has(type)) {
      clearTimeout(log.dropTimer);
      log.dropTimer = setTimeout(() => this.drop(jobId), this.keepFinishedMs);
      log.dropTimer.unref();
    }
    return event;
  }

  /** The job's latest event, if this process has one. */
  latest(jobId: string): WebEvent | undefined {
    return this.logs.get(jobId)?.events.at(-1);
  }

  /**
   * The events after `lastEventId` when this process still has them all, else undefined (the caller sends the job's
   * current state instead): an id from another epoch, or older than what is kept.
   */
  since(jobId: string, lastEventId: string | undefined): WebEvent[] | undefined {
    if (!lastEventId) return undefined;
    const [epoch, sequence] = lastEventId.split('.');
    if (epoch !== this.epoch || !/^\d+$/.test(sequence ?? '')) return undefined;
    const last = Number(sequence);
    const log = this.logs.get(jobId);
    if (!log || last < log.droppedUpTo) return undefined;
    return log.events.filter((event) => sequenceOf(event) > last);
  }

  /** Calls `listener` with each new event of the job; returns the way to stop. */
  subscribe(jobId: string, listener: Listener): () => void {
    const log = this.log(jobId);
    log.listeners.add(listener);
    return () => {
      log.listeners.delete(listener);
    };
  }

  /** Listeners across all jobs (open event streams). */
  get listenerCount(): number {
    let count = 0;
    for (const log of this.logs.values()) count += log.listeners.size;
    return count;
  }

  close(): void {
    for (const log of this.logs.values()) clearTimeout(log.dropTimer);
    this.logs.clear();
  }

  private drop(jobId: string): void {
    const log = this.logs.get(jobId);
    // a stream still open keeps its job's log until it closes
    if (log && log.listeners.size === 0) this.logs.delete(jobId);
  }

  private log(jobId: string): Log {
    let log = this.logs.get(jobId);
    if (!log) {
      log = { events: [], listeners: new Set(), droppedUpTo: 0 };
      this.logs.set(jobId, log);
    }
    return log;
  }
}
