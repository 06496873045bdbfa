// Why the job database or DATA_DIR cannot be used, as one sentence naming the file, the setting and what to do
// (SQLite's result codes: https://www.sqlite.org/rescode.html; Node's file system error codes).

import { isAbsolute, join, relative } from 'node:path';
import Database from 'better-sqlite3';

/** The job database inside DATA_DIR, as `createApp` opens it. */
export function jobDatabasePath(dataDir: string): string {
  return join(dataDir, 'jobs.sqlite');
}

/** The primary result code of an extended one: SQLITE_READONLY_DBMOVED → SQLITE_READONLY. */
function primaryCode(code: string): string {
  return /^SQLITE_[A-Z]+/.exec(code)?.[0] ?? code;
}

const writeAccess = (folder: string): string => `give the bot's user write access to ${folder}, or set DATA_DIR to a folder it can write`;

/** What to do for each SQLite result code an admin can meet when the database opens. */
const SQLITE_ADVICE: Record<string, (file: string, dataDir: string) => string> = {
  SQLITE_CANTOPEN: (_file, dataDir) => `cannot be opened or created; check that ${dataDir} is a folder, and ${writeAccess(dataDir)}`,
  SQLITE_READONLY: (_file, dataDir) => `is read-only for this user; ${writeAccess(`${dataDir} and the files in it`)}`,
  SQLITE_PERM: (_file, dataDir) => `may not be written; ${writeAccess(dataDir)}`,
  SQLITE_NOTADB: () =>
    'is not an SQLite database (damaged, or another file by that name); move it aside to start with an empty one (queued jobs and the buttons on old images are then forgotten), restore it from a backup, or set DATA_DIR to another folder',
  SQLITE_CORRUPT: () =>
    'is damaged; move it aside to start with an empty one (queued jobs and the buttons on old images are then forgotten), restore it from a backup, or set DATA_DIR to another folder',
  SQLITE_BUSY: (_file, dataDir) => `is locked by another process; stop the other bot that uses DATA_DIR=${dataDir}, or give this one a DATA_DIR of its own`,
  SQLITE_LOCKED: (_file, dataDir) => `is locked by another process; stop the other bot that uses DATA_DIR=${dataDir}, or give this one a DATA_DIR of its own`,
  SQLITE_FULL: () => 'cannot grow: the disk is full; free space on it, or set DATA_DIR to a folder on another disk',
  SQLITE_IOERR: () => 'cannot be read or written (an I/O error); check the disk, or set DATA_DIR to a folder on another disk',
};

/** What to do for each file system error code met while creating DATA_DIR or writing in it. */
const FS_ADVICE: Record<string, (dataDir: string) => string> = {
  EACCES: (dataDir) => `this user may not write there; ${writeAccess(dataDir)}`,
  EPERM: (dataDir) => `this user may not write there; ${writeAccess(dataDir)}`,
  EROFS: () => 'it is on a read-only file system; set DATA_DIR to a folder on a writable one',
  ENOTDIR: () => 'a file stands where a folder should be; move the file, or set DATA_DIR to another folder',
  EEXIST: () => 'a file stands where a folder should be; move the file, or set DATA_DIR to another folder',
  ENOSPC: () => 'the disk is full; free space on it, or set DATA_DIR to a folder on another disk',
  EDQUOT: () => "the user's disk quota is used up; free space, or set DATA_DIR to a folder on another disk",
};

/**
 * One sentence for an error met while opening the job store or preparing DATA_DIR (its image cache), or undefined
 * when the error is not one of those (the caller then reports it as it is).
 */
export function describeDataDirError(error: unknown, dataDir: string): string | undefined {
  const file = jobDatabasePath(dataDir);
  if (error instanceof Database.SqliteError) {
    const advice = SQLITE_ADVICE[primaryCode(error.code)];
    const what = `(${error.code}: ${error.message})`;
    return advice
      ? `The job database ${file} (DATA_DIR) ${advice(file, dataDir)} ${what}.`
      : `The job database ${file} (DATA_DIR) could not be opened ${what}; set DATA_DIR to another folder, or move the file aside to start with an empty one.`;
  }
  const fsError = error as NodeJS.ErrnoException | undefined;
  // DATA_DIR itself, a folder above it (where `mkdir -p` fails), or a file in it
  const path = fsError instanceof Error && typeof fsError.code === 'string' ? fsError.path : undefined;
  if (path !== undefined && (within(path, dataDir) || within(dataDir, path))) {
    const advice = FS_ADVICE[fsError!.code!];
    const where = path !== dataDir && within(path, dataDir) ? `${path} in DATA_DIR` : `DATA_DIR ${dataDir}`;
    if (advice) return `${where} cannot be used: ${advice(dataDir)} (${fsError!.code} on ${fsError!.syscall ?? 'access'} ${path}).`;
  }
  // the store's own refusal of a database from a newer version of the bot already says what to do
  if (error instanceof Error && /^the job database is at schema version/.test(error.message)) return `${file} (DATA_DIR): ${error.message}.`;
  return undefined;
}

/** `path` is `folder` or below it. */
function within(path: string, folder: string): boolean {
  const fromFolder = relative(folder, path);
  return fromFolder === '' || (!fromFolder.startsWith('..') && !isAbsolute(fromFolder));
}
