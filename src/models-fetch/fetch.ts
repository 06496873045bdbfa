// Plan a fetch from a manifest (list every file on the hub, count bytes and free disk), then download it file by file.

import { existsSync } from 'node:fs';
import { mkdir, statfs, writeFile } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { findModelFolder, ModelFolderError } from '../diffusion/model-folder.js';
import { bytesStillNeeded, downloadFile, type RetryPolicy } from './download.js';
import type { HubClient, HubFile } from './hub.js';
import type { Manifest, MissingPart, UnetPart } from './manifest.js';

/** One file to fetch: `target` is relative to the model folder; `neededBytes` is what is not on disk yet. */
export type PlannedFile = { target: string; repo: string; revision: string; file: HubFile; neededBytes: number };

/** Sizes in bytes; `freeBytes` is what the model folder's file system has available now. */
export type FetchPlan = { modelDir: string; files: PlannedFile[]; unets: UnetPart[]; missing: MissingPart[]; totalBytes: number; neededBytes: number; freeBytes: number };

export type FetchOptions = {
  manifest: Manifest;
  modelDir: string;
  client: HubClient;
  /** Only the UNets for these step counts (default: every one the manifest lists). */
  steps?: readonly number[];
  /** Replaces the repo (or revision) of every part, e.g. a mirror or a fork. */
  repo?: string;
  revision?: string;
  retry?: RetryPolicy;
  /** Free bytes where `dir` lives (default: `fs.statfs`). */
  freeBytes?: (dir: string) => Promise<number>;
  /** Space kept free beyond the download (default 512 MiB). */
  diskMarginBytes?: number;
};

export type FetchProgress = {
  fileStarted?(planned: PlannedFile, index: number, count: number): void;
  fileBytes?(planned: PlannedFile, done: number): void;
  fileFinished?(planned: PlannedFile, status: 'skipped' | 'downloaded'): void;
  retrying?(message: string): void;
};

/** `receivedBytes` counts network bytes; `folderProblem` is findModelFolder's complaint when the folder is still unusable. */
export type FetchSummary = { downloaded: number; skipped: number; receivedBytes: number; missing: MissingPart[]; folderProblem?: string };

export class FetchError extends Error {
  override name = 'FetchError';
}

export const DEFAULT_DISK_MARGIN_BYTES = 512 * 1024 ** 2;

const gigabytes = (bytes: number): string => `${(bytes / 1e9).toFixed(2)} GB`;

/** Free bytes on the file system that holds `dir`, or its nearest existing parent. */
export async function freeDiskBytes(dir: string): Promise<number> {
  let existing = dir;
  while (!existsSync(existing) && dirname(existing) !== existing) existing = dirname(existing);
  const stats = await statfs(existing);
  return stats.bavail * stats.bsize;
}

/** Lists every file of the manifest on the hub and counts what is still needed; throws FetchError naming every file the hub lacks. */
export async function planFetch(options: FetchOptions): Promise<FetchPlan> {
  const { manifest, client } = options;
  const source = (part: { repo: string; revision: string }) => ({ repo: options.repo ?? part.repo, revision: options.revision ?? part.revision });
  const listedSteps = [...manifest.unets.map((u) => u.steps), ...manifest.missing.flatMap((m) => (m.steps === undefined ? [] : [m.steps]))];
  for (const steps of options.steps ?? []) {
    if (!listedSteps.includes(steps)) {
      throw new FetchError(`--steps ${steps}: the manifest has no UNet for ${steps} steps (it lists ${[...new Set(listedSteps)].sort((a, b) => a - b).join(', ') || 'none'}).`);
    }
  }
  const wanted = (steps: number | undefined) => steps === undefined || options.steps === undefined || options.steps.includes(steps);
  const unets = manifest.unets.filter((u) => wanted(u.steps));
  const missing = manifest.missing.filter((m) => wanted(m.steps));

  const wantedFiles = [
    ...manifest.files.map((f) => ({ target: f.target, path: f.path, ...source(f) })),
    ...unets.flatMap((u) => u.files.map((path) => ({ target: `${u.target}/${posix.basename(path)}`, path, ...source(u) }))),
  ];
  const listings = new Map<string, Promise<HubFile[]>>();
  const problems: string[] = [];
  const files: PlannedFile[] = [];
  for (const want of wantedFiles) {
    const dir = posix.dirname(want.path) === '.' ? '' : posix.dirname(want.path);
    const key = `${want.repo}\n${want.revision}\n${dir}`;
    if (!listings.has(key)) listings.set(key, client.listFiles(want.repo, want.revision, dir));
    const file = (await listings.get(key)!).find((f) => f.path === want.path);
    if (!file) {
      problems.push(`${want.target}: the hub lists no file ${want.path} in ${want.repo} at ${want.revision}.`);
      continue;
    }
    const destination = join(options.modelDir, want.target);
    files.push({ target: want.target, repo: want.repo, revision: want.revision, file, neededBytes: await bytesStillNeeded(destination, file) });
  }
  if (problems.length > 0) throw new FetchError(problems.join('\n'));
  const totalBytes = files.reduce((sum, f) => sum + f.file.size, 0);
  const neededBytes = files.reduce((sum, f) => sum + f.neededBytes, 0);
  const freeBytes = await (options.freeBytes ?? freeDiskBytes)(options.modelDir);
  return { modelDir: options.modelDir, files, unets, missing, totalBytes, neededBytes, freeBytes };
}

/** Checks the disk, downloads every planned file (skipping those in place), writes each UNet's config.json, then checks the folder. */
export async function runFetch(plan: FetchPlan, options: FetchOptions, progress: FetchProgress = {}): Promise<FetchSummary> {
  const margin = options.diskMarginBytes ?? DEFAULT_DISK_MARGIN_BYTES;
  if (plan.neededBytes > 0 && plan.neededBytes + margin > plan.freeBytes) {
    throw new FetchError(
      `Not enough disk space in ${plan.modelDir}: ${gigabytes(plan.neededBytes)} still to download plus a ${gigabytes(margin)} margin, but only ${gigabytes(plan.freeBytes)} free.`,
    );
  }
  const summary: FetchSummary = { downloaded: 0, skipped: 0, receivedBytes: 0, missing: plan.missing };
  for (const [index, planned] of plan.files.entries()) {
    progress.fileStarted?.(planned, index, plan.files.length);
    const result = await downloadFile(
      { client: options.client, repo: planned.repo, revision: planned.revision, file: planned.file, destination: join(plan.modelDir, planned.target) },
      {
        ...(options.retry ? { retry: options.retry } : {}),
        onBytes: (done) => progress.fileBytes?.(planned, done),
        onRetry: (message) => progress.retrying?.(message),
      },
    );
    summary.receivedBytes += result.receivedBytes;
    summary[result.status === 'skipped' ? 'skipped' : 'downloaded'] += 1;
    progress.fileFinished?.(planned, result.status);
  }
  for (const unet of plan.unets) {
    const config = { lightning_steps: unet.steps, prediction_type: unet.prediction };
    await mkdir(join(plan.modelDir, unet.target), { recursive: true });
    await writeFile(join(plan.modelDir, unet.target, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  }
  try {
    findModelFolder(plan.modelDir);
  } catch (error) {
    if (!(error instanceof ModelFolderError)) throw error;
    summary.folderProblem = error.message;
  }
  return summary;
}
