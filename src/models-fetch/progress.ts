// Download progress on stderr: one redrawn line on a terminal, a plain line every few seconds otherwise.

import type { FetchProgress } from './fetch.js';

const MB = 1e6;
const PLAIN_INTERVAL_MS = 10_000;
const TTY_INTERVAL_MS = 200;

const megabytes = (bytes: number): string => `${(bytes / MB).toFixed(1)} MB`;
const duration = (seconds: number): string =>
  !Number.isFinite(seconds) ? '?' : seconds >= 3600 ? `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, '0')}m` : `${Math.floor(seconds / 60)}m${String(Math.floor(seconds % 60)).padStart(2, '0')}s`;

/** Progress for `stream` (stderr); `tty` picks the redrawn line. `now` is injectable for tests. */
export function createProgress(stream: { write(text: string): unknown }, tty: boolean, now: () => number = Date.now): FetchProgress {
  let startedAt = 0;
  let startBytes = 0;
  let lastDrawn = 0;
  let drawn = false;
  const line = (target: string, done: number, size: number): string => {
    const seconds = (now() - startedAt) / 1000;
    const rate = seconds > 0 ? (done - startBytes) / seconds : 0;
    const percent = size > 0 ? Math.floor((done / size) * 100) : 100;
    return `${target}: ${percent}% of ${megabytes(size)}, ${(rate / MB).toFixed(1)} MB/s, ETA ${duration(rate > 0 ? (size - done) / rate : Infinity)}`;
  };
  const clear = (): void => {
    if (tty && drawn) stream.write('\r\x1b[2K');
    drawn = false;
  };
  return {
    fileStarted(planned, index, count) {
      startedAt = now();
      startBytes = planned.file.size - planned.neededBytes;
      lastDrawn = startedAt;
      if (!tty) stream.write(`[${index + 1}/${count}] ${planned.target} (${megabytes(planned.file.size)}) from ${planned.repo}\n`);
    },
    fileBytes(planned, done) {
      const at = now();
      if (at - lastDrawn < (tty ? TTY_INTERVAL_MS : PLAIN_INTERVAL_MS)) return;
      lastDrawn = at;
      if (tty) {
        stream.write(`\r\x1b[2K${line(planned.target, done, planned.file.size)}`);
        drawn = true;
      } else {
        stream.write(`${line(planned.target, done, planned.file.size)}\n`);
      }
    },
    fileFinished(planned, status) {
      clear();
      stream.write(`${planned.target}: ${status === 'skipped' ? 'already in place' : `done (${megabytes(planned.file.size)})`}\n`);
    },
    retrying(message) {
      clear();
      stream.write(`warning: ${message}\n`);
    },
  };
}
