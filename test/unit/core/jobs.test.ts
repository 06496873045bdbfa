import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { JOB_ID_PATTERN, JobStore, newJobId, type NewJob } from '../../../src/core/jobs.js';

const root = mkdtempSync(join(tmpdir(), 'jobs-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const newJob = (overrides: Partial<NewJob> = {}): NewJob => ({
  kind: 'imagine',
  platform: 'discord',
  guildId: 'g1',
  channelId: 'c1',
  userId: 'u1',
  request: { prompt: 'a cat', steps: 4, seed: 42, aspect: '1:1', count: 4 },
  parentId: null,
  parentIndex: null,
  reply: { token: 't' },
  ...overrides,
});

describe('JobStore', () => {
  it('records a job and reads it back whole, after a reopen too', () => {
    const path = join(root, 'a.sqlite');
    let clock = 1000;
    const store = new JobStore(path, { now: () => clock });
    const job = store.create(newJob({ request: { prompt: 'a cat', steps: 2, seed: 7, aspect: '16:9', count: 2, variation: { parentSeed: 3, parentSteps: [{ seed: 9, strength: 0.2 }], strength: 0.25 } } }));
    expect(job).toMatchObject({ status: 'queued', createdAt: 1000, startedAt: null });
    expect(JOB_ID_PATTERN.test(job.id)).toBe(true);
    clock = 2000;
    store.markRunning(job.id);
    clock = 3000;
    store.markDone(job.id, { queuedMs: 1000, generateMs: 1000 });
    store.setResultMessage(job.id, 'm1');
    store.close();
    const reopened = new JobStore(path);
    expect(reopened.get(job.id)).toEqual({
      ...job,
      status: 'done',
      startedAt: 2000,
      finishedAt: 3000,
      timings: { queuedMs: 1000, generateMs: 1000 },
      resultMessageId: 'm1',
    });
    expect(reopened.get('nosuchjob222')).toBeUndefined();
    reopened.close();
  });

  it('lists queued and running jobs oldest first, and nothing else', () => {
    let clock = 0;
    const store = new JobStore(join(root, 'b.sqlite'), { now: () => ++clock });
    const [a, b, c, d] = [1, 2, 3, 4].map(() => store.create(newJob()));
    store.markRunning(b.id);
    store.markFailed(c.id, 'boom');
    store.markCancelled(d.id);
    expect(store.unfinished().map((job) => [job.id, job.status])).toEqual([
      [a.id, 'queued'],
      [b.id, 'running'],
    ]);
    store.markQueued(b.id);
    expect(store.get(b.id)?.status).toBe('queued');
    expect(store.get(c.id)).toMatchObject({ status: 'failed', error: 'boom' });
    store.close();
  });

  it('links a job to its parent', () => {
    const store = new JobStore(':memory:');
    const parent = store.create(newJob());
    const child = store.create(newJob({ kind: 'vary', parentId: parent.id, parentIndex: 2 }));
    expect(store.get(child.id)).toMatchObject({ parentId: parent.id, parentIndex: 2, kind: 'vary' });
    expect(() => store.create(newJob({ parentId: 'missing12345' }))).toThrow(/FOREIGN KEY/);
    store.close();
  });

  it('migrates a database to the current schema version once, and refuses one from a newer bot', () => {
    const path = join(root, 'c.sqlite');
    const store = new JobStore(path);
    expect(store.schemaVersion).toBe(3);
    store.close();
    expect(new JobStore(path).schemaVersion).toBe(3);
    const db = new Database(path);
    db.pragma('user_version = 99');
    db.close();
    expect(() => new JobStore(path)).toThrow('the job database is at schema version 99, newer than this bot knows (3); update the bot');
  });

  it('keeps where a job was asked and each image’s safety decision', () => {
    const store = new JobStore(':memory:');
    const base = { kind: 'imagine' as const, platform: 'discord' as const, guildId: 'G', channelId: 'C', userId: 'U', request: { prompt: 'p', steps: 4, seed: 1, aspect: '1:1' as const, count: 2 }, parentId: null, parentIndex: null, reply: {} };
    const plain = store.create(base);
    const restricted = store.create({ ...base, nsfwChannel: true });
    expect(store.get(plain.id)).toMatchObject({ nsfwChannel: false, safety: null });
    expect(store.get(restricted.id)).toMatchObject({ nsfwChannel: true, safety: null });
    const decisions = [
      { action: 'post' as const, reason: 'safe' as const, flagged: false, score: 0.02 },
      { action: 'hide' as const, reason: 'server_mode' as const, flagged: true, score: 0.97 },
    ];
    store.setSafety(plain.id, decisions);
    expect(store.get(plain.id)?.safety).toEqual(decisions);
    store.close();
  });

  it('makes distinct short ids that fit in a button id', () => {
    const ids = new Set(Array.from({ length: 1000 }, newJobId));
    expect(ids.size).toBe(1000);
    for (const id of ids) expect(id).toMatch(JOB_ID_PATTERN);
  });
});
