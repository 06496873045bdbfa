// Fetch and build progress on stderr: a line per phase (download, verify, write) with bytes, speed and time left; redrawn on a terminal.

import type { FetchProgress } from './fetch.js';

const MB = 1e6;
const PLAIN_INTERVAL_MS = 10_000;
const TTY_INTERVAL_MS = 200;

const megabytes = (bytes: number): string => (bytes >= 1e9 ? `${(bytes / 1e9).toFixed(2)} GB` : `${(bytes / MB).toFixed(1)} MB`);
const duration = (seconds: number): string =>
  !Number.isFinite(seconds) ? '?' : seconds >= 3600 ? `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, '0')}m` : `${Math.floor(seconds / 60)}m${String(Math.floor(seconds % 60)).padStart(2, '0')}s`;

/** Progress for `stream` (stderr); `tty` picks the redrawn line. `now` is injectable for tests. */
export function createProgress(stream: { write(text: string): unknown }, tty: boolean, now: () => number = Date.now): FetchProgress {
  let startedAt = 0;
  let startBytes = 0;
  let lastDrawn = 0;
  let drawn = false;
  const clear = (): void => {
    if (tty && drawn) stream.write('\r\x1b[2K');
    drawn = false;
  };
  const begin = (done: number): void => {
    startedAt = now();
    startBytes = done;
    lastDrawn = startedAt;
  };
  /** `phase label: 45% of 5.14 GB, 81.0 MB/s, 0m52s left`, at most every 200 ms (terminal) or 10 s (log). */
  const draw = (label: string, done: number, size: number): void => {
    const at = now();
    if (at - lastDrawn < (tty ? TTY_INTERVAL_MS : PLAIN_INTERVAL_MS)) return;
    lastDrawn = at;
    const seconds = (at - startedAt) / 1000;
    const rate = seconds > 0 ? (done - startBytes) / seconds : 0;
    const percent = size > 0 ? Math.floor((done / size) * 100) : 100;
    const text = `${label}: ${percent}% of ${megabytes(size)}, ${(rate / MB).toFixed(1)} MB/s, ${duration(rate > 0 ? (size - done) / rate : Infinity)} left`;
    if (tty) {
      stream.write(`\r\x1b[2K${text}`);
      drawn = true;
    } else stream.write(`${text}\n`);
  };
  const line = (text: string): void => {
    clear();
    stream.write(`${text}\n`);
  };
  let buildStarted = 0;
  return {
    fileStarted(planned, index, count) {
      begin(planned.file.size - planned.neededBytes);
      if (!tty) stream.write(`[${index + 1}/${count}] download ${planned.target} (${megabytes(planned.file.size)}) from ${planned.repo}\n`);
    },
    fileBytes: (planned, done) => draw(`download ${planned.target}`, done, planned.file.size),
    fileVerifying(planned) {
      if (planned.file.size >= 100 * MB) line(`verify ${planned.target}: checking its ${planned.file.hash.algorithm === 'sha256' ? 'sha256' : 'git blob sha1'}`);
    },
    fileFinished: (planned, status) => line(`${planned.target}: ${status === 'skipped' ? 'already in place' : `downloaded and verified (${megabytes(planned.file.size)})`}`),
    retrying: (message) => line(`warning: ${message}`),
    note: (message) => line(message),
    buildStarted(build) {
      begin(0);
      buildStarted = now();
      if (!tty) stream.write(`write ${build.target}/ (${build.inputs.dtype}, ${megabytes(build.outputBytes)}) from ${build.weights.file.path}\n`);
    },
    buildBytes: (build, done, total) => draw(`write ${build.target}`, done, total),
    buildFinished(build, status) {
      const seconds = (now() - buildStarted) / 1000;
      line(`${build.target}/: ${status === 'skipped' ? 'already built (checked by size and sha256)' : `written (${megabytes(build.outputBytes)} in ${duration(seconds)})`}`);
    },
  };
}
