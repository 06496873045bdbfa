// The whole fetch as one call, shared by `npm run models:fetch` and the first start of the bot: plan, say what it costs, run.

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConvertError, type Dtype } from '../model-build/convert.js';
import { Fp16ConversionError } from '../model-build/fp16-graph.js';
import { MappingError } from '../model-build/mapping.js';
import { SafetensorsError } from '../model-build/safetensors.js';
import { SelfCheckError } from '../model-build/self-check.js';
import { OnnxFormatError } from '../onnx/index.js';
import { DownloadError } from './download.js';
import { FetchError, planFetch, runFetch, type FetchOptions, type FetchPlan, type FetchSummary } from './fetch.js';
import { createHubClient, HubError } from './hub.js';
import { loadManifest, ManifestError } from './manifest.js';
import { createProgress } from './progress.js';

/** models/manifest.json of the project, found from this module (dist/src/models-fetch/ when built, src/models-fetch/ under the test runner). */
export const DEFAULT_MANIFEST = ((): string => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'models', 'manifest.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return join(dir, 'models', 'manifest.json');
})();

export type FetchCommand = {
  modelDir: string;
  manifest?: string;
  steps?: readonly number[];
  dtype?: Dtype;
  keepDownloads?: boolean;
  /** Also fetch the image safety classifier (SAFETY=on). */
  safety?: boolean;
  /** HF_ENDPOINT and HF_TOKEN. */
  endpoint?: string | undefined;
  token?: string | undefined;
};

export type Output = { write(text: string): unknown; isTTY?: boolean };

/** Failures that are one clear sentence for the admin (a bad manifest, the hub, the disk, a mapping, the self-check). */
export function isFetchFailure(error: unknown): error is Error {
  return [ManifestError, FetchError, DownloadError, HubError, MappingError, SelfCheckError, SafetensorsError, ConvertError, Fp16ConversionError, OnnxFormatError].some((type) => error instanceof type);
}

const gigabytes = (bytes: number): string => `${(bytes / 1e9).toFixed(2)} GB`;

/** Reads the manifest and makes the plan (downloads nothing); with it, the options `runFetch` needs. */
export async function prepareFetch(command: FetchCommand): Promise<{ plan: FetchPlan; options: FetchOptions }> {
  const options: FetchOptions = {
    manifest: await loadManifest(command.manifest ?? DEFAULT_MANIFEST),
    modelDir: command.modelDir,
    client: createHubClient({ endpoint: command.endpoint, token: command.token }),
    ...(command.steps ? { steps: command.steps } : {}),
    ...(command.dtype ? { dtype: command.dtype } : {}),
    ...(command.keepDownloads ? { keepDownloads: true } : {}),
    ...(command.safety ? { safety: true } : {}),
  };
  return { plan: await planFetch(options), options };
}

/** What the plan will do, one line per file and part (for `--dry-run` and the first-start question). */
export function describePlan(plan: FetchPlan): string {
  const files = plan.files.map(
    (f) => `  ${f.target}  ${gigabytes(f.file.size)}${f.neededBytes === 0 ? ' (on disk; will be checked)' : f.neededBytes < f.file.size ? ` (${gigabytes(f.neededBytes)} left)` : ''}  ← ${f.repo} ${f.file.path} at ${f.revision}`,
  );
  const builds = plan.builds.map(
    (b) => `  ${b.target}/  ${gigabytes(b.outputBytes)} ${plan.dtype}${b.built ? ' (built; will be checked)' : ''}  ← ${b.graph.file.path} + ${b.weights.repo} ${b.weights.file.path} (${gigabytes(b.weights.file.size)} download)`,
  );
  return [
    `into ${plan.modelDir}:`,
    'download:',
    ...files,
    'build:',
    ...builds,
    `to download ${gigabytes(plan.downloadBytes)}; disk needed at most ${gigabytes(plan.neededBytes)}, free ${gigabytes(plan.freeBytes)}`,
  ].join('\n');
}

/** Runs a prepared fetch with progress on `out` and a closing line. */
export async function runPreparedFetch(prepared: { plan: FetchPlan; options: FetchOptions }, out: Output): Promise<FetchSummary> {
  const started = Date.now();
  const summary = await runFetch(prepared.plan, prepared.options, createProgress(out, out.isTTY === true));
  const minutes = ((Date.now() - started) / 60_000).toFixed(1);
  out.write(`fetched ${summary.downloaded} file(s) (${gigabytes(summary.receivedBytes)} received), ${summary.skipped} already in place, built ${summary.built} part(s), in ${minutes} min, into ${prepared.plan.modelDir}\n`);
  return summary;
}
