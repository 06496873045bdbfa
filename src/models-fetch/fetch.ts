// Plan a fetch from the manifest (list files on the hub, read weight headers, count bytes and free disk), then download and build.

import { existsSync } from 'node:fs';
import { mkdir, rm, stat, statfs } from 'node:fs/promises';
import { dirname, join, posix, resolve } from 'node:path';
import { findModelFolder, ModelFolderError } from '../diffusion/model-folder.js';
import { hubSource, openFileSource } from '../model-build/byte-source.js';
import { BUILDER_VERSION, buildPart, isPartBuilt, PART_KINDS, sha256File, type PartInputs, type PartKind } from '../model-build/build.js';
import type { Dtype } from '../model-build/convert.js';
import { planMapping, type MappingOptions } from '../model-build/mapping.js';
import { readModelFile } from '../onnx/index.js';
import { readSafetensorsHeader, type SafetensorsHeader } from '../model-build/safetensors.js';
import { runSelfCheck, type SelfCheckResult } from '../model-build/self-check.js';
import { bytesStillNeeded, downloadFile, type RetryPolicy } from './download.js';
import type { HubClient, HubFile } from './hub.js';
import type { HubRef, Manifest, Prediction } from './manifest.js';

/** One file to download: `target` is relative to the model folder; `neededBytes` is what is not on disk yet. */
export type PlannedFile = { target: string; repo: string; revision: string; file: HubFile; neededBytes: number };

/** One part to build from a base graph and downloaded weights; `built` when the record shows it finished and intact. */
export type PlannedBuild = {
  target: string;
  kind: PartKind;
  graph: PlannedFile;
  /** The weights: downloaded to `weights.target`, or read in place from `localWeights` (never removed). */
  weights: PlannedFile;
  localWeights?: string;
  header: SafetensorsHeader;
  inputs: PartInputs;
  /** Bytes the built part takes on disk (weights at the chosen dtype). */
  outputBytes: number;
  built: boolean;
};

/** Sizes in bytes. `neededBytes` is the most the build adds to the disk at once; `freeBytes` what the file system has now. */
export type FetchPlan = { modelDir: string; dtype: Dtype; files: PlannedFile[]; builds: PlannedBuild[]; downloadBytes: number; neededBytes: number; freeBytes: number };

export type FetchOptions = {
  manifest: Manifest;
  modelDir: string;
  client: HubClient;
  /** The UNets for these step counts (default: 4, the bot's default step count). */
  steps?: readonly number[];
  /** fp16 (default) writes fp16 UNets and the fp16-fix VAE; fp32 keeps the graphs' float32 and the base VAE. */
  dtype?: Dtype;
  /** Keep the downloaded safetensors after a verified build (default: removed). */
  keepDownloads?: boolean;
  retry?: RetryPolicy;
  /** Free bytes where `dir` lives (default: `fs.statfs`). */
  freeBytes?: (dir: string) => Promise<number>;
  /** Space kept free beyond the estimate (default 512 MiB). */
  diskMarginBytes?: number;
  /** Also download the manifest's `safety` files, the image safety classifier (SAFETY=on). Default false. */
  safety?: boolean;
};

export type FetchProgress = {
  fileStarted?(planned: PlannedFile, index: number, count: number): void;
  fileBytes?(planned: PlannedFile, done: number): void;
  fileVerifying?(planned: PlannedFile): void;
  fileFinished?(planned: PlannedFile, status: 'skipped' | 'downloaded'): void;
  retrying?(message: string): void;
  /** A finished step worth a line of its own (a self-check, a removed download). */
  note?(message: string): void;
  buildStarted?(build: PlannedBuild): void;
  buildBytes?(build: PlannedBuild, done: number, total: number): void;
  buildFinished?(build: PlannedBuild, status: 'built' | 'skipped'): void;
};

/** `receivedBytes` counts network bytes; `folderProblem` is findModelFolder's complaint when the folder is still unusable. */
export type FetchSummary = { downloaded: number; skipped: number; built: number; receivedBytes: number; selfChecks: SelfCheckResult[]; folderProblem?: string };

export class FetchError extends Error {
  override name = 'FetchError';
}

export const DEFAULT_DISK_MARGIN_BYTES = 512 * 1024 ** 2;
export const DEFAULT_STEPS = [4] as const;
/** Where the base graphs and downloaded weights wait inside the model folder. */
export const WORK_DIR = '.build';

const gigabytes = (bytes: number): string => `${(bytes / 1e9).toFixed(2)} GB`;

/** Free bytes on the file system that holds `dir`, or its nearest existing parent. */
export async function freeDiskBytes(dir: string): Promise<number> {
  let existing = dir;
  while (!existsSync(existing) && dirname(existing) !== existing) existing = dirname(existing);
  const stats = await statfs(existing);
  return stats.bavail * stats.bsize;
}

/** A hub file's listing entry, or undefined; listings are fetched once per folder. */
function createLister(client: HubClient) {
  const listings = new Map<string, Promise<HubFile[]>>();
  return async (ref: HubRef): Promise<HubFile | undefined> => {
    const dir = posix.dirname(ref.path) === '.' ? '' : posix.dirname(ref.path);
    const key = `${ref.repo}\n${ref.revision}\n${dir}`;
    if (!listings.has(key)) listings.set(key, client.listFiles(ref.repo, ref.revision, dir));
    return (await listings.get(key)!).find((f) => f.path === ref.path);
  };
}

/**
 * Lists every file on the hub, reads each weights file's header (two small range requests) and counts what is
 * still needed; throws FetchError naming every file the hub lacks. Downloads nothing.
 */
export async function planFetch(options: FetchOptions): Promise<FetchPlan> {
  const { manifest, client } = options;
  const dtype = options.dtype ?? 'fp16';
  const steps = options.steps ?? DEFAULT_STEPS;
  const listed = manifest.unets.map((u) => u.steps).sort((a, b) => a - b);
  for (const n of steps) if (!listed.includes(n)) throw new FetchError(`--steps ${n}: the manifest has no UNet for ${n} steps (it lists ${listed.join(', ') || 'none'}).`);
  const find = createLister(client);
  const problems: string[] = [];
  const plan = async (ref: HubRef, target: string): Promise<PlannedFile | undefined> => {
    const file = await find(ref);
    if (!file) {
      problems.push(`${target}: the hub lists no file ${ref.path} in ${ref.repo} at ${ref.revision}.`);
      return undefined;
    }
    return { target, repo: ref.repo, revision: ref.revision, file, neededBytes: await bytesStillNeeded(join(options.modelDir, target), file) };
  };
  const base = manifest.base;
  const baseRef = (path: string): HubRef => ({ repo: base.repo, revision: base.revision, path });
  const files: PlannedFile[] = [];
  for (const part of [...manifest.files, ...(options.safety ? manifest.safety : [])]) {
    const planned = await plan(part, part.target);
    if (planned) files.push(planned);
  }
  const unetGraph = await plan(baseRef(base.unet.graph), `${WORK_DIR}/base/${base.unet.graph}`);
  const vaeGraph = dtype === 'fp16' ? await plan(baseRef(base.vae.graph), `${WORK_DIR}/base/${base.vae.graph}`) : await plan(baseRef(base.vae.graph), 'vae_decoder/model.onnx');
  for (const graph of [unetGraph, vaeGraph]) if (graph) files.push(graph);
  for (const ref of [baseRef(base.unet.data), baseRef(base.unet.weights), ...(dtype === 'fp16' ? [baseRef(base.vae.weights)] : [])]) {
    if (!(await find(ref))) problems.push(`self-check: the hub lists no file ${ref.path} in ${ref.repo} at ${ref.revision}.`);
  }

  const wanted: { target: string; kind: PartKind; ref: HubRef; config: Record<string, unknown> | null; graph: PlannedFile | undefined }[] = manifest.unets
    .filter((u) => steps.includes(u.steps))
    .sort((a, b) => a.steps - b.steps)
    .map((u) => ({ target: `unet_${u.steps}step`, kind: 'unet', ref: u, config: { lightning_steps: u.steps, prediction_type: u.prediction }, graph: unetGraph }));
  if (dtype === 'fp16') wanted.push({ target: 'vae_decoder', kind: 'vae', ref: manifest.vaeFp16, config: null, graph: vaeGraph });
  const builds: PlannedBuild[] = [];
  for (const want of wanted) {
    const weights = await plan(want.ref, `${WORK_DIR}/downloads/${want.ref.repo}/${want.ref.path}`);
    if (!weights || !want.graph) continue;
    const header = await readSafetensorsHeader(hubSource(client, want.ref.repo, want.ref.revision, want.ref.path));
    const inputs: PartInputs = { kind: want.kind, dtype, graphSha256: want.graph.file.hash.hex, weightsSha256: weights.file.hash.hex, config: want.config, builder: BUILDER_VERSION };
    const built = await isPartBuilt(options.modelDir, want.target, inputs);
    if (built) weights.neededBytes = 0;
    builds.push({ target: want.target, kind: want.kind, graph: want.graph, weights, header, inputs, outputBytes: outputBytes(want.kind, header, dtype), built });
  }
  if (problems.length > 0) throw new FetchError(problems.join('\n'));
  return totals(options, dtype, files, builds);
}

async function totals(options: FetchOptions, dtype: Dtype, files: PlannedFile[], builds: PlannedBuild[]): Promise<FetchPlan> {
  const pending = builds.filter((b) => !b.built);
  const downloads = pending.map((b) => (b.localWeights ? 0 : b.weights.neededBytes));
  const fileBytes = files.reduce((n, f) => n + f.neededBytes, 0);
  const outputs = pending.reduce((n, b) => n + b.outputBytes, 0);
  const weightsAtOnce = options.keepDownloads ? downloads.reduce((a, b) => a + b, 0) : Math.max(0, ...downloads);
  return {
    modelDir: options.modelDir,
    dtype,
    files,
    builds,
    downloadBytes: fileBytes + downloads.reduce((a, b) => a + b, 0),
    neededBytes: fileBytes + outputs + weightsAtOnce,
    freeBytes: await (options.freeBytes ?? freeDiskBytes)(options.modelDir),
  };
}

/** Bytes a built part takes: the weights the graph holds, at the dtype's width. */
function outputBytes(kind: PartKind, header: SafetensorsHeader, dtype: Dtype): number {
  const mapping: MappingOptions = PART_KINDS[kind].mapping;
  const kept = header.tensors.filter((t) => !(mapping.ignoreKeyPrefixes ?? []).some((p) => t.name.startsWith(p)));
  return kept.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0) * (dtype === 'fp16' ? 2 : 4);
}

/** Where new UNet weights come from: a local safetensors file, or a file in a hub repo. */
export type WeightsSource = { file: string } | HubRef;

export type CustomUnet = { weights: WeightsSource; steps: number; prediction: Prediction };

/**
 * Plans building one UNet from any SDXL-architecture diffusers safetensors (a community fine-tune): the base graph
 * from the manifest's base repo, the weights from a local file or the hub, into `unet_<steps>step/`.
 */
export async function planCustomUnet(options: FetchOptions, unet: CustomUnet): Promise<FetchPlan> {
  const dtype = options.dtype ?? 'fp16';
  const base = options.manifest.base;
  const find = createLister(options.client);
  const graphRef: HubRef = { repo: base.repo, revision: base.revision, path: base.unet.graph };
  const graphFile = await find(graphRef);
  if (!graphFile) throw new FetchError(`${base.unet.graph}: the hub lists no such file in ${base.repo} at ${base.revision}.`);
  const graph: PlannedFile = { target: `${WORK_DIR}/base/${base.unet.graph}`, repo: base.repo, revision: base.revision, file: graphFile, neededBytes: await bytesStillNeeded(join(options.modelDir, `${WORK_DIR}/base/${base.unet.graph}`), graphFile) };
  let weights: PlannedFile;
  let header: SafetensorsHeader;
  let localWeights: string | undefined;
  if ('file' in unet.weights) {
    localWeights = resolve(unet.weights.file);
    const size = await stat(localWeights).then((s) => s.size, () => -1);
    if (size < 0) throw new FetchError(`--unet ${unet.weights.file}: no such file.`);
    const source = await openFileSource(localWeights);
    try {
      header = await readSafetensorsHeader(source);
    } finally {
      await source.close();
    }
    weights = { target: localWeights, repo: 'a local file', revision: '', file: { path: localWeights, size, hash: { algorithm: 'sha256', hex: await sha256File(localWeights) } }, neededBytes: 0 };
  } else {
    const ref = unet.weights;
    const file = await find(ref);
    if (!file) throw new FetchError(`--unet ${ref.repo}:${ref.path}: the hub lists no such file at ${ref.revision}.`);
    const target = `${WORK_DIR}/downloads/${ref.repo}/${ref.path}`;
    weights = { target, repo: ref.repo, revision: ref.revision, file, neededBytes: await bytesStillNeeded(join(options.modelDir, target), file) };
    header = await readSafetensorsHeader(hubSource(options.client, ref.repo, ref.revision, ref.path));
  }
  const target = `unet_${unet.steps}step`;
  const inputs: PartInputs = { kind: 'unet', dtype, graphSha256: graphFile.hash.hex, weightsSha256: weights.file.hash.hex, config: { lightning_steps: unet.steps, prediction_type: unet.prediction }, builder: BUILDER_VERSION };
  const built = await isPartBuilt(options.modelDir, target, inputs);
  const build: PlannedBuild = { target, kind: 'unet', graph, weights, ...(localWeights ? { localWeights } : {}), header, inputs, outputBytes: outputBytes('unet', header, dtype), built };
  return totals(options, dtype, [graph], [build]);
}

/**
 * Checks the disk, downloads the plain files and base graphs, runs the self-check, then per part: checks the mapping
 * on the new weights' header, downloads them, builds, records, and removes the download unless kept.
 */
export async function runFetch(plan: FetchPlan, options: FetchOptions, progress: FetchProgress = {}): Promise<FetchSummary> {
  const margin = options.diskMarginBytes ?? DEFAULT_DISK_MARGIN_BYTES;
  if (plan.neededBytes > 0 && plan.neededBytes + margin > plan.freeBytes) {
    throw new FetchError(
      `Not enough disk space in ${plan.modelDir}: the downloads and the build need ${gigabytes(plan.neededBytes)} plus a ${gigabytes(margin)} margin, but only ${gigabytes(plan.freeBytes)} are free. Free some space, or fetch fewer step counts (--steps 4).`,
    );
  }
  const summary: FetchSummary = { downloaded: 0, skipped: 0, built: 0, receivedBytes: 0, selfChecks: [] };
  const pending = plan.builds.filter((b) => !b.built);
  const download = async (planned: PlannedFile, index: number, count: number): Promise<void> => {
    progress.fileStarted?.(planned, index, count);
    const result = await downloadFile(
      { client: options.client, repo: planned.repo, revision: planned.revision, file: planned.file, destination: join(plan.modelDir, planned.target) },
      {
        ...(options.retry ? { retry: options.retry } : {}),
        onBytes: (done) => progress.fileBytes?.(planned, done),
        onRetry: (message) => progress.retrying?.(message),
        onVerifying: () => progress.fileVerifying?.(planned),
      },
    );
    summary.receivedBytes += result.receivedBytes;
    summary[result.status === 'skipped' ? 'skipped' : 'downloaded'] += 1;
    progress.fileFinished?.(planned, result.status);
  };
  const count = plan.files.length + pending.length;
  for (const [index, planned] of plan.files.entries()) await download(planned, index, count);

  const base = options.manifest.base;
  const kinds = new Set(pending.map((b) => b.kind));
  for (const kind of kinds) {
    const graph = pending.find((b) => b.kind === kind)!.graph;
    const source = (path: string) => hubSource(options.client, base.repo, base.revision, path);
    const check = await runSelfCheck({
      graph: join(plan.modelDir, graph.target),
      data: kind === 'unet' ? source(base.unet.data) : null,
      weights: source(kind === 'unet' ? base.unet.weights : base.vae.weights),
      mapping: PART_KINDS[kind].mapping,
    });
    summary.selfChecks.push(check);
    const rules = new Set(check.checked.map((c) => c.rule));
    progress.note?.(`self-check (${kind === 'unet' ? base.unet.graph : base.vae.graph}): all ${check.keys} base weights map; ${check.checked.length} tensors of ${rules.size} rules (${[...rules].join(', ')}) match the ${kind === 'unet' ? base.unet.weights : base.vae.weights} copy`);
  }

  for (const [index, build] of pending.entries()) {
    // the new weights' keys and shapes must fit the graph before gigabytes come down
    planMapping((await readModelFile(join(plan.modelDir, build.graph.target))).graph!, new Map(build.header.tensors.map((t) => [t.name, t.shape])), {
      graphName: build.graph.file.path,
      weightsName: build.localWeights ?? `${build.weights.repo}:${build.weights.file.path}`,
      ...PART_KINDS[build.kind].mapping,
    });
    if (!build.localWeights) await download(build.weights, plan.files.length + index, count);
    progress.buildStarted?.(build);
    await mkdir(join(plan.modelDir, build.target), { recursive: true });
    await buildPart({
      modelDir: plan.modelDir,
      target: build.target,
      inputs: build.inputs,
      baseGraph: join(plan.modelDir, build.graph.target),
      weights: build.localWeights ?? join(plan.modelDir, build.weights.target),
      header: build.header,
      onBytes: (done, total) => progress.buildBytes?.(build, done, total),
    });
    summary.built += 1;
    progress.buildFinished?.(build, 'built');
    if (!options.keepDownloads && !build.localWeights) {
      await rm(join(plan.modelDir, build.weights.target), { force: true });
      progress.note?.(`removed the download ${build.weights.file.path} (keep it with --keep-downloads)`);
    }
  }
  for (const build of plan.builds.filter((b) => b.built)) progress.buildFinished?.(build, 'skipped');
  try {
    findModelFolder(plan.modelDir);
  } catch (error) {
    if (!(error instanceof ModelFolderError)) throw error;
    summary.folderProblem = error.message;
  }
  return summary;
}
