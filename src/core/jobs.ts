// Jobs: the record of every request and click, kept in SQLite so queued work and buttons survive restarts.

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import type { GenerationRequest, Platform } from './request.js';
import type { SafetyDecision } from './safety-policy.js';

/** `delivering`: the images are made (and being cached), the post to the platform is not done yet. */
export type JobStatus = 'queued' | 'running' | 'delivering' | 'done' | 'failed' | 'cancelled';
export const JOB_STATUSES = ['queued', 'running', 'delivering', 'done', 'failed', 'cancelled'] as const satisfies readonly JobStatus[];
/** Statuses a job ends in. */
export const FINISHED_STATUSES = ['done', 'failed', 'cancelled'] as const satisfies readonly JobStatus[];

/** What started the job: a command, or a button on an earlier job's result. */
export type JobKind = 'imagine' | 'reroll' | 'upscale' | 'vary';

export type JobTimings = { queuedMs: number; generateMs: number; stages?: Record<string, unknown> };

/**
 * One request and its life. `reply` is the platform's delivery data (interaction token, channel, message ids…),
 * opaque to the core; the platform that created the job reads it back to deliver, even after a restart.
 */
export type Job = {
  id: string;
  kind: JobKind;
  platform: Platform;
  /** Discord guild or Slack team; null in a DM. */
  guildId: string | null;
  channelId: string;
  userId: string;
  request: GenerationRequest;
  parentId: string | null;
  /** For U and V buttons: which image of the parent (0-based). */
  parentIndex: number | null;
  status: JobStatus;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  timings: JobTimings | null;
  reply: Record<string, unknown>;
  /** The message that shows the result, once posted. */
  resultMessageId: string | null;
  error: string | null;
  /** Which runner made the images: the local engine, or a GPU worker's name. */
  worker: string | null;
  /** Asked in a Discord channel marked age-restricted, where flagged images are posted as they are. */
  nsfwChannel: boolean;
  /** Per image, what the safety check said (flagged, score) and what was done (post, spoiler, hide); null until decided. */
  safety: SafetyDecision[] | null;
};

export type NewJob = Pick<Job, 'kind' | 'platform' | 'guildId' | 'channelId' | 'userId' | 'request' | 'parentId' | 'parentIndex' | 'reply'> & { nsfwChannel?: boolean };

/** Versioned schema: each entry runs once, in order, inside a transaction; `PRAGMA user_version` records how far. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE jobs (
     id TEXT PRIMARY KEY,
     kind TEXT NOT NULL,
     platform TEXT NOT NULL,
     guild_id TEXT,
     channel_id TEXT NOT NULL,
     user_id TEXT NOT NULL,
     request TEXT NOT NULL,
     parent_id TEXT REFERENCES jobs(id),
     parent_index INTEGER,
     status TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     started_at INTEGER,
     finished_at INTEGER,
     timings TEXT,
     reply TEXT NOT NULL,
     result_message_id TEXT,
     error TEXT
   );
   CREATE INDEX jobs_unfinished ON jobs (status, created_at) WHERE status IN ('queued', 'running');`,
  // who made the images; 'delivering' is unfinished too; reply_pruned: the platform's secrets are gone from `reply`
  `ALTER TABLE jobs ADD COLUMN worker TEXT;
   ALTER TABLE jobs ADD COLUMN reply_pruned INTEGER NOT NULL DEFAULT 0;
   DROP INDEX jobs_unfinished;
   CREATE INDEX jobs_unfinished ON jobs (status, created_at) WHERE status IN ('queued', 'running', 'delivering');
   CREATE INDEX jobs_unpruned ON jobs (finished_at) WHERE reply_pruned = 0 AND status IN ('done', 'failed', 'cancelled');`,
  // the image safety check: where the job was asked (an age-restricted channel), and each image's decision as JSON
  `ALTER TABLE jobs ADD COLUMN nsfw_channel INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE jobs ADD COLUMN safety TEXT;`,
];

type Row = {
  id: string;
  kind: JobKind;
  platform: Platform;
  guild_id: string | null;
  channel_id: string;
  user_id: string;
  request: string;
  parent_id: string | null;
  parent_index: number | null;
  status: JobStatus;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  timings: string | null;
  reply: string;
  result_message_id: string | null;
  error: string | null;
  worker: string | null;
  nsfw_channel: number;
  safety: string | null;
};

function fromRow(row: Row): Job {
  return {
    id: row.id,
    kind: row.kind,
    platform: row.platform,
    guildId: row.guild_id,
    channelId: row.channel_id,
    userId: row.user_id,
    request: JSON.parse(row.request) as GenerationRequest,
    parentId: row.parent_id,
    parentIndex: row.parent_index,
    status: row.status,
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    timings: row.timings === null ? null : (JSON.parse(row.timings) as JobTimings),
    reply: JSON.parse(row.reply) as Record<string, unknown>,
    resultMessageId: row.result_message_id,
    error: row.error,
    worker: row.worker,
    nsfwChannel: row.nsfw_channel === 1,
    safety: row.safety === null ? null : (JSON.parse(row.safety) as SafetyDecision[]),
  };
}

/** Job ids: 12 characters of base-32, short enough for any button id, unguessable enough not to be forged. */
export function newJobId(): string {
  const alphabet = 'abcdefghijkmnpqrstuvwxyz23456789';
  return [...randomBytes(12)].map((byte) => alphabet[byte % 32]).join('');
}
export const JOB_ID_PATTERN = /^[a-km-z2-9]{12}$/;

/** The SQLite job store. `close()` when done. Every method is synchronous and takes well under a millisecond. */
export class JobStore {
  private readonly db: Database.Database;
  private readonly now: () => number;

  constructor(path: string, options: { now?: () => number } = {}) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.now = options.now ?? Date.now;
    this.migrate();
  }

  /** The schema version this store is at (the number of migrations applied). */
  get schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  private migrate(): void {
    const current = this.schemaVersion;
    if (current > MIGRATIONS.length) {
      throw new Error(`the job database is at schema version ${current}, newer than this bot knows (${MIGRATIONS.length}); update the bot`);
    }
    for (let version = current; version < MIGRATIONS.length; version++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[version]);
        this.db.pragma(`user_version = ${version + 1}`);
      })();
    }
  }

  create(job: NewJob): Job {
    const record: Job = {
      ...job,
      id: newJobId(),
      status: 'queued',
      createdAt: this.now(),
      startedAt: null,
      finishedAt: null,
      timings: null,
      resultMessageId: null,
      error: null,
      worker: null,
      nsfwChannel: job.nsfwChannel === true,
      safety: null,
    };
    this.db
      .prepare(
        `INSERT INTO jobs (id, kind, platform, guild_id, channel_id, user_id, request, parent_id, parent_index, status, created_at, reply, nsfw_channel)
         VALUES (@id, @kind, @platform, @guildId, @channelId, @userId, @request, @parentId, @parentIndex, 'queued', @createdAt, @reply, @nsfw)`,
      )
      .run({ ...record, request: JSON.stringify(record.request), reply: JSON.stringify(record.reply), nsfw: record.nsfwChannel ? 1 : 0 });
    return record;
  }

  get(id: string): Job | undefined {
    const row = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as Row | undefined;
    return row && fromRow(row);
  }

  /** Jobs a crash or stop left queued, running or made but not posted, oldest first. */
  unfinished(): Job[] {
    return (this.db.prepare("SELECT * FROM jobs WHERE status IN ('queued', 'running', 'delivering') ORDER BY created_at, rowid").all() as Row[]).map(fromRow);
  }

  /** Finished jobs whose `reply` may still hold a platform's secrets, oldest first, at most `limit`. */
  unpruned(limit: number): Job[] {
    return (
      this.db
        .prepare("SELECT * FROM jobs WHERE reply_pruned = 0 AND status IN ('done', 'failed', 'cancelled') ORDER BY finished_at LIMIT ?")
        .all(limit) as Row[]
    ).map(fromRow);
  }

  /** Replaces a finished job's `reply` with what is left once its secrets (tokens, response URLs) are dropped. */
  pruneReply(id: string, reply: Record<string, unknown>): void {
    this.db.prepare('UPDATE jobs SET reply = ?, reply_pruned = 1 WHERE id = ?').run(JSON.stringify(reply), id);
  }

  /** The images are made; the post is under way. `worker` names who made them. */
  markDelivering(id: string, timings: JobTimings, worker: string | null): void {
    this.db.prepare("UPDATE jobs SET status = 'delivering', timings = ?, worker = ? WHERE id = ?").run(JSON.stringify(timings), worker, id);
  }

  /**
   * One member's jobs on one platform, newest first: at most `limit`, and only those made before `before` (a
   * `createdAt`) when given, so a history can be paged.
   */
  recentFor(platform: Platform, userId: string, options: { limit: number; before?: number }): Job[] {
    const rows = this.db
      .prepare('SELECT * FROM jobs WHERE platform = ? AND user_id = ? AND created_at < ? ORDER BY created_at DESC, rowid DESC LIMIT ?')
      .all(platform, userId, options.before ?? Number.MAX_SAFE_INTEGER, options.limit) as Row[];
    return rows.map(fromRow);
  }

  markRunning(id: string): void {
    this.db.prepare("UPDATE jobs SET status = 'running', started_at = ? WHERE id = ?").run(this.now(), id);
  }

  /** Back to the queue (after a restart); the start time is kept for the record of the first try. */
  markQueued(id: string): void {
    this.db.prepare("UPDATE jobs SET status = 'queued' WHERE id = ?").run(id);
  }

  /** Posted. `timings` replaces what `markDelivering` stored, when given. */
  markDone(id: string, timings?: JobTimings): void {
    if (timings) this.db.prepare("UPDATE jobs SET status = 'done', finished_at = ?, timings = ?, error = NULL WHERE id = ?").run(this.now(), JSON.stringify(timings), id);
    else this.db.prepare("UPDATE jobs SET status = 'done', finished_at = ?, error = NULL WHERE id = ?").run(this.now(), id);
  }

  markFailed(id: string, error: string): void {
    this.db.prepare("UPDATE jobs SET status = 'failed', finished_at = ?, error = ? WHERE id = ?").run(this.now(), error, id);
  }

  markCancelled(id: string): void {
    this.db.prepare("UPDATE jobs SET status = 'cancelled', finished_at = ? WHERE id = ?").run(this.now(), id);
  }

  setReply(id: string, reply: Record<string, unknown>): void {
    this.db.prepare('UPDATE jobs SET reply = ? WHERE id = ?').run(JSON.stringify(reply), id);
  }

  setResultMessage(id: string, messageId: string): void {
    this.db.prepare('UPDATE jobs SET result_message_id = ? WHERE id = ?').run(messageId, id);
  }

  /** Records each image's safety decision (what the check said and what was done), in image order. */
  setSafety(id: string, decisions: readonly SafetyDecision[]): void {
    this.db.prepare('UPDATE jobs SET safety = ? WHERE id = ?').run(JSON.stringify(decisions), id);
  }

  close(): void {
    this.db.close();
  }
}
