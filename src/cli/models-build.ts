// `npm run models:build -- --unet FILE|REPO:PATH --steps 4 --prediction epsilon`: one UNet from any SDXL diffusers safetensors into MODEL_DIR.

import { existsSync } from 'node:fs';
import { isFetchFailure, DEFAULT_MANIFEST } from '../models-fetch/command.js';
import { planCustomUnet, runFetch, type FetchOptions, type WeightsSource } from '../models-fetch/fetch.js';
import { createHubClient } from '../models-fetch/hub.js';
import { loadManifest, PREDICTIONS, type Prediction } from '../models-fetch/manifest.js';
import { createProgress } from '../models-fetch/progress.js';
import { parseDtype, parseSteps } from './model-args.js';
import { fail, loadConfigOrFail, parseArgsOrUsage } from './output.js';

const USAGE = `usage: npm run models:build -- --unet FILE|REPO:PATH --steps N --prediction epsilon|sample [--dtype fp16|fp32] [--revision REV] [--keep-downloads] [--model-dir DIR] [--manifest FILE]
  --unet        an SDXL-architecture UNet in diffusers safetensors layout: a local file, or owner/name:path/in/repo on the hub
  --steps       the step count it was distilled for; it is written to unet_<N>step/
  --prediction  epsilon (noise; Lightning 2, 4 and 8 steps) or sample (x0; Lightning 1 step)
  --revision    the hub revision of a REPO:PATH (default main)
The base graph comes from the manifest's SDXL base repo; the self-check runs first. Environment: MODEL_DIR, HF_ENDPOINT, HF_TOKEN.`;

/** A local file when one exists at that path, else `owner/name:path` on the hub. */
function parseWeights(text: string, revision: string): WeightsSource {
  if (existsSync(text)) return { file: text };
  const hub = /^([\w.-]+\/[\w.-]+):(.+)$/.exec(text);
  if (hub) return { repo: hub[1], path: hub[2], revision };
  fail(`--unet "${text}": no such file, and not a hub file written as owner/name:path/in/repo.`, 2);
}

async function main(): Promise<void> {
  const { values } = parseArgsOrUsage(
    {
      args: process.argv.slice(2),
      options: {
        unet: { type: 'string' },
        steps: { type: 'string' },
        prediction: { type: 'string' },
        dtype: { type: 'string', default: 'fp16' },
        revision: { type: 'string', default: 'main' },
        'keep-downloads': { type: 'boolean', default: false },
        'model-dir': { type: 'string' },
        manifest: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    },
    USAGE,
  );
  const missing = (['unet', 'steps', 'prediction'] as const).filter((name) => values[name] === undefined);
  if (missing.length > 0) fail(`${missing.map((m) => `--${m}`).join(', ')} ${missing.length === 1 ? 'is' : 'are'} needed.\n${USAGE}`, 2);
  const steps = parseSteps(values.steps!);
  if (steps.length !== 1) fail(`--steps takes one step count here, got "${values.steps}".`, 2);
  if (!PREDICTIONS.includes(values.prediction as Prediction)) fail(`--prediction must be ${PREDICTIONS.join(' or ')}; got "${values.prediction}".`, 2);
  const dtype = parseDtype(values.dtype);
  const weights = parseWeights(values.unet!, values.revision);
  const config = loadConfigOrFail(values['model-dir'] ? { MODEL_DIR: values['model-dir'] } : {});
  try {
    const options: FetchOptions = {
      manifest: await loadManifest(values.manifest ?? DEFAULT_MANIFEST),
      modelDir: config.modelDir,
      client: createHubClient({ endpoint: process.env.HF_ENDPOINT, token: process.env.HF_TOKEN }),
      dtype,
      keepDownloads: values['keep-downloads'],
    };
    const plan = await planCustomUnet(options, { weights, steps: steps[0], prediction: values.prediction as Prediction });
    const summary = await runFetch(plan, options, createProgress(process.stderr, process.stderr.isTTY === true));
    process.stderr.write(`${summary.built === 1 ? 'built' : 'already built:'} ${plan.builds[0].target}/ in ${plan.modelDir}\n`);
    if (summary.folderProblem !== undefined) {
      process.stderr.write(`The rest of the folder is not complete yet (npm run models:fetch gets it):\n${summary.folderProblem}\n`);
      process.exitCode = 1;
    }
  } catch (error) {
    if (isFetchFailure(error)) fail(error.message);
    throw error;
  }
}

await main();
