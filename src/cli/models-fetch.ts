// `npm run models:fetch -- [--steps 4] [--dtype fp16] [--dry-run]`: download the official files and build the Lightning folder in MODEL_DIR.

import { safetyClassifierProblems } from '../diffusion/safety-files.js';
import { describePlan, isFetchFailure, prepareFetch, runPreparedFetch } from '../models-fetch/command.js';
import { parseDtype, parseSteps } from './model-args.js';
import { fail, loadConfigOrFail, parseArgsOrUsage } from './output.js';

const USAGE = `usage: npm run models:fetch -- [--steps 4 | --steps 1,2,4,8] [--dtype fp16|fp32] [--keep-downloads] [--model-dir DIR] [--manifest FILE] [--dry-run]
  --steps           the Lightning UNets to build (default 4); each is a 5.1 GB download
  --dtype           fp16 (default: fp16 UNets and the fp16-fix VAE, for CUDA) or fp32 (the graphs' float32 and the base VAE)
  --keep-downloads  keep the downloaded safetensors under MODEL_DIR/.build/downloads (default: removed once built)
  --dry-run         list what would be downloaded and built, with sizes and free disk, and stop
with SAFETY=on (the default) it also downloads the image safety classifier into MODEL_DIR/safety_classifier
environment: MODEL_DIR, SAFETY, HF_ENDPOINT (default https://huggingface.co), HF_TOKEN (sent as a bearer token when set)`;

async function main(): Promise<void> {
  const { values } = parseArgsOrUsage(
    {
      args: process.argv.slice(2),
      options: {
        manifest: { type: 'string' },
        'model-dir': { type: 'string' },
        steps: { type: 'string' },
        dtype: { type: 'string', default: 'fp16' },
        'keep-downloads': { type: 'boolean', default: false },
        'dry-run': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    },
    USAGE,
  );
  const steps = values.steps === undefined ? undefined : parseSteps(values.steps);
  const dtype = parseDtype(values.dtype);
  const config = loadConfigOrFail(values['model-dir'] ? { MODEL_DIR: values['model-dir'] } : {});
  try {
    const prepared = await prepareFetch({
      modelDir: config.modelDir,
      ...(values.manifest ? { manifest: values.manifest } : {}),
      ...(steps ? { steps } : {}),
      dtype,
      keepDownloads: values['keep-downloads'],
      safety: config.safety.enabled,
      endpoint: process.env.HF_ENDPOINT,
      token: process.env.HF_TOKEN,
    });
    if (values['dry-run']) {
      process.stdout.write(`would fetch and build ${describePlan(prepared.plan)}\n`);
      return;
    }
    const summary = await runPreparedFetch(prepared, process.stderr);
    if (summary.folderProblem !== undefined) fail(`The model folder is not complete yet, so the bot will not start on it:\n${summary.folderProblem}`);
    const safetyProblems = config.safety.enabled ? safetyClassifierProblems(config.modelDir) : [];
    if (safetyProblems.length > 0) fail(`The image safety classifier is not usable, so the bot will not start with SAFETY=on:\n${safetyProblems.map((p) => `  - ${p}`).join('\n')}`);
    process.stderr.write('the model folder is complete: npm start runs on it.\n');
  } catch (error) {
    if (isFetchFailure(error)) fail(error.message);
    throw error;
  }
}

await main();
