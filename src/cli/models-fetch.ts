// `npm run models:fetch -- [--steps 4] [--dry-run]`: download the model folder's parts from the Hugging Face hub into MODEL_DIR.

import { fileURLToPath } from 'node:url';
import { DownloadError } from '../models-fetch/download.js';
import { FetchError, planFetch, runFetch, type FetchOptions } from '../models-fetch/fetch.js';
import { createHubClient, HubError } from '../models-fetch/hub.js';
import { loadManifest, ManifestError } from '../models-fetch/manifest.js';
import { createProgress } from '../models-fetch/progress.js';
import { fail, loadConfigOrFail, parseArgsOrUsage } from './output.js';

const USAGE = `usage: npm run models:fetch -- [--manifest FILE] [--model-dir DIR] [--steps 1,2,4,8] [--repo OWNER/NAME] [--revision REV] [--dry-run]
environment: HF_ENDPOINT (default https://huggingface.co), HF_TOKEN (sent as a bearer token when set)`;

// compiled to dist/src/cli/, so the project root is three folders up
const DEFAULT_MANIFEST = fileURLToPath(new URL('../../../models/manifest.json', import.meta.url));
const RECIPE = 'models/README.md, "Building it yourself"';

type Options = { manifest: string; modelDir: string | undefined; steps: number[] | undefined; repo: string | undefined; revision: string | undefined; dryRun: boolean };

function parseOptions(argv: string[]): Options {
  const { values } = parseArgsOrUsage(
    {
      args: argv,
      options: {
        manifest: { type: 'string', default: DEFAULT_MANIFEST },
        'model-dir': { type: 'string' },
        steps: { type: 'string' },
        repo: { type: 'string' },
        revision: { type: 'string' },
        'dry-run': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    },
    USAGE,
  );
  let steps: number[] | undefined;
  if (values.steps !== undefined) {
    if (!/^\d+(,\d+)*$/.test(values.steps)) fail(`--steps must be step counts separated by commas, e.g. 4 or 1,2,4,8; got "${values.steps}".`, 2);
    steps = values.steps.split(',').map(Number);
  }
  if (values.repo !== undefined && !/^[\w.-]+\/[\w.-]+$/.test(values.repo)) fail(`--repo must look like owner/name, got "${values.repo}".`, 2);
  if (values.revision === '') fail('--revision must not be empty.', 2);
  return { manifest: values.manifest, modelDir: values['model-dir'], steps, repo: values.repo, revision: values.revision, dryRun: values['dry-run'] };
}

const gigabytes = (bytes: number): string => `${(bytes / 1e9).toFixed(2)} GB`;

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const config = loadConfigOrFail(options.modelDir ? { MODEL_DIR: options.modelDir } : {});
  const out = process.stderr;
  try {
    const manifest = await loadManifest(options.manifest);
    const fetchOptions: FetchOptions = {
      manifest,
      modelDir: config.modelDir,
      client: createHubClient({ endpoint: process.env.HF_ENDPOINT, token: process.env.HF_TOKEN }),
      ...(options.steps ? { steps: options.steps } : {}),
      ...(options.repo ? { repo: options.repo } : {}),
      ...(options.revision ? { revision: options.revision } : {}),
    };
    const plan = await planFetch(fetchOptions);
    const missingLines = plan.missing.map((part) => `  ${part.target}: ${part.why}`);

    if (options.dryRun) {
      const lines = plan.files.map(
        (f) => `  ${f.target}  ${gigabytes(f.file.size)}${f.neededBytes === 0 ? ' (on disk; will be checked)' : f.neededBytes < f.file.size ? ` (${gigabytes(f.neededBytes)} left)` : ''}  ← ${f.repo} ${f.file.path} at ${f.revision}`,
      );
      process.stdout.write(
        [
          `would fetch into ${plan.modelDir}:`,
          ...lines,
          `total ${gigabytes(plan.totalBytes)}, still to download ${gigabytes(plan.neededBytes)}, free disk ${gigabytes(plan.freeBytes)}`,
          ...(missingLines.length ? ['not available from the hub (see ' + RECIPE + '):', ...missingLines] : []),
        ].join('\n') + '\n',
      );
      return;
    }

    const summary = await runFetch(plan, fetchOptions, createProgress(out, out.isTTY === true));
    out.write(`fetched ${summary.downloaded} file(s) (${gigabytes(summary.receivedBytes)}), ${summary.skipped} already in place, into ${plan.modelDir}\n`);
    if (missingLines.length > 0) out.write(`still missing; build these yourself (${RECIPE}):\n${missingLines.join('\n')}\n`);
    if (summary.folderProblem !== undefined) {
      fail(`The model folder is not complete yet, so the bot will not start on it:\n${summary.folderProblem}`);
    }
    out.write('the model folder is complete.\n');
  } catch (error) {
    if (error instanceof ManifestError || error instanceof FetchError || error instanceof DownloadError || error instanceof HubError) fail(error.message);
    throw error;
  }
}

await main();
