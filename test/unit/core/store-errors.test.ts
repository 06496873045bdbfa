// Real failures of the job store and DATA_DIR, made on disk, each turned into its sentence.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { JobStore } from '../../../src/core/jobs.js';
import { describeDataDirError, jobDatabasePath } from '../../../src/core/store-errors.js';

const root = mkdtempSync(join(tmpdir(), 'store-errors-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** What opening the store in `dataDir` throws (it must throw). */
function openError(dataDir: string): unknown {
  try {
    new JobStore(jobDatabasePath(dataDir)).close();
  } catch (error) {
    return error;
  }
  throw new Error(`the store in ${dataDir} opened`);
}

const sentence = (dataDir: string): string | undefined => describeDataDirError(openError(dataDir), dataDir)?.replaceAll(root, '<tmp>');

describe('describeDataDirError', () => {
  it('a jobs.sqlite that is not a database', () => {
    const dataDir = join(root, 'garbage');
    mkdirSync(dataDir);
    writeFileSync(jobDatabasePath(dataDir), 'x'.repeat(4096));
    expect(sentence(dataDir)).toMatchInlineSnapshot(
      `"The job database <tmp>/garbage/jobs.sqlite (DATA_DIR) is not an SQLite database (damaged, or another file by that name); move it aside to start with an empty one (queued jobs and the buttons on old images are then forgotten), restore it from a backup, or set DATA_DIR to another folder (SQLITE_NOTADB: file is not a database)."`,
    );
  });

  it('a folder where jobs.sqlite should be', () => {
    const dataDir = join(root, 'folder');
    mkdirSync(jobDatabasePath(dataDir), { recursive: true });
    expect(sentence(dataDir)).toMatchInlineSnapshot(
      `"The job database <tmp>/folder/jobs.sqlite (DATA_DIR) cannot be opened or created; check that <tmp>/folder is a folder, and give the bot's user write access to <tmp>/folder, or set DATA_DIR to a folder it can write (SQLITE_CANTOPEN: unable to open database file)."`,
    );
  });

  it('a DATA_DIR below a file', () => {
    writeFileSync(join(root, 'file'), 'x');
    expect(sentence(join(root, 'file', 'data'))).toMatchInlineSnapshot(
      `"DATA_DIR <tmp>/file/data cannot be used: a file stands where a folder should be; move the file, or set DATA_DIR to another folder (ENOTDIR on mkdir <tmp>/file/data)."`,
    );
  });

  it('a database from a newer version of the bot', () => {
    const dataDir = join(root, 'newer');
    mkdirSync(dataDir);
    const db = new Database(jobDatabasePath(dataDir));
    db.pragma('user_version = 99');
    db.close();
    expect(sentence(dataDir)).toMatch(/^<tmp>\/newer\/jobs\.sqlite \(DATA_DIR\): the job database is at schema version 99, newer than this bot knows \(\d+\); update the bot\.$/);
  });

  it('a file system error in the image cache, inside DATA_DIR', () => {
    const error = Object.assign(new Error("EACCES: permission denied, mkdir '/srv/bot/images'"), { code: 'EACCES', syscall: 'mkdir', path: '/srv/bot/images' });
    expect(describeDataDirError(error, '/srv/bot')).toBe(
      "/srv/bot/images in DATA_DIR cannot be used: this user may not write there; give the bot's user write access to /srv/bot, or set DATA_DIR to a folder it can write (EACCES on mkdir /srv/bot/images).",
    );
    const full = Object.assign(new Error('ENOSPC'), { code: 'ENOSPC', syscall: 'write', path: '/srv/bot/images/a-1.png' });
    expect(describeDataDirError(full, '/srv/bot')).toContain('the disk is full');
  });

  it('leaves other errors to the caller', () => {
    expect(describeDataDirError(new Error('something else'), root)).toBeUndefined();
    const elsewhere = Object.assign(new Error('EACCES'), { code: 'EACCES', syscall: 'open', path: '/models/unet/model.onnx' });
    expect(describeDataDirError(elsewhere, '/srv/bot')).toBeUndefined();
    expect(describeDataDirError('not an error', root)).toBeUndefined();
  });
});
