// One file from the hub into place: resume a `.part` with Range, retry with back-off, verify size and hash, rename.

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat, truncate } from 'node:fs/promises';
import { dirname } from 'node:path';
import { HubError, type FileHash, type HubClient, type HubFile } from './hub.js';

/** Tries and back-off: attempt n (from 0) waits `min(baseDelayMs · 2^n, maxDelayMs)` before the next; `sleep` is injectable for tests. */
export type RetryPolicy = { tries: number; baseDelayMs: number; maxDelayMs: number; sleep: (ms: number) => Promise<void> };

export const DEFAULT_RETRY: RetryPolicy = {
  tries: 5,
  baseDelayMs: 1_000,
  maxDelayMs: 30_000,
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

export type DownloadRequest = { client: HubClient; repo: string; revision: string; file: HubFile; destination: string };

/** What happened to one file: `receivedBytes` counts bytes read from the network, all tries together. */
export type DownloadResult = { status: 'skipped' | 'downloaded'; receivedBytes: number };

export type DownloadHooks = {
  retry?: RetryPolicy;
  /** Bytes of the file now on disk (resumed part included), called as data arrives. */
  onBytes?: (done: number) => void;
  /** One sentence for each retried failure. */
  onRetry?: (message: string) => void;
  /** The download is whole and its hash is being checked (a multi-GB file takes a while). */
  onVerifying?: () => void;
};

export class DownloadError extends Error {
  override name = 'DownloadError';
}

/** Hex digest of a file as the hub states it: plain sha256, or git's sha1 of `"blob <size>\0"` + content. */
export async function hashFile(path: string, algorithm: FileHash['algorithm'], size: number): Promise<string> {
  const hash = createHash(algorithm === 'sha256' ? 'sha256' : 'sha1');
  if (algorithm === 'git-sha1') hash.update(`blob ${size}\0`);
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

const sizeOf = async (path: string): Promise<number | undefined> => {
  try {
    return (await stat(path)).size;
  } catch {
    return undefined;
  }
};

/** Whether `path` already holds exactly `file` (size, then hash). */
export async function isInPlace(path: string, file: HubFile): Promise<boolean> {
  if ((await sizeOf(path)) !== file.size) return false;
  return (await hashFile(path, file.hash.algorithm, file.size)) === file.hash.hex.toLowerCase();
}

/** Bytes still to fetch for `file` at `destination`, counting a complete final file as done and a `.part` as started. */
export async function bytesStillNeeded(destination: string, file: HubFile): Promise<number> {
  if ((await sizeOf(destination)) === file.size) return 0;
  const part = (await sizeOf(`${destination}.part`)) ?? 0;
  return part <= file.size ? file.size - part : file.size;
}

/** Downloads `file` to `destination` unless it is already there; throws DownloadError with one sentence when it cannot. */
export async function downloadFile(request: DownloadRequest, hooks: DownloadHooks = {}): Promise<DownloadResult> {
  const { client, repo, revision, file, destination } = request;
  const retry = hooks.retry ?? DEFAULT_RETRY;
  const name = `${file.path} (${repo} at ${revision})`;
  if (await isInPlace(destination, file)) return { status: 'skipped', receivedBytes: 0 };

  await mkdir(dirname(destination), { recursive: true });
  const part = `${destination}.part`;
  let receivedBytes = 0;
  let lastProblem = '';
  for (let attempt = 0; attempt < retry.tries; attempt++) {
    if (attempt > 0) {
      hooks.onRetry?.(`${lastProblem}; trying again (${attempt + 1} of ${retry.tries})`);
      await retry.sleep(Math.min(retry.baseDelayMs * 2 ** (attempt - 1), retry.maxDelayMs));
    }
    let offset = (await sizeOf(part)) ?? 0;
    if (offset > file.size) {
      await truncate(part, 0);
      offset = 0;
    }
    if (offset < file.size || file.size === 0) {
      try {
        const download = await client.open(repo, revision, file.path, offset);
        // a server that ignores Range sends the whole file: start the part again
        const append = download.start === offset && offset > 0;
        let written = append ? offset : 0;
        // each chunk is on disk before the next is read, so whatever arrived before a dropped connection is kept
        // for the next try to resume from (a write stream torn down by the error could lose its queued writes)
        const handle = await open(part, append ? 'a' : 'w');
        try {
          for await (const chunk of download.body) {
            await handle.write(chunk as Uint8Array);
            receivedBytes += (chunk as Uint8Array).length;
            written += (chunk as Uint8Array).length;
            hooks.onBytes?.(written);
          }
        } finally {
          await handle.close();
        }
      } catch (error) {
        if (error instanceof HubError && !error.retryable) throw new DownloadError(error.message);
        lastProblem = `${name}: download interrupted (${(error as Error).message})`;
        continue;
      }
    }
    const got = (await sizeOf(part)) ?? 0;
    if (got < file.size) {
      lastProblem = `${name}: download ended early at ${got} of ${file.size} bytes`;
      continue;
    }
    const label = file.hash.algorithm === 'sha256' ? 'sha256' : 'git blob sha1';
    if (got === file.size) hooks.onVerifying?.();
    const digest = got === file.size ? await hashFile(part, file.hash.algorithm, file.size) : '';
    if (got !== file.size || digest !== file.hash.hex.toLowerCase()) {
      await rm(part, { force: true });
      lastProblem =
        got !== file.size
          ? `${name}: ${got} bytes after download, expected ${file.size}; fetching it again`
          : `${name}: ${label} mismatch after download (expected ${file.hash.hex}, got ${digest}); fetching it again`;
      continue;
    }
    await rename(part, destination);
    return { status: 'downloaded', receivedBytes };
  }
  throw new DownloadError(`${lastProblem.replace(/; fetching it again$/, '')}; gave up after ${retry.tries} tries.`);
}
